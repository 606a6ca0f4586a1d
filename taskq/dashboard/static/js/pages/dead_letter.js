// One dead letter: why it died, its arguments, error and traceback; replay or purge it.

import * as api from '../api.js';
import { h, swap, link, route, num, when, json } from '../dom.js';
import { figures, section, actionButton, confirmAction, notice, badge } from '../ui.js';

export async function render(ctx) {
  const { name, id } = ctx.params;
  const q = encodeURIComponent(name);
  ctx.title(`Dead letter ${id}`);
  const d = await api.get(`queues/${q}/dead/${encodeURIComponent(id)}`, {}, ctx.signal);

  async function act(what) {
    const ok = await confirmAction(what === 'replay' ? 'Replay this dead letter?' : 'Purge this dead letter?',
      what === 'replay' ? 'It is enqueued again under its task id, attempts from zero.'
        : 'It is deleted for good.', what === 'replay' ? 'Replay' : 'Purge',
      { danger: what === 'purge' });
    if (!ok) return;
    try {
      const r = await api.post(`queues/${q}/dead/${what}`, { ids: [id] });
      if (what === 'replay' && r.workflow_steps && r.workflow_steps.length) {
        notice('Not replayed: this is a workflow step. Its death already failed its workflow, '
          + 'which a replay cannot resume: start the workflow again.', 'error');
        return;
      }
      const n = what === 'replay' ? r.replayed : r.purged;
      const kept = what === 'replay' && r.kept && r.kept.length ? r.kept[0] : null;
      if (kept) {  // its unique key is held by another task: it stays here
        notice(`Dead letter ${id} kept: ${kept.reason}.`, 'error');
        return;
      }
      notice(n ? `${what === 'replay' ? 'Replayed' : 'Purged'} dead letter ${id}.`
        : `Dead letter ${id} is gone already.`);
      ctx.go(what === 'replay' ? route('task', d.task_id) : route('queue', name, 'dead'));
    } catch (err) {
      notice(api.message(err), 'error');
    }
  }

  swap(ctx.main,
    h('div', { class: 'page-head' },
      h('h1', { tabindex: '-1' }, 'Dead letter ', h('span', { class: 'mono' }, id)),
      h('div', { class: 'head-actions' },
        actionButton(ctx, 'Replay', () => act('replay'), { key: 'replay' }),
        actionButton(ctx, 'Purge', () => act('purge'), { danger: true, key: 'purge' }))),
    h('p', {}, link(route('queue', name, 'dead'), `← Dead letters of ${name}`)),
    figures([
      ['Task', d.task || '–'],
      ['Task id', link(route('task', d.task_id), d.task_id, { class: 'mono' })],
      ['Reason', badge(d.reason || 'unknown', 'dead')],
      ['Attempts', num(d.attempts)],
      ['Enqueued', when(d.enqueued_ms)],
      ['Failed', when(d.failed_ms)],
      ['Worker', d.worker ? link(route('worker', d.worker), d.worker) : '–'],
    ]),
    section('Error', h('pre', { class: 'error-text' },
      [d.error_type, d.error].filter(Boolean).join(': ') || '–')),
    d.traceback ? section('Traceback', h('pre', { class: 'traceback' }, d.traceback)) : null,
    section('Arguments', d.payload_ok
      ? h('pre', {}, json({ args: d.args, kwargs: d.kwargs }))
      : h('p', {}, 'The message could not be decoded (it is replayed as it was stored).')));
}
