import { expect } from 'chai';
import { from } from '../../../lib/builder.js';
import { Engine } from '../../../lib/engine.js';
import type { ManagementServer } from '../../../lib/management/types.js';
import { testLogger, waitFor } from '../../helpers.js';

interface Sse {
  events: Array<{ type: string; data: Record<string, unknown> }>;
  comments: string[];
  ended: Promise<void>;
  abort: () => void;
}

/** Reads a server-sent-events stream over a real socket, parsing it as a browser's EventSource would. */
async function listen(url: string, token: string): Promise<Sse> {
  const ac = new AbortController();
  const r = await fetch(url, { headers: { authorization: `Bearer ${token}` }, signal: ac.signal });
  expect(r.status).to.equal(200);
  expect(r.headers.get('content-type')).to.match(/^text\/event-stream/);
  const out: Sse = { events: [], comments: [], ended: Promise.resolve(), abort: () => ac.abort() };
  out.ended = (async () => {
    const dec = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of r.body!) {
        buf += dec.decode(chunk as Uint8Array, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (block.startsWith(': ')) out.comments.push(block.slice(2));
          const type = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (type && data) out.events.push({ type, data: JSON.parse(data) as Record<string, unknown> });
        }
      }
    } catch (e) {
      if ((e as Error).name !== 'AbortError') throw e;
    }
  })();
  return out;
}

describe('management event streams (server-sent events on 127.0.0.1)', () => {
  const TOKEN = 'sse-token';
  let engine: Engine;
  let m: ManagementServer;
  beforeEach(async () => {
    engine = new Engine({ logger: testLogger() });
    engine.addRoutes(
      from<{ n: number }>('direct:in')
        .routeId('in')
        .deadLetter('mock:dead')
        .process((msg) => {
          if (msg.body.n < 0) throw new Error('negative');
          return msg;
        })
        .to('mock:out'),
    );
    m = await engine.management({ port: 0, token: TOKEN, eventsIntervalMs: 100 });
    await engine.start();
  });
  afterEach(async () => {
    await m.close();
    await engine.stop();
  });

  it('/api/v1/events: stats at once and every interval, lifecycle and failure events as they happen, no event per completed message', async () => {
    expect((await fetch(`${m.url}/api/v1/events`)).status).to.equal(401);
    const s = await listen(`${m.url}/api/v1/events`, TOKEN);
    await waitFor(() => s.events.some((e) => e.type === 'stats'), 5000, 'a stats event');
    for (let n = 1; n <= 5; n++) await engine.send('direct:in', { n });
    await engine.send('direct:in', { n: -1 }).catch(() => undefined);
    await engine.suspendRoute('in');
    await waitFor(() => s.events.some((e) => e.type === 'route.suspended'), 5000, 'the route.suspended event');
    const failed = s.events.find((e) => e.type === 'message.failed');
    expect(failed, 'a message.failed event').to.exist;
    expect(failed!.data.routeId).to.equal('in');
    expect(s.events.filter((e) => e.type === 'message.completed')).to.have.length(0);
    await waitFor(() => {
      const last = s.events.filter((e) => e.type === 'stats').at(-1)?.data as { routes?: Record<string, { completed: number }> } | undefined;
      return last?.routes?.in?.completed === 5;
    }, 5000, 'a stats event counting the 5 completed messages');
    s.abort();
    await s.ended;
  });

  it('/api/v1/graph/events: a snapshot when the figures change, a comment line when they do not; the stream ends when the server closes', async () => {
    const { useConsole } = await import('../../../lib/console/index.js');
    const engine2 = new Engine({ logger: testLogger() });
    engine2.addRoutes(from('direct:g').routeId('g').to('mock:g'));
    useConsole(engine2, { intervalMs: 60 });
    const m2 = await engine2.management({ port: 0, token: TOKEN });
    await engine2.start();
    try {
      const s = await listen(`${m2.url}/api/v1/graph/events`, TOKEN);
      await waitFor(() => s.comments.includes('idle'), 5000, 'an idle comment on a quiet hub');
      const snapshots = (): number => s.events.filter((e) => e.type === 'snapshot').length;
      const before = snapshots();
      await engine2.send('direct:g', 'x');
      await waitFor(() => snapshots() === before + 1, 5000, 'one new snapshot after a message');
      const last = s.events.at(-1)!.data as { counters: Record<string, { messages: number }> };
      expect(last.counters['route:g']!.messages).to.equal(1);
      await m2.close();
      await s.ended; // the server's close ends the stream: the read loop returns
      expect(snapshots()).to.equal(before + 1);
    } finally {
      await m2.close();
      await engine2.stop();
    }
  });
});
