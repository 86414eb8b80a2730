// Weights and checkpoints on disk: what training writes, and what `predict` reads to rebuild a model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { MiB, readBounded } from '../io/readBounded';
import { loadStateDict, nn, optim, saveStateDict, tidy } from '../torch';
import { CheckpointState, RunDir } from './run';

export function saveWeights(model: nn.Module, file: string, metadata: Record<string, string> = {}): void {
  saveStateDict(file, model.stateDict(), metadata);
}

/** Loads every parameter and buffer of `model` from a safetensors file (strict: a UserError names what is missing or extra). */
export function loadWeights(model: nn.Module, file: string): void {
  tidy(() => void model.loadStateDict(loadStateDict(file).state, { source: file }));
}

/** Weights (and the optimiser's state, mid-stage) first, then state.json pointing at them. */
export function saveCheckpoint(run: RunDir, model: nn.Module, optimizer: optim.Optimizer | null, s: Omit<CheckpointState, 'weights' | 'optimizer'>): void {
  const tag = `${s.stage}-${s.step}`;
  const weights = `weights-${tag}.safetensors`;
  const opt = optimizer ? `optimizer-${tag}.bin` : '';
  saveWeights(model, path.join(run.checkpointDir, weights));
  if (optimizer) writeFileAtomic(path.join(run.checkpointDir, opt), optimizer.stateBytes());
  run.commitState({ ...s, weights, optimizer: opt });
}

export function loadCheckpointWeights(run: RunDir, model: nn.Module, state: CheckpointState): void {
  loadWeights(model, path.join(run.checkpointDir, state.weights));
}

/**
 * The optimiser's state bytes of a mid-stage checkpoint. Adam keeps two moments per parameter, so its
 * state is about twice the weights; three times their file, plus room for the step counters, bounds it.
 */
export function readOptimizerState(run: RunDir, state: CheckpointState): Buffer {
  const weights = fs.statSync(path.join(run.checkpointDir, state.weights)).size;
  return readBounded(path.join(run.checkpointDir, state.optimizer), 3 * weights + 16 * MiB, 'the optimiser state of these weights');
}
