// What every segmentation method (AVAP and the paper's baselines) provides to the shared trainer,
// predictor and evaluator.
import { Tensor, nn } from '../torch';
import { Rng } from '../util/random';

/** A batch handed to a method's loss, as tensors (built from the data pipeline's typed arrays). */
export interface TrainingBatch {
  size: number;
  /** [B, C, S, S] normalised images. */
  images: Tensor;
  /** [B, K, S, S] int64: annotators marking each pixel, rescaled to 0..M when some are missing. */
  counts: Tensor;
  /** [B, K, S, S] float: mean vote over the available annotators. */
  meanVotes: Tensor;
  /** [B, M, K, S, S] float 0/1. */
  annotatorMasks: Tensor;
  /** Row-major [B, M]: 1 when annotator m annotated image b. */
  available: Uint8Array;
}

/** One phase of training: which modules learn, which stay frozen, and which score picks the best epoch. */
export interface Stage {
  name: string;
  epochs: number;
  /** Trained: train mode, gradients on, their parameters go to the optimiser. */
  trained: nn.Module[];
  /** Frozen: eval mode (batch-norm statistics fixed), no gradients. */
  frozen: nn.Module[];
  /** Validation score that selects this stage's best epoch. */
  select: 'mean_voting' | 'average' | 'both';
}

export interface Prediction {
  /** [B, K, H, W] calibrated probability per structure. */
  mean: Tensor;
  /** [B, M, K, H, W] probability per annotator and structure. */
  annotators: Tensor;
}

export interface Method {
  /** The registry name (`avap`, `mv-unet`, …). */
  readonly name: string;
  readonly model: nn.Module;
  /** Everything needed to rebuild the model (goes to config.json). */
  readonly config: unknown;
  stages(): Stage[];
  /** The loss of one batch in the given stage; `rng` draws any per-sample choices deterministically. */
  loss(stage: Stage, batch: TrainingBatch, rng: Rng): Tensor;
  /** Probabilities for a batch of images, in eval mode without autograd. */
  predict(images: Tensor): Prediction;
}
