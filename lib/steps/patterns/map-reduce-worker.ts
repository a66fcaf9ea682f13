/**
 * Worker thread of the mapReduce step: loads the user's module once, then maps and
 * pre-reduces each batch it is sent, answering with the batch's [key, value] entries
 * (a combiner: far fewer entries cross the thread boundary than items came in).
 */
import { parentPort, workerData } from 'node:worker_threads';

type Pair = readonly [string, unknown];
interface UserModule {
  map(item: unknown): Iterable<Pair> | Promise<Iterable<Pair>>;
  reduce?(a: unknown, b: unknown, key: string): unknown;
}

const named: Record<string, (a: unknown, b: unknown) => unknown> = {
  sum: (a, b) => Number(a) + Number(b),
  count: (a, b) => Number(a) + Number(b),
  min: (a, b) => ((a as number) <= (b as number) ? a : b),
  max: (a, b) => ((a as number) >= (b as number) ? a : b),
};

const { module, reduce: reduceName } = workerData as { module: string; reduce?: string };
type Loaded = { mod: UserModule; reduce: (a: unknown, b: unknown, key: string) => unknown };
// a module that cannot be loaded (or lacks map / reduce) is fatal: every batch would fail the same way
const loaded: Promise<Loaded> = (import(module) as Promise<UserModule>).then((mod) => {
  if (typeof mod.map !== 'function') throw new Error(`${module} exports no map function`);
  const reduce = reduceName ? named[reduceName] : mod.reduce;
  if (typeof reduce !== 'function') throw new Error(`${module} exports no reduce function`);
  return { mod, reduce };
});
loaded.catch(() => undefined); // reported per batch below, not as an unhandled rejection

parentPort!.on('message', (m: { id: number; items: unknown[] }) => {
  loaded
    .catch((e: unknown) => {
      parentPort!.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e), fatal: true });
      return undefined;
    })
    .then(async (l) => {
      if (!l) return;
      const { mod, reduce } = l;
      const acc = new Map<string, unknown>();
      for (const item of m.items) {
        let pairs = mod.map(item);
        if (typeof (pairs as { then?: unknown }).then === 'function') pairs = await pairs;
        for (const [k, v] of pairs as Iterable<Pair>) acc.set(k, acc.has(k) ? reduce(acc.get(k), v, k) : v);
      }
      parentPort!.postMessage({ id: m.id, entries: [...acc.entries()] });
    })
    .catch((e: unknown) => parentPort!.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) }));
});
