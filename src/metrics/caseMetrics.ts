import { PAPER_THRESHOLDS, ThresholdRule, validateThresholds, ValueMap } from './dice';

/**
 * Multi-annotator metrics for one image and one structure: what they take and give, and the parts both
 * implementations share. M annotators; annotation k is a binary mask (any non-zero byte is foreground)
 * or null when annotator k did not annotate this image.
 *
 * Two implementations with the same results: the plain functions (src/metrics/plain.ts, one soft Dice
 * per pair, easy to read) and the fused `evaluateCaseStructure` (src/metrics/fused.ts), which computes
 * everything in a few passes over the pixels and is what `avap evaluate` and training validation run.
 */

export type Mask = Uint8Array;

/** Bins of the expected calibration error (equal width on [0, 1], as Guo et al. 2017). */
export const ECE_BINS = 15;

/** Threshold that binarises predictions for GED, the hard Dice and the IoU. */
export const BINARY_THRESHOLD = 0.5;

export interface MultiAnnotatorOptions {
  /** Soft Dice thresholds; default PAPER_THRESHOLDS. */
  thresholds?: readonly number[];
  /** Default 'gt'. */
  rule?: ThresholdRule;
  /** ECE bins; default ECE_BINS. */
  eceBins?: number;
  /** Binarisation threshold of GED, hard Dice and IoU; default 0.5. */
  binaryThreshold?: number;
}

/**
 * Everything `avap evaluate` reports for one image and one structure (fractions; NaN = undefined),
 * keyed as the metric table (./table.ts) names them.
 */
export interface CaseStructureMetrics {
  /** Soft Dice of the calibrated (mean) prediction against the mean of the available annotations. */
  mean_voting: number;
  /** Soft Dice of the prediction for annotator k against annotation k (NaN when k is missing). */
  per_annotator: number[];
  /** Mean of per_annotator over the available annotators. */
  average: number;
  /** cross[i][j]: soft Dice of the prediction for annotator i against annotation j (NaN when j is missing). */
  cross: number[][];
  /** Generalised energy distance D²_GED between the M predictions and the available annotations (d = 1 − IoU). */
  ged: number;
  /** Expected calibration error of the mean prediction against the mean vote. */
  ece: number;
  /** [k]: 1 when cross[k][k] beats every other available annotation's cross[k][j], else 0; NaN when undefined. */
  identifiability_per_annotator: number[];
  /** Hard Dice (smoothing 1) of the mean prediction against the mean vote, both binarised at binaryThreshold. */
  hard_dice: number;
  /** IoU (smoothing 1), same binarisation. */
  iou: number;
}

export interface CaseStructureInput {
  /** Calibrated probability map. */
  meanPrediction: ValueMap;
  /** annotatorPredictions[k]: the probability map predicted for annotator k (length M). */
  annotatorPredictions: ValueMap[];
  /** annotations[k]: annotator k's binary mask, or null when missing (length M). */
  annotations: (Mask | null)[];
}

/**
 * Per-annotator identifiability from a cross table: 1 when the prediction for k is strictly
 * closer (higher soft Dice) to annotation k than to every other available annotation, 0 when not
 * (ties count as not identified), NaN when annotation k is missing or no other one is available.
 */
export function identifiability(cross: number[][]): number[] {
  return cross.map((row, k) => {
    const own = row[k];
    if (Number.isNaN(own)) return NaN;
    let best = -Infinity;
    let others = 0;
    row.forEach((v, j) => {
      if (j !== k && !Number.isNaN(v)) {
        others++;
        if (v > best) best = v;
      }
    });
    if (others === 0) return NaN;
    return own > best ? 1 : 0;
  });
}


/**
 * Expected calibration error of probabilities against soft targets, accumulated pixel by pixel:
 * pixels go to `bins` equal-width bins by probability (bin = min(⌊p·bins⌋, bins − 1), p < 0 → 0);
 * ECE = Σ_b (n_b / N) · |mean p in b − mean target in b|. Pixels whose probability or target is
 * NaN are left out; NaN when no pixel is left.
 */
export class CalibrationBins {
  private readonly n: Float64Array;
  private readonly sp: Float64Array;
  private readonly sy: Float64Array;
  private total = 0;

  constructor(readonly bins = ECE_BINS) {
    if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`expected calibration error: bad bin count ${bins}`);
    this.n = new Float64Array(bins);
    this.sp = new Float64Array(bins);
    this.sy = new Float64Array(bins);
  }

  add(p: number, y: number): void {
    if (Number.isNaN(p) || Number.isNaN(y)) return;
    const bins = this.bins;
    let b = Math.floor(p * bins);
    if (b >= bins) b = bins - 1;
    else if (b < 0) b = 0;
    this.n[b]++;
    this.sp[b] += p;
    this.sy[b] += y;
    this.total++;
  }

  value(): number {
    if (this.total === 0) return NaN;
    let ece = 0;
    for (let b = 0; b < this.bins; b++) if (this.n[b] > 0) ece += (this.n[b] / this.total) * Math.abs(this.sp[b] / this.n[b] - this.sy[b] / this.n[b]);
    return ece;
  }
}

export function undefinedMetrics(M: number): CaseStructureMetrics {
  return {
    mean_voting: NaN,
    per_annotator: new Array<number>(M).fill(NaN),
    average: NaN,
    cross: Array.from({ length: M }, () => new Array<number>(M).fill(NaN)),
    ged: NaN,
    ece: NaN,
    identifiability_per_annotator: new Array<number>(M).fill(NaN),
    hard_dice: NaN,
    iou: NaN,
  };
}

/** Validates an input and resolves the options (thresholds, rule, ECE bins, binarisation threshold). */
export function checkInput(input: CaseStructureInput, options: MultiAnnotatorOptions): { M: number; N: number; thresholds: readonly number[]; rule: ThresholdRule; bins: number; binaryThreshold: number } {
  const M = input.annotations.length;
  if (input.annotatorPredictions.length !== M) {
    throw new RangeError(`evaluateCaseStructure: ${input.annotatorPredictions.length} annotator predictions for ${M} annotators`);
  }
  const N = input.meanPrediction.length;
  for (const a of [...input.annotatorPredictions, ...input.annotations]) {
    if (a !== null && a.length !== N) throw new RangeError(`evaluateCaseStructure: a map has ${a.length} pixels, the mean prediction ${N}`);
  }
  const thresholds = validateThresholds(options.thresholds ?? PAPER_THRESHOLDS, 'thresholds');
  const bins = options.eceBins ?? ECE_BINS;
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`evaluateCaseStructure: bad ECE bin count ${bins}`);
  return { M, N, thresholds, rule: options.rule ?? 'gt', bins, binaryThreshold: options.binaryThreshold ?? BINARY_THRESHOLD };
}
