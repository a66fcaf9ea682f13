import { expect } from 'chai';
import { CodecRegistry, createCsvCodec, createJsonCodec } from '../../../lib/codecs.js';
import { failure } from '../../helpers.js';

describe('json codec', () => {
  const json = new CodecRegistry().require('json');

  it('decodes text and bytes, encodes compactly (bigint as string), indents on request', () => {
    expect(json.decode('{"id":"00042","n":[1,2]}')).to.deep.equal({ id: '00042', n: [1, 2] });
    expect(json.decode(Buffer.from('[true]'))).to.deep.equal([true]);
    expect(json.encode({ a: 1, big: 12345678901234567890n })).to.equal('{"a":1,"big":"12345678901234567890"}');
    expect(createJsonCodec({ indent: 2 }).encode({ a: 1 })).to.equal('{\n  "a": 1\n}');
  });

  it('a syntax error is PARSE with the line and column', () => {
    const e = failure(() => json.decode('{\n  "a": 1,\n  "b": }'));
    expect(e.code).to.equal('BUSBAR_ERR_PARSE');
    expect(String(e.details.at)).to.match(/^line 3, column \d+$/);
  });

  it('limits document size and nesting depth with their own codes', () => {
    const small = createJsonCodec({ maxBytes: 50, maxDepth: 10 });
    const big = failure(() => small.decode(JSON.stringify({ text: 'x'.repeat(100) })));
    expect(big.code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
    expect(big.details).to.include({ maxBytes: 50 });
    const deep = failure(() => createJsonCodec({ maxDepth: 10 }).decode(`${'['.repeat(30)}${']'.repeat(30)}`));
    expect(deep.code).to.equal('BUSBAR_ERR_INPUT_TOO_DEEP');
    // the default limit stops a 100,000-level document
    expect(failure(() => json.decode(`${'{"a":'.repeat(100_000)}1${'}'.repeat(100_000)}`)).code).to.equal('BUSBAR_ERR_INPUT_TOO_DEEP');
    expect(createJsonCodec({ maxDepth: 30 }).decode(`${'['.repeat(30)}${']'.repeat(30)}`)).to.be.an('array');
  });

  it('values without a JSON form are ENCODE errors', () => {
    expect(failure(() => json.encode(undefined)).code).to.equal('BUSBAR_ERR_ENCODE');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(failure(() => json.encode(cyclic)).code).to.equal('BUSBAR_ERR_ENCODE');
  });
});

describe('csv codec', () => {
  const csv = new CodecRegistry().require('text/csv');

  it('decodes header rows into objects with string values (quotes, embedded commas and newlines, BOM)', () => {
    const text = '\ufeffid,name,note\r\n007,"ACME, Inc.","two\nlines"\r\n008,Zoë,"say ""hi"""\r\n';
    expect(csv.decode(text)).to.deep.equal([
      { id: '007', name: 'ACME, Inc.', note: 'two\nlines' },
      { id: '008', name: 'Zoë', note: 'say "hi"' },
    ]);
    expect(createCsvCodec({ header: false, delimiter: ';' }).decode('a;b\n1;2\n')).to.deep.equal([['a', 'b'], ['1', '2']]);
    expect(createCsvCodec({ columns: ['x', 'y'] }).decode('1,2\n')).to.deep.equal([{ x: '1', y: '2' }]);
  });

  it('encodes objects with a header row and round-trips', () => {
    const rows = [{ id: '007', name: 'ACME, Inc.', ok: true }, { id: '008', name: 'say "hi"', ok: false }];
    const text = csv.encode(rows) as string;
    expect(text).to.equal('id,name,ok\n007,"ACME, Inc.",true\n008,"say ""hi""",false\n');
    expect(csv.decode(text)).to.deep.equal(rows.map((r) => ({ ...r, ok: String(r.ok) })));
    expect(csv.encode([['a', 'b'], ['1', '2']])).to.equal('a,b\n1,2\n');
    expect(createCsvCodec({ recordDelimiter: 'windows' }).encode([{ a: '1' }])).to.equal('a\r\n1\r\n');
  });

  it('coded errors: ragged rows (with the line), too many rows, non-array values', () => {
    const ragged = failure(() => csv.decode('a,b\n1,2\n3\n'));
    expect(ragged.code).to.equal('BUSBAR_ERR_PARSE');
    expect(ragged.details.line).to.equal(3);
    expect(failure(() => createCsvCodec({ maxRows: 2 }).decode('a\n1\n2\n3\n')).code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
    expect(failure(() => csv.encode({ a: 1 })).code).to.equal('BUSBAR_ERR_ENCODE');
    expect(failure(() => csv.encode([1, 2])).code).to.equal('BUSBAR_ERR_ENCODE');
  });
});

describe('codec registry', () => {
  it('an engine\'s default registry has json, xml, soap (1.1, 1.2), csv, text and bytes', () => {
    const r = new CodecRegistry();
    expect(r.names().sort()).to.deep.equal(['bytes', 'csv', 'json', 'soap', 'soap12', 'text', 'xml']);
    expect(r.get('application/json; charset=utf-8')!.name).to.equal('json');
    expect(r.forContentType('application/atom+xml')!.name).to.equal('xml');
    expect(r.forContentType('application/problem+json')!.name).to.equal('json');
    expect(r.forContentType('image/png')).to.equal(undefined);
  });
});
