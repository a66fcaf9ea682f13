import type { Command } from 'commander';
import { BusbarError } from '../errors.js';

/**
 * Commands against a running hub's management API (like Camel JBang's `camel get` /
 * `camel cmd`): `busbar status|routes|route <op> ID|inflight|dead-letters`. The hub's
 * address and token come from --url/--token or BUSBAR_MANAGEMENT_URL/BUSBAR_MANAGEMENT_TOKEN.
 */
interface ClientOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

const DEFAULT_URL = 'http://127.0.0.1:9464';

class HubClient {
  readonly base: string;
  readonly #token: string | undefined;

  constructor(o: ClientOptions) {
    this.base = (o.url ?? process.env.BUSBAR_MANAGEMENT_URL ?? DEFAULT_URL).replace(/\/+$/, '');
    const t = o.token ?? process.env.BUSBAR_MANAGEMENT_TOKEN;
    this.#token = t === '' ? undefined : t;
  }

  async call<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      throw new BusbarError('HTTP_NETWORK', `cannot reach the hub at ${this.base}: ${cause?.code ?? cause?.message ?? (e as Error).message} (is it running with --management? set --url or BUSBAR_MANAGEMENT_URL)`, { cause: e, details: { url: this.base } });
    }
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      parsed = { text };
    }
    return { status: res.status, body: parsed as T };
  }

  /** The body of a 2xx answer (503 counts for /ready); otherwise the hub's coded error. */
  async ok<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown, accept: number[] = []): Promise<T> {
    const r = await this.call<T>(method, path, body);
    if ((r.status >= 200 && r.status < 300) || accept.includes(r.status)) return r.body;
    const err = (r.body as { error?: { code?: string; message?: string } }).error;
    const e = new BusbarError('HTTP_CLIENT_ERROR', `${method} ${path}: ${r.status} ${err?.code ?? ''} ${err?.message ?? JSON.stringify(r.body)}`.replace(/\s+/g, ' '), { details: { status: r.status, remoteCode: err?.code } });
    throw e;
  }
}

interface RouteRow {
  id: string;
  state: string;
  from: string;
  stats: { received: number; completed: number; failed: number; deadLettered: number; redelivered: number; inflight: number; source: { status: string; error?: string } };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function out(o: ClientOptions, data: unknown, human: () => string): void {
  process.stdout.write(`${o.json ? JSON.stringify(data, null, 2) : human()}\n`);
}

function failed(e: unknown): never {
  process.stderr.write(`busbar: ${(e as Error).message}\n`);
  const code = (e as { code?: string }).code;
  if (code) process.stderr.write(`  code: ${code}\n`);
  process.exit(2);
}

function withClient(cmd: Command): Command {
  return cmd
    .option('--url <url>', `management API of the hub (default: BUSBAR_MANAGEMENT_URL or ${DEFAULT_URL})`)
    .option('--token <token>', 'bearer token (default: BUSBAR_MANAGEMENT_TOKEN)')
    .option('--json', 'print the API\'s JSON');
}

/** While `p` runs, report progress on stderr every second (a drain, a long replay). */
async function withProgress<T>(p: Promise<T>, report: () => Promise<string | undefined>): Promise<T> {
  let done = false;
  const tick = async (): Promise<void> => {
    while (!done) {
      await new Promise((r) => setTimeout(r, 1000));
      if (done) break;
      const line = await report().catch(() => undefined);
      if (line && !done) process.stderr.write(`${line}\n`);
    }
  };
  void tick();
  try {
    return await p;
  } finally {
    done = true;
  }
}

export function registerOpsCommands(program: Command): void {
  withClient(program.command('status').description('a running hub: state, readiness, totals (exit 1 when not ready)')).action(async (o: ClientOptions) => {
    try {
      const c = new HubClient(o);
      const s = await c.ok<{ name: string; state: string; ready: boolean; pid: number; uptimeSeconds: number; routes: number; totals: Record<string, number> }>('GET', '/api/v1/status');
      out(o, s, () => {
        const t = s.totals;
        return `${s.name} ${s.state}${s.ready ? ', ready' : ', NOT READY'} (pid ${s.pid}, up ${s.uptimeSeconds}s, ${s.routes} routes): received ${t.received}, completed ${t.completed}, failed ${t.failed}, dead-lettered ${t.deadLettered}, redelivered ${t.redelivered}, in flight ${t.inflight}`;
      });
      if (!s.ready) process.exitCode = 1;
    } catch (e) {
      failed(e);
    }
  });

  withClient(program.command('routes').description('routes of a running hub with state and stats')).action(async (o: ClientOptions) => {
    try {
      const r = await new HubClient(o).ok<{ routes: RouteRow[] }>('GET', '/api/v1/routes');
      out(o, r, () =>
        table([
          ['ROUTE', 'STATE', 'SOURCE', 'RECEIVED', 'COMPLETED', 'FAILED', 'DEAD', 'REDELIVERED', 'INFLIGHT', 'FROM'],
          ...r.routes.map((x) => [x.id, x.state, x.stats.source.status, ...[x.stats.received, x.stats.completed, x.stats.failed, x.stats.deadLettered, x.stats.redelivered, x.stats.inflight].map(String), x.from]),
        ]),
      );
    } catch (e) {
      failed(e);
    }
  });

  withClient(
    program
      .command('route')
      .description('operate one route of a running hub: stop, start, suspend, resume, reset-stats, show')
      .argument('<operation>', 'stop | start | suspend | resume | reset-stats | show')
      .argument('<id>', 'route id')
      .option('--timeout <ms>', 'stop: how long to wait for in-flight messages', (v) => Number(v)),
  ).action(async (op: string, id: string, o: ClientOptions & { timeout?: number }) => {
    const ops = ['stop', 'start', 'suspend', 'resume', 'reset-stats', 'show'];
    if (!ops.includes(op)) failed(new BusbarError('MANAGEMENT_REQUEST', `unknown route operation "${op}" (one of: ${ops.join(', ')})`));
    try {
      const c = new HubClient(o);
      if (op === 'show') {
        const d = await c.ok('GET', `/api/v1/routes/${encodeURIComponent(id)}`);
        out(o, d, () => JSON.stringify(d, null, 2));
        return;
      }
      const req = c.ok<RouteRow>('POST', `/api/v1/routes/${encodeURIComponent(id)}/${op}`, o.timeout !== undefined ? { timeoutMs: o.timeout } : {});
      const r = await (op === 'stop'
        ? withProgress(req, async () => {
            const s = await c.ok<RouteRow>('GET', `/api/v1/routes/${encodeURIComponent(id)}`);
            return `stopping ${id}: draining, ${s.stats.inflight} in flight`;
          })
        : req);
      out(o, r, () => `${r.id}: ${r.state} (received ${r.stats.received}, completed ${r.stats.completed}, failed ${r.stats.failed}, in flight ${r.stats.inflight})`);
    } catch (e) {
      failed(e);
    }
  });

  withClient(program.command('reload').description('reload the routes file of a running hub: validated first, only changed routes redeployed; on a failure the running version stays (exit 1)')).action(async (o: ClientOptions) => {
    try {
      const r = await new HubClient(o).ok<{ file: string; changed: string[]; added: string[]; removed: string[]; unchanged: string[]; restartNeeded?: string[] }>('POST', '/api/v1/reload', {});
      out(o, r, () => {
        const list = (xs: string[]): string => (xs.length ? xs.join(', ') : '-');
        const restart = r.restartNeeded?.length ? `\nneeds a restart to apply: ${r.restartNeeded.join(', ')}` : '';
        return `reloaded ${r.file}: changed ${list(r.changed)}; added ${list(r.added)}; removed ${list(r.removed)}; unchanged ${list(r.unchanged)}${restart}`;
      });
    } catch (e) {
      failed(e);
    }
  });

  withClient(program.command('inflight').description('exchanges in flight on a running hub: message id, age, step').option('--route <id>', 'only this route')).action(async (o: ClientOptions & { route?: string }) => {
    try {
      const q = o.route ? `?route=${encodeURIComponent(o.route)}` : '';
      const r = await new HubClient(o).ok<{ inflight: Array<{ routeId: string; messageId: string; ageMs: number; step?: string; kind?: string }> }>('GET', `/api/v1/inflight${q}`);
      out(o, r, () =>
        r.inflight.length === 0 ? 'nothing in flight' : table([['ROUTE', 'MESSAGE', 'AGE', 'STEP'], ...r.inflight.map((x) => [x.routeId, x.messageId, `${(x.ageMs / 1000).toFixed(1)}s`, x.step ? `${x.step} (${x.kind})` : '-'])]),
      );
    } catch (e) {
      failed(e);
    }
  });

  withClient(
    program
      .command('dead-letters')
      .description('dead letters of a running hub\'s routes (with their busbar.error.* reason); --replay sends them back through the route')
      .argument('[route]', 'route id (default: every route with a readable dead-letter endpoint)')
      .option('--replay', 'replay them (all, or --id ones) into the route, or --to an endpoint')
      .option('--id <id...>', 'only these dead letters')
      .option('--to <uri>', 'replay to this endpoint instead of the route')
      .option('--limit <n>', 'list at most this many per route', (v) => Number(v)),
  ).action(async (route: string | undefined, o: ClientOptions & { replay?: boolean; id?: string[]; to?: string; limit?: number }) => {
    try {
      const c = new HubClient(o);
      if (!o.replay) {
        const q = new URLSearchParams();
        if (route) q.set('route', route);
        if (o.limit !== undefined) q.set('limit', String(o.limit));
        const r = await c.ok<{ deadLetters: Array<{ id: string; routeId: string; endpoint: string; code?: string; message?: string; failedAt?: string }> }>('GET', `/api/v1/dead-letters${q.size ? `?${q}` : ''}`);
        out(o, r, () =>
          r.deadLetters.length === 0
            ? 'no dead letters'
            : table([['ROUTE', 'ID', 'ENDPOINT', 'FAILED AT', 'CODE', 'REASON'], ...r.deadLetters.map((d) => [d.routeId, d.id, d.endpoint, d.failedAt ?? '-', d.code ?? '-', (d.message ?? '').slice(0, 80)])]),
        );
        return;
      }
      if (!route) failed(new BusbarError('MANAGEMENT_REQUEST', 'dead-letters --replay needs the route id'));
      const body: Record<string, unknown> = { route, ...(o.id ? { ids: o.id } : {}), ...(o.to ? { to: o.to } : {}) };
      const r = await withProgress(c.ok<{ replayed: number; deadLetteredAgain: number; failed: number; skipped?: number; remaining: number }>('POST', '/api/v1/dead-letters/replay', body), async () => {
        const p = await c.ok<{ replay?: { done: number; total: number } }>('GET', `/api/v1/dead-letters/replay?route=${encodeURIComponent(route)}`);
        return p.replay ? `replaying ${route}: ${p.replay.done}/${p.replay.total}` : undefined;
      });
      out(o, r, () => `${route}: replayed ${r.replayed}, dead-lettered again ${r.deadLetteredAgain}, failed (kept) ${r.failed}${r.skipped ? `, skipped (another replay holds them) ${r.skipped}` : ''}, remaining ${r.remaining}`);
      if (r.failed > 0 || r.deadLetteredAgain > 0) process.exitCode = 1;
    } catch (e) {
      failed(e);
    }
  });
}
