import { BusbarError } from '../../lib/errors.js';
import type { StepKind } from '../../lib/step.js';

/** Arguments of the `outbox` step (builder `.outbox({...})`, config `{ "outbox": {...} }`). */
export interface OutboxArgs {
  /** The database, as in a db: URI without the scheme: `sqlite:./data/app.db`, `postgres:main`, `main`. */
  db: string;
  /** Business statements with named parameters (`:body.id`), run in the same transaction as the outbox row. */
  statements?: string | string[];
  /** Outbox table (default `busbar_outbox`, created if missing). */
  table?: string;
  /** Topic stored with the row, a `{template}`; the relay sets header `busbar.outbox.topic`. */
  topic?: string;
}

/** The db: URI an outbox step writes through (so it shares the endpoint's connection and checks). */
export function outboxUri(args: OutboxArgs): string {
  const q = new URLSearchParams();
  q.set('outbox', args.table ?? 'busbar_outbox');
  const statements = args.statements === undefined ? [] : Array.isArray(args.statements) ? args.statements : [args.statements];
  if (statements.length) q.set('statement', statements.map((s) => s.trim().replace(/;\s*$/, '')).join(';\n'));
  if (args.topic !== undefined) q.set('outboxTopic', args.topic);
  // URLSearchParams writes spaces as '+', which would read back as spaces but hides a real '+'
  return `db:${args.db}?${q.toString().replace(/\+/g, '%20')}`;
}

/**
 * Transactional outbox: the business statements and an outbox row holding the message are
 * committed together, so the message is published (by the relay, `from('db:...?outbox=...')`)
 * if and only if the business change happened. The message goes on unchanged.
 */
export const outboxStep: StepKind<OutboxArgs> = {
  name: 'outbox',
  description: 'Write business rows and the message into an outbox table in one transaction; a `db:...?outbox=<table>` source relays them to any endpoint.',
  configSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['db'],
    properties: {
      db: { type: 'string', minLength: 1, description: 'sqlite:<file>, postgres:<connection> or <connection>' },
      statements: { oneOf: [{ type: 'string', minLength: 1 }, { type: 'array', items: { type: 'string', minLength: 1 } }] },
      table: { type: 'string', minLength: 1 },
      topic: { type: 'string' },
    },
  },
  fromConfig: (value) => value as OutboxArgs,
  compile(args, next, ctx) {
    if (!args || typeof args.db !== 'string' || !args.db) throw new BusbarError('INVALID_ROUTE', 'outbox needs db (e.g. "sqlite:./data/app.db" or "postgres:main")');
    const send = ctx.producer(outboxUri(args));
    const later = ctx.continueWith;
    return (msg) => later(send(msg), next, msg);
  },
};

/** Step kinds of the db adapter: `new Engine({ steps: dbSteps, adapters: [createDbAdapter(...)] })`. */
export const dbSteps: StepKind<never>[] = [outboxStep as unknown as StepKind<never>];
