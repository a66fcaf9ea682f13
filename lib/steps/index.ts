import type { StepKind } from '../step.js';
import { coreSteps } from './core.js';
import { transformSteps } from './transform.js';
import { patternSteps } from './patterns/index.js';
import { outboxStep } from '../../adapters/db/outbox-step.js';

/** Every step kind an engine starts with. Pattern modules add theirs here. */
export const builtinSteps: StepKind<never>[] = [...coreSteps, ...patternSteps, outboxStep as unknown as StepKind<never>, ...transformSteps];
