import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { BusbarError, errorCatalogue } from '../../../lib/index.js';
import { FROM_STATUS, fromStatus, GRPC_STATUS, HTTP_TO_STATUS, statusName, TO_STATUS, toStatus, type GrpcStatusName } from '../../../adapters/grpc/index.js';

/** The rows of the markdown table between `<!-- name -->` and `<!-- /name -->` in docs/grpc.md. */
function table(name: string): string[][] {
  const doc = readFileSync('docs/grpc.md', 'utf8');
  const start = doc.indexOf(`<!-- ${name} -->`);
  const end = doc.indexOf(`<!-- /${name} -->`);
  expect(start, name).to.be.greaterThan(-1);
  return doc
    .slice(start, end)
    .split('\n')
    .filter((l) => l.startsWith('| ') && !l.startsWith('| ---'))
    .slice(1)
    .map((l) => l.split('|').slice(1, -1).map((c) => c.trim().replace(/`/g, '')));
}

describe('grpc: the status table (docs/grpc.md) is the one both sides use', () => {
  it('busbar code -> status: every row of the docs is what a server sends, and every mapped code is in the docs', () => {
    const rows = table('grpc-to-status');
    const documented = new Map<string, string>();
    for (const [code, status] of rows) documented.set(code!, status!);
    for (const name of Object.keys(errorCatalogue)) {
      const code = `BUSBAR_ERR_${name}`;
      const sent = statusName(toStatus(new BusbarError(name as keyof typeof errorCatalogue, 'x')).code);
      const doc = documented.get(code) ?? documented.get('any other busbar code')!;
      expect(doc.startsWith(sent), `${code}: server sends ${sent}, docs say ${doc}`).to.equal(true);
      expect(doc).to.contain(`(${GRPC_STATUS[sent]})`);
    }
    expect([...documented.keys()].filter((k) => k.startsWith('BUSBAR_ERR_')).sort()).to.deep.equal(Object.keys(TO_STATUS).map((k) => `BUSBAR_ERR_${k}`).sort());
    expect(statusName(toStatus(new Error('plain')).code)).to.equal(documented.get('an error that is not a BusbarError')!.split(' ')[0]);
  });

  it('status -> busbar code: every status as a client without busbar trailers sees it, retryable as documented', () => {
    const rows = table('grpc-from-status');
    const documented = new Map<string, { code: string; retryable: boolean }>();
    for (const [status, code, retryable] of rows) documented.set(status!.split(' ')[0]!, { code: code!, retryable: retryable === 'yes' });
    for (const [name, num] of Object.entries(GRPC_STATUS) as Array<[GrpcStatusName, number]>) {
      if (name === 'OK') continue;
      const err = fromStatus(num, 'x', {}, { method: '/a.B/C' });
      const doc = documented.get(name) ?? documented.get('any')!;
      expect(err.code, name).to.equal(doc.code);
      expect(err.retryable, name).to.equal(doc.retryable);
      expect(err.details.grpcCode).to.equal(num);
    }
    expect([...documented.keys()].filter((k) => k !== 'any' && k !== 'ABORTED').sort()).to.deep.equal(Object.keys(FROM_STATUS).sort());
  });

  it('a gateway answers by the backend: its HTTP status by the documented table, a remote busbar code by its row', () => {
    const rows = table('grpc-http-status');
    expect(rows.length).to.equal(Object.keys(HTTP_TO_STATUS).length);
    for (const [status, grpcStatus] of rows) {
      const n = Number(status);
      const err = new BusbarError(n >= 500 ? 'HTTP_SERVER_ERROR' : 'HTTP_CLIENT_ERROR', 'x', { details: { status: n } });
      expect(statusName(toStatus(err).code), status).to.equal(grpcStatus!.split(' ')[0]);
    }
    expect(statusName(toStatus(new BusbarError('HTTP_CLIENT_ERROR', 'x', { details: { status: 418 } })).code)).to.equal('FAILED_PRECONDITION');
    expect(statusName(toStatus(new BusbarError('SOAP_FAULT', 'x', { details: { remoteCode: 'BUSBAR_ERR_NOT_FOUND' } })).code)).to.equal('NOT_FOUND');
    expect(statusName(toStatus(new BusbarError('SOAP_FAULT', 'x', { details: {} })).code)).to.equal('UNKNOWN');
  });

  it('busbar trailers win over the table, and the retryable flag travels', () => {
    const err = fromStatus(GRPC_STATUS.UNAVAILABLE, 'open', { code: 'BUSBAR_ERR_CIRCUIT_OPEN', retryable: 'true' }, {});
    expect(err.code).to.equal('BUSBAR_ERR_CIRCUIT_OPEN');
    expect(err.retryable).to.equal(true);
    expect(fromStatus(GRPC_STATUS.INTERNAL, 'x', { code: 'BUSBAR_ERR_NOT_A_CODE' }, {}).code).to.equal('BUSBAR_ERR_GRPC_REMOTE_ERROR');
    // a backend's own status passes through a busbar gateway unchanged
    expect(toStatus(new BusbarError('GRPC_REMOTE_ERROR', 'x', { details: { grpcCode: GRPC_STATUS.ABORTED } })).code).to.equal(GRPC_STATUS.ABORTED);
  });
});
