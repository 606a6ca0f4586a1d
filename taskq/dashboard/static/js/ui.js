// Shared widgets: tables that become labelled cards at phone width, a confirmation dialog,
// pagination controls, status badges and notices.

import { h, clear } from './dom.js';

// columns: [{ label, cell: (row) => Node|string, className? }]
export function table(caption, columns, rows, { empty = 'Nothing here.', rowKey } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'data' },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col', class: c.className }, c.label)))),
      h('tbody', {}, rows.map((r) => h('tr', { dataset: rowKey ? { row: rowKey(r) } : {} },
        columns.map((c) => h('td', { 'data-label': c.label, class: c.className }, c.cell(r))))))));
}

export function badge(text, kind = text) {
  return h('span', { class: `badge badge-${String(kind).replace(/[^a-z_-]/gi, '')}` }, text);
}

export function figures(items) {
  return h('dl', { class: 'figures' }, items.map(([label, value, hint]) =>
    h('div', { class: 'figure' }, h('dt', {}, label), h('dd', { title: hint }, value))));
}

let noticeTimer = null;

export function notice(text, kind = 'info') {
  const region = document.getElementById('notice');
  clear(region);
  region.append(h('p', { class: `banner ${kind}` }, text));
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => clear(region), kind === 'error' ? 12000 : 6000);
}

// A modal confirmation: resolves true only when the operator presses the action's button.
export function confirmAction(title, body, action, { danger = false } = {}) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': 'confirm-title' },
      h('form', { method: 'dialog' },
        h('h2', { id: 'confirm-title' }, title),
        h('p', {}, body),
        h('div', { class: 'actions' },
          h('button', { value: 'cancel', type: 'submit', class: 'secondary' }, 'Cancel'),
          h('button', { value: 'ok', type: 'submit', class: danger ? 'danger' : 'primary',
                        'data-confirm': '' }, action))));
    dialog.addEventListener('close', () => {
      const ok = dialog.returnValue === 'ok';
      dialog.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
    dialog.querySelector('button[value="cancel"]').focus();
  });
}

// "1–50 of 1,234" with Previous / Next buttons.
export function pager({ from, count, total, onPrev, onNext, label }) {
  const nf = new Intl.NumberFormat();
  const range = count ? `${nf.format(from + 1)}–${nf.format(from + count)}` : '0';
  const of = total === null || total === undefined ? '' : ` of ${nf.format(total)}`;
  return h('nav', { class: 'pager', 'aria-label': label },
    h('button', { type: 'button', disabled: !onPrev, onclick: onPrev, 'data-key': `${label}-prev` }, '← Previous'),
    h('span', { 'aria-live': 'polite' }, `${range}${of}`),
    h('button', { type: 'button', disabled: !onNext, onclick: onNext, 'data-key': `${label}-next` }, 'Next →'));
}

// A button that runs an API action, disabled (with the reason) for a read-only key.
export function actionButton(ctx, text, run, { danger = false, key } = {}) {
  const admin = ctx.role === 'admin';
  const b = h('button', {
    type: 'button', class: danger ? 'danger' : 'primary', disabled: !admin,
    title: admin ? null : 'needs an admin API key', 'data-key': key,
  }, text);
  b.addEventListener('click', async () => {
    b.disabled = true;
    try {
      await run();
    } finally {
      if (b.isConnected) b.disabled = !admin;
    }
  });
  return b;
}

export function section(title, ...children) {
  return h('section', { class: 'panel' }, h('h2', {}, title), ...children);
}
