/** Talking to the management API: the bearer token (kept for this tab only), JSON calls, event streams. */

const TOKEN_KEY = 'busbar.token';

export class Unauthorized extends Error {}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t: string | null): void {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** A token handed over in the address (`/console/#token=...`): the fragment never reaches a server or its logs. */
export function takeTokenFromLocation(): void {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  setToken(decodeURIComponent(m[1]!));
  history.replaceState(null, '', location.pathname + location.search);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = token();
  return t ? { ...extra, authorization: `Bearer ${t}` } : extra;
}

async function answer(res: Response): Promise<Response> {
  if (res.status === 401) throw new Unauthorized('the management API needs a token');
  if (!res.ok) {
    let msg = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { error?: { code?: string; message?: string } };
      if (body.error) msg = `${body.error.code ?? ''}: ${body.error.message ?? ''}`;
    } catch {
      // not JSON
    }
    throw new Error(msg);
  }
  return res;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await answer(await fetch(path, { headers: headers(), cache: 'no-store' }))).json()) as T;
}

export async function getText(path: string): Promise<string> {
  return (await answer(await fetch(path, { headers: headers(), cache: 'no-store' }))).text();
}

export async function post<T>(path: string, body: unknown = {}): Promise<T> {
  const res = await fetch(path, { method: 'POST', headers: headers({ 'content-type': 'application/json' }), body: JSON.stringify(body) });
  return (await (await answer(res)).json()) as T;
}

/**
 * Read a server-sent event stream with fetch (EventSource cannot send the Authorization
 * header), reconnecting with backoff when it ends. Stops when `signal` aborts.
 */
export function subscribe(path: string, onEvent: (type: string, data: unknown) => void, signal: AbortSignal, onState: (ok: boolean, why?: unknown) => void = () => undefined): void {
  let delay = 500;
  const run = async (): Promise<void> => {
    while (!signal.aborted) {
      try {
        const res = await answer(await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal, cache: 'no-store' }));
        onState(true);
        delay = 500;
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const chunk = buf.slice(0, i);
            buf = buf.slice(i + 2);
            let type = 'message';
            const data: string[] = [];
            for (const line of chunk.split('\n')) {
              if (line.startsWith('event:')) type = line.slice(6).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
            }
            if (data.length) onEvent(type, JSON.parse(data.join('\n')) as unknown);
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        onState(false, e);
        if (e instanceof Unauthorized) return;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 10_000);
    }
  };
  void run();
}
