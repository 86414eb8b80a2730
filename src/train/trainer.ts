// `avap train`: the shared training loop for every method — stages, validation-based checkpoint
// selection, crash-safe checkpoints and exact resumption, JSON-lines logs and a progress bar.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SingleBar } from 'cli-progress';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { CaseRecord, Dataset, openDataset, selectCases } from '../data/dataset';
import { DataLoader } from '../data/pipeline';
import { NormalizationKind, computeNormalization } from '../data/normalization';
import { Method, Stage } from '../methods/method';
import { MethodOptions, buildMethod, methodConfigFor } from '../methods/registry';
import { Tensor, loadStateDict, manualSeed, nn, optim, saveStateDict, tidy } from '../torch';
import { Rng } from '../util/random';
import { toTrainingBatch } from './batch';
import { runFingerprint, writeFingerprint } from './fingerprint';
import { checkNewRun, checkSomethingToTrain, removeFailedStart } from './preflight';
import { checkResume, recordResume } from './resume';
import { CheckpointState, RunConfig, RunDir } from './run';
import { learningRateAt } from './schedule';
import { ValidationScores, selectionScore, validate } from './validate';

export interface TrainOptions {
  data: string;
  out: string;
  split?: string;
  subsets?: string[];
  method: string;
  size: number;
  batchSize: number;
  lr: number;
  /** Learning rate of AVAP's step 2 (the APM alone); default lr. */
  preferenceLr?: number;
  weightDecay: number;
  schedule: 'constant' | 'poly' | 'cosine';
  variationEpochs: number;
  preferenceEpochs: number;
  strategy: 'two-step' | 'joint';
  jointWeights?: number[];
  conditioning: 'both' | 'code' | 'features';
  calibration: 'expectation' | 'argmax';
  encoder: string;
  featureChannels: number;
  pretrained?: string;
  seed: number;
  valFraction: number;
  normalization: NormalizationKind;
  augment: boolean;
  resume: boolean;
  /** With resume: the options given explicitly now (the CLI's flags), compared with the run's; default all. */
  explicit?: (keyof TrainOptions)[];
  /** Progress bar on stderr (default: when stderr is a terminal). */
  progress?: boolean;
  /** Status lines (default: stderr). */
  print?: (line: string) => void;
}

export const TRAIN_DEFAULTS = {
  method: 'avap', size: 256, batchSize: 8, lr: 1e-4, weightDecay: 1e-5, schedule: 'constant' as const,
  variationEpochs: 100, preferenceEpochs: 50, strategy: 'two-step' as const, conditioning: 'both' as const,
  calibration: 'expectation' as const, encoder: 'resnet34', featureChannels: 32, seed: 0, valFraction: 0.1,
  normalization: 'per-pixel' as const, augment: true,
};

export interface TrainSummary {
  run: string;
  stages: { name: string; epochs: number; bestEpoch: number; bestScore: number; select: string }[];
  validation: ValidationScores;
  seconds: number;
}

/**
 * Trains (or resumes) a run and returns its validation summary; everything lands in `opts.out`.
 * A new run that fails before its first checkpoint leaves nothing behind.
 */
export function train(opts: TrainOptions): Promise<TrainSummary> {
  return opts.resume ? trainRun(opts) : removeFailedStart(opts.out, () => trainRun(opts));
}

async function trainRun(opts: TrainOptions): Promise<TrainSummary> {
  const print = opts.print ?? ((line: string) => process.stderr.write(line + '\n'));
  const run = new RunDir(path.resolve(opts.out));
  const started = Date.now();
  let state: CheckpointState | null = null;
  let config: RunConfig;
  let ds: Dataset;

  if (opts.resume) {
    if (!run.exists()) throw new UserError(`--resume: ${run.dir} holds no run to resume (no config.json)`);
    config = run.readConfig();
    state = run.readState();
    ds = await openDataset(opts.data);
    print(checkResume(run, config, ds, opts));
  } else {
    if (run.exists()) throw new UserError(`--out: ${run.dir} already holds a run; pass --resume to continue it or choose another folder`);
    ds = await openDataset(opts.data);
    checkNewRun(opts, ds);
    config = await newRunConfig(opts, ds, run, print);
  }

  const byId = new Map(ds.cases.map((c) => [c.id, c]));
  const pick = (ids: string[]): CaseRecord[] => ids.map((id) => {
    const c = byId.get(id);
    if (!c) throw new UserError(`${opts.data}: case '${id}' of run ${run.dir} is not in the dataset any more`);
    return c;
  });
  const trainCases = pick(config.data.trainCases);
  const valCases = pick(config.data.valCases);
  const normalization = run.readNormalization();

  // Same seed → same initial weights; the checkpoint then overrides them when resuming.
  manualSeed(config.seed);
  const method = buildMethod(config.model);
  if (config.pretrained && !state) loadPretrainedEncoder(method.model, config.pretrained);
  if (state) loadWeights(method.model, path.join(run.checkpointDir, state.weights));

  const S = config.input.size;
  const loaderOptions = { size: S, batchSize: config.optimizer.batchSize, normalization, seed: config.seed };
  const trainLoader = new DataLoader(ds, trainCases, { ...loaderOptions, shuffle: true, augment: config.augment, dropLast: trainCases.length > config.optimizer.batchSize });
  const valLoader = new DataLoader(ds, valCases, { ...loaderOptions, shuffle: false, augment: false, dropLast: false });
  const M = ds.annotators.length;
  const K = ds.structures.length;
  const stages = method.stages();
  checkSomethingToTrain(method.name, stages);
  if (opts.resume) {
    print(describeResume(run.dir, state, stages));
    recordResume(run, state, stages);
  }
  const best: CheckpointState['best'] = state?.best ?? [];
  const elapsedBefore = state?.elapsedSeconds ?? 0;

  try {
    for (let s = state?.stage ?? 0; s < stages.length; s++) {
      const stage = stages[s];
      const firstEpoch = state && state.stage === s ? state.epoch : 0;
      if (firstEpoch >= stage.epochs) {
        // Killed between this stage's last checkpoint and the next stage's first: continue from its best epoch.
        if (stage.epochs > 0) loadWeights(method.model, run.modelFile);
        continue;
      }
      const optimizer = prepareStage(stage, config);
      if (state && state.stage === s && firstEpoch > 0) optimizer.loadState(fs.readFileSync(path.join(run.checkpointDir, state.optimizer)));
      const totalSteps = stage.epochs * trainLoader.batchesPerEpoch;
      for (let epoch = firstEpoch; epoch < stage.epochs; epoch++) {
        const bar = makeBar(opts.progress ?? process.stderr.isTTY, `${stage.name} ${epoch + 1}/${stage.epochs}`, trainLoader.batchesPerEpoch);
        const rng = Rng.from(config.seed, 'stage', s, 'epoch', epoch);
        let lossSum = 0;
        let step = 0;
        const t0 = Date.now();
        setModes(stage);
        for await (const b of trainLoader.epoch(s * 100000 + epoch)) {
          optimizer.setLr(learningRateAt({ kind: config.optimizer.schedule }, stageLr(config, stage), epoch * trainLoader.batchesPerEpoch + step, totalSteps));
          const loss = tidy(() => {
            optimizer.zeroGrad();
            const batch = toTrainingBatch(b, config.input.channels, M, K);
            // The inner scope releases our handles on activations before backward (autograd keeps what it needs).
            const l = tidy(() => method.loss(stage, batch, rng));
            l.backward();
            optimizer.step();
            return l.item();
          });
          if (!Number.isFinite(loss)) throw new Error(`training diverged: loss is ${loss} at stage ${stage.name}, epoch ${epoch + 1}, step ${step + 1}`);
          lossSum += loss;
          step++;
          bar?.update(step, { loss: loss.toFixed(4) });
        }
        bar?.stop();
        const scores = await validate(method, valLoader);
        const score = selectionScore(scores, stage.select);
        const previous = best.find((x) => x.stage === s);
        const improved = !previous || score > previous.score;
        if (improved) {
          saveWeights(method.model, run.modelFile, { stage: stage.name, epoch: String(epoch + 1), score: score.toFixed(6) });
          if (previous) Object.assign(previous, { score, epoch: epoch + 1 });
          else best.push({ stage: s, score, epoch: epoch + 1 });
        }
        const seconds = (Date.now() - t0) / 1000;
        const event = { event: 'epoch', stage: stage.name, epoch: epoch + 1, epochs: stage.epochs, loss: lossSum / Math.max(1, step), lr: optimizer.lr, val: scores, best: improved, seconds };
        run.log(event);
        print(`${stage.name} epoch ${epoch + 1}/${stage.epochs}: loss ${(lossSum / Math.max(1, step)).toFixed(4)}, `
          + `val mean voting ${pct(scores.mean_voting)}, average ${pct(scores.average)}${improved ? ' (best)' : ''}, ${seconds.toFixed(1)} s`);
        saveCheckpoint(run, method.model, optimizer, { stage: s, epoch: epoch + 1, best, elapsedSeconds: elapsedBefore + (Date.now() - started) / 1000 });
      }
      // The next stage builds on this stage's best epoch, not its last one.
      loadWeights(method.model, run.modelFile);
      // Commit the hand-over: from here on model.safetensors belongs to the next stage, whose first
      // improvement overwrites it; a resume must restart that stage from this stage's best weights.
      saveCheckpoint(run, method.model, null, { stage: s + 1, epoch: 0, best, elapsedSeconds: elapsedBefore + (Date.now() - started) / 1000 });
      state = null;
    }
    const summary: TrainSummary = {
      run: run.dir,
      stages: stages.map((st, i) => ({ name: st.name, epochs: st.epochs, select: st.select, bestEpoch: best.find((b) => b.stage === i)?.epoch ?? 0, bestScore: best.find((b) => b.stage === i)?.score ?? 0 })),
      validation: await validate(method, valLoader),
      seconds: elapsedBefore + (Date.now() - started) / 1000,
    };
    writeFileAtomic(run.file('summary.json'), JSON.stringify(summary, null, 2) + '\n');
    run.log({ event: 'done', ...summary });
    return summary;
  } finally {
    await Promise.all([trainLoader.close(), valLoader.close()]);
    method.model.dispose();
  }
}

async function newRunConfig(opts: TrainOptions, ds: Dataset, run: RunDir, print: (l: string) => void): Promise<RunConfig> {
  if (opts.size % 32 !== 0) throw new UserError(`--size must be a multiple of 32 (the encoder downsamples 32×), got ${opts.size}`);
  const selection = opts.split ? { split: opts.split } : opts.subsets?.length ? { subsets: opts.subsets } : defaultSelection(ds);
  // A case nobody annotated has no target: it would teach "background everywhere" (data check warns about it).
  const selected = selectCases(ds, selection);
  const cases = selected.filter((c) => c.labels.some((l) => l !== null));
  if (cases.length < selected.length) print(`leaving out ${selected.length - cases.length} case(s) without any annotation`);
  const { train, val } = holdOut(cases, opts.valFraction, opts.seed);
  if (train.length === 0) throw new UserError(`${opts.data}: need at least 2 training cases (one is held out for validation), found ${cases.length}`);
  const model = methodConfigFor(opts.method, {
    structures: ds.structures.map((s) => s.name), annotators: ds.annotators, inChannels: ds.channels,
    encoder: opts.encoder, featureChannels: opts.featureChannels, calibration: opts.calibration, conditioning: opts.conditioning,
    strategy: opts.strategy, variationEpochs: opts.variationEpochs, preferenceEpochs: opts.preferenceEpochs, jointWeights: opts.jointWeights,
  } satisfies MethodOptions);
  const config: RunConfig = {
    version: 1, model,
    input: { size: opts.size, channels: ds.channels },
    data: { root: path.resolve(opts.data), name: ds.name, selection, trainCases: train.map((c) => c.id), valCases: val.map((c) => c.id) },
    optimizer: {
      lr: opts.lr, ...(opts.preferenceLr !== undefined ? { stageLr: { preference: opts.preferenceLr } } : {}),
      weightDecay: opts.weightDecay, batchSize: opts.batchSize, schedule: opts.schedule,
    },
    seed: opts.seed, augment: opts.augment, pretrained: opts.pretrained ? path.resolve(opts.pretrained) : null,
  };
  print(`dataset ${ds.name}: ${train.length} training + ${val.length} validation cases, M = ${ds.annotators.length} annotators, structures ${model.structures.join(', ')}`);
  const normalization = await computeNormalization(ds, train, opts.size, { kind: opts.normalization });
  const fingerprint = runFingerprint(opts, ds, [...train, ...val]);
  fs.mkdirSync(run.checkpointDir, { recursive: true });
  writeFingerprint(run.dir, fingerprint);
  run.writeNormalization(normalization);
  run.writeConfig(config);
  run.log({ event: 'start', config: { ...config, data: { ...config.data, trainCases: train.length, valCases: val.length } } });
  return config;
}

/** Without --split/--subset: a dataset's 'train' split when it has one, else every case. */
function defaultSelection(ds: Dataset): { split?: string } {
  return ds.splits.train ? { split: 'train' } : {};
}

/** A validation part held out of the training selection, deterministic under the seed (never the test set). */
export function holdOut(cases: CaseRecord[], fraction: number, seed: number): { train: CaseRecord[]; val: CaseRecord[] } {
  if (!(fraction > 0 && fraction < 1)) throw new UserError(`--val-fraction must be between 0 and 1, got ${fraction}`);
  const order = cases.map((_, i) => i);
  const rng = Rng.from(seed, 'holdout');
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const nVal = Math.min(cases.length - 1, Math.max(1, Math.round(cases.length * fraction)));
  const valIdx = new Set(order.slice(0, nVal));
  return { train: cases.filter((_, i) => !valIdx.has(i)), val: cases.filter((_, i) => valIdx.has(i)) };
}

function describeResume(dir: string, state: CheckpointState | null, stages: Stage[]): string {
  if (!state) return `resuming ${dir} from the start (no completed epoch yet)`;
  if (state.stage >= stages.length) return `resuming ${dir}: all ${stages.length} stage(s) trained; writing the summary`;
  return `resuming ${dir}: stage ${state.stage + 1}/${stages.length} (${stages[state.stage].name}), ${state.epoch} epoch(s) done`;
}

function setModes(stage: Stage): void {
  for (const m of stage.frozen) m.eval().requiresGrad_(false);
  for (const m of stage.trained) m.train().requiresGrad_(true);
}

function prepareStage(stage: Stage, config: RunConfig): optim.Optimizer {
  setModes(stage);
  const params = [...new Set(stage.trained.flatMap((m) => m.parameters()))];
  return new optim.Adam(params, { lr: stageLr(config, stage), weightDecay: config.optimizer.weightDecay });
}

function stageLr(config: RunConfig, stage: Stage): number {
  return config.optimizer.stageLr?.[stage.name] ?? config.optimizer.lr;
}

function saveWeights(model: nn.Module, file: string, metadata: Record<string, string>): void {
  saveStateDict(file, model.stateDict(), metadata);
}

export function loadWeights(model: nn.Module, file: string): void {
  tidy(() => void model.loadStateDict(loadStateDict(file).state, { source: file }));
}

/**
 * ImageNet weights converted from torchvision (keys conv1.weight, layer1.0.conv1.weight, …; fc.* ignored)
 * into the backbone's encoder. Every encoder tensor must be present with its shape.
 */
export function loadPretrainedEncoder(model: nn.Module, file: string): void {
  const encoder = model.namedModules().find(([name]) => name.endsWith('encoder'))?.[1];
  if (!encoder) throw new UserError(`--pretrained: this method has no encoder to load weights into`);
  tidy(() => {
    const { state } = loadStateDict(file);
    const own = encoder.stateDict();
    const source: Record<string, Tensor> = {};
    for (const [k, v] of Object.entries(state)) {
      const key = k.replace(/^(encoder\.|backbone\.encoder\.|module\.)/, '');
      if (key in own) source[key] = v;
    }
    encoder.loadStateDict(source, { source: file });
  });
}

/** Weights (and the optimiser's state, mid-stage) first, then state.json pointing at them. */
function saveCheckpoint(run: RunDir, model: nn.Module, optimizer: optim.Optimizer | null, s: Omit<CheckpointState, 'weights' | 'optimizer'>): void {
  const tag = `${s.stage}-${s.epoch}`;
  const weights = `weights-${tag}.safetensors`;
  const opt = optimizer ? `optimizer-${tag}.bin` : '';
  saveStateDict(path.join(run.checkpointDir, weights), model.stateDict());
  if (optimizer) writeFileAtomic(path.join(run.checkpointDir, opt), optimizer.stateBytes());
  run.commitState({ ...s, weights, optimizer: opt });
}

function makeBar(enabled: boolean, label: string, total: number): SingleBar | null {
  if (!enabled) return null;
  const bar = new SingleBar({ format: `${label} |{bar}| {value}/{total} loss {loss} ETA {eta_formatted}`, stream: process.stderr, hideCursor: true, clearOnComplete: true });
  bar.start(total, 0, { loss: '-' });
  return bar;
}

function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}
