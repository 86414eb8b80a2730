// One `avap train` at a time in a run folder. Two processes in one folder would both pass the "already
// holds a run" check and then write each other's checkpoints and log; the lock file, created with
// O_EXCL (only one creator can succeed), says who trains there. A lock left by a process that was
// killed (kill -9, a power cut) is recognised as stale when its process no longer runs on this host.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../errors';
import { isRunning } from '../io/atomic';
import { checkOutputFolder } from '../io/outputFolder';

export const LOCK_FILE = 'train.lock';

interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

function readOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    return Number.isInteger(o.pid) && typeof o.host === 'string' ? { pid: o.pid!, host: o.host, since: String(o.since ?? '?') } : null;
  } catch {
    return null;
  }
}

/**
 * The lock's text and owner; a lock just created by another process may not hold its owner yet, so a
 * few short waits first. Null when it is gone (its owner just finished).
 */
function readLock(file: string): { text: string; owner: LockOwner | null } | null {
  for (let attempt = 0; ; attempt++) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    const owner = readOwner(text);
    if (owner || attempt === 5) return { text, owner };
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

/**
 * Creates the lock or throws EEXIST. Written in place (not linked from a temp file): one small write
 * leaves only a moment in which a kill could leave an empty lock, which takeLock reports, naming the
 * file to remove.
 */
function create(file: string): void {
  const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | (fs.constants.O_NOFOLLOW ?? 0), 0o644);
  try {
    fs.writeSync(fd, `${JSON.stringify({ pid: process.pid, host: os.hostname(), since: new Date().toISOString() })}\n`);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Takes the lock of run folder `dir` (creating the folder when needed) or throws one line saying who
 * holds it. A stale lock of this host is replaced; `onStale` hears why. Returns the release function,
 * which also removes the folders taking the lock created, when nothing else was left in them.
 */
export function lockRunFolder(dir: string, onStale: (text: string) => void): () => void {
  checkOutputFolder('--out', dir);
  const created = fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  // Only folders that are empty again: a run that started keeps its files, and so does another process's lock.
  const removeCreatedFolders = () => {
    if (created === undefined) return;
    for (let d = path.resolve(dir); ; d = path.dirname(d)) {
      try {
        fs.rmdirSync(d);
      } catch {
        break;
      }
      if (d === path.resolve(created)) break;
    }
  };
  try {
    takeLock(file, onStale);
  } catch (err) {
    removeCreatedFolders();
    throw err;
  }
  return () => {
    fs.rmSync(file, { force: true });
    removeCreatedFolders();
  };
}

function takeLock(file: string, onStale: (text: string) => void): void {
  let lock: ReturnType<typeof readLock> = null;
  for (let attempt = 0; lock === null; attempt++) {
    try {
      create(file);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt === 3) throw err;
    }
    lock = readLock(file);
  }
  const dir = path.dirname(file);
  const { text, owner } = lock;
  if (!owner) {
    throw new UserError(`--out: ${dir} is locked by ${file}, which does not say who holds it; if no avap train runs in ${dir}, remove that file`);
  }
  const who = `process ${owner.pid} on ${owner.host === os.hostname() ? 'this host' : `host ${owner.host}`} (since ${owner.since})`;
  if (owner.host !== os.hostname()) {
    throw new UserError(`--out: ${dir} is locked by ${who}; this host cannot tell whether it still runs: if it does not, remove ${file}`);
  }
  if (isRunning(owner.pid)) {
    throw new UserError(`--out: ${dir} is in use: avap train ${who} trains there (${file}); wait for it to finish or stop it`);
  }
  // Stale: its process is gone. Remove it only if it is still the lock we read, then take it as anyone would.
  let current: string | null = null;
  try {
    current = fs.readFileSync(file, 'utf8');
  } catch {
    // already removed by another process that found it stale
  }
  if (current === text) fs.rmSync(file, { force: true });
  try {
    create(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    throw new UserError(`--out: ${dir} is in use: another avap train took its lock (${file}) at the same moment`);
  }
  onStale(`removed a stale lock: ${file} was left by ${who}, which no longer runs (killed or crashed)`);
}
