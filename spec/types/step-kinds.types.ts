/**
 * Type tests for step kinds of your own: a typed step kind goes into `new Engine({ steps })`
 * and `engine.steps.register` as it is (no cast); checked by `tsc --noEmit`.
 * Every `@ts-expect-error` line MUST be a type error, the others must compile.
 */
import { Engine, mapStep, withBody, type StepKind } from '../../lib/index.js';

const upper: StepKind<{ field: string }> = mapStep<{ field: string }>({
  name: 'upper',
  description: 'upper-cases one field of the body',
  configSchema: { type: 'object', required: ['field'], properties: { field: { type: 'string' } } },
  fromConfig: (v) => v as { field: string },
  map: ({ field }) => (msg) => withBody(msg, { ...(msg.body as Record<string, unknown>), [field]: String((msg.body as Record<string, unknown>)[field]).toUpperCase() }),
});
const engine = new Engine({ steps: [upper] });
engine.steps.register(upper);
// @ts-expect-error a step kind needs a name (and the rest of the interface)
new Engine({ steps: [{ description: 'no name' }] });
