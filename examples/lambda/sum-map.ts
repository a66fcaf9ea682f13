// The batch layer's map, in a module of its own so worker threads can load it: a sale event
// -> one [user, amount] pair. The reduce is busbar's named `sum`.
export interface Sale {
  user: string;
  /** Cents (integers keep the sums exact). */
  amount: number;
}

export function map(e: Sale): Array<[string, number]> {
  return [[e.user, e.amount]];
}
