import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildProgram, engineFromModule } from '../lib/cli/main.js';
import { formatProblem, type Problem } from '../lib/schema.js';
import { patternState } from '../lib/steps/patterns/common.js';
import { MemoryAggregationStore, MemoryClaimCheckStore, MemoryIdempotentRepository } from '../lib/stores-memory.js';
import { testLogger } from './helpers.js';

/**
 * Every snippet of README.md and docs/*.md must work as written (users copy them):
 * - `json` blocks parse, and route configs / steps / adapter settings in them validate
 *   (`busbar validate`'s checks);
 * - every endpoint URI in a `ts`/`js` block is accepted by its adapter, as a source or a target;
 * - `ts` blocks that are whole programs (they import busbar) type-check against the public API;
 * - `sh` blocks name real `busbar` subcommands and npm scripts.
 * Generic over docs/*.md: a page someone adds is checked too.
 */

interface Snippet {
  readonly file: string;
  readonly line: number;
  readonly lang: string;
  readonly text: string;
}

function snippets(): Snippet[] {
  const files = ['README.md', ...readdirSync('docs').filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
  const out: Snippet[] = [];
  for (const file of files) {
    const lines = readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^```(\w*)\s*$/.exec(lines[i]!);
      if (!open) continue;
      const start = i + 1;
      let end = start;
      while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
      out.push({ file, line: start, lang: open[1] ?? '', text: lines.slice(start, end).join('\n') });
      i = end;
    }
  }
  return out;
}

const where = (s: Snippet, extra = ''): string => `${s.file}:${s.line}${extra}`;

/** The JSON values of a block, one after the other (a block may show several side by side). */
function jsonValues(text: string): Array<{ value: unknown; offset: number } | { error: string; offset: number }> {
  const out: Array<{ value: unknown; offset: number } | { error: string; offset: number }> = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (i >= text.length) break;
    const start = i;
    let depth = 0;
    let inString = false;
    for (; i < text.length; i++) {
      const c = text[i]!;
      if (inString) {
        if (c === '\\') i++;
        else if (c === '"') inString = false;
        continue;
      }
      if (c === '"') inString = true;
      else if (c === '{' || c === '[') depth++;
      else if (c === '}' || c === ']') {
        depth--;
        if (depth === 0) {
          i++;
          break;
        }
      } else if (depth === 0 && /\s/.test(c)) break;
    }
    const chunk = text.slice(start, i);
    try {
      out.push({ value: JSON.parse(chunk), offset: start });
    } catch (e) {
      out.push({ error: `${(e as Error).message} in ${JSON.stringify(chunk.slice(0, 80))}`, offset: start });
    }
  }
  return out;
}

/** What the examples assume was set up: the db connections they name (checked by name, never opened), TLS files. */
const DOCS_ADAPTERS = {
  db: { connections: { main: { engine: 'postgres', url: 'postgres://127.0.0.1/docs' }, local: { engine: 'sqlite', file: 'docs.db' } } },
  https: { tls: { cert: 'spec/fixtures/tls/server.pem', key: 'spec/fixtures/tls/server-key.pem' } },
  grpcs: { tls: { cert: 'spec/fixtures/tls/server.pem', key: 'spec/fixtures/tls/server-key.pem' } },
};

function docsEngine(adapters: Record<string, unknown> = DOCS_ADAPTERS): { check: (doc: unknown) => Problem[] } {
  const { engine, problems } = engineFromModule({ routes: [], adapters }, testLogger());
  if (problems.length) return { check: () => problems };
  // the stores docs/patterns.md registers as "pg" before using them by name
  const state = patternState(engine);
  state.aggregationStores.set('pg', new MemoryAggregationStore());
  state.idempotentRepositories.set('pg', new MemoryIdempotentRepository());
  state.claimCheckStores.set('pg', new MemoryClaimCheckStore());
  return { check: (doc) => engine.check(doc as never) };
}

const ENDPOINT = /^(file|db|http|https|grpc|grpcs|amqp|direct|mock|topic|queue|log|timer):/;

/**
 * String literals of a TS/JS block that are endpoint URIs (not a URL meant for a browser, an
 * XML namespace or a connection string), and whether each is a source (`from(...)`) or a target.
 */
function endpointLiterals(text: string): Array<{ uri: string; source: boolean }> {
  const out: Array<{ uri: string; source: boolean }> = [];
  for (const m of text.matchAll(/'([^'\n]*)'|"([^"\n]*)"|`([^`\n$]*)`/g)) {
    const s = m[1] ?? m[2] ?? m[3] ?? '';
    if (!ENDPOINT.test(s) || s.includes('...')) continue;
    // the start of a URI built by concatenation (`'db:x?query=' + encodeURIComponent(sql)`)
    if (/^\s*\+/.test(text.slice(m.index + m[0].length))) continue;
    // the base of a URI whose options are given as data (`endpointUri('db:x', { statement })`)
    if (/\bendpointUri\(\s*$/.test(text.slice(0, m.index))) continue;
    if (/^https?:\/\//.test(s) && !/[?{]/.test(s) && !/:\d+\//.test(s)) continue;
    if (/^amqps?:\/\//.test(s)) continue;
    // a pattern that matches endpoints (`replaceEndpoints({ 'http:*': ... })`), not one
    if (s.includes('*') && /^\s*:/.test(text.slice(m.index + m[0].length))) continue;
    const before = text.slice(0, m.index);
    out.push({ uri: s, source: /\bfrom(<[^>]*>)?\(\s*$|\bfrom:\s*$/.test(before) });
  }
  return out;
}

describe('docs snippets', function () {
  this.timeout(60_000);
  const all = snippets();

  it('finds the snippets of README.md and every docs/*.md page', () => {
    expect(all.filter((s) => s.lang === 'json').length).to.be.greaterThan(10);
    expect(all.filter((s) => s.lang === 'ts').length).to.be.greaterThan(20);
    expect(new Set(all.map((s) => s.file)).size).to.be.greaterThan(5);
  });

  it('json blocks parse, and the routes, route steps and adapter settings in them validate', () => {
    const failures: string[] = [];
    const engine = docsEngine();
    const stepNames = new Set(engineFromModule({ routes: [] }, testLogger()).engine.steps.names());
    for (const s of all.filter((x) => x.lang === 'json')) {
      for (const v of jsonValues(s.text)) {
        const at = where(s, ` (+${v.offset})`);
        if ('error' in v) {
          failures.push(`${at}: not JSON: ${v.error}`);
          continue;
        }
        const doc = v.value;
        if (!doc || typeof doc !== 'object' || Array.isArray(doc)) continue;
        let problems: Problem[] = [];
        if ('routes' in doc) {
          const adapters = (doc as { adapters?: Record<string, unknown> }).adapters;
          problems = adapters ? docsEngine({ ...DOCS_ADAPTERS, ...adapters }).check({ routes: (doc as { routes: unknown }).routes }) : engine.check({ routes: (doc as { routes: unknown }).routes });
        } else if ('from' in doc) {
          problems = engine.check(doc);
        } else if (Object.keys(doc).length === 1 && stepNames.has(Object.keys(doc)[0]!)) {
          problems = engine.check({ from: 'direct:docs-snippet', steps: [doc] });
        } else if ('adapters' in doc) {
          problems = docsEngine({ ...DOCS_ADAPTERS, ...(doc as { adapters: Record<string, unknown> }).adapters }).check({ routes: [] });
        }
        for (const p of problems) failures.push(`${at}: ${formatProblem(p)}`);
      }
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
  });

  it('every endpoint URI in a ts/js block is accepted by its adapter', () => {
    const failures: string[] = [];
    const engine = docsEngine();
    for (const s of all.filter((x) => x.lang === 'ts' || x.lang === 'js')) {
      for (const { uri, source } of endpointLiterals(s.text)) {
        const problems = source ? engine.check({ from: uri }) : engine.check({ from: 'direct:docs-snippet', steps: [{ to: uri }] });
        if (problems.length) failures.push(`${where(s)}: "${uri}" (as a ${source ? 'source' : 'target'}): ${problems[0]!.message}`);
      }
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
  });

  it('ts blocks that are whole programs type-check against the public API (the built declarations)', () => {
    const programs = all.filter((s) => s.lang === 'ts' && /^import /m.test(s.text));
    expect(programs.length).to.be.greaterThan(5);
    const dir = resolve('.tmp/docs-snippets');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const names = new Map<string, Snippet>();
    programs.forEach((s, i) => {
      const name = `snippet-${i}-${s.file.replace(/[^a-z0-9]+/gi, '-')}-${s.line}.ts`;
      names.set(name, s);
      // a module of its own (top-level await, its own declarations)
      writeFileSync(join(dir, name), `${s.text}\nexport {};\n`);
    });
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        extends: '../../tsconfig.base.json',
        compilerOptions: {
          noEmit: true,
          noUnusedLocals: false,
          noUnusedParameters: false,
          types: ['node', 'mocha'],
          baseUrl: '../..',
          // the declarations a user gets (npm run build makes them, as for the package spec)
          paths: { busbar: ['./dist/lib/index.d.ts'], 'busbar/testing': ['./dist/lib/testing.d.ts'], 'busbar/adapters/*': ['./dist/adapters/*/index.d.ts'] },
        },
        files: [...names.keys()],
      }),
    );
    try {
      const tsc = spawnSync(process.execPath, [resolve('node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8' });
      const report = (tsc.stdout + tsc.stderr).replace(/snippet-[^(]+\.ts\((\d+),(\d+)\)/g, (m, l: string) => {
        const file = m.slice(0, m.indexOf('('));
        const s = names.get(file);
        return s ? `${s.file}:${s.line + Number(l) - 1}` : m;
      });
      expect(tsc.status, report).to.equal(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('sh blocks name real busbar subcommands and npm scripts', () => {
    const failures: string[] = [];
    const scripts = Object.keys((JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts);
    const commands = buildProgram().commands.map((c) => c.name());
    expect(commands).to.include('run');
    for (const s of all.filter((x) => x.lang === 'sh' || x.lang === 'bash' || x.lang === 'shell')) {
      for (const line of s.text.split('\n')) {
        for (const m of line.replace(/#.*$/, '').matchAll(/npm run ([\w:-]+)/g)) if (!scripts.includes(m[1]!)) failures.push(`${where(s)}: no npm script "${m[1]}"`);
        const b = /^(?:npx )?busbar ([a-z][\w-]*)/.exec(line.trim());
        if (b && !b[1]!.startsWith('-') && !commands.includes(b[1]!)) failures.push(`${where(s)}: no busbar subcommand "${b[1]}"`);
      }
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
  });
});
