import { BusbarError } from './errors.js';

export type ServiceState = 'new' | 'starting' | 'started' | 'stopping' | 'stopped' | 'failed';

/**
 * Lifecycle as a template (Camel's ServiceSupport): `start`/`stop` are fixed, idempotent
 * and safe to call concurrently; subclasses fill `doStart`/`doStop`. A start that throws
 * leaves the service `failed` and runs `doStop` so partial resources are released.
 */
export abstract class Service {
  #state: ServiceState = 'new';
  #pending: Promise<void> | undefined;

  get state(): ServiceState {
    return this.#state;
  }

  protected abstract doStart(): Promise<void>;
  protected abstract doStop(): Promise<void>;

  async start(): Promise<void> {
    if (this.#state === 'started') return;
    if (this.#state === 'starting' && this.#pending) return this.#pending;
    if (this.#state === 'stopping') {
      await this.#pending;
    }
    this.#state = 'starting';
    this.#pending = (async () => {
      try {
        await this.doStart();
        this.#state = 'started';
      } catch (err) {
        this.#state = 'failed';
        try {
          await this.doStop();
        } catch {
          // the start error is the one worth reporting
        }
        throw err;
      } finally {
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }

  async stop(): Promise<void> {
    if (this.#state === 'new' || this.#state === 'stopped' || this.#state === 'failed') {
      this.#state = this.#state === 'new' ? 'new' : 'stopped';
      return;
    }
    if (this.#state === 'stopping' && this.#pending) return this.#pending;
    if (this.#state === 'starting') {
      await this.#pending?.catch(() => undefined);
      if (this.state !== 'started') return;
    }
    this.#state = 'stopping';
    this.#pending = (async () => {
      try {
        await this.doStop();
      } finally {
        this.#state = 'stopped';
        this.#pending = undefined;
      }
    })();
    return this.#pending;
  }

  protected assertStarted(what: string): void {
    if (this.#state !== 'started') {
      throw new BusbarError('ENGINE_STATE', `${what}: not started (state ${this.#state})`, { details: { state: this.#state } });
    }
  }
}
