import { rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { sidecarText } from '../../lib/tracing/context.js';

/**
 * Where a file's trace context is kept: a hidden `.<name>.trace` JSON file beside it
 * (`{"traceparent":"00-...","tracestate":"..."}`). A file has no headers, and a sidecar works
 * for every format (a header line would change the body); hidden files are never consumed,
 * so readers that know nothing of tracing are not disturbed.
 */
export function sidecarOf(file: string): string {
  return join(dirname(file), `.${basename(file)}.trace`);
}

/** Write the sidecar of `file` (before the file itself appears, so a consumer always finds it). */
export async function writeSidecar(file: string, trace: { traceparent: string; tracestate?: string }): Promise<string> {
  const side = sidecarOf(file);
  const tmp = `${side}.tmp`;
  await writeFile(tmp, sidecarText(trace));
  await rename(tmp, side);
  return side;
}

export async function removeSidecar(side: string): Promise<void> {
  await unlink(side).catch(() => undefined);
}
