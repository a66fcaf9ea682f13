import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createJsonCodec } from '../../../lib/codecs/json.js';
import { createXmlCodec, parseXml } from '../../../lib/codecs/xml.js';
import { failure, tempDir } from '../../helpers.js';

const xml = createXmlCodec();

describe('xml codec: strict means XML 1.0 well-formed', () => {
  it('refuses a DOCTYPE anywhere but the prolog', () => {
    for (const doc of ['<a/><!DOCTYPE a>', '<a><!DOCTYPE a></a>', '<?xml version="1.0"?><a/>\n<!DOCTYPE b>']) {
      expect(failure(() => xml.decode(doc)).code, doc).to.equal('BUSBAR_ERR_PARSE');
    }
  });

  it('refuses undefined entity references (and keeps the five predefined ones and character references)', () => {
    const e = failure(() => xml.decode('<a>x &nbsp; y</a>'));
    expect(e.code).to.equal('BUSBAR_ERR_PARSE');
    expect(e.message).to.contain('&nbsp;');
    expect(failure(() => xml.decode('<a b="&x;"/>')).code).to.equal('BUSBAR_ERR_PARSE');
    expect(failure(() => xml.decode('<a>&#0;</a>')).code).to.equal('BUSBAR_ERR_PARSE');
    expect(xml.decode('<a>&lt;&gt;&amp;&quot;&apos;&#233;&#x20AC;</a>')).to.deep.equal({ a: '<>&"\'é€' });
  });

  it('refuses NUL and other forbidden control characters', () => {
    for (const c of ['\u0000', '\u0001', '\u001f', '\ufffe', '\ud800']) {
      expect(failure(() => xml.decode(`<a>x${c}y</a>`)).code, JSON.stringify(c)).to.equal('BUSBAR_ERR_PARSE');
      expect(failure(() => xml.decode(`<a b="${c}"/>`)).code, JSON.stringify(c)).to.equal('BUSBAR_ERR_PARSE');
    }
    expect(xml.decode('<a>tab\there\r\nnew line</a>')).to.deep.equal({ a: 'tab\there\nnew line' });
  });

  it('refuses bytes that are not UTF-8 instead of turning them into U+FFFD', () => {
    const bytes = Buffer.concat([Buffer.from('<a>caf'), Buffer.from([0xe9]), Buffer.from('</a>')]);
    const e = failure(() => xml.decode(bytes));
    expect(e.code).to.equal('BUSBAR_ERR_PARSE');
    expect(e.details?.byteOffset).to.equal(6);
    expect(xml.decode(Buffer.from('<a>café</a>'))).to.deep.equal({ a: 'café' });
  });

  it('parses elements and attributes named constructor, prototype, toString, __proto__ as themselves', () => {
    const v = xml.decode('<r><constructor>c</constructor><prototype>p</prototype><toString>t</toString><__proto__>x</__proto__><e valueOf="1"/></r>') as { r: Record<string, unknown> };
    expect(Object.keys(v.r)).to.deep.equal(['constructor', 'prototype', 'toString', '__proto__', 'e']);
    expect(v.r.constructor).to.equal('c');
    expect(v.r.toString).to.equal('t');
    expect(Object.getOwnPropertyDescriptor(v.r, '__proto__')?.value).to.equal('x');
    expect(Object.getPrototypeOf(v.r)).to.equal(Object.prototype);
    expect(v.r.e).to.deep.equal({ '@valueOf': '1' });
    expect(({} as { polluted?: unknown }).polluted).to.equal(undefined);
    expect(xml.decode('<constructor>x</constructor>')).to.deep.equal({ constructor: 'x' });
  });

  it('bounds elements (maxNodes), attributes per element (maxAttributes) and depth with coded errors', () => {
    const many = `<a>${'<b/>'.repeat(300)}</a>`;
    const nodes = failure(() => createXmlCodec({ maxNodes: 100 }).decode(many));
    expect(nodes.code).to.equal('BUSBAR_ERR_LIMIT_EXCEEDED');
    expect(nodes.details?.limit).to.equal('maxNodes');
    const attrs = `<a ${Array.from({ length: 300 }, (_, k) => `x${k}="1"`).join(' ')}/>`;
    const a = failure(() => xml.decode(attrs));
    expect(a.code).to.equal('BUSBAR_ERR_LIMIT_EXCEEDED');
    expect(a.details?.limit).to.equal('maxAttributes');
    // the default element bound: 900k attributes spread over elements stop at maxNodes, before any mapping
    const huge = `<a>${'<b x="1"/>'.repeat(200_001)}</a>`;
    expect(failure(() => xml.decode(huge)).code).to.equal('BUSBAR_ERR_LIMIT_EXCEEDED');
    expect(failure(() => xml.decode(`${'<a>'.repeat(150)}${'</a>'.repeat(150)}`)).code).to.equal('BUSBAR_ERR_INPUT_TOO_DEEP');
    expect(createXmlCodec({ maxNodes: 301 }).decode(many)).to.have.nested.property('a.b');
  });

  it('applies maxNodes, maxAttributes and depth with strict: false too', () => {
    const lenient = (o: Parameters<typeof createXmlCodec>[0] = {}) => createXmlCodec({ strict: false, ...o });
    const many = `<a><!-- <c/><c/> --><![CDATA[<c/><c/>]]>${'<b/>'.repeat(300)}</a>`;
    const nodes = failure(() => lenient({ maxNodes: 100 }).decode(many));
    expect(nodes.code).to.equal('BUSBAR_ERR_LIMIT_EXCEEDED');
    expect(nodes.details?.limit).to.equal('maxNodes');
    // comments and CDATA hold no elements: exactly 301 fit in 301
    expect(lenient({ maxNodes: 301 }).decode(many)).to.have.nested.property('a.b');
    const attrs = `<a ${Array.from({ length: 300 }, (_, k) => `x${k}="v=>1"`).join(' ')}/>`;
    const a = failure(() => lenient().decode(attrs));
    expect(a.code).to.equal('BUSBAR_ERR_LIMIT_EXCEEDED');
    expect(a.details?.limit).to.equal('maxAttributes');
    expect(lenient({ maxAttributes: 300 }).decode(attrs)).to.have.nested.property('a.@x299', 'v=>1');
    const huge = `<a>${'<b x="1"/>'.repeat(200_001)}</a>`;
    expect(failure(() => lenient().decode(huge)).code).to.equal('BUSBAR_ERR_LIMIT_EXCEEDED');
    expect(failure(() => lenient({ maxDepth: 20 }).decode(`${'<a>'.repeat(30)}${'</a>'.repeat(30)}`)).code).to.equal('BUSBAR_ERR_INPUT_TOO_DEEP');
    expect(lenient({ maxDepth: 30 }).decode(`${'<a><e/>'.repeat(30)}${'</a>'.repeat(30)}`)).to.have.property('a');
  });

  it('writes parse errors an operator can read: line and column, no raw dumps, a truncated document points at its end', () => {
    const trunc = failure(() => xml.decode('<order>\n  <id>1</id>\n  <line>'));
    expect(trunc.message).to.match(/end of the document \(line 3, column 9\)/);
    expect(trunc.message).to.contain('<line>');
    expect(trunc.details).to.include({ line: 3, column: 9, truncated: true });
    for (const bad of ['<a><b></a>', '<a x=1/>', '<a x="1" x="2"/>', '<a>', '<a></b>', '<a/><b/>', 'text', '<a>]]></a>', '<!-- x -- y --><a/>']) {
      const e = failure(() => xml.decode(bad));
      expect(e.code, bad).to.equal('BUSBAR_ERR_PARSE');
      expect(e.message, bad).to.match(/line \d+, column \d+/);
      expect(e.message, bad).not.to.match(/undefined|\[object|\[\s*\{/);
    }
  });
});

describe('json codec: numbers', () => {
  it('refuses a number that overflows to Infinity, naming where it is', () => {
    const json = createJsonCodec();
    const e = failure(() => json.decode('{"a":[1, 2e400]}'));
    expect(e.code).to.equal('BUSBAR_ERR_PARSE');
    expect(e.details?.at).to.equal('/a/1');
    expect(failure(() => json.decode(`-${'9'.repeat(400)}`)).code).to.equal('BUSBAR_ERR_PARSE');
    expect(json.decode('{"a":1e300,"b":"e400"}')).to.deep.equal({ a: 1e300, b: 'e400' });
  });
});

/** A small deterministic PRNG, so a failure can be replayed. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Hand-made broken documents: each is a rule of XML 1.0 that a lenient parser lets through. */
const CRAFTED: Array<string | Buffer> = [
  '<a/><!DOCTYPE a>', '<a>&x;</a>', '<a>\u0000</a>', '<a b="\u0001"/>', '<a/><a/>', '<a>', '<a></b>', '<a b=1/>', '<a b="1" b="2"/>',
  '<a b="<"/>', '<a>]]></a>', '<!-- a -- b --><a/>', '<a/>text', 'text<a/>', '<?xml version="1.0"?><?xml version="1.0"?><a/>', '<a/><?xml version="1.0"?>',
  '<![CDATA[x]]><a/>', '<a>&#0;</a>', '<a>&#xD800;</a>', '<a>&;</a>', '<a>& b</a>', '<1a/>', '<a 1b="x"/>', '<a b="x"c="y"/>', '<a><!-- x</a>', '<a><![CDATA[x</a>',
  '<?xml version="1.0" encoding=?><a/>', '<?xml?><a/>', '<a></a >x', '</a>', '<a/ >', '<a b></a>', '<a>\ufffe</a>', '<a\u00d7/>', '<?pi?><a/><?xml-stylesheet x?>',
  Buffer.from([0x3c, 0x61, 0x3e, 0xc3, 0x28, 0x3c, 0x2f, 0x61, 0x3e]), Buffer.from([0x3c, 0x61, 0x3e, 0xed, 0xa0, 0x80, 0x3c, 0x2f, 0x61, 0x3e]), Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e]),
];

const FUZZ_CHARS = ['<', '>', '&', ';', '"', "'", '/', '=', '!', '?', '[', ']', '-', ' ', 'a', ':', '#', 'x', '\u0000', '\u0008', '\u00e9', '\ufffe', '\ud83d', '&amp;', '&foo;', '<!DOCTYPE a>', ']]>', '<![CDATA[', '-->'];

/** Mutations of valid documents: a character deleted, inserted or swapped, a slice repeated, the end cut off, a byte broken. */
function fuzzed(seeds: string[], count: number, rand: () => number): Array<string | Buffer> {
  const out: Array<string | Buffer> = [];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  for (let k = 0; k < count; k++) {
    let doc = pick(seeds);
    const edits = 1 + Math.floor(rand() * 3);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * doc.length);
      const op = Math.floor(rand() * 5);
      if (op === 0) doc = doc.slice(0, at) + doc.slice(at + 1);
      else if (op === 1) doc = doc.slice(0, at) + pick(FUZZ_CHARS) + doc.slice(at);
      else if (op === 2) doc = doc.slice(0, at) + pick(FUZZ_CHARS) + doc.slice(at + 1);
      else if (op === 3) doc = doc.slice(0, at) + doc.slice(at, at + Math.floor(rand() * 20)) + doc.slice(at);
      else doc = doc.slice(0, Math.max(1, at));
    }
    if (rand() < 0.05) {
      const b = Buffer.from(doc);
      b[Math.floor(rand() * b.length)] = pick([0xff, 0xc0, 0x80, 0xed, 0xf5]);
      out.push(b);
    } else out.push(doc);
  }
  return out;
}

describe('xml codec: xmllint (libxml2) as the oracle', function () {
  this.timeout(60_000);

  it('accepts nothing that xmllint --noout rejects, on crafted and fuzzed documents; accepts the valid seeds', () => {
    const version = spawnSync('xmllint', ['--version'], { encoding: 'utf8' });
    expect(version.error, 'xmllint is missing: scripts/test-services.sh installs libxml2-utils').to.equal(undefined);
    const fixtures = readdirSync('spec/fixtures/xml').filter((f) => !/xxe|laughs/.test(f)).map((f) => readFileSync(join('spec/fixtures/xml', f), 'utf8'));
    const seeds = [
      ...fixtures,
      '<?xml version="1.0" encoding="UTF-8"?><!-- c --><o:orders xmlns:o="urn:o"><o:order id="1" n=\'x\'><line qty="2">A &amp; B</line><![CDATA[<raw>]]><?pi data?></o:order></o:orders>',
      '<!DOCTYPE note><note a="&#233;">caf\u00e9 &#x20AC; &lt;&gt;</note>',
    ];
    const docs = [...seeds, ...CRAFTED, ...fuzzed(seeds, 1500, prng(19))];
    const dir = tempDir('busbar-xmllint-');
    try {
      const files = docs.map((d, k) => {
        const f = join(dir.path, `d${k}.xml`);
        writeFileSync(f, d);
        return f;
      });
      const rejected = new Set<number>();
      // one xmllint per batch of files (argument lists stay short); its errors name the file
      for (let k = 0; k < files.length; k += 400) {
        const r = spawnSync('xmllint', ['--noout', '--nonet', ...files.slice(k, k + 400)], { encoding: 'latin1', maxBuffer: 64 * 1024 * 1024 });
        for (const m of r.stderr.matchAll(/d(\d+)\.xml:\d+: parser error/g)) rejected.add(Number(m[1]));
      }
      const accepted = (d: string | Buffer): boolean => {
        try {
          parseXml(d);
          return true;
        } catch {
          return false;
        }
      };
      for (let k = 0; k < seeds.length; k++) {
        expect(rejected.has(k), `seed ${k} is valid for xmllint`).to.equal(false);
        expect(accepted(seeds[k]!), `seed ${k} is accepted by busbar`).to.equal(true);
      }
      const leaks = docs.map((d, k) => ({ d, k })).filter(({ d, k }) => rejected.has(k) && accepted(d));
      expect(leaks.map(({ d }) => JSON.stringify(d.toString())).slice(0, 10), `${leaks.length} documents xmllint rejects were accepted`).to.deep.equal([]);
      // the corpus really has both kinds
      expect(rejected.size).to.be.greaterThan(500);
      expect(docs.length - rejected.size).to.be.greaterThan(100);
    } finally {
      dir.cleanup();
    }
  });
});
