// One worker: its heartbeat's figures and the tasks it holds now.

import * as api from '../api.js';
import { h, swap, link, route, num, when, ago } from '../dom.js';
import { table, figures, section } from '../ui.js';
import { workerState } from './workers.js';

export async function render(ctx) {
  const id = ctx.params.id;
  const path = `workers/${encodeURIComponent(id)}`;
  ctx.title(`Worker ${id}`);
  const region = h('div', { class: 'region' });
  swap(ctx.main, h('div', { class: 'page-head' },
    h('h1', { tabindex: '-1' }, 'Worker ', h('span', { class: 'mono' }, id)),
    h('p', { class: 'live', 'aria-live': 'off' }, 'Live')), region);

  async function load() {
    const [w, held] = await Promise.all([
      api.get(path, {}, ctx.signal), api.get(`${path}/tasks`, { limit: 200 }, ctx.signal)]);
    swap(region,
      figures([
        ['State', workerState(w)],
        ['Host', w.host || '–'],
        ['Process', w.pid ?? '–'],
        ['Queues', w.queues.length ? w.queues.map((q, i) => [i ? ', ' : '', link(route('queue', q), q)]) : '–'],
        ['Holds', `${num(w.in_flight)} of ${num(w.concurrency)}`],
        ['Processed', num(w.processed)],
        ['Succeeded', num(w.succeeded)],
        ['Failed', num(w.failed)],
        ['Retried', num(w.retried)],
        ['Dead', num(w.dead)],
        ['Reclaimed', num(w.reclaimed)],
        ['Started', when(w.started_ms)],
        ['Heartbeat', ago(w.heartbeat_ms)],
      ]),
      section('Tasks it holds', table('Tasks held', [
        { label: 'Task id', cell: (t) => link(route('task', t.id), t.id, { class: 'mono' }) },
        { label: 'Task', cell: (t) => t.task ?? '–' },
        { label: 'Attempt', className: 'n', cell: (t) => num(t.attempts) },
        { label: 'Deliveries', className: 'n', cell: (t) => num(t.deliveries) },
        { label: 'Progress', cell: (t) => (t.progress === null ? '–'
          : h('progress', { max: '1', value: String(t.progress), 'aria-label': `progress of ${t.id}` })) },
      ], held, { empty: w.alive ? 'It holds no task now.' : 'It holds no task (a dead worker\'s tasks are reclaimed).' })));
  }

  await load();
  ctx.every(3000, load);
}
