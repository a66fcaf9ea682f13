import type { RouteContract } from './contracts.js';
import type { StepDefinition } from './step.js';

/** Redelivery: retry a failed message with exponential backoff before giving up. */
export interface RedeliveryPolicy {
  /** Total attempts including the first (1 = no redelivery). */
  maxAttempts: number;
  /** Delay before the first redelivery. */
  delayMs?: number;
  /** Each further delay is multiplied by this (default 2). */
  multiplier?: number;
  /** Upper bound of one delay. */
  maxDelayMs?: number;
  /** Random spread, 0..1: a delay d becomes d * (1 ± jitter/2). */
  jitter?: number;
  /** Redeliver errors whose `retryable` flag is false too (default false). */
  retryNonRetryable?: boolean;
}

/** What to do with a failed message, for some error codes or for all. */
export interface ErrorRule {
  redelivery?: RedeliveryPolicy;
  /** Endpoint that receives the original message with the reason in `busbar.error.*` headers. */
  deadLetter?: string;
  /** `handled`: the failure is logged and the source acknowledged without dead-lettering. */
  handled?: boolean;
}

export interface ErrorPolicy extends ErrorRule {
  /** Rules by error code (`BUSBAR_ERR_VALIDATION_FAILED`), error class name, or name prefix; first match wins. */
  on?: Array<ErrorRule & { codes: string[] }>;
}

/** The one internal model of a route; the builder and config files both produce it. */
export interface RouteDefinition {
  id: string;
  from: string;
  steps: StepDefinition[];
  description?: string;
  maxInflight?: number;
  errorPolicy?: ErrorPolicy;
  /** Record the steps each message passed, with times, in `busbar.history`. */
  history?: boolean;
  /** Input/output schema contracts, checked before the first step and at the end (see lib/contracts.ts). */
  contract?: RouteContract;
}
