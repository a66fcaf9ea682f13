import { BusbarError } from '../../../lib/errors.js';

/** The service every RPC spec calls, whatever the transport. */
export interface Calculator {
  add(a: number, b: number): number;
  divide(a: number, b: number): Promise<number>;
  describe(order: { id: string; lines: number[] }): { id: string; total: number };
  find(id: string): { id: string };
  slow(ms: number): Promise<string>;
  fail(): never;
}

export class CalculatorImpl implements Calculator {
  calls = 0;
  #secret = 'never exposed';
  add(a: number, b: number): number {
    this.calls++;
    return a + b;
  }
  async divide(a: number, b: number): Promise<number> {
    if (b === 0) throw new BusbarError('VALIDATION_FAILED', 'cannot divide by zero', { details: { problems: [{ path: '/1', message: 'must not be 0' }] } });
    return a / b;
  }
  describe(order: { id: string; lines: number[] }): { id: string; total: number } {
    return { id: order.id, total: order.lines.reduce((s, x) => s + x, 0) };
  }
  find(id: string): { id: string } {
    throw new BusbarError('NOT_FOUND', `no record ${id}`);
  }
  async slow(ms: number): Promise<string> {
    await new Promise((r) => setTimeout(r, ms));
    return 'done';
  }
  fail(): never {
    throw new Error(`internal: ${this.#secret.length}`);
  }
  _internal(): string {
    return 'hidden';
  }
}
