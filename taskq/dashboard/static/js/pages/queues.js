// Every queue, a page at a time: backlog, in flight, delayed, dead, consumers, the oldest
// waiting task's age, completions per minute and a chart of the last hour.

import * as api from '../api.js';
import { h, swap, link, route, num, duration } from '../dom.js';
import { table, badge, pager } from '../ui.js';
import { perMinuteChart } from '../chart.js';

const PAGE = 50;
const CHART_EVERY_MS = 30000;

export async function render(ctx) {
  ctx.title('Queues');
  const state = { offset: 0, match: '' };
  const charts = new Map(); // queue -> { at, counts }
  const filter = h('input', { id: 'queue-filter', type: 'search', autocomplete: 'off',
                              placeholder: 'part of a name', 'data-key': 'filter' });
  const region = h('div', { class: 'region' });
  swap(ctx.main,
    h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Queues'),
      h('p', { class: 'live', 'aria-live': 'off' }, 'Live')),
    h('form', { class: 'filter', role: 'search', onsubmit: (e) => e.preventDefault() },
      h('label', { for: 'queue-filter' }, 'Filter queues'), filter),
    region);

  let timer = null;
  filter.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(() => { state.offset = 0; state.match = filter.value.trim(); load(); }, 250);
  });

  async function loadCharts(names) {
    const now = Date.now();
    const due = names.filter((n) => !charts.has(n) || now - charts.get(n).at > CHART_EVERY_MS);
    // a few at a time: a page of 50 queues must not hold every connection of the browser
    for (let i = 0; i < due.length; i += 6) {
      await Promise.all(due.slice(i, i + 6).map(async (n) => {
        try {
          const t = await api.get(`queues/${encodeURIComponent(n)}/throughput`, { minutes: 60 },
            ctx.signal);
          charts.set(n, { at: Date.now(), counts: t.counts });
        } catch {
          charts.set(n, { at: Date.now(), counts: null });
        }
      }));
    }
  }

  async function load() {
    const { data, headers } = await api.getWithHeaders('queues',
      { offset: state.offset, limit: PAGE, match: state.match || null }, ctx.signal);
    const total = Number(headers.get('X-Total-Count') ?? data.length);
    await loadCharts(data.map((q) => q.name));
    const rows = table('Queues', [
      { label: 'Queue', cell: (q) => h('span', {}, link(route('queue', q.name), q.name),
        q.paused ? [' ', badge('paused')] : null) },
      { label: 'Backlog', className: 'n', cell: (q) => num(q.lag) },
      { label: 'In flight', className: 'n', cell: (q) => num(q.in_flight) },
      { label: 'Delayed', className: 'n', cell: (q) => num(q.delayed) },
      { label: 'Dead', className: 'n', cell: (q) => (q.dead
        ? link(route('queue', q.name, 'dead'), num(q.dead), { class: 'dead-count' }) : '0') },
      { label: 'Consumers', className: 'n', cell: (q) => num(q.consumers) },
      { label: 'Oldest waiting', className: 'n', cell: (q) => (q.oldest_waiting_age_s === null
        ? '–' : duration(q.oldest_waiting_age_s * 1000)) },
      { label: 'Done / min', className: 'n', cell: (q) => num(q.completed_last_minute) },
      { label: 'Last hour', cell: (q) => {
        const c = charts.get(q.name);
        return c && c.counts ? perMinuteChart(c.counts, { label: `${q.name}: ` }) : '–';
      } },
    ], data, { empty: state.match ? 'No queue matches.' : 'No queues yet: enqueue a task.',
               rowKey: (q) => q.name });
    const more = state.offset + data.length < total;
    swap(region, rows, pager({
      from: state.offset, count: data.length, total, label: 'Queue pages',
      onPrev: state.offset > 0 ? () => { state.offset = Math.max(0, state.offset - PAGE); load(); } : null,
      onNext: more ? () => { state.offset += PAGE; load(); } : null,
    }));
  }

  await load();
  ctx.every(3000, load);
}
