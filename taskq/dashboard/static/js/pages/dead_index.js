// The queues that hold dead letters, with links to each list.

import * as api from '../api.js';
import { h, swap, link, route, num } from '../dom.js';
import { table, pager } from '../ui.js';

const PAGE = 100;

export async function render(ctx) {
  ctx.title('Dead letters');
  const region = h('div', { class: 'region' });
  swap(ctx.main, h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Dead letters'),
    h('p', { class: 'live', 'aria-live': 'off' }, 'Live')),
  h('p', { class: 'hint' }, 'Tasks that ran out of attempts (or could not run) are kept as dead ',
    'letters, per queue, until they are replayed or purged.'), region);
  let offset = 0;

  async function load() {
    // Queues are read a page at a time; only those holding dead letters are listed.
    const { data, headers } = await api.getWithHeaders('queues', { offset, limit: PAGE }, ctx.signal);
    const total = Number(headers.get('X-Total-Count') ?? data.length);
    const withDead = data.filter((q) => q.dead > 0);
    swap(region, table('Queues with dead letters', [
      { label: 'Queue', cell: (q) => link(route('queue', q.name, 'dead'), q.name) },
      { label: 'Dead letters', className: 'n', cell: (q) => num(q.dead) },
      { label: 'Dead in all', className: 'n', cell: (q) => num(q.dead_total) },
    ], withDead, { empty: 'No dead letters in these queues.' }),
    total > PAGE ? pager({
      from: offset, count: data.length, total, label: 'Queue pages',
      onPrev: offset > 0 ? () => { offset -= PAGE; load(); } : null,
      onNext: offset + data.length < total ? () => { offset += PAGE; load(); } : null,
    }) : null);
  }

  await load();
  ctx.every(10000, load);
}
