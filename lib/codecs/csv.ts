import type { Options as ParseOptions } from 'csv-parse/sync';
import type { Options as StringifyOptions } from 'csv-stringify/sync';
import { lazy } from '../lazy.js';
import { BusbarError } from '../errors.js';
import { DEFAULT_MAX_BYTES, decodeInput, isPlainObject, type Codec } from './base.js';

export interface CsvOptions {
  /** The first row names the columns: rows become objects (default true). `false`: rows are arrays of strings. */
  header?: boolean;
  /** Column names to use instead of a header row (rows become objects). */
  columns?: readonly string[];
  /** Field delimiter (default `,`). */
  delimiter?: string;
  /** Quote character (default `"`). */
  quote?: string;
  /** Skip empty lines (default true). */
  skipEmptyLines?: boolean;
  /** Accept rows with more or fewer fields than the header (default false: a coded error naming the line). */
  relaxColumnCount?: boolean;
  /** Trim spaces around fields (default false). */
  trim?: boolean;
  /** Largest accepted document in bytes. */
  maxBytes?: number;
  /** Most rows accepted in one document (default 1,000,000); larger files: stream them with `csvRows`. */
  maxRows?: number;
  /** Encode: line ending (default `\n`). */
  recordDelimiter?: 'unix' | 'windows';
}

export const csvOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    header: { type: 'boolean', description: 'first row names the columns; rows become objects (default true)' },
    columns: { type: 'array', items: { type: 'string' }, minItems: 1, description: 'column names to use instead of a header row' },
    delimiter: { type: 'string', minLength: 1, maxLength: 4, description: 'field delimiter (default ",")' },
    quote: { type: 'string', minLength: 1, maxLength: 1, description: 'quote character (default ")' },
    skipEmptyLines: { type: 'boolean', description: 'skip empty lines (default true)' },
    relaxColumnCount: { type: 'boolean', description: 'accept rows with a different number of fields (default false)' },
    trim: { type: 'boolean', description: 'trim spaces around fields (default false)' },
    maxBytes: { type: 'integer', minimum: 1, description: 'largest accepted document in bytes' },
    maxRows: { type: 'integer', minimum: 1, description: 'most rows in one document (default 1000000)' },
    recordDelimiter: { enum: ['unix', 'windows'], description: 'encode: line ending (default unix)' },
  },
} as const;

// loaded on the first CSV document, not with every engine
const csvSync = lazy<typeof import('csv-parse/sync')>('csv-parse/sync');
const csvStringify = lazy<typeof import('csv-stringify/sync')>('csv-stringify/sync');

/** csv-parse options from ours; shared with the streaming reader so both read alike. */
export function csvParseOptions(o: CsvOptions, maxRows?: number): ParseOptions {
  return {
    columns: o.columns ? [...o.columns] : o.header ?? true,
    delimiter: o.delimiter ?? ',',
    quote: o.quote ?? '"',
    skip_empty_lines: o.skipEmptyLines ?? true,
    relax_column_count: o.relaxColumnCount ?? false,
    trim: o.trim ?? false,
    bom: true,
    cast: false,
    ...(maxRows ? { to: maxRows + 1 } : {}),
  };
}

/** A csv-parse error as a coded error with the line it names. */
export function csvError(e: unknown, codec = 'csv'): BusbarError {
  const err = e as { message?: string; code?: string; lines?: number };
  return new BusbarError('PARSE', `${codec}: ${err.message ?? String(e)}`, {
    cause: e,
    details: { codec, ...(err.code ? { reason: err.code } : {}), ...(err.lines !== undefined ? { line: err.lines } : {}) },
  });
}

export function createCsvCodec(options: CsvOptions = {}): Codec {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxRows = options.maxRows ?? 1_000_000;
  const parseOpts = csvParseOptions(options, maxRows);
  const header = options.columns !== undefined || (options.header ?? true);
  const stringifyOpts: StringifyOptions = {
    delimiter: options.delimiter ?? ',',
    quote: options.quote ?? '"',
    record_delimiter: options.recordDelimiter ?? 'unix',
    ...(options.columns ? { columns: [...options.columns] } : {}),
    header,
    cast: { boolean: (v) => String(v), date: (v) => v.toISOString() },
  };
  return {
    name: 'csv',
    contentTypes: ['text/csv'],
    optionsSchema: csvOptionsSchema,
    configure: (o) => createCsvCodec({ ...options, ...(o as CsvOptions) }),
    decode(input) {
      const text = decodeInput(input, 'csv', maxBytes);
      let rows: unknown[];
      try {
        rows = csvSync().parse(text, parseOpts) as unknown[];
      } catch (e) {
        throw csvError(e);
      }
      if (rows.length > maxRows) {
        throw new BusbarError('INPUT_TOO_LARGE', `csv: more than ${maxRows} rows (maxRows); stream large files with csvRows()`, { details: { codec: 'csv', maxRows } });
      }
      return rows;
    },
    encode(value) {
      if (!Array.isArray(value)) {
        throw new BusbarError('ENCODE', `csv: expected an array of rows, got ${value === null ? 'null' : typeof value}`, { details: { codec: 'csv' } });
      }
      const bad = value.findIndex((r) => !Array.isArray(r) && !isPlainObject(r));
      if (bad !== -1) throw new BusbarError('ENCODE', `csv: row ${bad} is neither an object nor an array`, { details: { codec: 'csv', row: bad } });
      try {
        // arrays of arrays have no names for a header row unless `columns` gives them
        const opts = header && options.columns === undefined && !isPlainObject(value[0]) ? { ...stringifyOpts, header: false } : stringifyOpts;
        return csvStringify().stringify(value as unknown[][], opts);
      } catch (e) {
        throw new BusbarError('ENCODE', `csv: ${(e as Error).message}`, { cause: e, details: { codec: 'csv' } });
      }
    },
  };
}

export const csvCodec: Codec = createCsvCodec();
