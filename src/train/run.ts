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
import { isSafePathComponent } from '../io/paths';
import { hasEntry, readJsonText } from '../io/readBounded';
import { Normalization, parseNormalization } from '../data/normalization';
import { MethodConfig } from '../methods/method';
import { parseMethodConfig } from '../methods/registry';
import { encoderNames } from '../models/encoders/registry';
import { PRECISION_CHOICES } from '../torch/precision';

/** config.json's version: a run folder of another version is refused in one line. */
export const RUN_CONFIG_VERSION = 2;

export const runConfigSchema = z.object({
  version: z.literal(RUN_CONFIG_VERSION),
  model: z.unknown(),
  input: z.object({ size: z.number().int().positive(), channels: z.number().int().positive() }),
  data: z.object({
    root: z.string(),
    name: z.string(),
    selection: z.object({ split: z.string().optional(), subsets: z.array(z.string()).optional() }),
    trainCases: z.array(z.string()),
    valCases: z.array(z.string()),
  }),
  optimizer: z.object({
    lr: z.number().positive(),
    weightDecay: z.number().nonnegative(), batchSize: z.number().int().positive(), schedule: z.enum(['constant', 'poly', 'cosine']) }),
  seed: z.number().int(),
  augment: z.boolean(),
  pretrained: z.string().nullable(),
  /** --precision as given ('auto' is resolved on the machine that trains). */
  precision: z.enum(PRECISION_CHOICES),
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
    return { ...r.data, model };
  }

  writeNormalization(n: Normalization): void {
    writeFileAtomic(this.file('normalization.json'), JSON.stringify(n));
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
    const state = r.data;
    for (const [field, name] of [['weights', state.weights], ['optimizer', state.optimizer]] as const) {
      if (name === '' && field === 'optimizer') continue;
      if (!isSafePathComponent(name)) throw new UserError(`${file}: ${field} must name a file in ${this.checkpointDir}, got ${JSON.stringify(name)}`);
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
