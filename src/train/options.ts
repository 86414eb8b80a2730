// What `train` takes and returns. Method hyperparameters are not here: each method declares its own
// (its descriptor's options) and they travel in `methodOptions`.
import { NormalizationKind } from '../data/normalization';
import type { PrecisionChoice } from '../torch/precision';
import type { TrainEvent } from './events';
import type { ValidationScores } from './validate';

export interface TrainSettings {
  /** Training cases: a split, or subsets (default the 'train' split when there is one, else every case). */
  split?: string;
  subsets?: string[];
  /** A registered method id: avap, mv-unet, single:2, … */
  method: string;
  size: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  schedule: 'constant' | 'poly' | 'cosine';
  /** Optimiser steps of the method's main stage (AVAP: step 1); a method's further stages have their own options. */
  steps: number;
  encoder: string;
  featureChannels: number;
  /** ImageNet encoder weights (safetensors, torchvision names). */
  pretrained?: string;
  seed: number;
  /** Share of the training selection held out for validation; 'auto' holds out 10% when that makes at least MIN_SELECTION_CASES cases, else none. */
  valFraction: number | 'auto';
  normalization: NormalizationKind;
  augment: boolean;
  /** The convolutions' precision: 'auto' (bf16 on CPUs with bf16 arithmetic, else fp32), 'fp32' or 'bf16'. */
  precision: PrecisionChoice;
  /** Continue the run in `out` from its last completed round. */
  resume: boolean;
  /** With resume: the flags given now (e.g. ['--seed']); only these are compared with the run's. Default: every setting. */
  explicit?: string[];
  /** The method's own hyperparameters by key (e.g. AVAP's { preferenceSteps: 300, preferenceLr: 5e-3 }). */
  methodOptions?: Record<string, unknown>;
}

export interface TrainOptions extends Partial<TrainSettings> {
  data: string;
  out: string;
  /** Every training event (progress, epochs, notes); default: lines on stderr and, on a terminal, a progress bar. */
  onEvent?: (event: TrainEvent) => void;
  /** With the default reporter: a progress bar on stderr (default: when stderr is a terminal). */
  progress?: boolean;
  /** With the default reporter: where status lines go (default: stderr). */
  print?: (line: string) => void;
  /** Data-parallel training (torchrun's variables set): seconds a rendezvous or collective may wait for the other ranks. */
  distTimeout?: number;
  /** Data-parallel training: batch statistics over the global batch (SyncBatchNorm, default) or per rank. */
  syncBatchNorm?: boolean;
}

/**
 * Defaults for a small real dataset trained from scratch (no ImageNet weights): Adam at 1e-3 decayed
 * to zero by the poly schedule over a fixed number of steps, whatever the dataset's size (README:
 * "Training on your own images" has the measurements behind them).
 */
export const TRAIN_DEFAULTS = {
  method: 'avap', size: 256, batchSize: 8, lr: 1e-3, weightDecay: 1e-5, schedule: 'poly' as const,
  steps: 2000, encoder: 'resnet34', featureChannels: 32, seed: 0, valFraction: 'auto' as const,
  normalization: 'per-pixel' as const, augment: true, precision: 'auto' as const, resume: false,
} satisfies Omit<TrainSettings, 'split' | 'subsets' | 'pretrained' | 'methodOptions'>;

export interface TrainSummary {
  run: string;
  /** Per stage: its steps, which step's weights were kept and why ('best' by `select` on validation, or 'last'). */
  stages: { name: string; steps: number; selected: 'best' | 'last'; selectedStep: number; score: number | null; select: string }[];
  /** Validation scores of the final model; null when no case was held out. */
  validation: ValidationScores | null;
  validationCases: number;
  seconds: number;
}
