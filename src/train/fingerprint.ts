// RUN/fingerprint.json: what a run was started with — its effective settings and a fingerprint of
// its training data (cases, annotators, structures, and each file's size and sampled content) — so
// that `--resume` can refuse other data or other settings instead of silently mixing them.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../io/atomic';
import { readJsonFile } from '../io/jsonFile';
import type { CaseRecord, Dataset } from '../data/dataset';
import { resolveOptions } from '../methods/descriptor';
import { resolveMethod } from '../methods/registry';
import type { RunRequest } from './setup';
import { resultShapingSettings } from './settings';
import { openRegular } from '../io/readBounded';

export const FINGERPRINT_FILE = 'fingerprint.json';

/** A run's settings by the flag that sets each: { '--seed': 0, '--steps': 2000, '--preference-steps': 1000, … }. */
export type RunSettings = Record<string, unknown>;

/** Size and a hash of the first and last 64 KiB: cheap on any dataset, and changed by any re-encoding. */
const SAMPLE_BYTES = 64 * 1024;
const stampSchema = z.object({ size: z.number(), sample: z.string() });
type FileStamp = z.infer<typeof stampSchema>;

const fingerprintSchema = z.object({
  version: z.literal(1),
  settings: z.record(z.unknown()),
  data: z.object({
    annotators: z.array(z.string()),
    structures: z.array(z.object({ name: z.string(), values: z.array(z.number()) })),
    channels: z.number(),
    cases: z.array(z.object({ id: z.string(), image: stampSchema, labels: z.array(stampSchema.nullable()) })),
  }),
});
export type RunFingerprint = z.infer<typeof fingerprintSchema>;
type DataFingerprint = RunFingerprint['data'];

function stamp(file: string): FileStamp {
  const { fd, size } = openRegular(file);
  try {
    const hash = createHash('sha256');
    const buf = Buffer.alloc(Math.min(size, SAMPLE_BYTES));
    hash.update(buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)));
    if (size > SAMPLE_BYTES) hash.update(buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, Math.max(SAMPLE_BYTES, size - SAMPLE_BYTES))));
    return { size, sample: hash.digest('hex').slice(0, 16) };
  } finally {
    fs.closeSync(fd);
  }
}

/** A missing file stamps as size -1: the reader that meets it reports it properly. */
function stampOrMissing(file: string): FileStamp {
  try {
    return stamp(file);
  } catch {
    return { size: -1, sample: '' };
  }
}

export function dataFingerprint(ds: Dataset, cases: CaseRecord[]): DataFingerprint {
  return {
    annotators: ds.annotators,
    structures: ds.structures.map((s) => ({ name: s.name, values: s.values })),
    channels: ds.channels,
    cases: cases.map((c) => ({ id: c.id, image: stampOrMissing(c.image), labels: c.labels.map((l) => (l === null ? null : stampOrMissing(l))) })),
  };
}

/**
 * The settings of `opts` that shape the result, the method's options with their defaults applied
 * (paths resolved, so a moved working directory compares equal).
 */
export function settingsOf(opts: RunRequest, annotators?: number): RunSettings {
  const out: RunSettings = {};
  for (const { key, flag } of resultShapingSettings()) {
    const raw = (opts as unknown as Record<string, unknown>)[key];
    const value = key === 'pretrained' && opts.pretrained ? path.resolve(opts.pretrained) : raw;
    if (value !== undefined && !(Array.isArray(value) && value.length === 0)) out[flag] = value;
  }
  const { descriptor } = resolveMethod(opts.method, annotators);
  const options = resolveOptions(descriptor, opts.methodOptions);
  for (const o of descriptor.options ?? []) if (options[o.key] !== undefined) out[o.flag] = options[o.key];
  return out;
}

export function runFingerprint(opts: RunRequest, ds: Dataset, cases: CaseRecord[]): RunFingerprint {
  return { version: 1, settings: settingsOf(opts, ds.annotators.length), data: dataFingerprint(ds, cases) };
}

export function writeFingerprint(runDir: string, fingerprint: RunFingerprint): void {
  writeFileAtomic(path.join(runDir, FINGERPRINT_FILE), JSON.stringify(fingerprint) + '\n');
}

/** The stored fingerprint, or null for a run started before runs had one. */
export function readFingerprint(runDir: string): RunFingerprint | null {
  return readJsonFile(path.join(runDir, FINGERPRINT_FILE), fingerprintSchema, 'run fingerprint');
}

/** `--seed 3`, `--no-augment`, `--subset a,b`: a setting as the flag that would give it. */
export function asFlag(flag: string, value: unknown): string {
  if (flag === '--augment') return value ? '--augment' : '--no-augment';
  return `${flag} ${Array.isArray(value) ? value.join(',') : String(value)}`;
}

const list = (xs: string[]) => (xs.length > 6 ? `${xs.slice(0, 6).join(', ')}, …` : xs.join(', '));

/** The first way the data now differ from the run's, as a phrase; null when they are the same. */
export function dataDifference(run: DataFingerprint, now: DataFingerprint): string | null {
  if (JSON.stringify(run.annotators) !== JSON.stringify(now.annotators)) {
    return `has annotators ${list(now.annotators)} (M = ${now.annotators.length}); the run was trained with ${list(run.annotators)} (M = ${run.annotators.length})`;
  }
  const names = (d: DataFingerprint) => d.structures.map((s) => s.name).join(', ');
  if (names(run) !== names(now)) return `has structures ${names(now)}; the run was trained with ${names(run)}`;
  const changed = run.structures.find((s, i) => JSON.stringify(s.values) !== JSON.stringify(now.structures[i].values));
  if (changed) return `defines structure '${changed.name}' by other label values than the run's dataset`;
  if (run.channels !== now.channels) return `has ${now.channels}-channel images; the run was trained on ${run.channels}-channel images`;
  const byId = new Map(now.cases.map((c) => [c.id, c]));
  const same = (a: FileStamp | null, b: FileStamp | null) => (a === null ? b === null : b !== null && a.size === b.size && a.sample === b.sample);
  for (const c of run.cases) {
    const n = byId.get(c.id);
    if (!n) return `has no case '${c.id}', which the run trains on`;
    if (!same(c.image, n.image)) return `holds another image for case '${c.id}' (${n.image.size} bytes; the run's had ${c.image.size})`;
    const k = c.labels.findIndex((l, m) => !same(l, n.labels[m] ?? null));
    if (k >= 0) {
      const who = run.annotators[k];
      const what = c.labels[k] === null ? 'a label map the run did not have' : n.labels[k] === null ? 'no label map, where the run had one' : 'another label map';
      return `holds ${what} for case '${c.id}', annotator ${who}`;
    }
  }
  return null;
}
