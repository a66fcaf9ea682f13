import type { StepKind } from '../../step.js';
import { aggregateSteps } from './aggregate.js';
import { awaitReplySteps } from './await-reply.js';
import { contentSteps } from './content.js';
import { mapReduceSteps } from './map-reduce.js';
import { resilienceSteps } from './resilience.js';
import { routingSteps } from './routing.js';
import { splitSteps } from './split.js';

/** Every Enterprise Integration Pattern step kind (registered on each engine by lib/steps/index.ts). */
export const patternSteps: StepKind<never>[] = [...splitSteps, ...aggregateSteps, ...routingSteps, ...contentSteps, ...resilienceSteps, ...mapReduceSteps, ...awaitReplySteps] as unknown as StepKind<never>[];
