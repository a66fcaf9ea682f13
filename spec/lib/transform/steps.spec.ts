import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { expect } from 'chai';
import { BusbarError, Engine, ERROR_HEADERS, from, type Message } from '../../../lib/index.js';
import type { ContractProblem } from '../../../lib/contracts.js';
import { testLogger, rejection } from '../../helpers.js';

const orderXml = readFileSync(new URL('../../fixtures/xml/order.xml', import.meta.url), 'utf8');

/** The JSON shape of order.xml; values are strings, as XML gives them. */
const XmlOrder = Type.Object({
  order: Type.Object({
    '@id': Type.String({ pattern: '^[0-9]+$' }),
    customer: Type.Object({ number: Type.String(), name: Type.String() }),
    line: Type.Array(Type.Object({ '@sku': Type.String(), qty: Type.String({ pattern: '^[0-9]+$' }), price: Type.String() }), { minItems: 1 }),
    amount: Type.String({ pattern: '^[0-9]+\\.[0-9]{2}$' }),
    country: Type.String({ minLength: 2, maxLength: 2 }),
  }),
});
type XmlOrder = Static<typeof XmlOrder>;

const Order = Type.Object({ id: Type.String(), amount: Type.Number({ minimum: 0 }), country: Type.String({ minLength: 2, maxLength: 2 }) }, { additionalProperties: false });

function engine(): Engine {
  return new Engine({ logger: testLogger() });
}

describe('transformation steps', () => {
  describe('convert + validate in the typed builder', () => {
    it('XML -> JSON data -> validate (type from the TypeBox schema) -> typed transform', async () => {
      const e = engine();
      e.addRoutes(
        from<string>('direct:in')
          .routeId('xml-orders')
          .convert('xml', 'json', { from: { arrays: ['order.line'] } })
          .validate(XmlOrder)
          // `o` is Static<typeof XmlOrder>: a wrong property would not compile (see the ts-expect-error below)
          .transform((o) => ({ id: o.order['@id'], lines: o.order.line.length, amount: Number(o.order.amount), customer: o.order.customer.number }))
          .to('mock:out'),
      );
      await e.start();
      await e.send('direct:in', orderXml);
      await e.stop();
      expect(e.mock('mock:out').bodies).to.deep.equal([{ id: '00042', lines: 2, amount: 100, customer: '0012345' }]);
    });

    it('the body type after validate() is derived from the schema', () => {
      const route = from<string>('direct:t').convert('xml', 'json').validate(Order);
      const doubled = route.transform((o: Static<typeof Order>) => o.amount * 2);
      // @ts-expect-error -- `total` is not in the contract, so it is not in the type either
      route.transform((o) => o.total);
      // builders are immutable: the prefix keeps its steps, the continuation has its own
      expect(route.steps.map((s) => s.kind)).to.deep.equal(['convert', 'validate']);
      expect(doubled.steps.map((s) => s.kind)).to.deep.equal(['convert', 'validate', 'transform']);
    });

    it('a violation lists every problem with its JSON pointer and goes to the dead letter with the reasons', async () => {
      const e = engine();
      e.addRoutes(from<string>('direct:in').routeId('strict').deadLetter('mock:dlq').unmarshal('json').validate(Order, { name: 'Order' }).to('mock:ok'));
      await e.start();
      const err = await rejection(e.send('direct:in', JSON.stringify({ id: 7, amount: -1, extra: true })));
      await e.stop();
      expect(err.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
      const problems = err.details.problems as ContractProblem[];
      expect(problems.map((p) => [p.pointer, p.keyword]).sort()).to.deep.equal([
        ['/amount', 'minimum'],
        ['/country', 'required'],
        ['/extra', 'additionalProperties'],
        ['/id', 'type'],
      ]);
      expect(e.mock('mock:ok').bodies).to.have.length(0);
      const [dead] = e.mock('mock:dlq').received as Message[];
      expect(dead!.body).to.equal(JSON.stringify({ id: 7, amount: -1, extra: true }));
      expect(dead!.headers[ERROR_HEADERS.code]).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
      const reason = String(dead!.headers[ERROR_HEADERS.message]);
      for (const pointer of ['/amount', '/country', '/extra', '/id']) expect(reason).to.contain(pointer);
      expect(String(dead!.headers[ERROR_HEADERS.step])).to.contain('validate');
    });

    it('XML values (strings) validate against typed schemas with coerce, on a copy of the body', async () => {
      const e = engine();
      const Amount = Type.Object({ order: Type.Object({ amount: Type.Number(), line: Type.Array(Type.Object({ qty: Type.Integer() })) }) });
      const seen: unknown[] = [];
      e.addRoutes(
        from<string>('direct:in')
          .convert('xml', 'json', { from: { arrays: ['order.line'] } })
          .process((m) => {
            seen.push(m.body);
            return m;
          })
          .validate(Amount, { coerce: true })
          .transform((o) => o.order.amount + o.order.line.reduce((s, l) => s + l.qty, 0))
          .to('mock:out'),
      );
      await e.start();
      await e.send('direct:in', orderXml);
      await e.stop();
      expect(e.mock('mock:out').bodies).to.deep.equal([103]);
      // the message before validate was not changed in place
      expect((seen[0] as XmlOrder).order.amount).to.equal('100.00');
    });
  });

  describe('codecs in routes', () => {
    it('unmarshal auto picks the codec from the content type; a missing or unknown type is a coded error', async () => {
      const e = engine();
      e.addRoutes(from('direct:in').unmarshal('auto').to('mock:out'));
      await e.start();
      await e.send('direct:in', '{"a":"1"}', { 'content-type': 'application/json; charset=utf-8' });
      await e.send('direct:in', '<a x="1">2</a>', { 'content-type': 'application/xml' });
      await e.send('direct:in', 'k,v\nx,1\n', { 'content-type': 'text/csv' });
      await e.send('direct:in', '{"b":"2"}', { 'content-type': 'application/vnd.acme+json' });
      const noType = await rejection(e.send('direct:in', '{}'));
      const unknown = await rejection(e.send('direct:in', 'x', { 'content-type': 'application/x-unknown' }));
      await e.stop();
      expect(e.mock('mock:out').bodies).to.deep.equal([{ a: '1' }, { a: { '#text': '2', '@x': '1' } }, [{ k: 'x', v: '1' }], { b: '2' }]);
      expect(noType.code).to.equal('BUSBAR_ERR_UNSUPPORTED_FORMAT');
      expect(unknown.code).to.equal('BUSBAR_ERR_UNSUPPORTED_FORMAT');
    });

    it('marshal auto answers in the format the accept header asks for', async () => {
      const e = engine();
      e.addRoutes(from('direct:in').setBody({ r: { v: '1' } }).marshal('auto'));
      await e.start();
      const xml = await e.requestMessage('direct:in', { id: 'x', body: '', headers: { accept: 'text/html, application/xml' }, timestamp: 0, correlationId: 'x' });
      const json = await e.requestMessage('direct:in', { id: 'y', body: '', headers: {}, timestamp: 0, correlationId: 'y' });
      await e.stop();
      expect(xml.body).to.equal('<?xml version="1.0" encoding="UTF-8"?><r><v>1</v></r>');
      expect(xml.headers['content-type']).to.equal('application/xml');
      expect(json.body).to.equal('{"r":{"v":"1"}}');
      expect(json.headers['content-type']).to.equal('application/json');
    });

    it('CSV -> JSON data -> XML text with codec options, content type set', async () => {
      const e = engine();
      e.addRoutes(
        from<string>('direct:in')
          .convert<Array<Record<string, string>>>('csv', 'json', { from: { delimiter: ';' } })
          .transform((rows) => ({ orders: { order: rows } }))
          .convert('json', 'xml', { to: { declaration: false } }),
      );
      await e.start();
      const reply = await e.requestMessage('direct:in', { id: '1', body: 'id;amount\n007;1.50\n008;2\n', headers: {}, timestamp: 0, correlationId: '1' });
      await e.stop();
      expect(reply.body).to.equal('<orders><order><id>007</id><amount>1.50</amount></order><order><id>008</id><amount>2</amount></order></orders>');
      expect(reply.headers['content-type']).to.equal('application/xml');
    });

    it('hardened limits apply inside routes and reach the dead letter with their code', async () => {
      const e = engine();
      e.addRoutes(from('direct:in').deadLetter('mock:dlq').unmarshal('xml').to('mock:out'));
      await e.start();
      const bomb = readFileSync(new URL('../../fixtures/xml/billion-laughs.xml', import.meta.url));
      const err = await rejection(e.send('direct:in', bomb));
      await e.stop();
      expect(err.code).to.equal('BUSBAR_ERR_XML_ENTITY_FORBIDDEN');
      expect((e.mock('mock:dlq').received as Message[])[0]!.headers[ERROR_HEADERS.code]).to.equal('BUSBAR_ERR_XML_ENTITY_FORBIDDEN');
    });

    it('bad codec options and unknown formats fail when the route is added', () => {
      const e = engine();
      const bad = (() => {
        try {
          e.addRoutes(from('direct:a').unmarshalWith('xml', { arays: ['x'] }));
        } catch (err) {
          return err as BusbarError;
        }
        return undefined;
      })();
      expect(bad?.code).to.equal('BUSBAR_ERR_INVALID_ROUTE');
      expect(bad?.message).to.contain('arays');
      expect(() => engine().addRoutes(from('direct:b').convert('yaml', 'json'))).to.throw(BusbarError).with.property('code', 'BUSBAR_ERR_INVALID_ROUTE');
    });
  });

  describe('headers and body', () => {
    it('setHeaders (constants, functions), copyHeaderFromBody (pointer and dotted path), setBodyTemplate, jsonata', async () => {
      const e = engine();
      e.addRoutes(
        from<{ order: { id: string; lines: Array<{ sku: string }> } }>('direct:in')
          .setHeaders({ source: 'erp', lines: (b) => b.order.lines.length })
          .copyHeaderFromBody('order-id', '/order/id')
          .copyHeaderFromBody('first-sku', 'order.lines.0.sku')
          .jsonata<{ skus: string[] }>('{ "skus": order.lines.sku }')
          .setBodyTemplate('order {header.order-id}: {body.skus}')
          .to('mock:out'),
      );
      await e.start();
      await e.send('direct:in', { order: { id: 'A-1', lines: [{ sku: 'x' }, { sku: 'y' }] } });
      await e.stop();
      const [m] = e.mock('mock:out').received as Message[];
      expect(m!.headers).to.include({ source: 'erp', lines: 2, 'order-id': 'A-1', 'first-sku': 'x' });
      expect(m!.body).to.equal('order A-1: ["x","y"]');
    });

    it('jsonata syntax errors are thrown by the builder with their code', () => {
      expect(() => from('direct:x').jsonata('{ "a": ')).to.throw(BusbarError).with.property('code', 'BUSBAR_ERR_EXPRESSION');
    });
  });

  describe('route contracts', () => {
    it('input and output contracts (builder): violations go through the error policy to the dead letter', async () => {
      const e = engine();
      const In = Type.Object({ amount: Type.Number() });
      const Out = Type.Object({ total: Type.Number({ maximum: 1000 }) });
      e.addRoutes(
        from<Static<typeof In>>('direct:in')
          .routeId('priced')
          .contract({ input: In, output: Out })
          .deadLetter('mock:dlq')
          .transform((o) => ({ total: o.amount * 1.21 }))
          .to('mock:out'),
      );
      await e.start();
      await e.send('direct:in', { amount: 100 });
      const badIn = await rejection(e.send('direct:in', { amount: 'lots' }));
      const badOut = await rejection(e.send('direct:in', { amount: 5000 }));
      await e.stop();
      expect((e.mock('mock:out').bodies as Array<{ total: number }>).map((b) => Math.round(b.total))).to.deep.equal([121, 6050]);
      expect(badIn.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
      expect(badIn.details.step).to.equal('/contract/input');
      expect((badIn.details.problems as ContractProblem[])[0]).to.deep.include({ pointer: '/amount', keyword: 'type' });
      expect(badOut.details.step).to.equal('/contract/output');
      expect((badOut.details.problems as ContractProblem[])[0]).to.deep.include({ pointer: '/total', keyword: 'maximum' });
      const dead = e.mock('mock:dlq').received as Message[];
      expect(dead.map((m) => m.headers[ERROR_HEADERS.step])).to.deep.equal(['/contract/input', '/contract/output']);
      expect(dead.map((m) => m.body)).to.deep.equal([{ amount: 'lots' }, { amount: 5000 }]);
    });

    it('config routes: contract, JSONata mapping compiled once, validate with coerce, setHeaders from the body', async () => {
      const e = engine();
      e.addRoutes({
        routes: [
          {
            id: 'cfg',
            from: 'direct:cfg',
            contract: { input: { type: 'string', minLength: 10 }, output: { type: 'object', required: ['orderId', 'total'] } },
            errorPolicy: { deadLetter: 'mock:cfg-dlq' },
            steps: [
              { unmarshal: { format: 'xml', options: { arrays: ['order.line'] } } },
              { validate: { schema: { type: 'object', properties: { order: { type: 'object', properties: { amount: { type: 'number', maximum: 500 } } } } }, coerce: true, name: 'XmlOrder' } },
              { setHeaders: { 'x-order-id': { fromBody: '/order/@id' }, 'x-country': { expr: 'order.country' }, 'x-source': 'xml' } },
              { transform: '{ "orderId": order.`@id`, "skus": order.line.`@sku`, "total": $number(order.amount) * 1.21 }' },
              { to: 'mock:cfg-out' },
            ],
          },
        ],
      });
      await e.start();
      await e.send('direct:cfg', orderXml);
      const tooBig = await rejection(e.send('direct:cfg', orderXml.replace('<amount>100.00</amount>', '<amount>900.00</amount>')));
      await e.stop();
      const [m] = e.mock('mock:cfg-out').received as Message[];
      expect(m!.body).to.deep.equal({ orderId: '00042', skus: ['A-100', 'B-200'], total: 121 });
      expect(m!.headers).to.include({ 'x-order-id': '00042', 'x-country': 'NL', 'x-source': 'xml' });
      expect(tooBig.code).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
      expect((tooBig.details.problems as ContractProblem[])[0]).to.deep.include({ pointer: '/order/amount', keyword: 'maximum' });
      expect(e.mock('mock:cfg-dlq').received).to.have.length(1);
    });

    it('config problems: a schema that does not compile and unknown step options are reported with their paths', () => {
      const problems = engine().check({
        routes: [
          {
            id: 'bad',
            from: 'direct:bad',
            steps: [{ validate: { schema: { type: 'object', properties: { a: { type: 'nonsense' } } } } }, { convert: { from: 'xml', too: 'json' } }],
          },
        ],
      });
      const paths = problems.map((p) => p.path);
      expect(paths).to.include('/routes/0/steps/0/validate/schema');
      expect(paths.some((p) => p.startsWith('/routes/0/steps/1/convert'))).to.equal(true);
    });
  });
});
