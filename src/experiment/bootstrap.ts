// Paired bootstrap of the difference between two methods' mean scores on the same test cases and
// seeds. Pairing (the same resampled cases and seeds for both methods) removes the case-to-case
// spread both methods share — an easy image is easy for both — which is most of the spread of a
// single method's mean; what is left is the uncertainty of the difference itself.
import { Rng } from '../util/random';

/** Scores of one method: [seed][case], the same seeds and cases (in the same order) for both methods; null where undefined. */
export type ScoreMatrix = readonly (readonly (number | null)[])[];

export interface BootstrapInterval {
  /** Mean over seeds and cases of a − b (pairs where either is null are left out). */
  difference: number;
  /** Percentile interval of the resampled differences. */
  low: number;
  high: number;
  resamples: number;
}

export interface BootstrapOptions {
  /** Number of resamples (default 2000). */
  resamples?: number;
  /** Coverage of the interval (default 0.95). */
  level?: number;
  /** Seed of the resampling (default 0): the same inputs always give the same interval. */
  seed?: number;
}

/**
 * Interval of mean(a) − mean(b): each resample draws the seeds with replacement, then the cases with
 * replacement (the same cases for every drawn seed, as every seed was evaluated on the same test set),
 * and takes the mean of the paired differences over the drawn (seed, case) cells. Null when no pair
 * has both scores.
 */
export function pairedBootstrap(a: ScoreMatrix, b: ScoreMatrix, options: BootstrapOptions = {}): BootstrapInterval | null {
  const resamples = options.resamples ?? 2000;
  const level = options.level ?? 0.95;
  const seeds = a.length;
  const cases = a[0]?.length ?? 0;
  if (b.length !== seeds || a.some((row) => row.length !== cases) || b.some((row) => row.length !== cases)) {
    throw new Error(`pairedBootstrap: both methods need scores for the same ${seeds} seeds × ${cases} cases`);
  }
  const diff = a.map((row, s) => row.map((x, c) => (x === null || b[s][c] === null ? NaN : x - b[s][c]!)));
  const meanOver = (seedIdx: ArrayLike<number>, caseIdx: ArrayLike<number>): number => {
    let total = 0;
    let n = 0;
    for (let i = 0; i < seedIdx.length; i++) {
      const row = diff[seedIdx[i]];
      for (let j = 0; j < caseIdx.length; j++) {
        const d = row[caseIdx[j]];
        if (!Number.isNaN(d)) {
          total += d;
          n++;
        }
      }
    }
    return n > 0 ? total / n : NaN;
  };
  const difference = meanOver(range(seeds), range(cases));
  if (Number.isNaN(difference)) return null;

  const rng = new Rng(options.seed ?? 0);
  const seedDraw = new Int32Array(seeds);
  const caseDraw = new Int32Array(cases);
  const values: number[] = [];
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < seeds; i++) seedDraw[i] = rng.int(seeds);
    for (let j = 0; j < cases; j++) caseDraw[j] = rng.int(cases);
    const v = meanOver(seedDraw, caseDraw);
    // A draw of only cases without a pair has no difference to contribute.
    if (!Number.isNaN(v)) values.push(v);
  }
  values.sort((x, y) => x - y);
  const tail = (1 - level) / 2;
  return { difference, low: quantile(values, tail), high: quantile(values, 1 - tail), resamples };
}

/** Linear interpolation between order statistics (R's type 7) of sorted values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
