import type { StepKind } from '../step.js';
import { coreSteps } from './core.js';
import { patternSteps } from './patterns/index.js';

/** Every step kind an engine starts with. Pattern modules add theirs here. */
export const builtinSteps: StepKind<never>[] = [...coreSteps, ...patternSteps];
