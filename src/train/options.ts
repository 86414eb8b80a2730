// What `train` takes and returns. Method hyperparameters are not here: each method declares its own
// (its descriptor's options) and they travel in `methodOptions`.
import { NormalizationKind } from '../data/normalization';
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
  /** Epochs of the method's main stage (AVAP: step 1); a method's further stages have their own options. */
  epochs: number;
  encoder: string;
  featureChannels: number;
  /** ImageNet encoder weights (safetensors, torchvision names). */
  pretrained?: string;
  seed: number;
  valFraction: number;
  normalization: NormalizationKind;
  augment: boolean;
  /** Continue the run in `out` from its last completed epoch. */
  resume: boolean;
  /** The method's own hyperparameters by key (e.g. AVAP's { preferenceEpochs: 30, preferenceLr: 5e-3 }). */
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
}

export const TRAIN_DEFAULTS = {
  method: 'avap', size: 256, batchSize: 8, lr: 1e-4, weightDecay: 1e-5, schedule: 'constant' as const,
  epochs: 100, encoder: 'resnet34', featureChannels: 32, seed: 0, valFraction: 0.1,
  normalization: 'per-pixel' as const, augment: true, resume: false,
} satisfies Omit<TrainSettings, 'split' | 'subsets' | 'pretrained' | 'methodOptions'>;

export interface TrainSummary {
  run: string;
  stages: { name: string; epochs: number; bestEpoch: number; bestScore: number; select: string }[];
  validation: ValidationScores;
  seconds: number;
}
