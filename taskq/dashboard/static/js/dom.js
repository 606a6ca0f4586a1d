// Building the page from data: every text from the API goes in through text nodes
// (textContent), never through markup, so a task's error "<script>...</script>" shows as text.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// Replace a region's content, keeping keyboard focus on the element with the same data-key
// (live updates must not throw a keyboard user back to the top of the page).
export function swap(region, ...children) {
  const active = document.activeElement;
  const key = active && region.contains(active) ? active.dataset.key : undefined;
  clear(region);
  append(region, children);
  if (key !== undefined) {
    const again = region.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

export function link(href, text, props = {}) {
  return h('a', { href, ...props }, text);
}

export function route(...parts) {
  return '#/' + parts.map((p) => encodeURIComponent(p)).join('/');
}

const nf = new Intl.NumberFormat();

export function num(n) {
  return n === null || n === undefined ? '–' : nf.format(n);
}

export function when(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
}

export function ago(ms) {
  return ms ? `${duration(Date.now() - ms)} ago` : '–';
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}
