// The training loop every method shares: its stages in order, each epoch validated, the best epoch of
// a stage kept in model.safetensors, a crash-safe checkpoint after every epoch, and exact resumption.
import { DataLoader } from '../data/pipeline';
import { Method, Stage } from '../methods/method';
import { optim, tidy } from '../torch';
import { Rng } from '../util/random';
import { toTrainingBatch } from './batch';
import { loadOptimizerState, loadWeights, saveCheckpoint, saveWeights } from './checkpoint';
import type { TrainEvent } from './events';
import { CheckpointState, RunConfig, RunDir } from './run';
import { learningRateAt } from './schedule';
import { selectionScore, validate } from './validate';

export interface LoopContext {
  run: RunDir;
  config: RunConfig;
  method: Method;
  trainLoader: DataLoader;
  valLoader: DataLoader;
  /** Where a resumed run stands; null for a new run. */
  state: CheckpointState | null;
  emit: (e: TrainEvent) => void;
  /** When this session started (Date.now()), for the run's total training time. */
  started: number;
}

/** Trains every stage not yet done; returns the best epoch and score per stage. */
export async function trainStages(ctx: LoopContext): Promise<CheckpointState['best']> {
  const { run, config, method, trainLoader, valLoader, emit } = ctx;
  let state = ctx.state;
  const { started } = ctx;
  const elapsedBefore = ctx.state?.elapsedSeconds ?? 0;
  const seconds = () => elapsedBefore + (Date.now() - started) / 1000;
  const stages = method.stages();
  const best: CheckpointState['best'] = state?.best ?? [];
  const M = config.model.annotators.length;
  const K = config.model.structures.length;
  const steps = trainLoader.batchesPerEpoch;

  for (let s = state?.stage ?? 0; s < stages.length; s++) {
    const stage = stages[s];
    const firstEpoch = state && state.stage === s ? state.epoch : 0;
    if (firstEpoch >= stage.epochs) {
      // Killed between this stage's last checkpoint and the next stage's first: continue from its best epoch.
      if (stage.epochs > 0) loadWeights(method.model, run.modelFile);
      continue;
    }
    const lr = stageLearningRate(config, stage);
    const optimizer = prepareStage(stage, lr, config.optimizer.weightDecay);
    if (state && state.stage === s && firstEpoch > 0) loadOptimizerState(run, optimizer, state);
    const totalSteps = stage.epochs * steps;
    for (let epoch = firstEpoch; epoch < stage.epochs; epoch++) {
      emit({ type: 'epochStart', stage: stage.name, stageIndex: s, epoch: epoch + 1, epochs: stage.epochs, steps });
      const rng = Rng.from(config.seed, 'stage', s, 'epoch', epoch);
      let lossSum = 0;
      let step = 0;
      const t0 = Date.now();
      setModes(stage);
      for await (const b of trainLoader.epoch(s * 100000 + epoch)) {
        optimizer.setLr(learningRateAt({ kind: config.optimizer.schedule }, lr, epoch * steps + step, totalSteps));
        const loss = tidy(() => {
          optimizer.zeroGrad();
          const batch = toTrainingBatch(b, config.input.channels, M, K);
          // The inner scope releases our handles on activations before backward (autograd keeps what it needs).
          const l = tidy(() => stage.loss(batch, rng));
          l.backward();
          optimizer.step();
          return l.item();
        });
        if (!Number.isFinite(loss)) throw new Error(`training diverged: loss is ${loss} at stage ${stage.name}, epoch ${epoch + 1}, step ${step + 1}`);
        lossSum += loss;
        step++;
        emit({ type: 'step', stage: stage.name, stageIndex: s, epoch: epoch + 1, step, steps, loss });
      }
      const val = await validate(method, valLoader);
      const score = selectionScore(val, stage.select);
      const previous = best.find((x) => x.stage === s);
      const improved = !previous || score > previous.score;
      if (improved) {
        saveWeights(method.model, run.modelFile, { stage: stage.name, epoch: String(epoch + 1), score: score.toFixed(6) });
        if (previous) Object.assign(previous, { score, epoch: epoch + 1 });
        else best.push({ stage: s, score, epoch: epoch + 1 });
      }
      const epochSeconds = (Date.now() - t0) / 1000;
      const meanLoss = lossSum / Math.max(1, step);
      run.log({ event: 'epoch', stage: stage.name, epoch: epoch + 1, epochs: stage.epochs, loss: meanLoss, lr: optimizer.lr, val, best: improved, seconds: epochSeconds });
      emit({ type: 'epoch', stage: stage.name, stageIndex: s, epoch: epoch + 1, epochs: stage.epochs, loss: meanLoss, lr: optimizer.lr, val, best: improved, seconds: epochSeconds });
      saveCheckpoint(run, method.model, optimizer, { stage: s, epoch: epoch + 1, best, elapsedSeconds: seconds() });
    }
    // The next stage builds on this stage's best epoch, not its last one.
    loadWeights(method.model, run.modelFile);
    // Commit the hand-over: from here on model.safetensors belongs to the next stage, whose first
    // improvement overwrites it; a resume must restart that stage from this stage's best weights.
    saveCheckpoint(run, method.model, null, { stage: s + 1, epoch: 0, best, elapsedSeconds: seconds() });
    state = null;
  }
  return best;
}

/** The stage's own rate, else (runs written before stages carried one) the run's per-stage override, else the run's rate. */
function stageLearningRate(config: RunConfig, stage: Stage): number {
  return stage.lr ?? config.optimizer.stageLr?.[stage.name] ?? config.optimizer.lr;
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
