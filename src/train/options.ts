// What `train` takes and returns. Method hyperparameters are not here: each method declares its own
// (its descriptor's options) and they travel in `methodOptions`.
import type { TrainEvent } from './events';
import type { TrainSettings } from './settings';
import type { ValidationScores } from './validate';

export { TRAIN_DEFAULTS } from './settings';
export type { TrainSettings } from './settings';

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

export interface TrainSummary {
  run: string;
  /** Per stage: its steps, which step's weights were kept and why ('best' by `select` on validation, or 'last'). */
  stages: { name: string; steps: number; selected: 'best' | 'last'; selectedStep: number; score: number | null; select: string }[];
  /** Validation scores of the final model; null when no case was held out. */
  validation: ValidationScores | null;
  validationCases: number;
  seconds: number;
}
