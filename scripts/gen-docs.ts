/**
 * README sections generated from their single source of truth: the error catalogue
 * (lib/errors.ts) and each adapter's options schema. `npm run docs` rewrites them;
 * spec/docs.spec.ts fails when README.md is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { errorCatalogue } from '../lib/errors.js';
import { builtinAdapters } from '../lib/builtins.js';
import { adapterFactories } from '../lib/cli/adapter-factories.js';
import type { Adapter } from '../lib/adapter.js';

type Prop = { type?: unknown; anyOf?: Prop[]; const?: unknown; enum?: unknown[]; default?: unknown; description?: string; minimum?: number; maximum?: number };

function typeOf(p: Prop): string {
  if (p.anyOf) return p.anyOf.map((x) => (x.const !== undefined ? JSON.stringify(x.const) : typeOf(x))).join(' \\| ');
  if (p.enum) return p.enum.map((x) => JSON.stringify(x)).join(' \\| ');
  if (p.const !== undefined) return JSON.stringify(p.const);
  return Array.isArray(p.type) ? p.type.join(' \\| ') : String(p.type ?? 'any');
}

const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function adapterList(): Adapter[] {
  const seen = new Set<string>();
  const out: Adapter[] = [];
  for (const a of [...builtinAdapters(), ...Object.values(adapterFactories()).map((f) => f.create())]) {
    if (!seen.has(a.scheme)) out.push(a);
    seen.add(a.scheme);
  }
  return out;
}

export function errorsSection(): string {
  const rows = Object.entries(errorCatalogue).map(([name, e]) => `| \`BUSBAR_ERR_${name}\` | ${e.retryable ? 'yes' : 'no'} | ${cell(e.description)} |`);
  return ['| code | retryable | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

export function adaptersSection(): string {
  const parts: string[] = [];
  const list = adapterList();
  for (const a of list) {
    const roles = [a.createConsumer ? 'source (`from`)' : '', a.createProducer ? 'destination (`to`)' : ''].filter(Boolean).join(', ');
    parts.push(`### \`${a.scheme}:\`\n\n${a.description} Use as: ${roles}.\n`);
    // an adapter sharing an earlier one's options (https: and http:) points there
    const same = list.find((b) => b.optionsSchema === a.optionsSchema);
    if (same && same !== a) {
      parts.push(`Options: as \`${same.scheme}:\`.\n`);
      continue;
    }
    const props = Object.entries(((a.optionsSchema as { properties?: Record<string, Prop> }).properties ?? {}));
    if (props.length === 0) {
      parts.push('No options.\n');
      continue;
    }
    parts.push('| option | type | default | description |', '| --- | --- | --- | --- |');
    for (const [name, p] of props) {
      const range = [p.minimum !== undefined ? `≥ ${p.minimum}` : '', p.maximum !== undefined ? `≤ ${p.maximum}` : ''].filter(Boolean).join(', ');
      parts.push(`| \`${name}\` | ${typeOf(p)}${range ? ` (${range})` : ''} | ${p.default === undefined ? '' : `\`${JSON.stringify(p.default)}\``} | ${cell(p.description ?? '')} |`);
    }
    parts.push('');
  }
  return parts.join('\n').trim();
}

export function renderReadme(readme: string): string {
  const put = (text: string, name: string, body: string): string => {
    const re = new RegExp(`(<!-- ${name}:start -->)[\\s\\S]*?(<!-- ${name}:end -->)`);
    if (!re.test(text)) throw new Error(`README.md has no <!-- ${name}:start --> ... <!-- ${name}:end --> section`);
    return text.replace(re, `$1\n${body}\n$2`);
  };
  return put(put(readme, 'errors', errorsSection()), 'adapters', adaptersSection());
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = new URL('../README.md', import.meta.url);
  writeFileSync(path, renderReadme(readFileSync(path, 'utf8')));
  process.stdout.write('README.md sections regenerated\n');
}
