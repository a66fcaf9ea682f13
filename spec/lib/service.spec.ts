import { expect } from 'chai';
import { Service } from '../../lib/index.js';

class Probe extends Service {
  starts = 0;
  stops = 0;
  failWith: Error | undefined;
  gate: Promise<void> = Promise.resolve();
  protected async doStart(): Promise<void> {
    this.starts++;
    await this.gate;
    if (this.failWith) throw this.failWith;
  }
  protected async doStop(): Promise<void> {
    this.stops++;
  }
}

describe('Service lifecycle template', () => {
  it('makes start and stop idempotent, also when called concurrently', async () => {
    const s = new Probe();
    let open!: () => void;
    s.gate = new Promise((r) => (open = r));
    const a = s.start();
    const b = s.start();
    expect(s.state).to.equal('starting');
    open();
    await Promise.all([a, b]);
    await s.start();
    expect(s.starts).to.equal(1);
    expect(s.state).to.equal('started');
    await Promise.all([s.stop(), s.stop()]);
    await s.stop();
    expect(s.stops).to.equal(1);
    expect(s.state).to.equal('stopped');
  });

  it('leaves a failed start in state failed and releases what it held', async () => {
    const s = new Probe();
    s.failWith = new Error('no route to host');
    const err = await s.start().catch((e: Error) => e);
    expect((err as Error).message).to.equal('no route to host');
    expect(s.state).to.equal('failed');
    expect(s.stops).to.equal(1);
    s.failWith = undefined;
    await s.start();
    expect(s.state).to.equal('started');
  });

  it('waits for a start in progress before stopping', async () => {
    const s = new Probe();
    let open!: () => void;
    s.gate = new Promise((r) => (open = r));
    const started = s.start();
    const stopped = s.stop();
    open();
    await Promise.all([started, stopped]);
    expect(s.state).to.equal('stopped');
    expect(s.stops).to.equal(1);
  });
});
