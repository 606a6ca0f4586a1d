// Find a workflow by its id (workflows are not listed: each is reached from the id that
// taskq.workflow.start returned, or from a step's task).

import { h, swap, route } from '../dom.js';

export async function render(ctx) {
  ctx.title('Workflows');
  const input = h('input', { id: 'workflow-id', name: 'id', type: 'search', autocomplete: 'off',
    spellcheck: 'false', placeholder: 'default:1732190000000-w3f2a9c0d1e2b4a5c' });
  const form = h('form', { class: 'find-workflow', role: 'search' },
    h('label', { for: 'workflow-id' }, 'Workflow id'), input,
    h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const id = input.value.trim();
    if (!id) { input.focus(); return; }
    ctx.go(route('workflow', id));
  });
  swap(ctx.main, h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, 'Workflows')),
    h('p', { class: 'hint' }, 'A workflow is found by the id taskq.workflow.start returned ',
      '(Workflow.id). Its page shows each step\'s state, live, and can cancel it.'), form);
}
