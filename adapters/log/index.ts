import type { FlatOptionsSchema } from '../../lib/schema.js';
import type { Adapter } from '../../lib/adapter.js';

export type LogOptions = {
  level: 'trace' | 'debug' | 'info' | 'warn' | 'error';
  showBody: boolean;
  showHeaders: boolean;
};
export const logOptions = {
  type: 'object',
  properties: {
    level: { anyOf: [{ const: 'trace' }, { const: 'debug' }, { const: 'info' }, { const: 'warn' }, { const: 'error' }], default: 'info', description: 'pino level.' },
    showBody: { type: 'boolean', default: true, description: 'Include the body.' },
    showHeaders: { type: 'boolean', default: false, description: 'Include the headers.' },
  },
  additionalProperties: false,
} as const satisfies FlatOptionsSchema<LogOptions>;

/** `log:name`: writes each message through the engine's pino logger. */
export const logAdapter: Adapter<LogOptions> = {
  scheme: 'log',
  description: 'Writes each message through the engine\'s pino logger (`log:orders?level=debug&showHeaders=true`).',
  optionsSchema: logOptions,
  createProducer(endpoint, ctx) {
    const { level, showBody, showHeaders } = endpoint.options;
    const logger = ctx.logger.child({ log: endpoint.path });
    return {
      // done when the line is handed to pino: no promise, the route goes on in the same turn
      send(msg) {
        if (!logger.isLevelEnabled(level)) return undefined;
        const entry: Record<string, unknown> = { messageId: msg.id };
        if (showBody) entry.body = Buffer.isBuffer(msg.body) ? `<${msg.body.length} bytes>` : msg.body;
        if (showHeaders) entry.headers = msg.headers;
        logger[level](entry, endpoint.path);
        return undefined;
      },
    };
  },
};

export default logAdapter;
