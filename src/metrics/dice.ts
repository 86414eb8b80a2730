import { UserError } from '../errors';

/**
 * Overlap metrics over flat typed arrays (one image, one structure), computed exactly as the public
 * RIGA evaluation code (PADL, TAB, D-Persona) computes them:
 *
 *   binarise the prediction and the target with `value > t`, then
 *   Dice_t = (2|P∩T| + s) / (|P| + |T| + s)           (s = 1e-6 for soft Dice, 1 for hard Dice)
 *   soft Dice = mean of Dice_t over t in (0.1, 0.3, 0.5, 0.7, 0.9)
 *   IoU       = (|P∩T| + s) / (|P∪T| + s)               (s = 1)
 *
 * Values are compared in double precision, exactly as stored (a Float32Array value is widened,
 * never rounded). NaN counts as below every threshold (as `torch.where(x > t, 1, 0)` does).
 * Counts are integers, so results do not depend on summation order.
 */

/** How a value is binarised at threshold t: 'gt' is `value > t` (RIGA code), 'ge' is `value >= t` (MRNet code). */
export type ThresholdRule = 'gt' | 'ge';

/** The thresholds of the paper (Section IV-B) and of the public RIGA evaluation code. */
export const PAPER_THRESHOLDS: readonly number[] = Object.freeze([0.1, 0.3, 0.5, 0.7, 0.9]);

/** Smoothing of the soft Dice (the RIGA code's `get_dice_threshold`). */
export const SOFT_DICE_SMOOTH = 1e-6;

/** Smoothing of the hard Dice and IoU (as PADL). */
export const HARD_SMOOTH = 1;

/** A probability map, a mean-vote map or a 0/1 mask, row-major, one value per pixel. */
export type ValueMap = Float32Array | Float64Array | Uint8Array;

export interface SoftDiceOptions {
  /** Default PAPER_THRESHOLDS. Each must lie strictly between 0 and 1. */
  thresholds?: readonly number[];
  /** Default 'gt'. */
  rule?: ThresholdRule;
  /** Default SOFT_DICE_SMOOTH (1e-6). */
  smooth?: number;
}

export interface BinaryMetricOptions {
  /** Default 0.5. */
  threshold?: number;
  /** Default 'gt'. */
  rule?: ThresholdRule;
  /** Default HARD_SMOOTH (1). */
  smooth?: number;
}

/** Per-threshold pixel counts, in the order of the thresholds given. */
export interface ThresholdCounts {
  thresholds: number[];
  /** |P_t| */
  pred: Float64Array;
  /** |T_t| */
  target: Float64Array;
  /** |P_t ∩ T_t| */
  intersection: Float64Array;
}

/** Whether `value` counts as foreground at threshold t under `rule`. */
export function passes(value: number, t: number, rule: ThresholdRule): boolean {
  return rule === 'gt' ? value > t : value >= t;
}

/**
 * Checks a threshold list: non-empty, finite, each strictly inside (0, 1) (at 0 or 1 a binary
 * annotation would no longer binarise to itself). Throws a UserError naming `flag`.
 */
export function validateThresholds(thresholds: readonly number[], flag = '--thresholds'): number[] {
  if (thresholds.length === 0) throw new UserError(`${flag}: the threshold list is empty`);
  if (thresholds.length > 250) throw new UserError(`${flag}: at most 250 thresholds (got ${thresholds.length})`);
  for (const t of thresholds) {
    if (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t >= 1) {
      throw new UserError(`${flag}: threshold ${String(t)} must be a number strictly between 0 and 1`);
    }
  }
  return [...thresholds];
}

/** Checks the rule name; throws a UserError naming `flag`. */
export function validateRule(rule: string, flag = '--rule'): ThresholdRule {
  if (rule !== 'gt' && rule !== 'ge') throw new UserError(`${flag}: expected 'gt' (value > t) or 'ge' (value >= t), got '${rule}'`);
  return rule;
}

/** Ascending copy of the thresholds (duplicates kept: each still counts once in the mean). */
export function sortedThresholds(thresholds: readonly number[]): Float64Array {
  return Float64Array.from(thresholds).sort();
}

/**
 * Writes into `out` the level of each value: the number of (ascending) thresholds it passes.
 * Because the thresholds are sorted, "passes threshold i" is exactly "level > i".
 */
export function levelsOf(values: ValueMap, sorted: Float64Array, rule: ThresholdRule, out: Uint8Array = new Uint8Array(values.length)): Uint8Array {
  const n = values.length;
  const T = sorted.length;
  if (rule === 'gt') {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      let l = 0;
      while (l < T && v > sorted[l]) l++;
      out[i] = l;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      let l = 0;
      while (l < T && v >= sorted[l]) l++;
      out[i] = l;
    }
  }
  return out;
}

function checkSameLength(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) throw new RangeError(`${what}: prediction has ${a.length} pixels, target has ${b.length}`);
}

/**
 * |P_t|, |T_t| and |P_t ∩ T_t| for every threshold in one pass over the pixels: each pixel adds
 * one to a (T+1)×(T+1) histogram of (prediction level, target level); the counts follow from
 * its tail sums.
 */
export function thresholdCounts(pred: ValueMap, target: ValueMap, thresholds: readonly number[], rule: ThresholdRule = 'gt'): ThresholdCounts {
  checkSameLength(pred, target, 'thresholdCounts');
  const sorted = sortedThresholds(thresholds);
  const T = sorted.length;
  const L = T + 1;
  const hist = new Float64Array(L * L);
  const n = pred.length;
  const gt = rule === 'gt';
  for (let i = 0; i < n; i++) {
    const p = pred[i];
    const q = target[i];
    let lp = 0;
    let lq = 0;
    if (gt) {
      while (lp < T && p > sorted[lp]) lp++;
      while (lq < T && q > sorted[lq]) lq++;
    } else {
      while (lp < T && p >= sorted[lp]) lp++;
      while (lq < T && q >= sorted[lq]) lq++;
    }
    hist[lp * L + lq]++;
  }
  // tail[a][b] = number of pixels with prediction level >= a and target level >= b.
  const tail = new Float64Array((L + 1) * (L + 1));
  const W = L + 1;
  for (let a = L - 1; a >= 0; a--) {
    for (let b = L - 1; b >= 0; b--) {
      tail[a * W + b] = hist[a * L + b] + tail[(a + 1) * W + b] + tail[a * W + b + 1] - tail[(a + 1) * W + b + 1];
    }
  }
  const sortedCounts = (i: number): [number, number, number] => [tail[(i + 1) * W], tail[i + 1], tail[(i + 1) * W + i + 1]];
  const out: ThresholdCounts = {
    thresholds: [...thresholds],
    pred: new Float64Array(thresholds.length),
    target: new Float64Array(thresholds.length),
    intersection: new Float64Array(thresholds.length),
  };
  thresholds.forEach((t, k) => {
    // Position of t among the sorted thresholds (any of equal ones gives the same counts).
    const i = sorted.indexOf(t);
    const [p, q, both] = sortedCounts(i);
    out.pred[k] = p;
    out.target[k] = q;
    out.intersection[k] = both;
  });
  return out;
}

/** (2I + s) / (P + T + s). */
export function diceFromCounts(intersection: number, pred: number, target: number, smooth: number): number {
  return (2 * intersection + smooth) / (pred + target + smooth);
}

/** (I + s) / (P + T − I + s). */
export function iouFromCounts(intersection: number, pred: number, target: number, smooth: number): number {
  return (intersection + smooth) / (pred + target - intersection + smooth);
}

/**
 * Soft Dice of one image: the mean over thresholds of the Dice of the binarised prediction
 * against the target binarised at the same threshold. Both empty at a threshold → 1 (through the
 * smoothing); an empty prediction against a non-empty target → ≈ 0.
 */
export function softDice(pred: ValueMap, target: ValueMap, options: SoftDiceOptions = {}): number {
  const thresholds = options.thresholds ?? PAPER_THRESHOLDS;
  const smooth = options.smooth ?? SOFT_DICE_SMOOTH;
  const c = thresholdCounts(pred, target, thresholds, options.rule ?? 'gt');
  let sum = 0;
  for (let k = 0; k < thresholds.length; k++) sum += diceFromCounts(c.intersection[k], c.pred[k], c.target[k], smooth);
  return sum / thresholds.length;
}

/** Dice at one threshold (default 0.5, smoothing 1), both maps binarised with the rule. */
export function hardDice(pred: ValueMap, target: ValueMap, options: BinaryMetricOptions = {}): number {
  const c = thresholdCounts(pred, target, [options.threshold ?? 0.5], options.rule ?? 'gt');
  return diceFromCounts(c.intersection[0], c.pred[0], c.target[0], options.smooth ?? HARD_SMOOTH);
}

/** IoU (Jaccard) at one threshold (default 0.5, smoothing 1), both maps binarised with the rule. */
export function iou(pred: ValueMap, target: ValueMap, options: BinaryMetricOptions = {}): number {
  const c = thresholdCounts(pred, target, [options.threshold ?? 0.5], options.rule ?? 'gt');
  return iouFromCounts(c.intersection[0], c.pred[0], c.target[0], options.smooth ?? HARD_SMOOTH);
}
