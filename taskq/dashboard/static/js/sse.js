// Server-Sent Events read with fetch: EventSource cannot send the X-API-Key header, and the
// key must not go into the URL. Frames are "event: NAME" / "data: JSON" lines, a blank line
// ending each (see taskq/integrations/sse.py).

import { headers, url } from './api.js';

export async function events(path, onEvent, signal) {
  const r = await fetch(url(path), {
    headers: headers({ Accept: 'text/event-stream' }), signal, credentials: 'omit',
    cache: 'no-store',
  });
  if (!r.ok || !r.body) throw new Error(`event stream answered ${r.status}`);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, '');
      let name = 'message';
      const data = [];
      for (const line of frame.split(/\r?\n/)) {
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) {
        let parsed;
        try { parsed = JSON.parse(data.join('\n')); } catch { continue; }
        onEvent(name, parsed);
      }
    }
  }
}
