/**
 * dataset.json of the native layout: the zod schema (what the code enforces) and the resolution of
 * structure nesting rules into value sets. schema/dataset.schema.json is the same contract as a JSON
 * Schema for editors and other tools; test/data-schema.test.ts keeps the two in step.
 */
import { z } from 'zod';
import { MAX_STRUCTURES, Structure } from './dataset';
import { describeValues } from './labels';
import { duplicates } from '../util/duplicates';
import { MAX_NAME_LENGTH, SAFE_NAME } from '../io/names';

/** Names that become part of file names (`labels/<case>_<annotator>.png`) must be file-name safe (src/io/names.ts). */
const safeName = (what: string) => z.string()
  .regex(SAFE_NAME, `${what} must start with a letter or digit and use only letters, digits, '.', '_' and '-'`)
  .max(MAX_NAME_LENGTH, `${what} must have at most ${MAX_NAME_LENGTH} characters`);

/** A label-map value: 8- or 16-bit. */
const labelValue = z.number().int().min(0).max(65535);

export const structureSchema = z.object({
  name: safeName('a structure name'),
  /** Values that mark this structure itself (not counting nested structures). */
  values: z.array(labelValue).default([]),
  /** Nesting rule: this structure also covers the pixels of these structures (e.g. disc contains cup). */
  contains: z.array(z.string()).optional(),
}).strict();

export const datasetJsonSchema = z.object({
  $schema: z.string().optional(),
  name: z.string().min(1),
  description: z.string().optional(),
  annotators: z.array(safeName('an annotator name')).min(1),
  structures: z.array(structureSchema).min(1).max(MAX_STRUCTURES),
  /** Values meaning "no structure"; default [0]. */
  background: z.array(labelValue).min(1).default([0]),
  /** Channels of the images as the models see them: 1 (greyscale) or 3 (RGB). */
  channels: z.union([z.literal(1), z.literal(3)], { errorMap: () => ({ message: 'must be 1 (greyscale) or 3 (RGB)' }) }),
  /**
   * Each channel's imaging modality, e.g. ["CT"]: 'CT' (any case) is normalised with dataset-wide
   * statistics, anything else per image (see docs/data.md). Default: per image for every channel.
   */
  modality: z.array(z.string().min(1)).min(1).optional(),
  /** Named lists of case ids, e.g. train/test. */
  splits: z.record(z.array(z.string())).optional(),
  /** Named lists of case ids for where cases come from (e.g. RIGA's BinRushed/MESSIDOR/Magrabia). */
  subsets: z.record(z.array(z.string())).optional(),
}).strict().superRefine((d, ctx) => {
  if (d.modality && d.modality.length !== d.channels) ctx.addIssue({ code: 'custom', path: ['modality'], message: `lists ${d.modality.length} modalities for ${d.channels} channel(s)` });
  for (const a of duplicates(d.annotators)) ctx.addIssue({ code: 'custom', path: ['annotators'], message: `annotator '${a}' is listed twice` });
  const names = d.structures.map((s) => s.name);
  for (const s of duplicates(names)) ctx.addIssue({ code: 'custom', path: ['structures'], message: `structure '${s}' is listed twice` });
  const owner = new Map<number, string>();
  for (const v of d.background) owner.set(v, 'background');
  d.structures.forEach((s, i) => {
    if (s.values.length === 0 && (s.contains ?? []).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['structures', i], message: `structure '${s.name}' has neither values nor contains` });
    }
    for (const v of s.values) {
      const prev = owner.get(v);
      if (prev !== undefined && prev !== s.name) ctx.addIssue({ code: 'custom', path: ['structures', i, 'values'], message: `value ${v} is already used by ${prev}` });
      owner.set(v, s.name);
    }
    for (const c of s.contains ?? []) {
      if (!names.includes(c)) ctx.addIssue({ code: 'custom', path: ['structures', i, 'contains'], message: `unknown structure '${c}' (structures: ${names.join(', ')})` });
      if (c === s.name) ctx.addIssue({ code: 'custom', path: ['structures', i, 'contains'], message: `structure '${s.name}' cannot contain itself` });
    }
  });
  const cycle = findCycle(d.structures);
  if (cycle) ctx.addIssue({ code: 'custom', path: ['structures'], message: `nesting rules form a cycle: ${cycle.join(' ⊃ ')}` });
});

export type DatasetJson = z.infer<typeof datasetJsonSchema>;
export type DatasetJsonInput = z.input<typeof datasetJsonSchema>;

function findCycle(structures: { name: string; contains?: string[] }[]): string[] | null {
  const graph = new Map(structures.map((s) => [s.name, (s.contains ?? []).filter((c) => c !== s.name)]));
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const c of graph.get(n) ?? []) {
      const found = visit(c);
      if (found) return found;
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of graph.keys()) {
    const found = visit(n);
    if (found) return found;
  }
  return null;
}

/**
 * Parses dataset.json text. Returns the value, or one line per issue ("structures[1].values: ...").
 */
export function parseDatasetJson(text: string): { ok: true; value: DatasetJson } | { ok: false; errors: string[] } {
  let raw: unknown;
  try {
    // Editors on Windows often save UTF-8 with a byte-order mark; it is not part of the JSON.
    raw = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    return { ok: false, errors: [`invalid JSON (${(err as Error).message.replace(/\s*\n\s*/g, ' ')})`] };
  }
  const parsed = datasetJsonSchema.safeParse(raw);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, errors: parsed.error.issues.map((i) => `${formatPath(i.path)}${i.message}`) };
}

function formatPath(p: (string | number)[]): string {
  if (p.length === 0) return '';
  let s = '';
  for (const part of p) s += typeof part === 'number' ? `[${part}]` : s === '' ? part : `.${part}`;
  return `${s}: `;
}

/** Structures with nesting resolved: each one's values include those of the structures it contains. */
export function resolveStructures(d: Pick<DatasetJson, 'structures'>): Structure[] {
  const byName = new Map(d.structures.map((s) => [s.name, s]));
  const collect = (name: string, seen: Set<string>): number[] => {
    if (seen.has(name)) return [];
    seen.add(name);
    const s = byName.get(name);
    if (!s) return [];
    return [...s.values, ...(s.contains ?? []).flatMap((c) => collect(c, seen))];
  };
  return d.structures.map((s) => {
    const values = [...new Set(collect(s.name, new Set()))].sort((a, b) => a - b);
    const rule = `${values.length === 1 ? 'value' : 'values'} ${describeValues(values)}${s.contains && s.contains.length > 0 ? `; contains ${s.contains.join(', ')}` : ''}`;
    return { name: s.name, values, rule };
  });
}
