// A run folder: everything needed to rebuild, resume and use a trained model.
//   config.json          method config, input size/channels, data selection, optimiser settings, seed
//   normalization.json   the input normalisation computed on the training cases
//   model.safetensors    the best weights so far (the model `predict` uses)
//   checkpoint/          the last completed epoch: weights, optimiser state, state.json (for --resume)
//   log.jsonl            one JSON object per logged event (append-only: epochs re-run after a resume appear again)
//   summary.json         final validation scores and timings
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { Normalization, parseNormalization } from '../data/normalization';
import { MethodConfig, parseMethodConfig } from '../methods/registry';
import { ENCODERS } from '../models/encoders/resnet';

export const runConfigSchema = z.object({
  version: z.literal(1),
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
    /** A learning rate for one stage by name (e.g. {preference: 5e-3}), overriding lr there. */
    stageLr: z.record(z.number().positive()).optional(),
    weightDecay: z.number().nonnegative(), batchSize: z.number().int().positive(), schedule: z.enum(['constant', 'poly', 'cosine']) }),
  seed: z.number().int(),
  augment: z.boolean(),
  pretrained: z.string().nullable(),
});
export type RunConfig = Omit<z.infer<typeof runConfigSchema>, 'model'> & { model: MethodConfig };

/** Where the last completed epoch stands; written last, so it only ever points at complete files. */
export interface CheckpointState {
  stage: number;
  /** Epochs completed in `stage`. */
  epoch: number;
  weights: string;
  optimizer: string;
  /** Best selection score per stage so far, and the epoch it came from. */
  best: { stage: number; score: number; epoch: number }[];
  elapsedSeconds: number;
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
    return fs.existsSync(this.configFile);
  }

  writeConfig(config: RunConfig): void {
    writeFileAtomic(this.configFile, JSON.stringify(config, null, 2) + '\n');
  }

  readConfig(): RunConfig {
    const file = this.configFile;
    if (!fs.existsSync(file)) throw new UserError(`${this.dir}: not a run folder (no config.json)`);
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (err) {
      throw new UserError(`${file}: invalid JSON (${(err as Error).message})`);
    }
    const r = runConfigSchema.safeParse(raw);
    if (!r.success) throw new UserError(`${file}: invalid run config at '${r.error.issues[0].path.join('.')}': ${r.error.issues[0].message}`);
    const model = parseMethodConfig(r.data.model, file);
    if (!(model.backbone.encoder in ENCODERS)) {
      throw new UserError(`${file}: unknown encoder '${model.backbone.encoder}' at 'model.backbone.encoder' (known: ${Object.keys(ENCODERS).join(', ')})`);
    }
    return { ...r.data, model };
  }

  writeNormalization(n: Normalization): void {
    writeFileAtomic(this.file('normalization.json'), JSON.stringify(n));
  }

  readNormalization(): Normalization {
    const file = this.file('normalization.json');
    if (!fs.existsSync(file)) throw new UserError(`${this.dir}: missing normalization.json`);
    try {
      return parseNormalization(JSON.parse(fs.readFileSync(file, 'utf8')), file);
    } catch (err) {
      if (err instanceof UserError) throw err;
      throw new UserError(`${file}: invalid JSON (${(err as Error).message})`);
    }
  }

  readState(): CheckpointState | null {
    if (!fs.existsSync(this.stateFile)) return null;
    let state: CheckpointState;
    try {
      state = JSON.parse(fs.readFileSync(this.stateFile, 'utf8')) as CheckpointState;
    } catch (err) {
      throw new UserError(`${this.stateFile}: unreadable checkpoint state (${(err as Error).message})`);
    }
    for (const f of [state.weights, state.optimizer]) {
      if (typeof f !== 'string' || (f !== '' && !fs.existsSync(path.join(this.checkpointDir, f)))) {
        throw new UserError(`${this.stateFile}: refers to ${JSON.stringify(f)}, which is not in ${this.checkpointDir}`);
      }
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
