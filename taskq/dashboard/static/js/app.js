// The dashboard's shell: the session (API key), the menu, and a hash router that gives each
// page a context with its own timers, cancelled when the operator navigates away.

import * as api from './api.js';
import { h, clear, swap } from './dom.js';
import { notice } from './ui.js';
import * as login from './pages/login.js';
import * as queues from './pages/queues.js';
import * as queue from './pages/queue.js';
import * as deadIndex from './pages/dead_index.js';
import * as deadList from './pages/dead_list.js';
import * as deadLetter from './pages/dead_letter.js';
import * as task from './pages/task.js';
import * as workers from './pages/workers.js';
import * as worker from './pages/worker.js';
import * as schedules from './pages/schedules.js';
import * as workflows from './pages/workflows.js';
import * as workflow from './pages/workflow.js';

// Every page: its path (':x' parts are parameters) and, for the menu, its label. A new page
// is a module in pages/ exporting render(ctx) and one line here.
export const PAGES = [
  { path: [], page: queues, nav: 'Queues' },
  { path: ['dead'], page: deadIndex, nav: 'Dead letters' },
  { path: ['workers'], page: workers, nav: 'Workers' },
  { path: ['schedules'], page: schedules, nav: 'Schedules' },
  { path: ['workflows'], page: workflows, nav: 'Workflows' },
  { path: ['queue', ':name'], page: queue },
  { path: ['queue', ':name', 'dead'], page: deadList },
  { path: ['queue', ':name', 'dead', ':id'], page: deadLetter },
  { path: ['task', ':id'], page: task },
  { path: ['worker', ':id'], page: worker },
  { path: ['workflow', ':id'], page: workflow },
];

const main = document.getElementById('main');
const session = { role: null };
let current = null;
let navigated = false;

function match(parts) {
  for (const p of PAGES) {
    if (p.path.length !== parts.length) continue;
    const params = {};
    if (p.path.every((seg, i) => (seg.startsWith(':') ? ((params[seg.slice(1)] = parts[i]), true)
      : seg === parts[i]))) return { page: p, params };
  }
  return null;
}

function parts() {
  if (!location.hash.startsWith('#/')) return [];
  const raw = location.hash.slice(2);
  if (!raw) return [];
  try {
    return raw.split('/').map(decodeURIComponent);
  } catch {
    return [raw];
  }
}

function drawNav(active) {
  const nav = document.getElementById('nav');
  swap(nav, PAGES.filter((p) => p.nav).map((p) => h('li', {},
    h('a', { href: '#/' + p.path.join('/'), 'aria-current': p === active ? 'page' : null,
             'data-key': `nav-${p.nav}` }, p.nav))));
}

function drawSession() {
  const box = document.getElementById('session');
  if (api.AUTH_DISABLED) {
    swap(box, h('span', { class: 'role warn-text' }, 'No authentication'));
  } else if (session.role) {
    swap(box, h('span', { class: 'role' }, `${session.role} key`),
      h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'));
  } else {
    clear(box);
  }
}

function signOut() {
  api.setKey(null);
  session.role = null;
  drawSession();
  show();
}

async function startSession() {
  if (session.role) return true;
  if (!api.AUTH_DISABLED && !api.getKey()) return false;
  try {
    session.role = (await api.whoami()).role;
  } catch (err) {
    if (err instanceof api.ApiError && err.status === 401) {
      api.setKey(null);
      return false;
    }
    throw err;
  }
  drawSession();
  return true;
}

function stop() {
  if (!current) return;
  current.controller.abort();
  for (const t of current.timers) clearInterval(t);
  current = null;
}

function context(params) {
  const controller = new AbortController();
  const timers = [];
  const ctx = {
    main, params, role: session.role, signal: controller.signal,
    title(text) { document.title = `${text} · taskq`; },
    // Run fn every ms while the page is shown (skipped while the tab is hidden or the
    // previous run is still going); errors show on the page's status line.
    every(ms, fn) {
      let busy = false;
      const tick = async () => {
        if (busy || document.hidden || controller.signal.aborted) return;
        busy = true;
        try {
          await fn();
          ctx.stale(null);
        } catch (err) {
          if (!controller.signal.aborted) ctx.stale(err);
        } finally {
          busy = false;
        }
      };
      timers.push(setInterval(tick, ms));
    },
    stale(err) {
      const line = main.querySelector('.live');
      if (!line) return;
      line.textContent = err ? `Live updates paused: ${api.message(err)}` : 'Live';
      line.classList.toggle('stale', Boolean(err));
    },
    go(hash) { location.hash = hash; },
  };
  current = { controller, timers };
  return ctx;
}

async function show() {
  stop();
  const found = match(parts());
  drawNav(found ? found.page : null);
  let ready = false;
  try {
    ready = await startSession();
  } catch (err) {
    swap(main, h('h1', {}, 'taskq'), h('p', { class: 'banner error' },
      `The API did not answer: ${api.message(err)}`));
    return;
  }
  if (!ready) {
    drawSession();
    login.render({ main, done: async () => { await startSession(); show(); } });
    return;
  }
  if (!found) {
    document.title = 'Not found · taskq';
    swap(main, h('h1', {}, 'Not found'), h('p', {}, 'No page here. ',
      h('a', { href: '#/' }, 'Back to the queues')));
    return;
  }
  const ctx = context(found.params);
  try {
    await found.page.page.render(ctx);
    if (navigated) main.querySelector('h1')?.focus();
  } catch (err) {
    if (ctx.signal.aborted) return;
    if (err instanceof api.ApiError && err.status === 404) {
      swap(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, api.message(err)));
    } else {
      swap(main, h('h1', { tabindex: '-1' }, 'Something went wrong'),
        h('p', { class: 'banner error' }, api.message(err)));
    }
  }
}

window.addEventListener('taskq:unauthorized', () => {
  if (!session.role) return;
  api.setKey(null);
  session.role = null;
  notice('The API key was refused; enter it again.', 'error');
  show();
});

window.addEventListener('hashchange', () => { navigated = true; show(); });

document.getElementById('find').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('find-id');
  const id = input.value.trim();
  if (!id) { input.focus(); return; }
  location.hash = '#/task/' + encodeURIComponent(id);
});

// The skip link moves focus without touching the address (the hash holds the route).
document.querySelector('.skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

drawSession();
show();
