import type { Message } from './message.js';

/**
 * `{name}` placeholders for file names, log lines and header values: `{id}`,
 * `{correlationId}`, `{header.x}` (or `{headers.x}`), `{body}`, `{body.a.b}`, `{date}`
 * (YYYY-MM-DD), `{time}` (HHmmss), `{timestamp}`, plus any extra values passed in.
 * A plain path lookup, no code: config strings are never evaluated.
 */
export function renderTemplate(template: string, msg: Message, extra: Record<string, unknown> = {}, now = new Date(msg.timestamp)): string {
  return template.replace(/\{([A-Za-z_][\w.-]*)\}/g, (whole, key: string) => {
    const v = lookup(key, msg, extra, now);
    return v === undefined ? whole : typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v);
  });
}

function lookup(key: string, msg: Message, extra: Record<string, unknown>, now: Date): unknown {
  if (key in extra) return extra[key];
  const [head, ...rest] = key.split('.');
  switch (head) {
    case 'id':
      return msg.id;
    case 'correlationId':
      return msg.correlationId;
    case 'timestamp':
      return msg.timestamp;
    case 'date':
      return now.toISOString().slice(0, 10);
    case 'time':
      return now.toISOString().slice(11, 19).replace(/:/g, '');
    case 'header':
    case 'headers':
      return rest.length ? msg.headers[rest.join('.')] : msg.headers;
    case 'body':
      return valueAt(msg.body, rest);
    default:
      return undefined;
  }
}

/** The value at `keys` inside `value` (undefined when a step of the way is not an object). */
export function valueAt(value: unknown, keys: readonly string[]): unknown {
  let v = value;
  for (const k of keys) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}
