// Names that become parts of output paths (structure and annotator names in `<structure>_annotator<k>.png`,
// `labels/<case>_<annotator>.png`; case ids as folder names) follow one rule wherever they are read from:
// dataset.json, a run's config.json, checkpoint state, an exported model's metadata, a prediction
// manifest. A name read from a file someone edited by hand must not be able to steer a write elsewhere.
import { z } from 'zod';
import { UserError } from '../errors';

/** Structure and annotator names: a letter or digit first, then letters, digits, '.', '_' and '-'. */
export const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/** Long enough for any real name, short enough that `<name>_annotator<k>.png` stays well under 255 bytes. */
export const MAX_NAME_LENGTH = 100;

const SAFE_NAME_RULE = `start with a letter or digit, use only letters, digits, '.', '_' and '-', and have at most ${MAX_NAME_LENGTH} characters`;

/** Why `name` cannot be a structure or annotator name, or null when it can. */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return `${JSON.stringify(name) ?? String(name)} is not a string`;
  if (!SAFE_NAME.test(name) || name.length > MAX_NAME_LENGTH) return `${quoted(name)} is not a valid name (names must ${SAFE_NAME_RULE})`;
  return null;
}

/**
 * Case ids (a folder each under a prediction folder) and the files a checkpoint names: one file name,
 * not '', '.' or '..', no separator or NUL, at most 255 bytes.
 */
export function fileNameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return `${JSON.stringify(name) ?? String(name)} is not a string`;
  if (name === '' || name === '.' || name === '..' || /[/\\\0]/.test(name) || Buffer.byteLength(name) > 255) {
    return `${quoted(name)} cannot name a file or folder (it must be one file name: not '.' or '..', no '/', '\\' or NUL, at most 255 bytes)`;
  }
  return null;
}

/** A zod string checked by nameProblem, for schemas of files that carry names. */
export const safeNameSchema = z.string().superRefine((s, ctx) => {
  const problem = nameProblem(s);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** A zod string checked by fileNameProblem. */
export const fileNameSchema = z.string().superRefine((s, ctx) => {
  const problem = fileNameProblem(s);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/**
 * Throws one line naming `source` (the file) and `where` (the field) for the first bad or repeated
 * name: two structures of one name would write the same files.
 */
export function checkNames(source: string, where: string, names: readonly unknown[], problem: (n: unknown) => string | null = nameProblem): void {
  const seen = new Set<unknown>();
  names.forEach((n, i) => {
    const p = problem(n);
    if (p) throw new UserError(`${source}: ${where}[${i}]: ${p}`);
    if (seen.has(n)) throw new UserError(`${source}: ${where}[${i}]: ${quoted(String(n))} is listed twice`);
    seen.add(n);
  });
}

/** A name as it may appear in a one-line message: control characters escaped, very long ones shortened. */
function quoted(name: string): string {
  const shown = JSON.stringify(name.length > 60 ? `${name.slice(0, 60)}…` : name);
  return `'${shown.slice(1, -1)}'`;
}
