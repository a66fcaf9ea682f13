import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { buildXml, CodecRegistry, createXmlCodec, parseXml } from '../../../lib/codecs.js';
import type { BusbarError } from '../../../lib/errors.js';
import { failure } from '../../helpers.js';

const fixture = (name: string): string => readFileSync(new URL(`../../fixtures/xml/${name}`, import.meta.url), 'utf8');

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any -- test navigation of parsed documents

describe('xml codec', () => {
  const xml = new CodecRegistry().require('xml');

  describe('real-world documents', () => {
    it('a UBL invoice: prefixes, namespace declarations, attributes, CDATA, character references, ids as strings', () => {
      const doc = xml.decode(fixture('ubl-invoice.xml')) as Obj;
      const inv = doc.Invoice;
      expect(inv['@xmlns']).to.equal('urn:oasis:names:specification:ubl:schema:xsd:Invoice-2');
      expect(inv['@xmlns:cbc']).to.equal('urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2');
      expect(inv['cbc:ID']).to.equal('INV-000123');
      expect(inv['cbc:InvoiceTypeCode']).to.equal('380');
      expect(inv['cbc:Note']).to.deep.equal({ '#cdata': 'Payment within 30 days. Quote "PO-0077" & invoice number.' });
      const supplier = inv['cac:AccountingSupplierParty']['cac:Party'];
      expect(supplier['cbc:EndpointID']).to.deep.equal({ '#text': '12345678', '@schemeID': '0106' });
      expect(supplier['cac:PartyName']['cbc:Name']).to.equal('Leverancier & Zonen B.V.');
      const customer = inv['cac:AccountingCustomerParty']['cac:Party'];
      expect(customer['cbc:EndpointID']['#text']).to.equal('0012345000058');
      expect(customer['cac:PostalAddress']['cbc:CityName']).to.equal('Köln');
      expect(inv['cac:LegalMonetaryTotal']['cbc:PayableAmount']).to.deep.equal({ '#text': '121.00', '@currencyID': 'EUR' });
      expect(inv['cac:InvoiceLine']['cac:Item']['cac:SellersItemIdentification']['cbc:ID']).to.equal('0000789');
    });

    it('a UBL invoice round-trips: decode(encode(decode(x))) equals decode(x), CDATA written back as CDATA', () => {
      const once = xml.decode(fixture('ubl-invoice.xml'));
      const text = xml.encode(once) as string;
      expect(text.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).to.equal(true);
      expect(text).to.contain('<![CDATA[Payment within 30 days. Quote "PO-0077" & invoice number.]]>');
      expect(text).to.contain('<cbc:EndpointID schemeID="0106">12345678</cbc:EndpointID>');
      expect(text).to.contain('Leverancier &amp; Zonen B.V.');
      expect(xml.decode(text)).to.deep.equal(once);
    });

    it('arrays per path: one InvoiceLine stays an array, and so does one Atom entry', () => {
      const ubl = createXmlCodec({ arrays: ['Invoice.cac:InvoiceLine'] }).decode(fixture('ubl-invoice.xml')) as Obj;
      expect(ubl.Invoice['cac:InvoiceLine']).to.be.an('array').with.length(1);
      expect(ubl.Invoice['cac:InvoiceLine'][0]['cbc:ID']).to.equal('1');
      const atom = createXmlCodec({ arrays: ['feed/entry', '..link'] }).decode(fixture('atom-feed.xml')) as Obj;
      expect(atom.feed.entry).to.be.an('array').with.length(1);
      expect(atom.feed.link.map((l: Obj) => l['@rel'])).to.deep.equal(['self', 'alternate']);
      expect(atom.feed.entry[0].link).to.deep.equal([{ '@href': 'https://orders.example.com/orders/00042' }]);
      // without the option the same element is an object
      expect((xml.decode(fixture('atom-feed.xml')) as Obj).feed.entry).to.not.be.an('array');
    });

    it('an Atom feed: default namespace, entities in text, nested XHTML content, long numeric ids as strings', () => {
      const feed = (xml.decode(fixture('atom-feed.xml')) as Obj).feed;
      expect(feed['@xmlns']).to.equal('http://www.w3.org/2005/Atom');
      expect(feed['@xml:lang']).to.equal('en');
      expect(feed.subtitle).to.deep.equal({ '#text': 'Changes to <b>orders</b> in the last hour', '@type': 'html' });
      expect(feed.entry.summary).to.equal('Carrier DHL, tracking 00340434161234567890');
      expect(feed.entry.content.div['@xmlns']).to.equal('http://www.w3.org/1999/xhtml');
      expect(feed.entry.content.div.p.em).to.equal('ACME B.V.');
      expect(xml.decode(xml.encode(xml.decode(fixture('atom-feed.xml'))))).to.deep.equal(xml.decode(fixture('atom-feed.xml')));
    });

    it('options: stripPrefixes drops prefixes and xmlns, parseNumbers makes numbers, cdataKey false merges CDATA', () => {
      const doc = createXmlCodec({ stripPrefixes: true, cdataKey: false }).decode(fixture('ubl-invoice.xml')) as Obj;
      expect(doc.Invoice.ID).to.equal('INV-000123');
      expect(doc.Invoice.Note).to.equal('Payment within 30 days. Quote "PO-0077" & invoice number.');
      expect(Object.keys(doc.Invoice).some((k) => k.startsWith('@xmlns'))).to.equal(false);
      const nums = createXmlCodec({ parseNumbers: true }).decode(fixture('order.xml')) as Obj;
      expect(nums.order.line[0].qty).to.equal(2);
      expect(nums.order.amount).to.equal(100);
      // leading zeros are never turned into numbers
      expect(nums.order.customer.number).to.equal('0012345');
      expect(nums.order['@id']).to.equal('00042');
    });

    it('character references: decimal, hex, and &amp;#…; stays literal', () => {
      expect(parseXml('<a b="x &#x26; y">&#233;&#x1F600; &amp;#233;</a>')).to.deep.equal({ a: { '#text': 'é😀 &#233;', '@b': 'x & y' } });
    });
  });

  describe('hardened parsing', () => {
    it('refuses the billion laughs before expanding anything', () => {
      const e = failure(() => xml.decode(fixture('billion-laughs.xml')));
      expect(e.code).to.equal('BUSBAR_ERR_XML_ENTITY_FORBIDDEN');
      expect(e.details.entity).to.equal('lol');
    });

    it('refuses external entities and external DTDs (nothing is fetched)', () => {
      expect(failure(() => xml.decode(fixture('xxe-file.xml'))).code).to.equal('BUSBAR_ERR_XML_EXTERNAL_ENTITY');
      expect(failure(() => xml.decode(fixture('xxe-dtd.xml'))).code).to.equal('BUSBAR_ERR_XML_EXTERNAL_ENTITY');
      expect(failure(() => xml.decode('<!DOCTYPE a [<!ENTITY % p SYSTEM "http://x/p.dtd"> %p;]><a/>')).code).to.equal('BUSBAR_ERR_XML_EXTERNAL_ENTITY');
    });

    it('an entity declared after the prolog is never expanded either', () => {
      const sneaky = '<a><!DOCTYPE b [<!ENTITY x "boom">]>&x;</a>';
      for (const codec of [xml, createXmlCodec({ strict: false })]) {
        let out: unknown;
        try {
          out = codec.decode(sneaky);
        } catch (e) {
          out = (e as BusbarError).code;
        }
        expect(JSON.stringify(out)).to.not.contain('boom');
      }
      expect(JSON.stringify(createXmlCodec({ strict: false }).decode('<a>&x;</a>'))).to.equal('{"a":"&x;"}');
    });

    it('a harmless DOCTYPE without entities is accepted', () => {
      expect(xml.decode('<!DOCTYPE note><note>hi</note>')).to.deep.equal({ note: 'hi' });
    });

    it('limits size and depth with their own codes', () => {
      const small = createXmlCodec({ maxBytes: 100 });
      const big = `<a>${'x'.repeat(200)}</a>`;
      const e = failure(() => small.decode(big));
      expect(e.code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
      expect(e.details).to.include({ size: 207, maxBytes: 100 });
      expect(failure(() => small.decode(Buffer.from(big))).code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
      // multi-byte characters count as bytes
      expect(failure(() => small.decode(`<a>${'é'.repeat(60)}</a>`)).code).to.equal('BUSBAR_ERR_INPUT_TOO_LARGE');
      const deep = `${'<a>'.repeat(30)}x${'</a>'.repeat(30)}`;
      const d = failure(() => createXmlCodec({ maxDepth: 20 }).decode(deep));
      expect(d.code).to.equal('BUSBAR_ERR_INPUT_TOO_DEEP');
      expect(d.details.maxDepth).to.equal(20);
      expect(failure(() => xml.decode(`${'<a>'.repeat(5000)}${'</a>'.repeat(5000)}`)).code).to.equal('BUSBAR_ERR_INPUT_TOO_DEEP');
      expect(createXmlCodec({ maxDepth: 40 }).decode(deep)).to.have.property('a');
    });

    it('malformed documents give PARSE with line and column', () => {
      const e = failure(() => xml.decode('<order>\n  <id>1</order>'));
      expect(e.code).to.equal('BUSBAR_ERR_PARSE');
      expect(e.details.line).to.equal(2);
      expect(failure(() => xml.decode('not xml at all')).code).to.equal('BUSBAR_ERR_PARSE');
      expect(failure(() => xml.decode('')).code).to.equal('BUSBAR_ERR_PARSE');
      expect(failure(() => xml.decode({ not: 'text' })).code).to.equal('BUSBAR_ERR_PARSE');
    });
  });

  describe('encoding', () => {
    it('escapes text and attributes, writes empty elements short, optional indentation and declaration', () => {
      const out = buildXml({ a: { '@q': 'say "hi" & <bye>', b: '1 < 2', c: '' } }, { declaration: false });
      expect(out).to.equal('<a q="say &quot;hi&quot; &amp; &lt;bye&gt;"><b>1 &lt; 2</b><c/></a>');
      expect(parseXml(out)).to.deep.equal({ a: { '@q': 'say "hi" & <bye>', b: '1 < 2', c: '' } });
      const pretty = createXmlCodec({ indent: 2, declaration: false }).encode({ a: { b: 'x' } }) as string;
      expect(pretty).to.contain('\n  <b>x</b>');
    });

    it('refuses values without exactly one root element', () => {
      expect(failure(() => xml.encode({ a: '1', b: '2' })).code).to.equal('BUSBAR_ERR_ENCODE');
      expect(failure(() => xml.encode([1, 2])).code).to.equal('BUSBAR_ERR_ENCODE');
      expect(failure(() => xml.encode('text')).code).to.equal('BUSBAR_ERR_ENCODE');
    });
  });
});
