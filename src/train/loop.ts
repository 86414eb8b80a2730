// The training loop every method shares: its stages in order, each a budget of optimiser steps taken
// from an endless stream of shuffled, augmented passes over the training cases. The steps are grouped
// into rounds (ROUNDS_PER_STAGE per stage, whatever the dataset's size); after each round the model is
// validated and the stage's selected weights are kept in model.safetensors; a crash-safe checkpoint is
// written after a round when one is due (checkpointSeconds), so a run resumes exactly from its last
// checkpointed round.
import type { CaseRecord } from '../data/dataset';
import type { ProcessGroup } from '../distributed';
import { Batch, DataLoader } from '../data/pipeline';
import { Method, Stage } from '../methods/method';
import { UserError } from '../errors';
import { Tensor, nn, noGrad, optim, tidy } from '../torch';
import { Rng } from '../util/random';
import { shardBatch, toTrainingBatch } from './batch';
import { loadWeights, readOptimizerState, saveCheckpoint, saveWeights } from './checkpoint';
import type { TrainEvent } from './events';
import { CheckpointState, RunConfig, RunDir } from './run';
import { learningRateAt } from './schedule';
import { MIN_SELECTION_CASES, selectionScore, validate, ValidationScores } from './validate';

/** Validations (and checkpoints) per stage. */
export const ROUNDS_PER_STAGE = 20;

export interface LoopContext {
  run: RunDir;
  config: RunConfig;
  method: Method;
  trainLoader: DataLoader;
  /** The training cases, and a loader over some of them (for cross-fitting stages). */
  trainCases: CaseRecord[];
  loaderFor(cases: CaseRecord[], training: boolean): DataLoader;
  /** Null when no case was held out. */
  valLoader: DataLoader | null;
  /** Where a resumed run stands; null for a new run. */
  state: CheckpointState | null;
  emit: (e: TrainEvent) => void;
  /** When this session started (Date.now()), for the run's total training time. */
  started: number;
  /**
   * Data-parallel training: this rank's process group (null for one process). Every rank walks the
   * same global batches and trains on its rows; rank 0 alone validates and writes the run folder.
   */
  group?: ProcessGroup | null;
}

/**
 * Seconds of training between two checkpoints. A ResNet34 AVAP checkpoint (weights and Adam's moments,
 * ~265 MB) takes about 5 s to write on 2 cores, as long as a round of a small run: writing one at most
 * every minute keeps it under a tenth of the time, and a killed run loses at most a minute.
 * AVAP_CHECKPOINT_SECONDS overrides (0: after every round).
 */
export function checkpointSeconds(): number {
  const fromEnv = process.env.AVAP_CHECKPOINT_SECONDS;
  const v = fromEnv === undefined || fromEnv === '' ? NaN : Number(fromEnv);
  return Number.isFinite(v) && v >= 0 ? v : 60;
}

/** The steps that end each round of a stage of `steps` steps: evenly spread, the last one `steps`. */
export function roundEnds(steps: number): number[] {
  const rounds = Math.min(ROUNDS_PER_STAGE, steps);
  return Array.from({ length: rounds }, (_, r) => Math.round(((r + 1) * steps) / rounds));
}

/**
 * The stage's batches from step `from` on: pass p of the training cases is the loader's epoch
 * `stage·100000 + p`, so step k always gets the same batch, whether the run was resumed or not.
 */
async function* batchStream(loader: DataLoader, stageIndex: number, from: number): AsyncGenerator<Batch> {
  const perPass = loader.batchesPerEpoch;
  for (let pass = Math.floor(from / perPass), skip = from % perPass; ; pass++, skip = 0) {
    let i = 0;
    for await (const b of loader.epoch(stageIndex * 100000 + pass)) if (i++ >= skip) yield b;
  }
}

/** What the steps and rounds of one stage share. */
interface StageRun {
  ctx: LoopContext;
  stage: Stage;
  stageIndex: number;
  optimizer: optim.Optimizer;
  /** The stage's base learning rate (the schedule decays it). */
  lr: number;
  /** Round r ends at step ends[r]. */
  ends: number[];
  /** The parameters whose gradients the ranks average (none for one process). */
  params: Tensor[];
  group: ProcessGroup | null;
  /** This process writes the run folder (rank 0, or the only process). */
  writes: boolean;
  /** Enough validation cases to choose a round's weights by; otherwise the last round's are kept. */
  selecting: boolean;
  /** The selected weights' step and score per stage so far (updated in place). */
  best: CheckpointState['best'];
  /** The run's training time so far, resumed sessions included. */
  seconds: () => number;
}

/** Trains every stage not yet done; returns the selected weights' step and score per stage. */
export async function trainStages(ctx: LoopContext): Promise<CheckpointState['best']> {
  const { run, config, method, trainLoader, valLoader } = ctx;
  const group = ctx.group ?? null;
  const writes = !group || group.isWriter;
  let state = ctx.state;
  const elapsedBefore = ctx.state?.elapsedSeconds ?? 0;
  const seconds = () => elapsedBefore + (Date.now() - ctx.started) / 1000;
  const stages = method.stages();
  const best: CheckpointState['best'] = state?.best ?? [];
  const selecting = (valLoader?.caseCount ?? 0) >= MIN_SELECTION_CASES;

  for (let s = state?.stage ?? 0; s < stages.length; s++) {
    const stage = stages[s];
    const firstStep = state && state.stage === s ? state.step : 0;
    if (firstStep >= stage.steps) {
      // A checkpoint at a stage's last step whose hand-over was not committed: continue from the stage's selected weights.
      if (stage.steps > 0) loadSelectedWeights(method.model, run.modelFile, group);
      continue;
    }
    if (firstStep === 0) stage.begin?.(config.seed);
    const lr = stageLearningRate(config, stage);
    const optimizer = prepareStage(stage, lr, config.optimizer.weightDecay);
    if (state && state.stage === s && firstStep > 0) loadOptimizerState(run, optimizer, state, group);
    const params = group ? [...new Set(stage.trained.flatMap((m) => m.parameters()))] : [];
    const st: StageRun = { ctx, stage, stageIndex: s, optimizer, lr, ends: roundEnds(stage.steps), params, group, writes, selecting, best, seconds };
    const folds = stage.crossFit ? crossFitCases(ctx.trainCases, stage.crossFit, config.seed) : null;
    const stageLoader = folds ? ctx.loaderFor(folds.trained, true) : trainLoader;
    const stream = batchStream(stageLoader, s, firstStep);
    let step = firstStep;
    let lastCheckpoint = Date.now();
    try {
      for (let r = st.ends.findIndex((e) => e > firstStep); r < st.ends.length; r++) {
        ctx.emit({ type: 'roundStart', stage: stage.name, stageIndex: s, round: r + 1, rounds: st.ends.length, step, toStep: st.ends[r], steps: stage.steps });
        const roundFirst = step;
        const t0 = Date.now();
        const lossSum = await trainRound(st, r, stream, step);
        step = st.ends[r];
        const last = r === st.ends.length - 1;
        await endRound(st, r, { step, meanLoss: lossSum / Math.max(1, step - roundFirst), roundSeconds: (Date.now() - t0) / 1000 });
        // The hand-over below checkpoints the last round; others when a checkpoint is due.
        if (writes && !last && Date.now() - lastCheckpoint >= checkpointSeconds() * 1000) {
          saveCheckpoint(run, method.model, optimizer, { stage: s, step, best, elapsedSeconds: seconds() });
          lastCheckpoint = Date.now();
        }
      }
    } finally {
      await stream.return(undefined);
      if (stageLoader !== trainLoader) await stageLoader.close();
    }
    await handOver(st, folds);
    state = null;
  }
  return best;
}

/** The steps of round r, from step `from` to the round's end; returns the sum of their losses. */
async function trainRound(st: StageRun, r: number, stream: AsyncGenerator<Batch>, from: number): Promise<number> {
  const { ctx: { config, emit, method }, stage, stageIndex: s, optimizer, lr, ends, params, group } = st;
  const M = config.model.annotators.length;
  const K = config.model.structures.length;
  const device = method.model.parameterDevice();
  const rng = Rng.from(config.seed, 'stage', s, 'round', r);
  let lossSum = 0;
  let step = from;
  setModes(stage);
  while (step < ends[r]) {
    const { value: b } = await stream.next();
    optimizer.setLr(learningRateAt({ kind: config.optimizer.schedule }, lr, step, stage.steps));
    const takeStep = () => tidy(() => {
      optimizer.zeroGrad();
      const global = toTrainingBatch(b as Batch, config.input.channels, M, K, device);
      const batch = group ? shardBatch(global, group.rank, group.worldSize) : global;
      // The inner scope releases our handles on activations before backward (autograd keeps what it needs).
      const l = tidy(() => stage.loss(batch, rng));
      l.backward();
      // Each rank's loss is the mean over its equal share of the global batch: the mean of the
      // ranks' gradients is the global batch's gradient, and the mean loss the global batch's loss.
      if (group) group.averageGradients(params);
      optimizer.step();
      return group ? group.sumNumbers([l.item()])[0] / group.worldSize : l.item();
    });
    const loss = group ? group.step(`step ${step + 1} of stage ${stage.name}`, takeStep) : takeStep();
    if (!Number.isFinite(loss)) throw new Error(`training diverged: loss is ${loss} at stage ${stage.name}, step ${step + 1}`);
    lossSum += loss;
    step++;
    emit({ type: 'step', stage: stage.name, stageIndex: s, step, steps: stage.steps, roundStep: step - from, roundSteps: ends[r] - from, loss });
  }
  return lossSum;
}

/** After round r: validation, the stage's selected weights kept when this round's are better, the round logged. */
async function endRound(st: StageRun, r: number, round: { step: number; meanLoss: number; roundSeconds: number }): Promise<void> {
  const { ctx: { run, method, valLoader, emit }, stage, stageIndex: s, optimizer, ends, params, group, writes, selecting, best } = st;
  const { step } = round;
  if (group) group.checkSameParameters(params, `after step ${step} of stage ${stage.name}`);
  const val: ValidationScores | null = valLoader && writes ? await validate(method, valLoader) : null;
  const score = val ? selectionScore(val, stage.select) : null;
  const previous = best.find((x) => x.stage === s);
  const last = r === ends.length - 1;
  // Without selection only the stage's final weights are kept, so they are written once.
  const decided = selecting ? !previous || score! > previous.score! : last;
  const keep = group ? group.broadcastFlag(decided) : decided;
  if (keep) {
    if (writes) saveWeights(method.model, run.modelFile, { stage: stage.name, step: String(step), ...(score !== null ? { score: score.toFixed(6) } : {}) });
    if (previous) Object.assign(previous, { score, step });
    else best.push({ stage: s, score, step });
  }
  const event = {
    stage: stage.name, step, steps: stage.steps, loss: round.meanLoss, lr: optimizer.lr, val, best: selecting && keep, seconds: round.roundSeconds,
    ...(group ? { allreduce: group.takeCollectiveStats() } : {}),
  };
  if (writes) run.log({ event: 'round', ...event });
  emit({ type: 'round', stageIndex: s, round: r + 1, rounds: ends.length, ...event });
}

/** After a stage's last round: its selected weights handed to the next stage, and the hand-over committed. */
async function handOver(st: StageRun, folds: { trained: CaseRecord[]; heldOut: CaseRecord[] } | null): Promise<void> {
  const { ctx: { run, config, method, emit }, stage, stageIndex: s, group, writes, best, seconds } = st;
  // The next stage builds on this stage's selected weights (its best round, or its last).
  loadSelectedWeights(method.model, run.modelFile, group);
  if (folds && stage.heldOut) await showHeldOut(stage, st.ctx.loaderFor(folds.heldOut, false), config.input.channels, config.model.annotators.length, config.model.structures.length);
  if (stage.end || (folds && stage.heldOut)) {
    const decided = stage.end?.();
    if (decided) {
      if (writes) run.log({ event: 'stageEnd', stage: stage.name, step: stage.steps, note: decided });
      emit({ type: 'note', text: decided });
    }
    // Every rank decided from the same held-out batches and weights; rank 0's result is the one kept.
    if (group) group.broadcastState(stateTensors(method.model));
    if (writes) saveWeights(method.model, run.modelFile, { stage: stage.name, step: String(stage.steps) });
  }
  // Commit the hand-over: from here on model.safetensors belongs to the next stage, whose first
  // round overwrites it; a resume must restart that stage from this stage's selected weights.
  if (writes) saveCheckpoint(run, method.model, null, { stage: s + 1, step: 0, best, elapsedSeconds: seconds() });
}

/**
 * Fold `fold` of `folds` of the training cases (a split fixed by the seed, the same for every fold
 * stage of the run) is held out; the stage trains on the rest.
 */
export function crossFitCases(cases: CaseRecord[], crossFit: { fold: number; folds: number }, seed: number): { trained: CaseRecord[]; heldOut: CaseRecord[] } {
  const { fold, folds } = crossFit;
  if (cases.length < folds) throw new UserError(`cross-fitting over ${folds} folds needs at least ${folds} training cases; this run has ${cases.length}`);
  const order = Rng.from(seed, 'folds').permutation(cases.length);
  const inFold = new Set(order.filter((_, i) => i % folds === fold));
  return { trained: cases.filter((_, i) => !inFold.has(i)), heldOut: cases.filter((_, i) => inFold.has(i)) };
}

/** The held-out fold's batches, unaugmented, to the stage (modules in eval mode, no autograd). */
async function showHeldOut(stage: Stage, loader: DataLoader, channels: number, M: number, K: number): Promise<void> {
  try {
    for (const m of [...stage.trained, ...stage.frozen]) m.eval();
    for await (const b of loader.epoch(0)) noGrad(() => tidy(() => stage.heldOut!(toTrainingBatch(b, channels, M, K, stage.trained[0]?.parameterDevice() ?? 'cpu'))));
  } finally {
    await loader.close();
  }
}

/** The stage's own rate, else the run's rate scaled by the stage. */
function stageLearningRate(config: RunConfig, stage: Stage): number {
  return stage.lr ?? config.optimizer.lr * (stage.lrFactor ?? 1);
}

function setModes(stage: Stage): void {
  for (const m of stage.frozen) m.eval().requiresGrad_(false);
  for (const m of stage.trained) m.train().requiresGrad_(true);
}

function prepareStage(stage: Stage, lr: number, weightDecay: number): optim.Optimizer {
  setModes(stage);
  const params = [...new Set(stage.trained.flatMap((m) => m.parameters()))];
  return new optim.Adam(params, { lr, weightDecay });
}

/** Every parameter and buffer, in the state dict's order (what a rank hands the others). */
export function stateTensors(model: nn.Module): Tensor[] {
  return Object.values(model.stateDict());
}

/** A stage's selected weights: rank 0 reads model.safetensors and hands them to the other ranks. */
function loadSelectedWeights(model: nn.Module, file: string, group: ProcessGroup | null): void {
  if (!group || group.isWriter) loadWeights(model, file);
  if (group) group.broadcastState(stateTensors(model));
}

/** Adam's moments of a resumed stage: rank 0 reads them and hands the bytes to the other ranks. */
function loadOptimizerState(run: RunDir, optimizer: optim.Optimizer, state: CheckpointState, group: ProcessGroup | null): void {
  let bytes: Uint8Array = !group || group.isWriter ? readOptimizerState(run, state) : new Uint8Array(0);
  if (group) bytes = group.broadcastBytes(bytes);
  optimizer.loadState(bytes);
}
