import { expect } from 'chai';
import { setFlagsFromString } from 'node:v8';
import { createMessage, merged, withHeader, withHeaders, withoutHeaders } from '../../lib/message.js';
import { from } from '../../lib/index.js';
import { testEngine } from '../../lib/testing.js';

// V8's own view of two objects: whether they share a hidden class (natives syntax, for this check only)
setFlagsFromString('--allow-natives-syntax');
const sameShape = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
const fastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean;

describe('merged headers (what withHeaders and the steps that add headers make)', () => {
  it('later keys win, the inputs are left alone', () => {
    const a = { x: 1, y: 2 };
    const b = { y: 3, z: 4 };
    expect(merged(a, b)).to.deep.equal({ x: 1, y: 3, z: 4 });
    expect(a).to.deep.equal({ x: 1, y: 2 });
    expect(Object.keys(merged(a, b))).to.deep.equal(['x', 'y', 'z']);
  });

  it('gives headers merged alike one hidden class (a spread adding keys gives each its own, and every read of it misses V8’s caches)', () => {
    const made = Array.from({ length: 50 }, (_, i) => withHeaders(createMessage(i, { headers: { 'content-type': 'application/json', 'x-id': String(i) } }), { 'x-added': i }).headers);
    for (let i = 1; i < made.length; i++) expect(sameShape(made[i - 1]!, made[i]!), `headers ${i} and ${i - 1}`).to.equal(true);
  });

  it('copies a parsed "__proto__" key as data: the result keeps the plain object prototype', () => {
    const parsed = JSON.parse('{"__proto__": {"content-type": "text/evil"}, "a": 1}') as Record<string, unknown>;
    const out = merged({ 'x-b': 2 }, parsed);
    expect(Object.getPrototypeOf(out)).to.equal(Object.prototype);
    expect(Object.hasOwn(out, '__proto__')).to.equal(true);
    expect((out as Record<string, unknown>)['content-type']).to.equal(undefined);
    const msg = withHeaders(createMessage('x'), parsed as Record<string, string>);
    expect(Object.getPrototypeOf(msg.headers)).to.equal(Object.prototype);
    expect(msg.headers['content-type']).to.equal(undefined);
  });

  it('withHeader (one header, what setHeader does): same hidden class for every message, "__proto__" as data', () => {
    const made = Array.from({ length: 50 }, (_, i) => withHeader(withHeader(createMessage(i, { headers: { 'x-id': String(i) } }), 'x-a', i), 'x-b', 'b').headers);
    for (let i = 1; i < made.length; i++) expect(sameShape(made[i - 1]!, made[i]!), `headers ${i} and ${i - 1}`).to.equal(true);
    expect(made[3]).to.deep.equal({ 'x-id': '3', 'x-a': 3, 'x-b': 'b' });
    const odd = withHeader(createMessage('x', { headers: { a: '1' } }), '__proto__', 'p');
    expect(Object.getPrototypeOf(odd.headers)).to.equal(Object.prototype);
    expect(Object.hasOwn(odd.headers, '__proto__')).to.equal(true);
    expect(odd.headers.a).to.equal('1');
  });

  it('removeHeaders drops the named headers, keeps the rest in order, with fast properties and one hidden class, and leaves the message it was given alone', async () => {
    const { engine } = testEngine();
    engine.addRoutes(from('direct:in').removeHeaders('x-secret', 'x-other').to('mock:out'));
    await engine.start();
    try {
      for (let i = 0; i < 20; i++) await engine.send('direct:in', i, { a: '1', 'x-secret': 's', b: String(i) });
      const got = engine.mock('mock:out').received.map((m) => m.headers);
      expect(got[5]).to.deep.equal({ a: '1', b: '5' });
      expect(Object.keys(got[5]!)).to.deep.equal(['a', 'b']);
      for (let i = 1; i < got.length; i++) expect(sameShape(got[i - 1]!, got[i]!), `headers ${i} and ${i - 1}`).to.equal(true);
      // not a dictionary (what deleting from a copy makes): reads stay on V8's fast path
      expect(fastProperties(got[7]!)).to.equal(true);
    } finally {
      await engine.stop();
    }
    const parsed = JSON.parse('{"__proto__": {"x": 1}, "keep": "k", "drop": "d"}') as Record<string, string>;
    const msg = createMessage('x', { headers: parsed });
    const out = withoutHeaders(msg, ['drop']);
    expect(Object.getPrototypeOf(out.headers)).to.equal(Object.prototype);
    expect(Object.keys(out.headers)).to.deep.equal(['__proto__', 'keep']);
    expect(msg.headers.drop).to.equal('d');
  });
});
