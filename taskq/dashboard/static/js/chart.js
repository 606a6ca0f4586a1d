// A small bar chart of completions per minute, drawn as SVG elements (no library, no markup
// strings). It carries a text summary for screen readers.

const SVG = 'http://www.w3.org/2000/svg';

function el(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export function summary(counts) {
  const total = counts.reduce((a, b) => a + b, 0);
  const peak = counts.length ? Math.max(...counts) : 0;
  return { total, peak, last: counts.length ? counts[counts.length - 1] : 0 };
}

export function perMinuteChart(counts, { width = 180, height = 32, label = '' } = {}) {
  const { total, peak } = summary(counts);
  const svg = el('svg', {
    viewBox: `0 0 ${width} ${height}`, width, height, class: 'chart', role: 'img',
    preserveAspectRatio: 'none',
  });
  const title = el('title', {});
  title.textContent = `${label}completions per minute over the last ${counts.length} minutes: `
    + `${total} in all, at most ${peak} in a minute`;
  svg.append(title);
  svg.append(el('line', { x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5, class: 'axis' }));
  const n = Math.max(counts.length, 1);
  const w = width / n;
  counts.forEach((c, i) => {
    if (!c) return;
    const bh = Math.max(1, Math.round((c / (peak || 1)) * (height - 2)));
    svg.append(el('rect', {
      x: (i * w + 0.5).toFixed(2), y: height - 1 - bh, width: Math.max(1, w - 1).toFixed(2),
      height: bh, class: i === n - 1 ? 'bar now' : 'bar',
    }));
  });
  return svg;
}
