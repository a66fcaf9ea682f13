import type { Adapter, ConsumerContext } from '../../../lib/adapter.js';
import { Engine, type EngineOptions } from '../../../lib/engine.js';
import type { ManagementOptions, ManagementServer } from '../../../lib/management/types.js';
import { testLogger } from '../../helpers.js';

/** The one set-up of the management specs: engines and servers made here are stopped after each test. */
export function managementFixture(): { engine(opts?: EngineOptions): Engine; serve(engine: Engine, opts?: ManagementOptions): Promise<ManagementServer> } {
  const engines: Engine[] = [];
  const servers: ManagementServer[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
    for (const e of engines.splice(0)) await e.stop();
  });
  return {
    engine(opts = {}) {
      const e = new Engine({ logger: testLogger(), ...opts });
      engines.push(e);
      return e;
    },
    async serve(engine, opts = {}) {
      const s = await engine.management({ port: 0, ...opts });
      servers.push(s);
      return s;
    },
  };
}

export type Answer = { status: number; body: Record<string, unknown> };

/** A management call: JSON in, status and JSON out. */
export async function call(base: string | ManagementServer, method: 'GET' | 'POST', path: string, body?: unknown, token?: string): Promise<Answer> {
  const url = typeof base === 'string' ? base : base.url;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${url}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

export const get = (url: string, token?: string): Promise<Answer> => call(url, 'GET', '', undefined, token);
export const post = (url: string, body?: unknown, token?: string): Promise<Answer> => call(url, 'POST', '', body, token);

/** A source whose connection status the test sets, and that hands messages in when told. */
export function remoteAdapter(): { adapter: Adapter; ctx: () => ConsumerContext } {
  let ctx: ConsumerContext | undefined;
  const adapter: Adapter = {
    scheme: 'remote',
    description: 'test source',
    optionsSchema: { type: 'object', properties: {}, additionalProperties: false },
    createConsumer(_e, c) {
      ctx = c;
      return { async start() {}, async stop() {} };
    },
  };
  return { adapter, ctx: () => ctx! };
}
