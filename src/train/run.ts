// A run folder: everything needed to rebuild, resume and use a trained model.
//   config.json          method config, input size/channels, data selection, optimiser settings, seed
//   normalization.json   the input normalisation computed on the training cases
//   model.safetensors    the selected weights so far (the model `predict` uses)
//   checkpoint/          the last completed round of steps: weights, optimiser state, state.json (for --resume)
//   log.jsonl            one JSON object per logged event (a resume is logged; the rounds it re-runs appear again)
//   summary.json         final validation scores and timings
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { hasEntry, readJsonText } from '../io/readBounded';
import { fileNameProblem, checkNames } from '../io/names';
import { realLocation } from '../io/paths';
import { checkStaysInside } from '../io/confine';
import { FINGERPRINT_FILE } from './fingerprint';
import { LOCK_FILE } from './lock';
import { settingSchema } from './settings';
import { Intensity, parseIntensity } from '../data/intensity';
import { Normalization, parseNormalization } from '../data/normalization';
import { MethodConfig } from '../methods/method';
import { parseMethodConfig } from '../methods/registry';
import { encoderNames } from '../models/encoders/registry';

/** config.json's version: a run folder of another version is refused in one line. */
export const RUN_CONFIG_VERSION = 2;

/** The settings it records are checked by the rules of their flags (the settings table, ./settings.ts). */
export const runConfigSchema = z.object({
  version: z.literal(RUN_CONFIG_VERSION),
  model: z.unknown(),
  input: z.object({ size: settingSchema('size'), channels: z.number().int().positive() }),
  data: z.object({
    root: z.string(),
    name: z.string(),
    selection: z.object({ split: settingSchema('split').optional(), subsets: settingSchema('subsets').optional() }),
    trainCases: z.array(z.string()),
    valCases: z.array(z.string()),
    /** 3D volumes: the axis their slices are cut across (the case ids name it). */
    sliceAxis: z.number().int().min(0).max(2).optional(),
  }),
  optimizer: z.object({
    lr: settingSchema('lr'), weightDecay: settingSchema('weightDecay'), batchSize: settingSchema('batchSize'), schedule: settingSchema('schedule') }),
  seed: settingSchema('seed'),
  augment: settingSchema('augment'),
  pretrained: settingSchema('pretrained').nullable(),
  /** --precision as given ('auto' is resolved on the machine that trains). */
  precision: settingSchema('precision'),
});
export type RunConfig = Omit<z.infer<typeof runConfigSchema>, 'model'> & { model: MethodConfig };

const count = z.number().int().nonnegative();

/** Where the last completed round stands; written last, so it only ever points at complete files. */
export const checkpointStateSchema = z.object({
  stage: count,
  /** Optimiser steps completed in `stage`. */
  step: count,
  /** File names in checkpoint/ (the optimiser's empty between stages). */
  weights: z.string(),
  optimizer: z.string(),
  /** The selected weights per stage so far: their selection score (null without validation) and step. */
  best: z.array(z.object({ stage: count, score: z.number().nullable(), step: count })),
  elapsedSeconds: z.number().nonnegative(),
});
export type CheckpointState = z.infer<typeof checkpointStateSchema>;

/** What a run folder holds, by name: only `avap train` writes these. */
const RUN_ENTRIES = ['config.json', 'normalization.json', 'intensity.json', 'model.safetensors', 'checkpoint', 'log.jsonl', 'summary.json', FINGERPRINT_FILE, LOCK_FILE];

/** A folder `avap train` made: config.json with normalization.json or checkpoint/ beside it. */
function isRunFolder(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'config.json')) && (fs.existsSync(path.join(dir, 'normalization.json')) || fs.existsSync(path.join(dir, 'checkpoint')));
}

/**
 * Throws one line naming `flag` when writing `target` (a file or a folder) would replace or add to a
 * run's own files: the run folder itself, one of its files, or anything below its checkpoint/.
 */
export function checkNotRunFiles(flag: string, target: string): void {
  const t = realLocation(target);
  if (isRunFolder(t)) throw new UserError(`${flag}: ${target} is a run folder (from avap train); its files are not an output of other commands: choose another ${flag}`);
  for (let d = t; path.dirname(d) !== d; d = path.dirname(d)) {
    const run = path.dirname(d);
    if ((d === t && RUN_ENTRIES.includes(path.basename(d))) || path.basename(d) === 'checkpoint') {
      if (isRunFolder(run)) throw new UserError(`${flag}: ${target} is one of the files of run ${run}, which only avap train writes: choose another ${flag}`);
    }
  }
}

/** A run folder edited by hand may hold symbolic links: train writes none of its files through one that leads out of it. */
export function checkRunFilesInside(dir: string): void {
  for (const name of RUN_ENTRIES) checkStaysInside('--out', dir, path.join(dir, name));
}

export class RunDir {
  constructor(readonly dir: string) {}

  file(name: string): string {
    return path.join(this.dir, name);
  }
  get configFile(): string {
    return this.file('config.json');
  }
  get modelFile(): string {
    return this.file('model.safetensors');
  }
  get checkpointDir(): string {
    return this.file('checkpoint');
  }
  get stateFile(): string {
    return path.join(this.checkpointDir, 'state.json');
  }

  exists(): boolean {
    return hasEntry(this.configFile);
  }

  writeConfig(config: RunConfig): void {
    writeFileAtomic(this.configFile, JSON.stringify(config, null, 2) + '\n');
  }

  readConfig(): RunConfig {
    const file = this.configFile;
    if (!hasEntry(file)) throw new UserError(`${this.dir}: not a run folder (no config.json)`);
    const raw = readJsonText(file, 'a run config');
    const version = (raw as { version?: unknown } | null)?.version;
    if (version !== RUN_CONFIG_VERSION) {
      throw new UserError(`${file}: a run written by another version of avap (run config version ${JSON.stringify(version ?? null)}; this avap reads version ${RUN_CONFIG_VERSION}); train it again`);
    }
    const r = runConfigSchema.safeParse(raw);
    if (!r.success) throw new UserError(`${file}: invalid run config at '${r.error.issues[0].path.join('.')}': ${r.error.issues[0].message}`);
    const model = parseMethodConfig(r.data.model, file);
    const encoder = (model as { backbone?: { encoder?: unknown } }).backbone?.encoder;
    if (typeof encoder === 'string' && !encoderNames().includes(encoder)) {
      throw new UserError(`${file}: unknown encoder '${encoder}' at 'model.backbone.encoder' (known: ${encoderNames().join(', ')})`);
    }
    // These name prediction files and folders: a hand-edited config must not steer them elsewhere.
    checkNames(file, 'model.structures', model.structures);
    checkNames(file, 'model.annotators', model.annotators);
    checkNames(file, 'data.trainCases', r.data.data.trainCases, fileNameProblem);
    checkNames(file, 'data.valCases', r.data.data.valCases, fileNameProblem);
    return { ...r.data, model };
  }

  writeNormalization(n: Normalization): void {
    writeFileAtomic(this.file('normalization.json'), JSON.stringify(n));
  }

  /** The NIfTI intensity rules computed at training (CT channels); a run without CT channels has none. */
  writeIntensity(rules: Intensity): void {
    writeFileAtomic(this.file('intensity.json'), JSON.stringify(rules));
  }

  readIntensity(): Intensity | undefined {
    const file = this.file('intensity.json');
    return hasEntry(file) ? parseIntensity(readJsonText(file, 'intensity rules'), file) : undefined;
  }

  readNormalization(): Normalization {
    const file = this.file('normalization.json');
    if (!hasEntry(file)) throw new UserError(`${this.dir}: missing normalization.json`);
    return parseNormalization(readJsonText(file, 'a normalization'), file);
  }

  /**
   * The checkpoint's state, every field checked: its files are plain names of regular files in
   * checkpoint/ (never a path to another run's weights). Whether its stage and step fit the run's
   * plan is checkStatePlan's to say, once the method is built.
   */
  readState(): CheckpointState | null {
    const file = this.stateFile;
    if (!hasEntry(file)) return null;
    const r = checkpointStateSchema.safeParse(readJsonText(file, 'a checkpoint state'));
    if (!r.success) {
      const issue = r.error.issues[0];
      throw new UserError(`${file}: invalid checkpoint state at '${issue.path.join('.')}': ${issue.message}`);
    }
    // One file name each: '../other-run/model.safetensors' would resume from another run's weights.
    // Only the optimiser's may be '' (a stage without one).
    const state = r.data;
    for (const [field, name] of [['weights', state.weights], ['optimizer', state.optimizer]] as const) {
      if (name === '' && field === 'optimizer') continue;
      if (fileNameProblem(name) !== null) throw new UserError(`${file}: ${field} must name a file in ${this.checkpointDir}, got ${JSON.stringify(name)}`);
      const st = fs.lstatSync(path.join(this.checkpointDir, name), { throwIfNoEntry: false });
      if (!st?.isFile()) throw new UserError(`${file}: ${field} names ${JSON.stringify(name)}, which is ${st ? 'not a regular file' : 'not'} in ${this.checkpointDir}`);
    }
    return state;
  }

  /** Publishes a checkpoint whose files are already written; then removes the files it supersedes. */
  commitState(state: CheckpointState): void {
    writeFileAtomic(this.stateFile, JSON.stringify(state, null, 2) + '\n');
    const keep = new Set([path.basename(state.weights), path.basename(state.optimizer), 'state.json']);
    for (const f of fs.readdirSync(this.checkpointDir)) if (!keep.has(f)) fs.rmSync(path.join(this.checkpointDir, f), { force: true });
  }

  log(event: Record<string, unknown>): void {
    fs.mkdirSync(this.dir, { recursive: true });
    fs.appendFileSync(this.file('log.jsonl'), JSON.stringify({ time: new Date().toISOString(), ...event }) + '\n');
  }
}
