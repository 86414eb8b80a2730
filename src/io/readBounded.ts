// The one way the program reads a file the user named or handed over (weights, checkpoints, ONNX
// models, images, JSON, CSV): a regular file, opened without blocking, never more bytes than a bound
// that fits what the file claims to be. A device (/dev/zero), a named pipe or a folder is refused in
// one line before a byte is read, so no input can read forever or take more memory than its bound.
import * as fs from 'node:fs';
import { UserError } from '../errors';
import { describeFsError } from './fsErrors';

export const MiB = 1024 * 1024;

/**
 * JSON, CSV and log files: far above any real one (a dataset.json listing three million cases is
 * about 50 MiB) and below V8's longest string (2^29 − 24 characters, about 512 MiB), past which
 * parsing would fail anyway.
 */
export const TEXT_LIMIT = 256 * MiB;

/** What a file is when it is not a regular file, for the message that refuses it. */
function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** One line for a failed open or stat, naming the file (a symbolic link loop included). */
function openProblem(file: string, err: unknown): UserError {
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'ENOENT') return new UserError(`${file}: file not found`);
  if (e.code === 'ELOOP') return new UserError(`${file}: too many levels of symbolic links (a link that leads back to itself?)`);
  if (typeof e.code === 'string') return new UserError(describeFsError(e, file, 'reading'));
  return new UserError(`${file}: cannot read (${(err as Error).message.split('\n')[0]})`);
}

/**
 * Opens `file` for reading and returns its descriptor and size; a UserError unless it is a regular
 * file. stat first, so that a device is never opened (opening some has effects of its own); then
 * O_NONBLOCK, so that a named pipe put in its place meanwhile does not make open wait for a writer,
 * and fstat on the open descriptor, which judges the very file that will be read.
 */
export function openRegular(file: string): { fd: number; size: number } {
  let fd: number;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new UserError(`${file}: is ${kindOf(st)}, not a regular file`);
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw err instanceof UserError ? err : openProblem(file, err);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new UserError(`${file}: is ${kindOf(st)}, not a regular file`);
    return { fd, size: st.size };
  } catch (err) {
    fs.closeSync(fd);
    throw err instanceof UserError ? err : openProblem(file, err);
  }
}

/**
 * Whether `file` has a directory entry, whatever it is: unlike fs.existsSync, a symbolic link that
 * loops or dangles counts, so that its reader reports it instead of the caller taking it for absent.
 */
export function hasEntry(file: string): boolean {
  try {
    return fs.lstatSync(file, { throwIfNoEntry: false }) !== undefined;
  } catch (err) {
    // Under a file there is nothing; a parent that loops or may not be read, its reader reports.
    return (err as NodeJS.ErrnoException).code !== 'ENOTDIR';
  }
}

/** Throws unless `file` is a regular file of at most `limit` bytes (for libraries that open it themselves). */
export function checkRegularFile(file: string, limit: number, what: string, raise?: string): number {
  const { fd, size } = openRegular(file);
  fs.closeSync(fd);
  checkSize(file, size, limit, what, raise);
  return size;
}

function checkSize(file: string, size: number, limit: number, what: string, raise?: string): void {
  if (size > limit) throw new UserError(`${file}: ${formatBytes(size)} is over the ${formatBytes(limit)} limit for ${what}${raise ? ` (${raise})` : ''}`);
}

/** Reads `length` bytes at `position` of an open file, fewer only where the file ends first. */
export function readAt(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/**
 * The whole of `file`, a regular file of at most `limit` bytes (`what` names the kind of file in the
 * message; `raise` says how to allow more, where the user can). Bytes appended while it is read are
 * not read: the size is fixed when it is opened.
 */
export function readBounded(file: string, limit: number, what: string, raise?: string): Buffer {
  const { fd, size } = openRegular(file);
  try {
    checkSize(file, size, limit, what, raise);
    return readAt(fd, size, 0);
  } catch (err) {
    throw err instanceof UserError ? err : openProblem(file, err);
  } finally {
    fs.closeSync(fd);
  }
}

/** A text file (JSON, CSV, a log) as a string: strict UTF-8, so a damaged byte is reported rather than replaced by U+FFFD. */
export function readTextFile(file: string, what: string, limit = TEXT_LIMIT): string {
  const bytes = readBounded(file, limit, what);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new UserError(`${file}: not valid UTF-8 text (byte ${firstInvalidUtf8(bytes)} is not part of a UTF-8 character)`);
  }
}

/** A JSON file, parsed; `what` names it in messages ('dataset description', 'run config'). */
export function readJsonText(file: string, what: string): unknown {
  const text = readTextFile(file, what);
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: invalid JSON (${(err as Error).message.split('\n')[0]})`);
  }
}

/** The offset of the first byte that does not decode, for a message that lets the user find it. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  // A prefix decodes in streaming mode unless it holds a bad byte (one that merely cuts a character
  // short is allowed), so the longest prefix that decodes ends just before the first bad byte.
  const decodes = (n: number): boolean => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, n), { stream: true });
      return true;
    } catch {
      return false;
    }
  };
  if (decodes(bytes.length)) return bytes.length; // the last character is cut short
  let lo = 0;
  let hi = bytes.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1;
    if (decodes(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** A reader's refusal without its leading file name, for reports that list problems by file. */
export function problemText(err: UserError, file: string): string {
  return err.message.startsWith(`${file}: `) ? err.message.slice(file.length + 2) : err.message;
}

export function formatBytes(n: number): string {
  if (n >= 1024 * MiB) return `${+(n / (1024 * MiB)).toFixed(1)} GiB`;
  if (n >= MiB) return `${+(n / MiB).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} bytes`;
}
