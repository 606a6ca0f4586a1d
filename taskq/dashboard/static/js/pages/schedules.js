// Periodic schedules: what each runs and when it fires next, its last run (a link to the task),
// paused or active with Pause/Resume (admin key).

import * as api from '../api.js';
import { h, swap, link, route, num, when, ago } from '../dom.js';
import { table, badge, actionButton, notice } from '../ui.js';

function nextFire(s) {
  if (s.paused) return '–';
  if (!s.next_fire_ms.length) return 'none';
  const [first, ...rest] = s.next_fire_ms;
  return h('span', { title: rest.length ? `then ${rest.map(when).join(', ')}` : null }, when(first));
}

function lastRun(s) {
  if (!s.last_task_id) return 'never';
  return h('span', {}, link(route('task', s.last_task_id), s.last_task_id, { class: 'mono' }),
    ' ', h('span', { class: 'hint', title: when(s.last_fired_ms) }, ago(s.last_fired_ms)));
}

export async function render(ctx) {
  ctx.title('Schedules');
  const region = h('div', { class: 'region' });
  swap(ctx.main, h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Schedules'),
    h('p', { class: 'live', 'aria-live': 'off' }, 'Live')),
  h('p', { class: 'hint' }, 'Periodic schedules as the workers stored them. A paused schedule\'s ',
    'ticks pass without a task; resuming starts from its next tick.'), region);

  async function act(name, what) {
    try {
      await api.post(`schedules/${encodeURIComponent(name)}/${what}`);
      notice(what === 'pause' ? `Schedule ${name} paused: its ticks pass without a task.`
        : `Schedule ${name} resumed from its next tick.`);
    } catch (err) {
      notice(api.message(err), 'error');
    }
    await load();
  }

  async function load() {
    const all = await api.get('schedules', {}, ctx.signal);
    swap(region, table('Schedules', [
      { label: 'Schedule', cell: (s) => h('span', { class: 'mono nowrap' }, s.name) },
      { label: 'State', cell: (s) => (s.paused ? badge('paused') : badge('active', 'running')) },
      { label: 'Task', cell: (s) => s.task },
      { label: 'Queue', cell: (s) => link(route('queue', s.queue), s.queue) },
      { label: 'When', cell: (s) => s.schedule },
      { label: 'Next fire', cell: nextFire },
      { label: 'Last run', cell: lastRun },
      { label: 'Fired', className: 'n', cell: (s) => num(s.fired_total) },
      { label: 'Skipped', className: 'n', cell: (s) => num(s.skipped_total) },
      { label: 'Action', cell: (s) => h('div', { class: 'row-actions' }, s.paused
        ? actionButton(ctx, 'Resume', () => act(s.name, 'resume'), { key: `resume-${s.name}` })
        : actionButton(ctx, 'Pause', () => act(s.name, 'pause'), { key: `pause-${s.name}` })) },
    ], all, { empty: 'No schedule: a worker stores its app\'s schedules when it starts.',
              rowKey: (s) => s.name }));
  }

  await load();
  ctx.every(5000, load);
}
