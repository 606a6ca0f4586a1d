// One task: arguments, status, attempts, timings, live progress (the API's event stream),
// result or error with its traceback, and cancel.

import * as api from '../api.js';
import { h, swap, link, route, num, when, duration, json } from '../dom.js';
import { figures, section, badge, actionButton, confirmAction, notice } from '../ui.js';
import { events } from '../sse.js';

const TERMINAL = new Set(['succeeded', 'dead', 'cancelled']);

export async function render(ctx) {
  const id = ctx.params.id;
  const path = `tasks/${encodeURIComponent(id)}`;
  ctx.title(`Task ${id}`);
  let record = await api.get(path, {}, ctx.signal);
  const head = h('div', { class: 'page-head' });
  const live = h('div', { class: 'region' });
  const body = h('div', { class: 'region' });
  swap(ctx.main, head, live, body);

  async function cancel() {
    const ok = await confirmAction('Cancel this task?', record.status === 'running'
      ? 'An async task is cancelled in its worker; a plain def task runs on and its result is discarded.'
      : 'It is removed before it runs.', 'Cancel task', { danger: true });
    if (!ok) return;
    try {
      const r = await api.post(`${path}/cancel`);
      notice(`Task cancelled (it was ${r.outcome}).`);
    } catch (err) {
      notice(api.message(err), 'error');
    }
    await refetch();
  }

  function drawHead() {
    swap(head,
      h('h1', { tabindex: '-1' }, 'Task ', h('span', { class: 'mono' }, id), ' ',
        badge(record.status === 'failed' ? 'failed, will retry' : record.status, record.status)),
      TERMINAL.has(record.status) ? null : h('div', { class: 'head-actions' },
        actionButton(ctx, 'Cancel task', cancel, { danger: true, key: 'cancel' })),
      h('p', { class: 'live', 'aria-live': 'off' }, TERMINAL.has(record.status) ? 'Ended' : 'Live'));
  }

  function drawLive() {
    const p = record.progress;
    if (p === null || p === undefined) {
      swap(live, record.status === 'running'
        ? h('p', { class: 'hint' }, 'Running; the task reports no progress.') : null);
      return;
    }
    const pct = Math.round(Math.min(1, Math.max(0, p)) * 100);
    swap(live, h('div', { class: 'progress-box' },
      h('label', { for: 'task-progress' }, `Progress: ${pct}%`,
        record.progress_message ? ` — ${record.progress_message}` : ''),
      h('progress', { id: 'task-progress', max: '1', value: String(p) }, `${pct}%`)));
  }

  function drawBody() {
    const r = record;
    const wait = r.started_ms && r.enqueued_ms ? r.started_ms - r.enqueued_ms : null;
    const run = r.finished_ms && r.started_ms ? r.finished_ms - r.started_ms : null;
    const error = r.error_type || r.error;
    swap(body,
      figures([
        ['Task', r.task ?? '–'],
        ['Queue', link(route('queue', r.queue), r.queue)],
        ['Attempts', num(r.attempts)],
        ['Enqueued', when(r.enqueued_ms)],
        ['Due', r.run_at_ms ? when(r.run_at_ms) : '–', 'a delayed task or a retry waits until then'],
        ['Started', when(r.started_ms)],
        ['Finished', when(r.finished_ms)],
        ['Waited', duration(wait), 'from enqueue to the start of the last attempt'],
        ['Ran', duration(run), 'the last attempt'],
        ['Worker', r.worker ? link(route('worker', r.worker), r.worker) : '–'],
      ]),
      section('Arguments', h('pre', {}, json({ args: r.args, kwargs: r.kwargs }))),
      r.status === 'succeeded' ? section('Result', r.result_dropped
        ? h('p', {}, 'Not kept: Redis was out of memory when the task ended.')
        : h('pre', { class: 'result' }, json(r.result))) : null,
      error ? section('Error', h('pre', { class: 'error-text', id: 'task-error' },
        [r.error_type, r.error].filter(Boolean).join(': '))) : null,
      r.traceback ? section('Traceback', h('pre', { class: 'traceback' }, r.traceback)) : null);
  }

  function draw() { drawHead(); drawLive(); drawBody(); }

  async function refetch() {
    record = await api.get(path, {}, ctx.signal);
    draw();
  }

  draw();

  // Live: the event stream sends each change of status or progress; the full record is read
  // again when the status changes. A dropped stream is opened again while the task runs.
  (async () => {
    while (!ctx.signal.aborted && !TERMINAL.has(record.status)) {
      try {
        await events(`${path}/events`, async (name, data) => {
          if (name !== 'status') return;
          const changed = data.status !== record.status;
          record = { ...record, ...data };
          if (changed || TERMINAL.has(data.status)) await refetch();
          else { drawHead(); drawLive(); }
        }, ctx.signal);
      } catch (err) {
        if (ctx.signal.aborted) return;
        ctx.stale(err);
      }
      if (!ctx.signal.aborted && !TERMINAL.has(record.status)) {
        await new Promise((r) => setTimeout(r, 2000));
        try { await refetch(); } catch { /* shown on the next try */ }
      }
    }
  })();
}
