import type { Adapter } from './adapter.js';
import { directAdapter } from '../adapters/direct/index.js';
import { logAdapter } from '../adapters/log/index.js';
import { mockAdapter } from '../adapters/mock/index.js';
import { queueAdapter } from '../adapters/queue/index.js';
import { timerAdapter } from '../adapters/timer/index.js';
import { topicAdapter } from '../adapters/topic/index.js';

/**
 * The in-memory adapters every engine has. Fresh objects per call: adapters keep their
 * per-engine state in the engine (ctx.state), never in module scope.
 */
export function builtinAdapters(): Adapter[] {
  return [directAdapter, queueAdapter, topicAdapter(), mockAdapter, logAdapter, timerAdapter] as unknown as Adapter[];
}
