// What every segmentation method (AVAP and the paper's baselines) provides to the shared trainer,
// predictor and evaluator.
import { Encoder } from '../models/encoders/encoder';
import { Tensor, nn } from '../torch';
import type { TrainingStatistics } from '../data/statistics';
import { Rng } from '../util/random';

/** A batch handed to a stage's loss, as tensors (built from the data pipeline's typed arrays). */
export interface TrainingBatch {
  size: number;
  /** [B, C, S, S] normalised images. */
  images: Tensor;
  /** [B, K, S, S] int64: the AVM's class per pixel, the annotators marking it rescaled to 0..M (agreementClass). */
  agreementClasses: Tensor;
  /** [B, K, S, S] float: mean vote over the available annotators. */
  meanVotes: Tensor;
  /** [B, M, K, S, S] float 0/1. */
  annotatorMasks: Tensor;
  /** Row-major [B, M]: 1 when annotator m annotated image b. */
  available: Uint8Array;
  /**
   * Set when this batch is one rank's rows of a global batch (data-parallel training): random
   * per-sample choices are drawn for the global batch and sliced, as one process would draw them.
   */
  shard?: BatchShard;
}

export interface BatchShard {
  /** This rank's first row within the global batch. */
  first: number;
  /** Rows of the global batch. */
  global: number;
  /** The global batch's `available`, row-major [global, M]. */
  globalAvailable: Uint8Array;
}

/** The batch whose rows the random per-sample draws cover: the global batch when sharded. */
export function drawingBatch(batch: TrainingBatch): Pick<TrainingBatch, 'size' | 'available'> {
  return batch.shard ? { size: batch.shard.global, available: batch.shard.globalAvailable } : batch;
}

/** Validation score that selects a stage's best epoch: Mean Voting, Average, or their mean. */
export type SelectionScore = 'mean_voting' | 'average' | 'mean_of_mean_voting_and_average';

/**
 * A stage as planned from the method's config, before any model exists: what `avap experiment` counts
 * for its progress and what the trainer's summary reports.
 */
export interface StagePlan {
  name: string;
  /** Optimiser steps of this stage (a budget in steps, not epochs: a 30-image set needs as many as a 700-image one). */
  steps: number;
  select: SelectionScore;
  /** Learning rate of this stage; default the run's learning rate times `lrFactor`. */
  lr?: number;
  /** Without `lr`: this stage's rate relative to the run's (default 1). */
  lrFactor?: number;
  /**
   * Cross-fitting: the stage trains on the training cases outside fold `fold` (0-based) of `folds`,
   * a split drawn from the run's seed, so the held-out fold can show what the trained modules do on
   * images they never saw.
   */
  crossFit?: { fold: number; folds: number };
}

/** One phase of training: which modules learn, which stay frozen, and what they learn from. */
export interface Stage extends StagePlan {
  /** Trained: train mode, gradients on, their parameters go to the optimiser. */
  trained: nn.Module[];
  /** Frozen: eval mode (batch-norm statistics fixed), no gradients. */
  frozen: nn.Module[];
  /**
   * The loss of one batch; `rng` draws any per-sample choices deterministically. It computes only
   * the outputs this stage trains on.
   */
  loss(batch: TrainingBatch, rng: Rng): Tensor;
  /** Optional: before the stage's first step (not when a run resumes inside the stage), e.g. to re-initialise what it trains. */
  begin?(seed: number): void;
  /** Cross-fitting stages: each batch of the held-out fold (unaugmented), after the stage's weights are selected. */
  heldOut?(batch: TrainingBatch): void;
  /**
   * Optional: after the stage's weights are selected (and held out); what it changes is kept for the
   * next stage. It may return a line for the run's log saying what it decided.
   */
  end?(): string | void;
}

export interface Prediction {
  /** [B, K, H, W] calibrated probability per structure (the consensus map Mean Voting scores). */
  calibrated: Tensor;
  /** [B, M, K, H, W] probability per annotator and structure. */
  annotators: Tensor;
}

/**
 * A prediction plus other calibrated maps ([B, K, H, W]) that validation scores by Mean Voting beside
 * `calibrated`, in named groups: AVAP's { calibration: { expectation, argmax } } lets the data choose its rule.
 */
export interface ValidationPrediction extends Prediction {
  alternatives: Record<string, Record<string, Tensor>>;
}

/** The fields every method config has; the rest is the method's own (its descriptor's schema). */
export interface MethodConfig {
  /** The descriptor's name. */
  method: string;
  structures: string[];
  annotators: string[];
}

export interface Method {
  /** The run's method id (`avap`, `mv-unet`, `single:2`, …). */
  readonly name: string;
  readonly model: nn.Module;
  /** Everything needed to rebuild the model (goes to config.json). */
  readonly config: MethodConfig;
  /** The encoder ImageNet weights load into (`--pretrained`); null when the model has none. */
  readonly encoder: Encoder | null;
  stages(): Stage[];
  /** Probabilities for a batch of images, in eval mode without autograd. */
  predict(images: Tensor): Prediction;
  /**
   * Optional: the prediction with `annotators` (0-based) only, computing nothing for the others; its
   * `annotators` maps are [B, A, K, H, W] in that order. Without it a subset is cut from predict()'s.
   */
  predictAnnotators?(images: Tensor, annotators: number[]): Prediction;
  /** Optional: the prediction and alternative calibrated maps from one pass, for validation. */
  predictForValidation?(images: Tensor): ValidationPrediction;
  /** Optional: called once before a new run's first step with statistics of its training targets. */
  initialize?(statistics: TrainingStatistics): void;
}
