// One workflow: its status and each step's state (with a link to the step's task), live;
// Cancel (admin key, after confirming) while it runs.

import * as api from '../api.js';
import { h, swap, link, route, when, json } from '../dom.js';
import { table, badge, figures, section, actionButton, confirmAction, notice } from '../ui.js';

export async function render(ctx) {
  const id = ctx.params.id;
  const path = `workflows/${encodeURIComponent(id)}`;
  ctx.title(`Workflow ${id}`);
  let wf = await api.get(path, {}, ctx.signal);
  const head = h('div', { class: 'page-head' });
  const body = h('div', { class: 'region' });
  swap(ctx.main, head, body);

  async function cancel() {
    const ok = await confirmAction('Cancel this workflow?', 'Steps still waiting never run; '
      + 'steps queued but not taken by a worker are removed; running steps go on, and their end '
      + 'starts nothing.', 'Cancel workflow', { danger: true });
    if (!ok) return;
    try {
      const r = await api.post(`${path}/cancel`);
      notice(r.before === 'running' ? 'Workflow cancelled.' : `The workflow had already ${r.before === 'cancelled' ? 'been cancelled' : r.before}.`);
      wf = r.status;
    } catch (err) {
      notice(api.message(err), 'error');
    }
    draw();
  }

  function draw() {
    swap(head,
      h('h1', { tabindex: '-1' }, 'Workflow ', h('span', { class: 'mono' }, id), ' ',
        badge(wf.status)),
      wf.status === 'running'
        ? h('div', { class: 'head-actions' },
          actionButton(ctx, 'Cancel workflow', cancel, { danger: true, key: 'cancel' }))
        : null,
      h('p', { class: 'live', 'aria-live': 'off' }, wf.finished ? 'Finished' : 'Live'));
    swap(body,
      figures([
        ['Kind', wf.kind || '–'],
        ['Status', wf.status],
        ['Created', when(wf.created_ms)],
        ['Steps', String(wf.steps.length)],
        ['Finished', wf.finished ? 'yes' : 'no', 'none of its steps will run any more'],
      ]),
      section('Steps', table('Steps', [
        { label: '#', className: 'n', cell: (s) => String(s.index) },
        { label: 'Task', cell: (s) => (s.handler ? [s.task, ' ', badge('on failure', 'handler')] : s.task) },
        { label: 'State', cell: (s) => badge(s.state) },
        { label: 'Task id', cell: (s) => link(route('task', s.task_id), s.task_id, { class: 'mono' }) },
        { label: 'Queue', cell: (s) => link(route('queue', s.queue), s.queue) },
        { label: 'Result or error', cell: (s) => (s.error
          ? h('span', { class: 'error-text clip' }, s.error)
          : (s.result === null || s.result === undefined ? '–'
            : h('span', { class: 'mono clip' }, json(s.result)))) },
      ], wf.steps, { empty: 'No steps.', rowKey: (s) => String(s.index) })));
  }

  draw();
  ctx.every(2000, async () => {
    if (wf.finished && !wf.steps.some((s) => s.state === 'running' || s.state === 'queued')) return;
    wf = await api.get(path, {}, ctx.signal);
    draw();
  });
}
