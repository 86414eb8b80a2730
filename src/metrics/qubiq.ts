/**
 * The QUBIQ challenge's score (MICCAI 2020/2021, "Quantification of Uncertainties in Biomedical Image
 * Quantification"):
 *
 *   ground truth  = per-voxel mean of the raters' binary masks
 *   at each t in 0.1, 0.2, …, 0.9: binarise prediction and ground truth with `value > t`,
 *                   Dice_t = 2|P∩T| / (|P| + |T|), and 1 when both are empty
 *   case score    = mean of Dice_t over the nine thresholds
 *   task score    = mean over the task's cases; dataset score = mean over its tasks
 *
 * Unlike the paper's soft Dice (./dice.ts) there is no smoothing term, so a case with no structure in
 * any rater scores 1 for a prediction that finds none and 0 for one that finds some.
 */
import { NanMeanAccumulator } from './accumulator';
import { Mask } from './caseMetrics';
import { thresholdCounts, ValueMap } from './dice';
import { meanVote } from './plain';

export const QUBIQ_THRESHOLDS: readonly number[] = Object.freeze([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);

/** Dice at each QUBIQ threshold of a continuous prediction against a continuous ground truth (both in [0, 1]). */
export function qubiqDicePerThreshold(prediction: ValueMap, groundTruth: ValueMap): number[] {
  if (prediction.length !== groundTruth.length) throw new RangeError(`qubiqDice: prediction has ${prediction.length} voxels, ground truth ${groundTruth.length}`);
  const c = thresholdCounts(prediction, groundTruth, QUBIQ_THRESHOLDS, 'gt');
  return c.thresholds.map((_, i) => {
    const sum = c.pred[i] + c.target[i];
    return sum === 0 ? 1 : (2 * c.intersection[i]) / sum;
  });
}

/** One case and task: the mean over thresholds of the Dice against the raters' mean. `raters` are 0/1 masks; null = not annotated. */
export function qubiqCaseScore(prediction: ValueMap, raters: (Mask | null)[]): number {
  if (raters.every((r) => r === null)) return NaN;
  const perT = qubiqDicePerThreshold(prediction, meanVote(raters));
  return perT.reduce((a, b) => a + b, 0) / perT.length;
}

export interface QubiqScore {
  /** Per task (structure), the mean case score; NaN for a task no case scored. */
  perTask: number[];
  /** Mean of the per-task scores that exist. */
  overall: number;
  /** Cases scored per task. */
  cases: number[];
}

/** Accumulates case scores task by task, as the challenge averages them. */
export class QubiqAccumulator {
  private readonly acc: NanMeanAccumulator;

  constructor(readonly tasks: number) {
    this.acc = new NanMeanAccumulator(tasks);
  }

  /** One case's scores, one per task (NaN where the task was not scored for this case). */
  add(caseScores: ArrayLike<number>): this {
    this.acc.add(caseScores);
    return this;
  }

  result(): QubiqScore {
    const perTask = this.acc.aggregate();
    const present = perTask.filter((v) => !Number.isNaN(v));
    return {
      perTask,
      overall: present.length > 0 ? present.reduce((a, b) => a + b, 0) / present.length : NaN,
      cases: this.acc.countPerEntry(),
    };
  }
}
