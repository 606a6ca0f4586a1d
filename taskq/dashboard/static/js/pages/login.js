// Asks for the API key once; it is kept in sessionStorage for this tab and sent in a header.

import * as api from '../api.js';
import { h, swap } from '../dom.js';

export function render({ main, done }) {
  document.title = 'Sign in · taskq';
  const input = h('input', { id: 'api-key', name: 'key', type: 'password', required: true,
                             autocomplete: 'off', spellcheck: 'false', minlength: '1' });
  const error = h('p', { id: 'key-error', class: 'error-text', role: 'alert' });
  const form = h('form', { class: 'panel login', 'aria-describedby': 'key-help' },
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h('p', { id: 'key-help' }, 'Enter an API key of this service: a read key shows the ',
      'queues, tasks and workers; an admin key can also pause, cancel, replay and purge. ',
      'The key stays in this browser tab only (sessionStorage) and is sent in the ',
      h('code', {}, 'X-API-Key'), ' header, never in a URL.'),
    h('label', { for: 'api-key' }, 'API key'), input, error,
    h('button', { type: 'submit', class: 'primary' }, 'Sign in'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.textContent = '';
    const key = input.value.trim();
    try {
      await api.whoami(key);
    } catch (err) {
      error.textContent = err instanceof api.ApiError && err.status === 401
        ? 'This key was not accepted.' : `The API did not answer: ${api.message(err)}`;
      input.setAttribute('aria-invalid', 'true');
      input.focus();
      return;
    }
    api.setKey(key);
    await done();
  });
  swap(main, form);
  input.focus();
}
