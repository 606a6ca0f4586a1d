// One queue: its figures, paused state with pause/resume, the last hour's completions, its
// consumers, the tasks running now and the recent failures.

import * as api from '../api.js';
import { h, swap, link, route, num, duration, when, ago } from '../dom.js';
import { table, badge, figures, section, actionButton, notice } from '../ui.js';
import { perMinuteChart, summary } from '../chart.js';

export async function render(ctx) {
  const name = ctx.params.name;
  const q = encodeURIComponent(name);
  ctx.title(`Queue ${name}`);
  const head = h('div', { class: 'page-head' });
  const body = h('div', { class: 'region' });
  swap(ctx.main, head, body);
  let lastChart = 0;
  let chart = null;

  async function load() {
    const [info, consumers, failures, running] = await Promise.all([
      api.get(`queues/${q}`, {}, ctx.signal),
      api.get(`queues/${q}/consumers`, {}, ctx.signal),
      api.get(`queues/${q}/failures`, { limit: 10 }, ctx.signal),
      api.get(`queues/${q}/tasks`, { status: 'running', limit: 20 }, ctx.signal),
    ]);
    if (Date.now() - lastChart > 30000) {
      chart = await api.get(`queues/${q}/throughput`, { minutes: 60 }, ctx.signal);
      lastChart = Date.now();
    }
    const toggle = info.paused
      ? actionButton(ctx, 'Resume', async () => act('resume'), { key: 'toggle' })
      : actionButton(ctx, 'Pause', async () => act('pause'), { key: 'toggle' });
    swap(head,
      h('h1', { tabindex: '-1' }, 'Queue ', h('span', { class: 'mono' }, name), ' ',
        info.paused ? badge('paused') : badge('active', 'running')),
      h('div', { class: 'head-actions' }, toggle,
        link(route('queue', name, 'dead'), `Dead letters (${num(info.dead)})`, { class: 'button' })),
      h('p', { class: 'live', 'aria-live': 'off' }, 'Live'));
    const s = chart ? summary(chart.counts) : null;
    swap(body,
      figures([
        ['Backlog', num(info.lag), 'entries not yet delivered to a worker'],
        ['In flight', num(info.in_flight), 'delivered, not yet finished'],
        ['Delayed', num(info.delayed), 'scheduled, or waiting to retry'],
        ['Dead', num(info.dead), 'dead letters kept'],
        ['Consumers', num(info.consumers), 'workers reading this queue'],
        ['Oldest waiting', info.oldest_waiting_age_s === null ? '–'
          : duration(info.oldest_waiting_age_s * 1000), 'age of the oldest undelivered entry'],
        ['Done / min', num(info.completed_last_minute), 'completions over the last 60 s'],
        ['Completed', num(info.completed_total), 'since the queue began'],
        ['Retried', num(info.retried_total), 'attempts that failed and were retried'],
        ['Lost', num(info.lost_total), 'entries that vanished while held'],
      ]),
      section('Completions per minute, last hour',
        chart ? perMinuteChart(chart.counts, { width: 600, height: 80, label: `${name}: ` }) : '–',
        s ? h('p', { class: 'hint' }, `${num(s.total)} in the last hour; at most ${num(s.peak)} in a minute; `
          + `${num(s.last)} so far this minute.`) : null),
      section('Running now', table('Running tasks', [
        { label: 'Task id', cell: (t) => link(route('task', t.id), t.id, { class: 'mono' }) },
        { label: 'Task', cell: (t) => t.task ?? '–' },
        { label: 'Attempt', className: 'n', cell: (t) => num(t.attempts) },
        { label: 'Progress', cell: (t) => (t.progress === null ? '–'
          : h('progress', { max: '1', value: String(t.progress), 'aria-label': `progress of ${t.id}` })) },
        { label: 'Worker', cell: (t) => (t.worker ? link(route('worker', t.worker), t.worker) : '–') },
      ], running, { empty: 'Nothing running.' })),
      section('Consumers', table('Consumers', [
        { label: 'Consumer', cell: (c) => link(route('worker', c.name), c.name, { class: 'mono' }) },
        { label: 'Holds', className: 'n', cell: (c) => num(c.pending) },
        { label: 'Idle', className: 'n', cell: (c) => duration(c.idle_ms) },
        { label: 'Worker', cell: (c) => (c.alive ? badge('alive') : badge('dead')) },
      ], consumers, { empty: 'No consumer has read this queue yet.' })),
      section('Recent failures', table('Recent failures', [
        { label: 'When', cell: (f) => h('span', { title: when(f.failed_ms) }, ago(f.failed_ms)) },
        { label: 'Task id', cell: (f) => link(route('task', f.task_id), f.task_id, { class: 'mono' }) },
        { label: 'Task', cell: (f) => f.task ?? '–' },
        { label: 'Status', cell: (f) => badge(f.status === 'failed' ? 'will retry' : f.status, f.status) },
        { label: 'Attempts', className: 'n', cell: (f) => num(f.attempts) },
        { label: 'Error', cell: (f) => h('span', { class: 'error-text clip' },
          [f.error_type, f.error].filter(Boolean).join(': ') || '–') },
      ], failures, { empty: 'No recent failures.' })));
  }

  async function act(what) {
    try {
      await api.post(`queues/${q}/${what}`);
      notice(what === 'pause' ? `Queue ${name} paused: workers take no new tasks from it.`
        : `Queue ${name} resumed.`);
    } catch (err) {
      notice(api.message(err), 'error');
    }
    await load();
  }

  await load();
  ctx.every(3000, load);
}
