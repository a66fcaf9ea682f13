/**
 * Compile-time checks of the stub's types (`npm run typecheck` fails if one breaks): each
 * method returns a Promise of its awaited result, arguments keep their types, and
 * non-method members are not on the stub.
 */
import { proxy, type Remote } from '../../../lib/rpc.js';
import type { Engine } from '../../../lib/engine.js';

interface Calc {
  add(a: number, b: number): number;
  later(): Promise<string>;
  name: string;
}

export function stubTypes(e: Engine): Array<Promise<unknown>> {
  const c: Remote<Calc> = proxy<Calc>('c', { engine: e, uri: 'direct:c', methods: { add: { timeoutMs: 10 } } });
  const n: Promise<number> = c.add(1, 2);
  const s: Promise<string> = c.later();
  // @ts-expect-error arguments keep their types
  const wrong = c.add('1', 2);
  // @ts-expect-error only methods are on the stub
  const field = c.name;
  // @ts-expect-error per-method options only for methods
  proxy<Calc>('c', { engine: e, uri: 'direct:c', methods: { name: { timeoutMs: 10 } } });
  return [n, s, wrong, Promise.resolve(field)];
}
