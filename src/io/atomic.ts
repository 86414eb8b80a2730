import * as fs from 'node:fs';
import * as path from 'node:path';

/** A temp name in the same folder, so the final rename never crosses file systems. */
function tempNameFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
}

/**
 * Writes a whole file or nothing: readers (and a run killed half-way) never see a partial file.
 * The data is flushed to disk before the rename so a power cut cannot leave an empty file either.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = tempNameFor(file);
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

/** Same contract as writeFileAtomic for content produced asynchronously (e.g. an encoded image). */
export async function writeFileAtomicAsync(file: string, produce: () => Promise<Uint8Array>): Promise<void> {
  writeFileAtomic(file, await produce());
}
