import { BusbarError } from '../errors.js';
import { tooDeep } from './base.js';

/** Bounds of one document: what a hostile one can cost is fixed before the mapping allocates anything. */
export interface XmlScanLimits {
  maxDepth: number;
  /** Elements in the document. */
  maxNodes: number;
  /** Attributes on one element. */
  maxAttributes: number;
}

/** What the scan learnt that the mapping needs. */
export interface XmlScanResult {
  /** An element or attribute name that is also a property of Object.prototype (`constructor`, `toString`, `__proto__`). */
  reservedNames: boolean;
}

/** Names that fast-xml-parser refuses or renames because they shadow Object.prototype; legal XML all the same. */
export const RESERVED_NAMES = new Set(['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__']);

const PREDEFINED = new Set(['lt', 'gt', 'amp', 'quot', 'apos']);

function isNameStart(c: number): boolean {
  if (c < 0x80) return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c === 58;
  return (
    (c >= 0xc0 && c <= 0xd6) || (c >= 0xd8 && c <= 0xf6) || (c >= 0xf8 && c <= 0x2ff) || (c >= 0x370 && c <= 0x37d) || (c >= 0x37f && c <= 0x1fff) ||
    (c >= 0x200c && c <= 0x200d) || (c >= 0x2070 && c <= 0x218f) || (c >= 0x2c00 && c <= 0x2fef) || (c >= 0x3001 && c <= 0xd7ff) ||
    (c >= 0xf900 && c <= 0xfdcf) || (c >= 0xfdf0 && c <= 0xfffd) || (c >= 0xd800 && c <= 0xdbff) /* a surrogate pair: #x10000-#xEFFFF */
  );
}

function isNameChar(c: number): boolean {
  if (c < 0x80) return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 95 || c === 58 || c === 45 || c === 46;
  return isNameStart(c) || c === 0xb7 || (c >= 0x300 && c <= 0x36f) || (c >= 0x203f && c <= 0x2040) || (c >= 0xdc00 && c <= 0xdfff);
}

/** An encoding label the platform knows (the WHATWG list): the declaration names a real encoding. */
function knownEncoding(label: string): boolean {
  try {
    new TextDecoder(label);
    return true;
  } catch {
    return false;
  }
}

const isSpace = (c: number): boolean => c === 32 || c === 10 || c === 9 || c === 13;

/**
 * One pass over an XML document checking what XML 1.0 calls well-formedness (tags balanced and
 * matching, one root, attribute syntax and uniqueness, references to defined entities only,
 * legal characters, comments/CDATA/PIs, a DOCTYPE only before the root), plus the limits. It
 * replaces a second full validation pass: the mapping that follows is lenient and relies on it.
 * Errors are `BUSBAR_ERR_PARSE` with the line and column (a truncated document points at its
 * end), `BUSBAR_ERR_INPUT_TOO_DEEP` and `BUSBAR_ERR_LIMIT_EXCEEDED` (nodes, attributes).
 */
export function scanXml(text: string, limits: XmlScanLimits, codec = 'xml'): XmlScanResult {
  const n = text.length;
  let i = 0;
  let reservedNames = false;
  const stack: Array<{ name: string; at: number }> = [];
  let nodes = 0;
  let rootSeen = false;

  const fail = (at: number, reason: string, message: string): never => {
    let line = 1;
    let col = 1;
    const end = Math.min(at, n);
    for (let k = 0; k < end; k++) {
      if (text.charCodeAt(k) === 10) {
        line++;
        col = 1;
      } else col++;
    }
    const where = at >= n ? `at the end of the document (line ${line}, column ${col}), truncated?` : `line ${line}, column ${col}`;
    throw new BusbarError('PARSE', `${codec}: ${where}: ${message}`, { details: { codec, line, column: col, reason, ...(at >= n ? { truncated: true } : {}) } });
  };

  /** A legal XML character at i (advances over surrogate pairs); else fails. */
  const checkChar = (c: number, at: number): void => {
    if (c < 0x20) {
      if (c !== 9 && c !== 10 && c !== 13) fail(at, 'char', `forbidden control character U+${c.toString(16).toUpperCase().padStart(4, '0')}`);
    } else if (c >= 0xd800) {
      if (c <= 0xdbff) {
        const d = text.charCodeAt(at + 1);
        if (!(d >= 0xdc00 && d <= 0xdfff)) fail(at, 'char', 'an unpaired surrogate (not a character)');
      } else if (c <= 0xdfff) {
        const p = text.charCodeAt(at - 1);
        if (!(p >= 0xd800 && p <= 0xdbff)) fail(at, 'char', 'an unpaired surrogate (not a character)');
      } else if (c === 0xfffe || c === 0xffff) fail(at, 'char', `forbidden character U+${c.toString(16).toUpperCase()}`);
    }
  };

  const readName = (what: string): string => {
    const start = i;
    if (i >= n) fail(i, 'truncated', `${what} expected, but the document ends`);
    if (!isNameStart(text.charCodeAt(i))) fail(i, 'name', `${what} expected, got ${JSON.stringify(text[i])}`);
    i++;
    while (i < n && isNameChar(text.charCodeAt(i))) i++;
    return text.slice(start, i);
  };

  /** `&...;` at i (i at `&`): a predefined entity or a character reference to a legal character. */
  const readReference = (): void => {
    const at = i;
    const semi = text.indexOf(';', i + 1);
    if (semi === -1 || semi - i > 40) fail(at, 'reference', '"&" must start an entity or character reference ending in ";" (write &amp; for a literal "&")');
    const ref = text.slice(i + 1, semi);
    if (ref.charCodeAt(0) === 35 /* # */) {
      const hex = ref.charCodeAt(1) === 120; /* x */
      const digits = ref.slice(hex ? 2 : 1);
      if (!(hex ? /^[0-9a-fA-F]+$/ : /^[0-9]+$/).test(digits)) fail(at, 'reference', `malformed character reference "&${ref};"`);
      const cp = parseInt(digits, hex ? 16 : 10);
      const legal = cp === 9 || cp === 10 || cp === 13 || (cp >= 0x20 && cp <= 0xd7ff) || (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp <= 0x10ffff);
      if (!legal) fail(at, 'reference', `character reference "&${ref};" is not a legal XML character`);
    } else if (!PREDEFINED.has(ref)) {
      if (!/^[A-Za-z_:\u00c0-\uffff][\w.:\u00b7-\uffff-]*$/.test(ref)) fail(at, 'reference', `malformed entity reference "&${ref};"`);
      fail(at, 'entity', `undefined entity "&${ref};" (only &lt; &gt; &amp; &quot; &apos; and character references are defined; DTD entities are refused)`);
    }
    i = semi + 1;
  };

  /** `<!--` at i. */
  const readComment = (): void => {
    const at = i;
    const end = text.indexOf('--', i + 4);
    if (end === -1) fail(n, 'truncated', `comment opened at ${pos(at)} is not closed`);
    if (text.charCodeAt(end + 2) !== 62) fail(end, 'comment', '"--" is not allowed inside a comment');
    for (let k = i + 4; k < end; k++) checkChar(text.charCodeAt(k), k);
    i = end + 3;
  };

  /** `<?` at i. */
  const readPi = (first: boolean): void => {
    const at = i;
    i += 2;
    const target = readName('processing-instruction target');
    const end = text.indexOf('?>', i);
    if (end === -1) fail(n, 'truncated', `processing instruction opened at ${pos(at)} is not closed`);
    if (target.toLowerCase() === 'xml') {
      if (!first || target !== 'xml') fail(at, 'declaration', 'the XML declaration is allowed only at the very start of the document');
      const decl = text.slice(i, end);
      const m = /^\s+version\s*=\s*(["'])1\.[0-9]+\1(\s+encoding\s*=\s*(["'])([A-Za-z][A-Za-z0-9._-]*)\3)?(\s+standalone\s*=\s*(["'])(yes|no)\6)?\s*$/.exec(decl);
      if (!m) fail(at, 'declaration', 'malformed XML declaration (expected <?xml version="1.0" encoding="..." standalone="..."?>)');
      if (m![4] !== undefined && !knownEncoding(m![4])) fail(at, 'declaration', `unknown encoding "${m![4]}" in the XML declaration`);
    } else if (i < end && !isSpace(text.charCodeAt(i))) fail(i, 'pi', 'a space must follow the processing-instruction target');
    for (let k = i; k < end; k++) checkChar(text.charCodeAt(k), k);
    i = end + 2;
  };

  const pos = (at: number): string => {
    let line = 1;
    let col = 1;
    for (let k = 0; k < at; k++) {
      if (text.charCodeAt(k) === 10) {
        line++;
        col = 1;
      } else col++;
    }
    return `line ${line}, column ${col}`;
  };

  /** `<!DOCTYPE` at i: only before the root (checkProlog has refused entity declarations and external DTDs). */
  const readDoctype = (): void => {
    const at = i;
    if (rootSeen || stack.length) fail(at, 'doctype', 'a DOCTYPE is allowed only before the root element');
    if (!isSpace(text.charCodeAt(i + 9))) fail(i + 9, 'doctype', 'a space and the root element name must follow <!DOCTYPE');
    i += 9;
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    readName('the root element name of the DOCTYPE');
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    // external identifiers and entity declarations were refused by checkProlog; declarations
    // in an internal subset are not processed, so under strict they are refused too
    if (text.charCodeAt(i) === 91 /* [ */) {
      let k = i + 1;
      while (k < n && isSpace(text.charCodeAt(k))) k++;
      if (text.charCodeAt(k) !== 93) fail(k, 'doctype', 'a DOCTYPE with declarations (an internal subset) is refused: DTDs are not processed');
      i = k + 1;
      while (i < n && isSpace(text.charCodeAt(i))) i++;
    }
    if (i >= n) fail(n, 'truncated', `DOCTYPE opened at ${pos(at)} is not closed`);
    if (text.charCodeAt(i) !== 62) fail(i, 'doctype', `">" expected to close the DOCTYPE, got ${JSON.stringify(text[i])}`);
    i++;
  };

  /** A start tag at i (at `<`). */
  const readStartTag = (): void => {
    const at = i;
    i++;
    const name = readName('element name');
    if (RESERVED_NAMES.has(name)) reservedNames = true;
    if (stack.length === 0) {
      if (rootSeen) fail(at, 'root', `a second root element <${name}> (a document has exactly one)`);
      rootSeen = true;
    }
    if (++nodes > limits.maxNodes) {
      throw new BusbarError('LIMIT_EXCEEDED', `${codec}: the document has more than ${limits.maxNodes} elements (maxNodes)`, { details: { codec, maxNodes: limits.maxNodes, limit: 'maxNodes' } });
    }
    let attrs = 0;
    let seen: Set<string> | undefined;
    let firstAttr: string | undefined;
    for (;;) {
      const before = i;
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (i >= n) fail(n, 'truncated', `start tag <${name}> opened at ${pos(at)} is not closed`);
      const c = text.charCodeAt(i);
      if (c === 62 /* > */) {
        i++;
        if (stack.length >= limits.maxDepth) {
          throw new BusbarError('INPUT_TOO_DEEP', `${codec}: document nests deeper than ${limits.maxDepth} levels at <${name}> (maxDepth)`, { details: { codec, maxDepth: limits.maxDepth, at: name } });
        }
        stack.push({ name, at });
        return;
      }
      if (c === 47 /* / */) {
        if (text.charCodeAt(i + 1) !== 62) fail(i + 1, 'tag', `">" expected after "/" in <${name}>`);
        i += 2;
        if (stack.length === 0) rootSeen = true;
        return;
      }
      if (i === before) fail(i, 'attribute', `a space is needed before the attribute in <${name}>`);
      const aAt = i;
      const aName = readName(`attribute name or ">" in <${name}>`);
      if (RESERVED_NAMES.has(aName)) reservedNames = true;
      if (++attrs > limits.maxAttributes) {
        throw new BusbarError('LIMIT_EXCEEDED', `${codec}: element <${name}> has more than ${limits.maxAttributes} attributes (maxAttributes)`, { details: { codec, maxAttributes: limits.maxAttributes, limit: 'maxAttributes', element: name } });
      }
      // most elements have none or one attribute: a set only from the second
      if (firstAttr === undefined) firstAttr = aName;
      else {
        seen ??= new Set([firstAttr]);
        if (seen.has(aName)) fail(aAt, 'attribute', `attribute "${aName}" appears twice in <${name}>`);
        seen.add(aName);
      }
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) !== 61 /* = */) fail(i, 'attribute', `attribute "${aName}" in <${name}> has no value ("=" expected)`);
      i++;
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      const q = text.charCodeAt(i);
      if (q !== 34 && q !== 39) fail(i, 'attribute', `the value of attribute "${aName}" in <${name}> must be quoted`);
      i++;
      for (;;) {
        if (i >= n) fail(n, 'truncated', `the value of attribute "${aName}" in <${name}> is not closed`);
        const v = text.charCodeAt(i);
        if (v === q) {
          i++;
          break;
        }
        if (v === 60) fail(i, 'attribute', `"<" is not allowed in the value of attribute "${aName}" (write &lt;)`);
        if (v === 38) {
          readReference();
          continue;
        }
        checkChar(v, i);
        i++;
      }
    }
  };

  // the prolog
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  let first = true;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 60 /* < */) {
      const c1 = text.charCodeAt(i + 1);
      if (c1 === 47 /* / */) {
        const at = i;
        i += 2;
        const name = readName('element name in the end tag');
        while (i < n && isSpace(text.charCodeAt(i))) i++;
        if (text.charCodeAt(i) !== 62) fail(i, i >= n ? 'truncated' : 'tag', `">" expected to close the end tag </${name}>`);
        i++;
        const open = stack.pop();
        if (!open) fail(at, 'tag', `end tag </${name}> has no start tag`);
        if (open!.name !== name) fail(at, 'tag', `end tag </${name}> does not match the start tag <${open!.name}> opened at ${pos(open!.at)}`);
      } else if (c1 === 33 /* ! */) {
        if (text.startsWith('<!--', i)) readComment();
        else if (text.startsWith('<![CDATA[', i)) {
          if (!stack.length) fail(i, 'cdata', 'a CDATA section is allowed only inside an element');
          const end = text.indexOf(']]>', i + 9);
          if (end === -1) fail(n, 'truncated', `CDATA section opened at ${pos(i)} is not closed`);
          for (let k = i + 9; k < end; k++) checkChar(text.charCodeAt(k), k);
          i = end + 3;
        } else if (text.startsWith('<!DOCTYPE', i)) readDoctype();
        else fail(i, 'markup', `unknown markup "${text.slice(i, i + 9)}"`);
      } else if (c1 === 63 /* ? */) readPi(first && i === (text.charCodeAt(0) === 0xfeff ? 1 : 0));
      else readStartTag();
    } else if (stack.length) {
      // character data
      if (c === 38 /* & */) readReference();
      else {
        if (c === 93 && text.charCodeAt(i + 1) === 93 && text.charCodeAt(i + 2) === 62) fail(i, 'text', '"]]>" is not allowed in text');
        if (c < 0x20 || c >= 0xd800) checkChar(c, i);
        i++;
      }
    } else if (isSpace(c)) i++;
    else fail(i, 'text', rootSeen ? 'text after the root element' : 'text before the root element');
    first = false;
  }
  if (stack.length) {
    const open = stack[stack.length - 1]!;
    fail(n, 'truncated', `element <${open.name}> opened at ${pos(open.at)} is not closed`);
  }
  if (!rootSeen) fail(n, 'root', 'no root element');
  return { reservedNames };
}

/**
 * The limits alone, for `strict: false`: one cheap pass that counts elements, attributes per
 * element and depth without judging well-formedness, so a lenient codec is as bounded as a
 * strict one (900k attributes would otherwise reach the mapping: seconds of blocked event
 * loop and a gigabyte). Skips comments, CDATA, processing instructions and declarations;
 * quoted attribute values may contain `>` and `=`.
 */
export function countXml(text: string, limits: XmlScanLimits, codec = 'xml'): void {
  const n = text.length;
  let nodes = 0;
  let depth = 0;
  let i = text.indexOf('<');
  while (i !== -1 && i < n) {
    const c = text.charCodeAt(i + 1);
    if (c === 33 /* ! */) {
      // <!-- ... -->, <![CDATA[ ... ]]>, <!DOCTYPE ...>
      const end = text.startsWith('<!--', i) ? text.indexOf('-->', i + 4) : text.startsWith('<![CDATA[', i) ? text.indexOf(']]>', i + 9) : text.indexOf('>', i + 2);
      if (end === -1) return;
      i = text.indexOf('<', end + 1);
      continue;
    }
    if (c === 63 /* ? */) {
      const end = text.indexOf('?>', i + 2);
      if (end === -1) return;
      i = text.indexOf('<', end + 2);
      continue;
    }
    if (c === 47 /* / */) {
      depth = Math.max(0, depth - 1);
      i = text.indexOf('<', i + 2);
      continue;
    }
    if (!isNameStart(c)) {
      i = text.indexOf('<', i + 1);
      continue;
    }
    if (++nodes > limits.maxNodes) {
      throw new BusbarError('LIMIT_EXCEEDED', `${codec}: the document has more than ${limits.maxNodes} elements (maxNodes)`, { details: { codec, maxNodes: limits.maxNodes, limit: 'maxNodes' } });
    }
    // to the end of the start tag, counting `=` outside quotes (one per attribute)
    let j = i + 2;
    let attrs = 0;
    let quote = 0;
    for (; j < n; j++) {
      const d = text.charCodeAt(j);
      if (quote) {
        if (d === quote) quote = 0;
      } else if (d === 34 || d === 39) quote = d;
      else if (d === 61 /* = */) {
        if (++attrs > limits.maxAttributes) {
          throw new BusbarError('LIMIT_EXCEEDED', `${codec}: an element has more than ${limits.maxAttributes} attributes (maxAttributes)`, { details: { codec, maxAttributes: limits.maxAttributes, limit: 'maxAttributes' } });
        }
      } else if (d === 62 /* > */) break;
    }
    if (text.charCodeAt(j - 1) !== 47 /* self-closing */ && ++depth > limits.maxDepth) {
      throw tooDeep(codec, limits.maxDepth);
    }
    i = text.indexOf('<', j + 1);
  }
}
