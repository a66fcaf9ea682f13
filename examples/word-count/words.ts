/**
 * The map and reduce functions of the word count, in their own module so worker threads
 * can load them (functions cannot be sent to a worker; a module path can).
 */
const WORD = /[a-z']+/g;

/** One line of text -> [word, 1] pairs. */
export function map(line: unknown): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  for (const w of String(line).toLowerCase().match(WORD) ?? []) out.push([w, 1]);
  return out;
}

export function reduce(a: unknown, b: unknown): number {
  return (a as number) + (b as number);
}
