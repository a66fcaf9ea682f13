import { Type, type Static } from '@sinclair/typebox';
import type { Adapter } from '../../lib/adapter.js';

export const logOptions = Type.Object(
  {
    level: Type.Union([Type.Literal('trace'), Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')], { default: 'info', description: 'pino level.' }),
    showBody: Type.Boolean({ default: true, description: 'Include the body.' }),
    showHeaders: Type.Boolean({ default: false, description: 'Include the headers.' }),
  },
  { additionalProperties: false },
);
export type LogOptions = Static<typeof logOptions>;

/** `log:name`: writes each message through the engine's pino logger. */
export const logAdapter: Adapter<LogOptions> = {
  scheme: 'log',
  description: 'Writes each message through the engine\'s pino logger (`log:orders?level=debug&showHeaders=true`).',
  optionsSchema: logOptions,
  createProducer(endpoint, ctx) {
    const { level, showBody, showHeaders } = endpoint.options;
    const logger = ctx.logger.child({ log: endpoint.path });
    return {
      async send(msg) {
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
