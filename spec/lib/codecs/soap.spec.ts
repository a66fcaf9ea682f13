import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import {
  buildSoapEnvelope,
  buildSoapFault,
  CodecRegistry,
  createSoapCodec,
  errorToSoapFault,
  parseSoapEnvelope,
  soapBody,
  soapFaultToError,
  SOAP_NAMESPACES,
  type SoapEnvelope,
} from '../../../lib/codecs.js';
import { BusbarError, isBusbarError } from '../../../lib/errors.js';
import { codeOf } from '../../helpers.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`../../fixtures/soap/${name}`, import.meta.url));

describe('SOAP envelopes', () => {
  describe('parseSoapEnvelope with real-world requests', () => {
    it('reads a .NET ASMX 1.1 request: default namespace on the operation, header block, CDATA, ids kept as strings', () => {
      const env = parseSoapEnvelope(fixture('dotnet-asmx-request.xml'));
      expect(env.version).to.equal('1.1');
      expect(env.operation).to.equal('GetOrderStatus');
      expect(env.namespace).to.equal('http://tempuri.org/');
      expect(env.payload).to.deep.equal({
        orderId: '00042',
        customerNumber: '12345678901234567890',
        includeLines: 'true',
        note: 'Deliver <after> 5pm & ring twice',
      });
      expect(env.headers).to.deep.equal({ AuthHeader: { UserName: 'integration', Token: '0007731' } });
      expect(env.fault).to.equal(undefined);
      // the faithful body keeps the CDATA section apart for a round trip
      const op = env.body.GetOrderStatus as Record<string, unknown>;
      expect(op['@xmlns']).to.equal('http://tempuri.org/');
      expect(op.note).to.deep.equal({ '#cdata': 'Deliver <after> 5pm & ring twice' });
    });

    it('reads a WCF SOAP 1.2 request with WS-Addressing headers', () => {
      const env = parseSoapEnvelope(fixture('wcf-request-12.xml'));
      expect(env.version).to.equal('1.2');
      expect(env.operation).to.equal('GetOrderStatus');
      expect(env.namespace).to.equal('http://tempuri.org/');
      expect((env.payload as Record<string, unknown>).customerNumber).to.equal('12345678901234567890');
      expect(env.headers.MessageID).to.equal('urn:uuid:6f1c2a4e-37d2-4b5e-9d8b-1f0e6a2b7c11');
      // the envelope's processing attributes (mustUnderstand) are not part of the block's content...
      expect(env.headers.Action).to.equal('http://tempuri.org/IOrderService/GetOrderStatus');
      expect(env.header).to.have.property('a:Action');
      // ...they are in `mustUnderstand`, with the block's namespace
      expect(env.mustUnderstand).to.deep.include({ name: 'Action', namespace: 'http://www.w3.org/2005/08/addressing' });
    });

    it('reads a JAX-WS request and a response with a prefixed operation (ns2:)', () => {
      const req = parseSoapEnvelope(fixture('jaxws-request.xml'));
      expect([req.version, req.operation, req.namespace]).to.deep.equal(['1.1', 'getOrderStatus', 'http://ws.orders.example.com/']);
      expect(req.payload).to.deep.equal({ arg0: '00042', arg1: '12345678901234567890', arg2: 'true' });
      const res = parseSoapEnvelope(fixture('jaxws-response.xml'));
      expect(res.operation).to.equal('getOrderStatusResponse');
      expect(res.payload).to.deep.equal({ return: { orderId: '00042', status: 'SHIPPED', line: { sku: 'A-100', qty: '2' } } });
    });

    it('reads a Perl SOAP::Lite rpc/encoded request: xsi:type dropped, xsi:nil as null', () => {
      const env = parseSoapEnvelope(fixture('soaplite-request.xml'));
      expect([env.version, env.operation, env.namespace]).to.deep.equal(['1.1', 'getOrderStatus', 'urn:OrderService']);
      expect(env.payload).to.deep.equal({ orderId: '00042', customerNumber: '12345678901234567890', includeLines: '1', coupon: null });
    });

    it('arrays per path apply inside the envelope', () => {
      const env = parseSoapEnvelope(fixture('jaxws-response.xml'), { arrays: ['..line'] });
      expect((env.payload as { return: { line: unknown } }).return.line).to.deep.equal([{ sku: 'A-100', qty: '2' }]);
    });
  });

  describe('faults', () => {
    it('reads a .NET 1.1 Server fault and maps it to a retryable SOAP_FAULT error', () => {
      const env = parseSoapEnvelope(fixture('dotnet-asmx-fault.xml'));
      expect(env.fault).to.include({ version: '1.1', code: 'Server' });
      expect(env.fault!.reason).to.match(/^Server was unable to process request\. ---> Object reference/);
      const err = soapFaultToError(env.fault!);
      expect(err.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
      expect(err.retryable).to.equal(true);
      expect((err.details.fault as { code: string }).code).to.equal('Server');
    });

    it('reads a SOAP::Lite Client fault (SOAP-ENV prefix): not retryable', () => {
      const env = parseSoapEnvelope(fixture('soaplite-fault.xml'));
      expect(env.fault).to.include({ code: 'Client' });
      expect(env.fault!.reason).to.contain('Failed to locate method (getOrderStatu)');
      expect(soapFaultToError(env.fault!).retryable).to.equal(false);
    });

    it('reads a JAX-WS 1.2 fault: code, subcode, English reason among several, detail', () => {
      const f = parseSoapEnvelope(fixture('jaxws-fault-12.xml')).fault!;
      expect(f).to.deep.include({ version: '1.2', code: 'Sender', subcodes: ['UnknownOrder'], reason: 'Order 00099 is unknown' });
      expect(f.detail).to.deep.equal({ UnknownOrderException: { orderId: '00099', message: 'Order 00099 is unknown' } });
      const err = soapFaultToError(f);
      expect(err.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
      expect(err.retryable).to.equal(false);
    });

    for (const version of ['1.1', '1.2'] as const) {
      it(`error -> SOAP ${version} fault -> error keeps the busbar code, retryable flag and problems`, () => {
        const problems = [{ pointer: '/amount', message: 'must be number' }, { pointer: '/id', message: 'is required' }];
        const original = new BusbarError('VALIDATION_FAILED', 'order violates its contract', { details: { problems } });
        const xml = buildSoapFault(original, { version });
        const env = parseSoapEnvelope(xml);
        expect(env.version).to.equal(version);
        expect(env.fault!.code).to.equal(version === '1.1' ? 'Client' : 'Sender');
        const back = soapFaultToError(env.fault!);
        expect(back.code).to.equal('BUSBAR_ERR_SOAP_FAULT');
        expect(back.details.remoteCode).to.equal('BUSBAR_ERR_VALIDATION_FAILED');
        expect(back.retryable).to.equal(false);
        expect(back.details.problems).to.deep.equal(problems);
        expect(back.message).to.contain('order violates its contract');
      });
    }

    it('retryable errors become Server / Receiver faults; a plain Error too', () => {
      const timeout = new BusbarError('TIMEOUT', 'backend did not answer');
      expect(errorToSoapFault(timeout, '1.1').code).to.equal('Server');
      expect(errorToSoapFault(timeout, '1.2').code).to.equal('Receiver');
      expect(errorToSoapFault(new Error('boom'), '1.2').code).to.equal('Receiver');
      const back = soapFaultToError(parseSoapEnvelope(buildSoapFault(timeout, { version: '1.2' })).fault!);
      expect(back.retryable).to.equal(true);
      expect(back.details.remoteCode).to.equal('BUSBAR_ERR_TIMEOUT');
    });

    it('a received fault passed on keeps its code, subcodes and detail, in the other version', () => {
      const received = soapFaultToError(parseSoapEnvelope(fixture('jaxws-fault-12.xml')).fault!);
      const f = parseSoapEnvelope(buildSoapFault(received, { version: '1.1' })).fault!;
      expect(f).to.deep.include({ version: '1.1', code: 'Sender', subcodes: ['UnknownOrder'], reason: 'Order 00099 is unknown' });
      const f12 = parseSoapEnvelope(buildSoapFault(received, { version: '1.2' })).fault!;
      expect(f12).to.deep.include({ version: '1.2', code: 'Sender', subcodes: ['UnknownOrder'] });
      expect(f12.detail).to.deep.equal({ UnknownOrderException: { orderId: '00099', message: 'Order 00099 is unknown' } });
    });

    it('a version mismatch error becomes a VersionMismatch fault', () => {
      let err: unknown;
      try {
        parseSoapEnvelope('<e:Envelope xmlns:e="urn:not-soap"><e:Body/></e:Envelope>');
      } catch (e) {
        err = e;
      }
      expect((err as BusbarError).code).to.equal('BUSBAR_ERR_SOAP_ENVELOPE');
      expect(errorToSoapFault(err, '1.2').code).to.equal('VersionMismatch');
    });
  });

  describe('building envelopes', () => {
    it('wraps plain data for an operation, repeated elements from arrays, both versions', () => {
      for (const version of ['1.1', '1.2'] as const) {
        const xml = buildSoapEnvelope(soapBody('GetOrderStatusResponse', { status: 'SHIPPED', line: [{ sku: 'A' }, { sku: 'B' }] }, 'http://tempuri.org/'), { version });
        expect(xml).to.contain(`xmlns:soap="${SOAP_NAMESPACES[version]}"`);
        const env = parseSoapEnvelope(xml, { arrays: ['..line'] });
        expect(env.version).to.equal(version);
        expect(env.operation).to.equal('GetOrderStatusResponse');
        expect(env.namespace).to.equal('http://tempuri.org/');
        expect(env.payload).to.deep.equal({ status: 'SHIPPED', line: [{ sku: 'A' }, { sku: 'B' }] });
      }
    });

    it('round-trips a parsed body and header (prefixes, CDATA, attributes)', () => {
      const env = parseSoapEnvelope(fixture('dotnet-asmx-request.xml'));
      const again = parseSoapEnvelope(buildSoapEnvelope(env.body, { header: env.header! }));
      expect(again.body).to.deep.equal(env.body);
      expect(again.header).to.deep.equal(env.header);
      expect(again.payload).to.deep.equal(env.payload);
    });
  });

  describe('malformed envelopes', () => {
    it('gives coded errors naming the problem', () => {
      const reasonOf = (x: string): unknown => {
        try {
          parseSoapEnvelope(x);
        } catch (e) {
          return [(e as BusbarError).code, (e as BusbarError).details.reason];
        }
        return undefined;
      };
      expect(reasonOf('<order><id>1</id></order>')).to.deep.equal(['BUSBAR_ERR_SOAP_ENVELOPE', 'not-envelope']);
      expect(reasonOf(`<s:Envelope xmlns:s="${SOAP_NAMESPACES['1.1']}"><s:Header/></s:Envelope>`)).to.deep.equal(['BUSBAR_ERR_SOAP_ENVELOPE', 'no-body']);
      expect(reasonOf('<s:Envelope><s:Body/></s:Envelope>')).to.deep.equal(['BUSBAR_ERR_SOAP_ENVELOPE', 'version']);
      expect(codeOf(() => parseSoapEnvelope(`<s:Envelope xmlns:s="${SOAP_NAMESPACES['1.1']}"><s:Body></s:Envelope>`))).to.equal('BUSBAR_ERR_PARSE');
    });

    it('refuses entity declarations inside SOAP (XXE / billion laughs)', () => {
      const xxe = `<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="${SOAP_NAMESPACES['1.1']}"><s:Body><a>&x;</a></s:Body></s:Envelope>`;
      expect(codeOf(() => parseSoapEnvelope(xxe))).to.equal('BUSBAR_ERR_XML_EXTERNAL_ENTITY');
    });
  });

  describe('soap codecs', () => {
    it('the default registry has soap (1.1) and soap12, by name and content type', () => {
      const r = new CodecRegistry();
      expect(r.get('soap')!.contentTypes[0]).to.equal('text/xml');
      expect(r.get('soap12')!.contentTypes[0]).to.equal('application/soap+xml');
      expect(r.get('application/soap+xml; charset=utf-8')!.name).to.equal('soap12');
      // text/xml is shared: plain XML wins, SOAP is chosen by name
      expect(r.get('text/xml')!.name).to.equal('xml');
    });

    it('decode returns the envelope, and throws SOAP_FAULT for a fault unless faults=return', () => {
      const codec = new CodecRegistry().require('soap');
      const env = codec.decode(fixture('jaxws-request.xml')) as SoapEnvelope;
      expect(env.operation).to.equal('getOrderStatus');
      let err: unknown;
      try {
        codec.decode(fixture('dotnet-asmx-fault.xml'));
      } catch (e) {
        err = e;
      }
      expect(isBusbarError(err, 'SOAP_FAULT')).to.equal(true);
      const lenient = createSoapCodec({ faults: 'return' });
      expect((lenient.decode(fixture('dotnet-asmx-fault.xml')) as SoapEnvelope).fault!.code).to.equal('Server');
    });

    it('encode wraps { operation, payload, namespace }, Body content, a decoded envelope, or an Error', () => {
      const soap12 = new CodecRegistry().require('soap12');
      const reply = parseSoapEnvelope(soap12.encode({ operation: 'PingResponse', namespace: 'urn:ping', payload: { ok: 'true' } }));
      expect([reply.version, reply.operation, reply.namespace, reply.payload]).to.deep.equal(['1.2', 'PingResponse', 'urn:ping', { ok: 'true' }]);
      const body = parseSoapEnvelope(soap12.encode({ 'p:Pong': { '@xmlns:p': 'urn:p', n: '007' } }));
      expect([body.operation, body.namespace, body.payload]).to.deep.equal(['Pong', 'urn:p', { n: '007' }]);
      const decoded = parseSoapEnvelope(fixture('wcf-request-12.xml'));
      expect(parseSoapEnvelope(soap12.encode(decoded)).body).to.deep.equal(decoded.body);
      const fault = parseSoapEnvelope(soap12.encode(new BusbarError('PARSE', 'bad input'))).fault!;
      expect([fault.code, fault.reason]).to.deep.equal(['Sender', 'bad input']);
      expect(codeOf(() => soap12.encode('text'))).to.equal('BUSBAR_ERR_ENCODE');
    });
  });
});
