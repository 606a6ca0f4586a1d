// Workers, live ones first: what each runs, holds and has done, by its last heartbeat.

import * as api from '../api.js';
import { h, swap, link, route, num, ago, when } from '../dom.js';
import { table, badge, pager } from '../ui.js';

const PAGE = 50;

export function workerState(w) {
  if (!w.alive) return badge('dead');
  return w.stopping ? badge('stopping') : badge('alive');
}

export async function render(ctx) {
  ctx.title('Workers');
  const region = h('div', { class: 'region' });
  swap(ctx.main, h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Workers'),
    h('p', { class: 'live', 'aria-live': 'off' }, 'Live')),
  h('p', { class: 'hint' }, 'A worker is alive while its heartbeat key lives; the tasks a dead ',
    'worker held are reclaimed by live workers.'), region);
  let offset = 0;

  async function load() {
    const all = await api.get('workers', {}, ctx.signal);
    const alive = all.filter((w) => w.alive).length;
    const page = all.slice(offset, offset + PAGE);
    swap(region, h('p', {}, `${num(alive)} alive, ${num(all.length - alive)} dead.`),
      table('Workers', [
        { label: 'Worker', cell: (w) => link(route('worker', w.id), w.id, { class: 'mono' }) },
        { label: 'State', cell: workerState },
        { label: 'Queues', cell: (w) => w.queues.join(', ') || '–' },
        { label: 'Holds', className: 'n', cell: (w) => `${num(w.in_flight)} / ${num(w.concurrency)}` },
        { label: 'Processed', className: 'n', cell: (w) => num(w.processed) },
        { label: 'Failed', className: 'n', cell: (w) => num(w.failed) },
        { label: 'Dead', className: 'n', cell: (w) => num(w.dead) },
        { label: 'Heartbeat', cell: (w) => h('span', { title: when(w.heartbeat_ms) }, ago(w.heartbeat_ms)) },
      ], page, { empty: 'No worker has started yet.', rowKey: (w) => w.id }),
      all.length > PAGE ? pager({
        from: offset, count: page.length, total: all.length, label: 'Worker pages',
        onPrev: offset > 0 ? () => { offset -= PAGE; load(); } : null,
        onNext: offset + PAGE < all.length ? () => { offset += PAGE; load(); } : null,
      }) : null);
  }

  await load();
  ctx.every(3000, load);
}
