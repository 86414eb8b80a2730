// The folder a command writes into (--out): refused up front when it cannot be one, and left as it
// was found when the command fails, so a failed run never leaves a half-written output behind.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { describeFsError, isFsError } from './fsErrors';

/** A command that writes a whole new dataset (`writer`: synth, convert) starts from nothing or an empty folder. */
export function checkNewDatasetFolder(out: string, writer: string): void {
  const dir = path.resolve(out);
  if (fs.existsSync(dir) && (!fs.statSync(dir).isDirectory() || fs.readdirSync(dir).length > 0)) {
    throw new UserError(`${out}: already exists and is not an empty folder (${writer} writes a new dataset)`);
  }
}

/** Throws when `dir` is an existing file, or sits below one (`--out a.txt/run`). */
export function checkOutputFolder(flag: string, dir: string): void {
  let p = path.resolve(dir);
  for (;;) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(p);
    } catch {
      stat = undefined;
    }
    if (stat) {
      if (stat.isDirectory()) {
        checkWritable(p, path.resolve(dir));
        return;
      }
      throw new UserError(p === path.resolve(dir)
        ? `${flag}: ${dir} is an existing file, not a folder`
        : `${flag}: ${dir} cannot be created: ${p} is a file, not a folder`);
    }
    const parent = path.dirname(p);
    if (parent === p) return;
    p = parent;
  }
}

/** The folder that will hold `target` (itself or its nearest existing ancestor) must take writes. */
function checkWritable(existing: string, target: string): void {
  try {
    fs.accessSync(existing, fs.constants.W_OK);
  } catch (err) {
    if (!isFsError(err)) throw err;
    throw new UserError(describeFsError(err, target, existing === target ? 'writing into' : 'creating folder'));
  }
}

/** What of an output folder existed before a command, so that a failure can remove exactly what it added. */
export class OutputSnapshot {
  private constructor(
    readonly dir: string,
    /** The topmost folder the command will create (dir itself or an ancestor), or null when dir exists. */
    private readonly createdRoot: string | null,
    private readonly entries: Set<string>,
  ) {}

  static take(dir: string): OutputSnapshot {
    const abs = path.resolve(dir);
    if (fs.existsSync(abs)) return new OutputSnapshot(abs, null, new Set(fs.statSync(abs).isDirectory() ? fs.readdirSync(abs) : []));
    let root = abs;
    while (!fs.existsSync(path.dirname(root)) && path.dirname(root) !== root) root = path.dirname(root);
    return new OutputSnapshot(abs, root, new Set());
  }

  /** Removes what appeared since the snapshot: the folders it created, or the new entries of a folder that existed. */
  rollback(): void {
    try {
      if (this.createdRoot) {
        fs.rmSync(this.createdRoot, { recursive: true, force: true });
        return;
      }
      for (const name of fs.readdirSync(this.dir)) {
        if (!this.entries.has(name)) fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
      }
    } catch {
      // Cleaning up is best effort: the failure that brought us here is the one to report.
    }
  }
}

/**
 * Runs `work`, which writes into `dir`; if it throws, removes what it added (unless `keep()` says the
 * output is worth keeping, e.g. a run with a completed checkpoint to resume from) and rethrows.
 */
export async function withOutputRollback<T>(dir: string, work: () => Promise<T>, keep: () => boolean = () => false): Promise<T> {
  const snapshot = OutputSnapshot.take(dir);
  try {
    return await work();
  } catch (err) {
    if (!keep()) snapshot.rollback();
    throw err;
  }
}
