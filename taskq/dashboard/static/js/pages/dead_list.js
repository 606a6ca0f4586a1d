// A queue's dead letters, newest first, a page at a time (each page read from where the last
// ended, so 100,000 letters cost one page): reasons, show, replay or purge one, or all.

import * as api from '../api.js';
import { h, swap, link, route, num, when, ago } from '../dom.js';
import { table, badge, pager, actionButton, confirmAction, notice } from '../ui.js';

const PAGE = 50;

export async function render(ctx) {
  const name = ctx.params.name;
  const q = encodeURIComponent(name);
  ctx.title(`Dead letters of ${name}`);
  const cursors = [null]; // the "before" of each page visited; the last is the current page
  let onlyTask = '';
  const filter = h('input', { id: 'dead-task', type: 'search', autocomplete: 'off',
                              placeholder: 'task name', 'data-key': 'filter' });
  const bulk = h('div', { class: 'head-actions' });
  const region = h('div', { class: 'region' });
  swap(ctx.main,
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Dead letters of ', link(route('queue', name), name, { class: 'mono' })),
      bulk, h('p', { class: 'live', 'aria-live': 'off' }, 'Live')),
    h('form', { class: 'filter', role: 'search', onsubmit: (e) => e.preventDefault() },
      h('label', { for: 'dead-task' }, 'Only the task'), filter),
    region);
  let timer = null;
  filter.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { onlyTask = filter.value.trim(); cursors.length = 1; load(); }, 300);
  });

  // "all" must be said: the API selects nothing from an empty body (422)
  const selection = (ids) => (ids ? { ids } : (onlyTask ? { task: onlyTask } : { all: true }));

  async function act(what, ids, label) {
    const title = what === 'replay' ? `Replay ${label}?` : `Purge ${label}?`;
    const body = what === 'replay'
      ? 'Each is enqueued again under its task id, with its attempts starting from zero.'
      : 'They are deleted for good: their arguments and errors cannot be recovered.';
    if (!await confirmAction(title, body, what === 'replay' ? 'Replay' : 'Purge',
      { danger: what === 'purge' })) return;
    try {
      const r = await api.post(`queues/${q}/dead/${what}`, selection(ids));
      if (what === 'purge') {
        notice(`Purged ${num(r.purged)} dead letter(s).`);
      } else {
        const kept = r.kept || [];  // their unique keys are held by other tasks: they stay
        const steps = r.workflow_steps ? r.workflow_steps.length : 0;
        let text = `Replayed ${num(r.replayed)} dead letter(s).`;
        if (kept.length) {
          text += ` ${num(kept.length)} kept: ${kept[0].reason}`
            + `${kept.length > 1 ? ' (and others like it)' : ''}.`;
        }
        if (steps) {
          text += ` Not replayed: ${num(steps)} of workflow steps (a replay cannot resume a `
            + 'failed workflow: start it again).';
        }
        notice(text, kept.length || steps ? 'error' : 'info');
      }
    } catch (err) {
      notice(api.message(err), 'error');
    }
    await load();
  }

  async function load() {
    const before = cursors[cursors.length - 1];
    const [info, letters] = await Promise.all([
      api.get(`queues/${q}`, {}, ctx.signal),
      api.get(`queues/${q}/dead`, { limit: PAGE + 1, before, task: onlyTask || null }, ctx.signal),
    ]);
    const page = letters.slice(0, PAGE);
    const more = letters.length > PAGE;
    const scope = onlyTask ? `every dead letter of task “${onlyTask}”` : `all ${num(info.dead)} dead letters`;
    swap(bulk,
      actionButton(ctx, onlyTask ? 'Replay all of this task' : 'Replay all',
        () => act('replay', null, scope), { key: 'replay-all' }),
      actionButton(ctx, onlyTask ? 'Purge all of this task' : 'Purge all',
        () => act('purge', null, scope), { danger: true, key: 'purge-all' }));
    const from = (cursors.length - 1) * PAGE;
    swap(region, table('Dead letters', [
      { label: 'Failed', cell: (d) => h('span', { title: when(d.failed_ms) }, ago(d.failed_ms)) },
      { label: 'Task id', cell: (d) => link(route('task', d.task_id), d.task_id, { class: 'mono' }) },
      { label: 'Task', cell: (d) => d.task || '–' },
      { label: 'Reason', cell: (d) => badge(d.reason || 'unknown', 'dead') },
      { label: 'Error', cell: (d) => h('span', { class: 'error-text clip' },
        [d.error_type, d.error].filter(Boolean).join(': ') || '–') },
      { label: 'Attempts', className: 'n', cell: (d) => num(d.attempts) },
      { label: 'Actions', cell: (d) => h('div', { class: 'row-actions' },
        link(route('queue', name, 'dead', d.id), 'Show', { 'data-key': `show-${d.id}` }),
        actionButton(ctx, 'Replay', () => act('replay', [d.id], `dead letter ${d.id}`),
          { key: `replay-${d.id}` }),
        actionButton(ctx, 'Purge', () => act('purge', [d.id], `dead letter ${d.id}`),
          { danger: true, key: `purge-${d.id}` })) },
    ], page, { empty: onlyTask ? 'No dead letters of this task.' : 'No dead letters.',
               rowKey: (d) => d.id }),
    pager({
      from, count: page.length, total: onlyTask ? null : info.dead, label: 'Dead-letter pages',
      onPrev: cursors.length > 1 ? () => { cursors.pop(); load(); } : null,
      onNext: more ? () => { cursors.push(page[page.length - 1].id); load(); } : null,
    }));
  }

  await load();
  ctx.every(5000, load);
}
