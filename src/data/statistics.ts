// What a method may want to know about its training targets before the first step: per structure,
// how often each agreement count 0..M occurs over the training pixels (at the model's input size,
// unaugmented). A head can start from these frequencies instead of learning them first.
import type { CaseRecord, Dataset } from './dataset';
import { prepareCase } from './prepare';
import { agreementClass } from './targets';

export interface TrainingStatistics {
  /** Per structure: pixel counts of agreement classes 0..M (counts rescaled to M where annotations are missing, as the AVM's target). */
  agreementHistogram: number[][];
}

/** Reads every training case once (four at a time). */
export async function trainingStatistics(ds: Dataset, cases: CaseRecord[], size: number): Promise<TrainingStatistics> {
  const M = ds.annotators.length;
  const K = ds.structures.length;
  const plane = size * size;
  const histogram = Array.from({ length: K }, () => new Array<number>(M + 1).fill(0));
  let next = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = await prepareCase(ds, cases[next++], size);
      const available = c.available.reduce((a, b) => a + b, 0);
      if (available === 0) continue;
      for (let s = 0; s < K; s++) {
        const bit = 1 << s;
        for (let i = 0; i < plane; i++) {
          let count = 0;
          for (let m = 0; m < M; m++) if (c.labels[m * plane + i] & bit) count++;
          histogram[s][agreementClass(count, available, M)]++;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, cases.length) }, worker));
  return { agreementHistogram: histogram };
}

/** Foreground frequencies are kept this far from 0 and 1, so a structure never (or always) seen keeps a finite logit. */
export const MIN_FOREGROUND_FREQUENCY = 1e-4;

/**
 * Per structure, the mean vote's mean over the training pixels: Σ_c (c/M)·hist[c] / Σ_c hist[c],
 * clamped to [MIN_FOREGROUND_FREQUENCY, 1 − MIN_FOREGROUND_FREQUENCY]. It is the best constant
 * prediction of the mean vote, and for an output trained on one annotator's masks (M_K, MH-UNet's
 * heads) the annotators' average frequency. A structure with no counted pixel gets ½.
 */
export function foregroundFrequencies(statistics: TrainingStatistics): number[] {
  return statistics.agreementHistogram.map((histogram) => {
    const annotators = histogram.length - 1;
    const total = histogram.reduce((a, b) => a + b, 0);
    if (annotators < 1 || !(total > 0)) return 0.5;
    const marked = histogram.reduce((a, n, count) => a + (count / annotators) * n, 0);
    return Math.min(Math.max(marked / total, MIN_FOREGROUND_FREQUENCY), 1 - MIN_FOREGROUND_FREQUENCY);
  });
}
