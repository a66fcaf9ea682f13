import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

/**
 * Call `onChange` when `file` changes (debounced). Watches the folder, not the file: editors
 * that save by writing a new file and renaming it over the old one would end a file watch.
 * Returns the function that stops watching.
 */
export function watchFile(file: string, onChange: () => Promise<void>, debounceMs = 150): () => void {
  const abs = resolve(file);
  const name = basename(abs);
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  const fire = (): void => {
    timer = undefined;
    if (running) {
      // a change while a reload runs: reload once more when it is done
      again = true;
      return;
    }
    running = onChange()
      .catch(() => undefined)
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          fire();
        }
      });
  };
  const w: FSWatcher = watch(dirname(abs), (_event, changed) => {
    if (changed !== null && changed !== name) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(fire, debounceMs);
  });
  w.on('error', () => undefined);
  return () => {
    if (timer) clearTimeout(timer);
    w.close();
  };
}
