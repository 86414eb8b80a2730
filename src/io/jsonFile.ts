// Small JSON files the tools write for themselves (manifests, fingerprints), read back strictly.
import { z } from 'zod';
import { UserError } from '../errors';
import { hasEntry, readJsonText } from './readBounded';

/** The file's content validated by `schema`, or null when there is no such file; a UserError naming the file otherwise. */
export function readJsonFile<T extends z.ZodTypeAny>(file: string, schema: T, what: string): z.infer<T> | null {
  if (!hasEntry(file)) return null;
  const raw = readJsonText(file, `a ${what}`);
  const r = schema.safeParse(raw);
  if (!r.success) throw new UserError(`${file}: not a valid ${what} (at '${r.error.issues[0].path.join('.')}': ${r.error.issues[0].message})`);
  return r.data;
}
