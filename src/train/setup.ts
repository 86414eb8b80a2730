// A run before its first step: the training selection, the held-out validation cases, the input
// normalisation and config.json for a new run; the saved state for a resumed one.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { CaseRecord, CaseSelection, Dataset, describeSelection, openDataset, selectCases } from '../data/dataset';
import { computeIntensity } from '../data/intensityStats';
import { AXIS_NAMES, sampleEmptySlices } from '../data/volumes';
import { Normalization, checkNormalizationFits, computeNormalization } from '../data/normalization';
import { resolveOptions } from '../methods/descriptor';
import { resolveMethod } from '../methods/registry';
import { checkInputSize } from '../models/encoders/registry';
import { Rng } from '../util/random';
import type { TrainEvent } from './events';
import type { TrainSettings } from './options';
import { CheckpointState, RUN_CONFIG_VERSION, RunConfig, RunDir, runConfigSchema } from './run';
import { MIN_SELECTION_CASES } from './validate';
import { runFingerprint, writeFingerprint } from './fingerprint';
import { checkNewRun } from './preflight';
import { checkResume } from './resume';

export interface PreparedRun {
  run: RunDir;
  config: RunConfig;
  /** The last completed round of a resumed run; null for a new one. */
  state: CheckpointState | null;
  ds: Dataset;
  trainCases: CaseRecord[];
  valCases: CaseRecord[];
  normalization: Normalization;
}

export type RunRequest = TrainSettings & { data: string; out: string };

/** Creates the run folder (or reopens it with `resume`) and everything the loop needs. */
export async function prepareRun(o: RunRequest, emit: (e: TrainEvent) => void): Promise<PreparedRun> {
  const run = new RunDir(path.resolve(o.out));
  let state: CheckpointState | null = null;
  let config: RunConfig;
  let ds: Dataset;
  if (o.resume) {
    if (!run.exists()) throw new UserError(`--resume: ${run.dir} holds no run to resume (no config.json)`);
    config = run.readConfig();
    state = run.readState();
    ds = await openDataset(o.data, { sliceAxis: config.data.sliceAxis });
    ds.intensity = run.readIntensity();
    emit({ type: 'note', text: checkResume(run, config, ds, o) });
  } else {
    if (run.exists()) throw new UserError(`--out: ${run.dir} already holds a run; pass --resume to continue it or choose another folder`);
    ds = await openDataset(o.data, { sliceAxis: o.sliceAxis });
    checkNewRun(o, ds);
    config = await newRunConfig(o, ds, run, emit);
  }
  const byId = new Map(ds.cases.map((c) => [c.id, c]));
  const pick = (ids: string[]): CaseRecord[] => ids.map((id) => {
    const c = byId.get(id);
    if (!c) throw new UserError(`${o.data}: case '${id}' of run ${run.dir} is not in the dataset any more`);
    return c;
  });
  return { run, config, state, ds, trainCases: pick(config.data.trainCases), valCases: pick(config.data.valCases), normalization: run.readNormalization() };
}

async function newRunConfig(o: RunRequest, ds: Dataset, run: RunDir, emit: (e: TrainEvent) => void): Promise<RunConfig> {
  checkInputSize('--size', o.size, o.encoder);
  const { descriptor, variantOptions } = resolveMethod(o.method, ds.annotators.length);
  const options = { ...resolveOptions(descriptor, o.methodOptions), ...variantOptions };
  const selection = o.split ? { split: o.split } : o.subsets?.length ? { subsets: o.subsets } : defaultSelection(ds);
  // A case nobody annotated has no target: it would teach "background everywhere" (data check warns about it).
  const selected = selectCases(ds, selection);
  const cases = selected.filter((c) => c.labels.some((l) => l !== null));
  if (cases.length < selected.length) emit({ type: 'note', text: `leaving out ${selected.length - cases.length} case(s) without any annotation` });
  if (cases.length === 0) throw new UserError(`${o.data}: no annotated case to train on in ${describeSelection(selection)}`);
  const held = holdOut(cases, o.valFraction, o.seed);
  const { val } = held;
  const train = ds.volumes ? await sampleSlices(held.train, o, emit) : held.train;
  if (train.length === 0) throw new UserError(`${o.data}: no slice to train on in ${describeSelection(selection)}`);
  const batchSize = fitBatchSize(o, train.length, val.length, emit);
  checkNormalizationFits('--size', o.normalization, ds.channels, o.size);
  const model = descriptor.configure({
    structures: ds.structures.map((s) => s.name), annotators: ds.annotators, inChannels: ds.channels,
    encoder: o.encoder, featureChannels: o.featureChannels, steps: o.steps,
  }, options);
  const config: RunConfig = {
    version: RUN_CONFIG_VERSION, model,
    input: { size: o.size, channels: ds.channels },
    data: { root: path.resolve(o.data), name: ds.name, selection, trainCases: train.map((c) => c.id), valCases: val.map((c) => c.id), ...(ds.sliceAxis !== undefined ? { sliceAxis: ds.sliceAxis } : {}) },
    optimizer: { lr: o.lr, weightDecay: o.weightDecay, batchSize, schedule: o.schedule },
    seed: o.seed, augment: o.augment, pretrained: o.pretrained ? path.resolve(o.pretrained) : null, precision: o.precision,
  };
  // A run is only started when its config.json will read back: each setting by the rules of its flag.
  const checked = runConfigSchema.safeParse(config);
  if (!checked.success) throw new UserError(checked.error.issues[0].message);
  emit({ type: 'note', text: `dataset ${ds.name}: ${train.length} training + ${val.length} validation cases, M = ${ds.annotators.length} annotators, structures ${model.structures.join(', ')}` });
  // Volumes are held out whole, so their number is what the share applies to.
  const units = (cs: CaseRecord[]) => new Set(cs.map((c) => c.slice?.volume ?? c.id)).size;
  emit({ type: 'note', text: `${describeValidation(units(cases), units(val), o.valFraction)}${ds.volumes ? ' (counting volumes)' : ''}` });
  // The NIfTI intensity rules come first: every image the statistics below and training read goes through them.
  const intensity = await computeIntensity(ds, train);
  ds.intensity = intensity;
  const normalization = await computeNormalization(ds, train, o.size, { kind: o.normalization });
  const fingerprint = runFingerprint(o, ds, [...train, ...val]);
  fs.mkdirSync(run.checkpointDir, { recursive: true });
  writeFingerprint(run.dir, fingerprint);
  if (intensity) run.writeIntensity(intensity);
  run.writeNormalization(normalization);
  run.writeConfig(config);
  run.log({ event: 'start', config: { ...config, data: { ...config.data, trainCases: train.length, valCases: val.length } } });
  return config;
}

/** A volume dataset's training slices: the marked ones and --empty-slice-rate of the others (./data/volumes.ts). */
async function sampleSlices(cases: CaseRecord[], o: RunRequest, emit: (e: TrainEvent) => void): Promise<CaseRecord[]> {
  const r = await sampleEmptySlices(cases, o.emptySliceRate, o.seed);
  emit({ type: 'note', text: `3D volumes sliced across ${AXIS_NAMES[cases[0]?.slice?.axis ?? 2]}: training on ${r.cases.length} slices, ${r.kept} of the ${r.empty} that no rater marks (--empty-slice-rate ${o.emptySliceRate})` });
  return r.cases;
}

/** The encoder downsamples 32×: its deepest feature map has (size / 32)² positions per image. */
const DEEPEST_REDUCTION = 32;

/**
 * The batch size the run trains with, or a UserError. A batch larger than the training cases cannot
 * be filled: given as a flag it is refused, as a default it shrinks to the cases (and config.json
 * says so). Batch norm needs two values per channel, which one 32-pixel image does not give at the
 * encoder's 1×1 deepest level.
 */
function fitBatchSize(o: RunRequest, nTrain: number, nHeld: number, emit: (e: TrainEvent) => void): number {
  const perImage = (o.size / DEEPEST_REDUCTION) ** 2;
  const needed = Math.ceil(2 / perImage);
  const held = nHeld > 0 ? ` after --val-fraction ${o.valFraction} holds out ${nHeld}` : '';
  if (nTrain < needed) {
    throw new UserError(`${nHeld > 0 ? '--val-fraction' : `--data: ${o.data}`}: ${nTrain} training case is left${held}; batch norm needs batches of at least ${needed} images at --size ${o.size}${nHeld > 0 ? '; hold out fewer cases' : `; add cases or use --size ${DEEPEST_REDUCTION * 2} or more`}`);
  }
  if (o.batchSize < needed) {
    throw new UserError(`--batch-size ${o.batchSize} at --size ${o.size}: batch norm needs at least 2 values per channel, and the encoder's deepest level holds ${perImage} per image; use --batch-size ${needed} or more, or --size ${DEEPEST_REDUCTION * 2} or more`);
  }
  if (o.batchSize <= nTrain) return o.batchSize;
  if (o.givenFlags?.includes('--batch-size')) {
    throw new UserError(`--batch-size ${o.batchSize} is more than the ${nTrain} training cases${held}; use --batch-size ${nTrain} or less`);
  }
  emit({ type: 'note', text: `batch size ${nTrain}: the default ${o.batchSize} is more than the ${nTrain} training cases` });
  return nTrain;
}

/** Without --split/--subset: a dataset's 'train' split when it has one, else every case. */
function defaultSelection(ds: Dataset): { split?: string } {
  return ds.splits.train ? { split: 'train' } : {};
}

/** The share 'auto' holds out when that leaves enough cases to select weights by. */
const AUTO_VALIDATION_SHARE = 0.1;

/** How many of `n` cases a validation share holds out (0: none). */
export function validationCount(n: number, fraction: number | 'auto'): number {
  if (fraction === 'auto') {
    const k = Math.round(n * AUTO_VALIDATION_SHARE);
    return k >= MIN_SELECTION_CASES ? k : 0;
  }
  if (!(fraction >= 0 && fraction < 1)) throw new UserError(`--val-fraction must be 'auto' or a number in [0, 1), got ${fraction}`);
  return fraction === 0 || n < 2 ? 0 : Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
}

function describeValidation(n: number, held: number, fraction: number | 'auto'): string {
  if (held === 0) {
    return fraction === 'auto'
      ? `no validation cases held out: 10% of ${n} is fewer than ${MIN_SELECTION_CASES}, too few to choose weights by; training on all ${n} and keeping the final weights`
      : `no validation cases held out; keeping the final weights`;
  }
  return held < MIN_SELECTION_CASES
    ? `${held} validation cases held out: too few to choose weights by (fewer than ${MIN_SELECTION_CASES}); their scores are reported and the final weights kept`
    : `${held} validation cases held out; each stage keeps its best-scoring weights`;
}

/** A validation part held out of the training selection, deterministic under the seed (never the test set). */
export function holdOut(cases: CaseRecord[], fraction: number | 'auto', seed: number): { train: CaseRecord[]; val: CaseRecord[] } {
  // A volume's slices are held out together: a slice beside a training slice would flatter validation.
  if (cases.some((c) => c.slice)) {
    const volumes = [...new Set(cases.map((c) => c.slice?.volume ?? c.id))];
    const held = new Set(holdOut(volumes.map((id) => ({ id, image: id, labels: [] })), fraction, seed).val.map((v) => v.id));
    return { train: cases.filter((c) => !held.has(c.slice?.volume ?? c.id)), val: cases.filter((c) => held.has(c.slice?.volume ?? c.id)) };
  }
  const nVal = validationCount(cases.length, fraction);
  const order = cases.map((_, i) => i);
  const rng = Rng.from(seed, 'holdout');
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const valIdx = new Set(order.slice(0, nVal));
  return { train: cases.filter((_, i) => !valIdx.has(i)), val: cases.filter((_, i) => valIdx.has(i)) };
}
