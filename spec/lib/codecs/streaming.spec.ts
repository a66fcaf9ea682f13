import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { expect } from 'chai';
import { csvRows, jsonArrayItems, textLines, xmlElements } from '../../../lib/streaming.js';
import type { BusbarError } from '../../../lib/errors.js';
import { tempDir } from '../../helpers.js';

/** Feed a text in small chunks, cutting through tags, strings and multi-byte characters. */
function* chunks(text: string, size: number): Generator<Buffer> {
  const bytes = Buffer.from(text, 'utf8');
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function all<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

async function failure(it: AsyncIterable<unknown>): Promise<BusbarError> {
  try {
    for await (const _ of it) void _;
  } catch (e) {
    return e as BusbarError;
  }
  throw new Error('expected a failure');
}

const ORDERS = `<?xml version="1.0"?>
<!-- exported nightly -->
<o:orders xmlns:o="urn:orders" xmlns:x="urn:ext">
  <o:header><created>2026-11-24</created></o:header>
  <o:order id="001"><o:sku>A&amp;B</o:sku><note><![CDATA[<not a tag>]]></note><x:tag>café</x:tag></o:order>
  <o:order id="002" note='a > b'><o:sku>C</o:sku></o:order>
  <o:order id="003"/>
</o:orders>`;

describe('streaming sources', () => {
  it('closes a source the reader leaves early, and one that fails to parse', async () => {
    let closed = 0;
    async function* source(text: string): AsyncGenerator<Buffer> {
      try {
        yield* chunks(text, 7);
      } finally {
        closed++;
      }
    }
    for await (const line of textLines(source('one\ntwo\nthree\n'))) {
      expect(line).to.equal('one');
      break;
    }
    expect(closed).to.equal(1);
    const err = await failure(xmlElements(source('<a><b>1</b><b>2</c></a>'), 'a.b'));
    expect(err.code).to.equal('BUSBAR_ERR_PARSE');
    expect(closed).to.equal(2);
    // a plain (synchronous) iterable of chunks works as well
    expect(await all(textLines(chunks('x\ny\n', 1)))).to.deep.equal(['x', 'y']);
  });

  describe('xmlElements', () => {
    for (const size of [1, 7, 64, 100_000]) {
      it(`yields each element at the path, parsed, whatever the chunk size (${size})`, async () => {
        const items = await all(xmlElements(chunks(ORDERS, size), 'orders.order'));
        expect(items).to.have.length(3);
        expect(items[0]).to.deep.include({ '@id': '001', 'o:sku': 'A&B', note: { '#cdata': '<not a tag>' }, 'x:tag': 'café' });
        expect(items[1]).to.deep.include({ '@id': '002', '@note': 'a > b', 'o:sku': 'C' });
        expect(items[2]).to.deep.include({ '@id': '003' });
      });
    }

    it('raw elements carry their ancestors\' namespace declarations and parse on their own', async () => {
      const raw = await all(xmlElements(chunks(ORDERS, 13), 'o:orders/o:order', { raw: true }));
      expect(raw).to.have.length(3);
      expect(raw[1]).to.equal(`<o:order xmlns:o="urn:orders" xmlns:x="urn:ext" id="002" note='a > b'><o:sku>C</o:sku></o:order>`);
      expect(raw[2]).to.equal('<o:order xmlns:o="urn:orders" xmlns:x="urn:ext" id="003"/>');
    });

    it('..name finds elements at any depth; options of the xml codec apply', async () => {
      const doc = '<feed><entry><link href="a"/></entry><group><entry><link href="b"/><link href="c"/></entry></group></feed>';
      const items = await all(xmlElements<{ link: Array<Record<string, string>> }>(chunks(doc, 5), '..entry', { arrays: ['entry.link'] }));
      expect(items.map((e) => e.link.map((l) => l['@href']))).to.deep.equal([['a'], ['b', 'c']]);
    });

    it('reads a real file stream element by element', async () => {
      const dir = tempDir();
      try {
        const file = join(dir.path, 'big.xml');
        const out = createWriteStream(file);
        out.write('<orders>');
        for (let i = 0; i < 5000; i++) out.write(`<order id="${String(i).padStart(6, '0')}"><amount>${i}.50</amount></order>\n`);
        out.end('</orders>');
        await once(out, 'finish');
        let n = 0;
        let last: Record<string, unknown> | undefined;
        for await (const o of xmlElements(createReadStream(file, { highWaterMark: 4096 }), 'orders.order')) {
          n++;
          last = o;
        }
        expect(n).to.equal(5000);
        expect(last).to.deep.equal({ '@id': '004999', amount: '4999.50' });
      } finally {
        dir.cleanup();
      }
    });

    it('refuses entity declarations, mismatched tags, truncated documents, oversized elements, deep nesting', async () => {
      expect((await failure(xmlElements(chunks(readFileSync(new URL('../../fixtures/xml/billion-laughs.xml', import.meta.url), 'utf8'), 10), 'lolz'))).code).to.equal('BUSBAR_ERR_XML_ENTITY_FORBIDDEN');
      expect((await failure(xmlElements(chunks('<a><b></a>', 3), 'a.b'))).code).to.equal('BUSBAR_ERR_PARSE');
      expect((await failure(xmlElements(chunks('<a><b></bb></a>', 3), 'a.b'))).code).to.equal('BUSBAR_ERR_PARSE');
      expect(await all(xmlElements(chunks('<a><b>x</b ></a >', 2), 'a.b'))).to.deep.equal(['x']);
      expect((await failure(xmlElements(chunks('<a><b>x</b><b>', 3), 'a.b'))).code).to.equal('BUSBAR_ERR_PARSE');
      const big = `<a><b>${'x'.repeat(5000)}</b></a>`;
      expect((await failure(xmlElements(chunks(big, 512), 'a.b', { maxItemBytes: 1000 }))).code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
      expect((await failure(xmlElements(chunks(`${'<a>'.repeat(200)}${'</a>'.repeat(200)}`, 50), 'a.b'))).code).to.equal('BUSBAR_ERR_INPUT_TOO_DEEP');
    });
  });

  describe('jsonArrayItems', () => {
    const doc = JSON.stringify([{ id: '001', text: 'a "quoted" ] and , inside', tags: ['x', 'y'] }, 42, 'str]ing', null, { nested: { deep: [1, [2, 3]] } }, 'é']);
    for (const size of [1, 9, 1 << 20]) {
      it(`yields every item of a top-level array (chunk ${size})`, async () => {
        expect(await all(jsonArrayItems(chunks(doc, size)))).to.deep.equal(JSON.parse(doc));
      });
    }

    it('handles whitespace, empty arrays, and gives coded errors for bad input', async () => {
      expect(await all(jsonArrayItems(chunks(' [ 1 ,\n 2 ] ', 2)))).to.deep.equal([1, 2]);
      expect(await all(jsonArrayItems(chunks('[]', 1)))).to.deep.equal([]);
      expect((await failure(jsonArrayItems(chunks('{"a":1}', 2)))).code).to.equal('BUSBAR_ERR_PARSE');
      expect((await failure(jsonArrayItems(chunks('[1, {"a":}]', 2)))).code).to.equal('BUSBAR_ERR_PARSE');
      expect((await failure(jsonArrayItems(chunks('[1, 2', 2)))).code).to.equal('BUSBAR_ERR_PARSE');
      expect((await failure(jsonArrayItems(chunks(`[${'['.repeat(300)}${']'.repeat(300)}]`, 64)))).code).to.equal('BUSBAR_ERR_INPUT_TOO_DEEP');
      expect((await failure(jsonArrayItems(chunks(`["${'x'.repeat(3000)}"]`, 100), { maxItemBytes: 1000 }))).code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
    });
  });

  describe('csvRows', () => {
    const csv = 'id,name,amount\r\n001,"ACME, Inc.",10.50\r\n002,"Say ""hi""",7\r\n\r\n003,Zoë,0\r\n';
    it('yields header-keyed rows with values as strings, across chunk boundaries', async () => {
      const rows = await all(csvRows(chunks(csv, 5)));
      expect(rows).to.deep.equal([
        { id: '001', name: 'ACME, Inc.', amount: '10.50' },
        { id: '002', name: 'Say "hi"', amount: '7' },
        { id: '003', name: 'Zoë', amount: '0' },
      ]);
      expect((await all(csvRows<string[]>(chunks(csv, 5), { header: false })))[0]).to.deep.equal(['id', 'name', 'amount']);
    });

    it('a row with the wrong number of fields is a PARSE error naming the line', async () => {
      const e = await failure(csvRows(chunks('a,b\n1,2\n3,4,5\n', 4)));
      expect(e.code).to.equal('BUSBAR_ERR_PARSE');
      expect(e.details.line).to.equal(3);
    });
  });

  describe('textLines', () => {
    it('yields lines without endings, across chunks, skipping empty ones by default', async () => {
      expect(await all(textLines(chunks('a\r\nbé\n\nc', 1)))).to.deep.equal(['a', 'bé', 'c']);
      expect(await all(textLines(chunks('a\n\nb\n', 2), { keepEmpty: true }))).to.deep.equal(['a', '', 'b']);
      expect((await failure(textLines(chunks('x'.repeat(5000), 100), { maxItemBytes: 1000 }))).code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
    });
  });
});
