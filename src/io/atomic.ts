import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { describeFsError, isFsError } from './fsErrors';

const TEMP_SUFFIX = '.tmp';
/** `.<name>.<pid>-<n>.tmp`: hidden, recognisable, and telling which process left it. */
const TEMP_NAME = /^\..+\.(\d+)-\d+\.tmp$/;
let tempCounter = 0;

/** A temp name in the same folder, so the final rename never crosses file systems. */
function tempNameFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${tempCounter++}${TEMP_SUFFIX}`);
}

/** Every byte, however many calls it takes: write(2) may write less than asked when the disk fills up. */
function writeAll(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const n = fs.writeSync(fd, bytes, offset, bytes.byteLength - offset);
    if (n <= 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
    offset += n;
  }
}

/** Makes a rename durable: the new directory entry reaches the disk. Some file systems cannot sync a folder. */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (err) {
    if (!['EINVAL', 'EISDIR', 'EBADF', 'EPERM', 'ENOTSUP'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** A file-system failure while producing `file`, as a one-line error naming it; anything else unchanged. */
function asWriteError(err: unknown, file: string): unknown {
  if (!isFsError(err)) return err;
  // A folder that cannot be created names itself; a failed write names the file asked for, not its temp name.
  return new UserError(err.syscall === 'mkdir' ? describeFsError(err) : describeFsError(err, file, 'writing'));
}

/**
 * Writes a whole file or nothing: readers (and a run killed half-way) never see a partial file.
 * Every byte is written and flushed to disk before the rename, and the rename itself is flushed, so
 * neither a full disk nor a power cut can leave a short or empty file under the final name. On
 * failure the temp file is removed and the error names `file` and the cause in one line.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  const dir = path.dirname(file);
  const tmp = tempNameFor(file);
  let fd: number | undefined;
  try {
    fs.mkdirSync(dir, { recursive: true });
    fd = fs.openSync(tmp, 'w');
    writeAll(fd, bytes);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
    fsyncDir(dir);
  } catch (err) {
    try {
      if (fd !== undefined) fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
    } catch {
      // the original failure is the one to report
    }
    throw asWriteError(err, file);
  }
}

/**
 * A plain write, for the many files of a new folder that a final atomic write commits (a dataset's
 * images before its dataset.json): no fsync per file, but a failure names the file in one line.
 */
export function writeFileInNewFolder(file: string, data: string | Uint8Array): void {
  try {
    fs.writeFileSync(file, data);
  } catch (err) {
    throw asWriteError(err, file);
  }
}

/** Same contract as writeFileAtomic for content produced asynchronously (e.g. an encoded image). */
export async function writeFileAtomicAsync(file: string, produce: () => Promise<Uint8Array>): Promise<void> {
  writeFileAtomic(file, await produce());
}

/** Whether process `pid` runs on this machine (one we may not signal runs too). */
export function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files a killed writer left in `dir` (names this module makes, from processes that
 * no longer run). Returns the names removed.
 */
export function removeStaleTempFiles(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m || isRunning(Number(m[1]))) continue;
    fs.rmSync(path.join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}
