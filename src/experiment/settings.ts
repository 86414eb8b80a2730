// What an experiment folder holds and where: OUT/experiment.json records the settings every run shares
// (data, selections, size, encoder, optimiser, …) and, per trained (budget, seed) combination, its
// folder and the method options that depend on the budget (AVAP's step-2 steps). A rerun must repeat
// the shared settings; a budget or seed it adds is recorded and trained beside the others.
//
// Folders: an experiment made with one budget and one seed keeps its runs at OUT/runs and OUT/eval;
// one made with several, and every combination added later, at OUT/steps-<n>/seed-<s>/runs and /eval.
// experiment.json says which, so a rerun finds every finished run wherever it was put.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CaseSelection } from '../data/dataset';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { pathInside } from '../io/confine';
import { methodDescriptors } from '../methods/registry';
import { ExperimentProfile } from './profiles';
import { readJsonText } from '../io/readBounded';


/** The settings every run of the experiment shares; the profile's method options sit beside them (e.g. preferenceLr). */
export type SharedSettings = Omit<ExperimentProfile, 'methodOptions' | 'steps'> & {
  data: string;
  train: CaseSelection;
  test: CaseSelection;
  pretrained: string | null;
} & Record<string, unknown>;

/** One (budget, seed) combination: where its runs are and the method options that scale with its budget. */
export interface Combination {
  steps: number;
  seed: number;
  /** Relative to OUT: '.' or 'steps-<n>/seed-<s>'. */
  folder: string;
  /** Steps of the methods' further stages at this budget (e.g. preferenceSteps). */
  stageOptions: Record<string, unknown>;
}

/** The settings of one combination's runs, as one flat record (what the runs are trained with). */
export type ExperimentSettings = SharedSettings & { steps: number; seed: number };

const SETTINGS_FILE = 'experiment.json';

/** Option keys that are a further stage's steps (scaled with the main budget). */
function stageStepKeys(): Set<string> {
  return new Set(methodDescriptors().flatMap((d) => (d.options ?? []).filter((o) => o.stageSteps).map((o) => o.key)));
}

/** The profile's method options that do not scale with the budget. */
export function sharedMethodOptions(profile: ExperimentProfile): Record<string, unknown> {
  const scaled = stageStepKeys();
  return Object.fromEntries(Object.entries(profile.methodOptions).filter(([key]) => !scaled.has(key)));
}

/** The steps of the methods' further stages at budget `steps`: the profile's ratio to its main stage. */
export function stageOptionsAt(profile: ExperimentProfile, steps: number): Record<string, unknown> {
  const scaled = stageStepKeys();
  return Object.fromEntries(Object.entries(profile.methodOptions).filter(([key]) => scaled.has(key))
    .map(([key, value]) => [key, Math.max(1, Math.round((steps * (value as number)) / profile.steps))]));
}

export function combinationSettings(shared: SharedSettings, c: Combination): ExperimentSettings {
  return { ...shared, steps: c.steps, seed: c.seed, ...c.stageOptions };
}

/** A folder of a combination's: `folder` is read back from experiment.json, which may have been edited, so it is held inside OUT. */
export function combinationDir(out: string, c: Combination, ...parts: string[]): string {
  return pathInside('--out', out, c.folder, ...parts);
}

/**
 * Reads OUT/experiment.json (or starts it), refuses shared settings that differ from it, records the
 * requested combinations not yet in it, and returns the requested ones with their folders, in the
 * order asked (budgets, then seeds).
 */
export function recordCombinations(out: string, shared: SharedSettings, requested: { steps: number; seed: number; stageOptions: Record<string, unknown> }[]): Combination[] {
  const file = path.join(out, SETTINGS_FILE);
  const previous = fs.existsSync(file) ? readRecord(file) : null;
  const known: Combination[] = previous?.combinations ?? [];
  if (previous) {
    const differing = Object.entries(shared).filter(([k, v]) => JSON.stringify(previous.shared[k] ?? null) !== JSON.stringify(v ?? null)).map(([k]) => k);
    if (differing.length > 0) throw new UserError(`--out: ${out} holds an experiment with other settings (${differing.join(', ')}); choose another --out or repeat its settings`);
  }
  const single = previous === null && requested.length === 1;
  const added: Combination[] = [];
  const combinations = requested.map((r) => {
    const existing = known.find((c) => c.steps === r.steps && c.seed === r.seed);
    if (existing) {
      const differing = Object.keys(r.stageOptions).filter((k) => JSON.stringify(existing.stageOptions[k] ?? null) !== JSON.stringify(r.stageOptions[k]));
      if (differing.length > 0) throw new UserError(`--out: ${out} holds runs of ${r.steps} steps, seed ${r.seed} with other settings (${differing.join(', ')}); choose another --out or repeat its settings`);
      return existing;
    }
    const c: Combination = { ...r, folder: single ? '.' : `steps-${r.steps}/seed-${r.seed}` };
    added.push(c);
    return c;
  });
  if (previous === null || added.length > 0) {
    fs.mkdirSync(out, { recursive: true });
    const record = { ...shared, combinations: [...known, ...added].map((c) => ({ steps: c.steps, seed: c.seed, folder: c.folder, ...c.stageOptions })) };
    writeFileAtomic(file, JSON.stringify(record, null, 2) + '\n');
  }
  return combinations;
}

/**
 * experiment.json as shared settings and combinations. A file written before budgets and seeds could
 * be lists holds one flat record: its steps, seed and stage steps are its one combination, at OUT.
 */
function readRecord(file: string): { shared: Record<string, unknown>; combinations: Combination[] } {
  const record = readJsonText(file, 'an experiment record') as Record<string, unknown>;
  const scaled = stageStepKeys();
  const split = (r: Record<string, unknown>, folder: string): Combination => ({
    steps: r.steps as number, seed: r.seed as number, folder: typeof r.folder === 'string' ? r.folder : folder,
    stageOptions: Object.fromEntries(Object.entries(r).filter(([k]) => scaled.has(k))),
  });
  if (Array.isArray(record.combinations)) {
    const { combinations, ...shared } = record;
    return { shared, combinations: (combinations as Record<string, unknown>[]).map((c) => split(c, '.')) };
  }
  const shared = Object.fromEntries(Object.entries(record).filter(([k]) => k !== 'steps' && k !== 'seed' && !scaled.has(k)));
  return { shared, combinations: [split(record, '.')] };
}
