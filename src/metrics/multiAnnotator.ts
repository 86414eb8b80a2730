import { nanMean } from './accumulator';
import {
  diceFromCounts,
  hardDice,
  HARD_SMOOTH,
  iou,
  iouFromCounts,
  PAPER_THRESHOLDS,
  passes,
  SOFT_DICE_SMOOTH,
  softDice,
  sortedThresholds,
  ThresholdRule,
  validateThresholds,
  ValueMap,
} from './dice';

/**
 * Multi-annotator metrics for one image and one structure. M annotators; annotation k is a binary
 * mask (any non-zero byte is foreground) or null when annotator k did not annotate this image.
 *
 * Two implementations with the same results: the plain functions below (one soft Dice per pair,
 * easy to read) and `evaluateCaseStructure`, which computes everything in a few passes over the
 * pixels (per-pixel annotation codes and level histograms) and is what `avap evaluate` runs.
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

/** Everything `avap evaluate` reports for one image and one structure (fractions; NaN = undefined). */
export interface CaseStructureMetrics {
  /** Soft Dice of the calibrated (mean) prediction against the mean of the available annotations. */
  meanVoting: number;
  /** Soft Dice of the prediction for annotator k against annotation k (NaN when k is missing). */
  perAnnotator: number[];
  /** Mean of perAnnotator over the available annotators. */
  average: number;
  /** cross[i][j]: soft Dice of the prediction for annotator i against annotation j (NaN when j is missing). */
  cross: number[][];
  /** Generalised energy distance D²_GED between the M predictions and the available annotations (d = 1 − IoU). */
  ged: number;
  /** Expected calibration error of the mean prediction against the mean vote. */
  ece: number;
  /** identified[k]: 1 when cross[k][k] beats every other available annotation's cross[k][j], else 0; NaN when undefined. */
  identified: number[];
  /** Hard Dice (smoothing 1) of the mean prediction against the mean vote, both binarised at binaryThreshold. */
  hardDice: number;
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

// ----------------------------------------------------------------------------------------------
// Plain implementations
// ----------------------------------------------------------------------------------------------

/** Per-pixel mean of the available annotations (double precision, so 3/6 is exactly 0.5). */
export function meanVote(annotations: (Mask | null)[]): Float64Array {
  const present = annotations.filter((a): a is Mask => a !== null);
  if (present.length === 0) throw new RangeError('meanVote: no annotation available');
  const n = present[0].length;
  const votes = new Float64Array(n);
  for (const a of present) {
    if (a.length !== n) throw new RangeError(`meanVote: annotations have ${a.length} and ${n} pixels`);
    for (let i = 0; i < n; i++) if (a[i] !== 0) votes[i]++;
  }
  for (let i = 0; i < n; i++) votes[i] /= present.length;
  return votes;
}

/** 'Mean Voting': soft Dice of the calibrated prediction against the mean vote. */
export function meanVotingDice(meanPrediction: ValueMap, annotations: (Mask | null)[], options: MultiAnnotatorOptions = {}): number {
  if (annotations.every((a) => a === null)) return NaN;
  return softDice(meanPrediction, meanVote(annotations), { thresholds: options.thresholds, rule: options.rule });
}

/** Table I: cross[i][j] = soft Dice of prediction i against annotation j (NaN when j is missing). */
export function crossTable(predictions: ValueMap[], annotations: (Mask | null)[], options: MultiAnnotatorOptions = {}): number[][] {
  const opts = { thresholds: options.thresholds, rule: options.rule };
  return predictions.map((p) => annotations.map((a) => (a === null ? NaN : softDice(p, a, opts))));
}

/** 'Average': soft Dice of the prediction for k against annotation k, and their mean over available k. */
export function averageDice(predictions: ValueMap[], annotations: (Mask | null)[], options: MultiAnnotatorOptions = {}): { perAnnotator: number[]; average: number } {
  if (predictions.length !== annotations.length) throw new RangeError(`averageDice: ${predictions.length} predictions for ${annotations.length} annotators`);
  const opts = { thresholds: options.thresholds, rule: options.rule };
  const perAnnotator = annotations.map((a, k) => (a === null ? NaN : softDice(predictions[k], a, opts)));
  return { perAnnotator, average: nanMean(perAnnotator) };
}

function binaryIouDistance(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) inter++;
    if (a[i] || b[i]) union++;
  }
  return union === 0 ? 0 : 1 - inter / union;
}

/**
 * Generalised energy distance D²_GED = 2·E[d(S, Y)] − E[d(S, S')] − E[d(Y, Y')] with
 * d = 1 − IoU, over all ordered pairs (identical pairs included, as PHiSeg's implementation),
 * S = the predictions binarised at `threshold`, Y = the available annotations. IoU here is
 * unsmoothed and two empty masks are at distance 0. NaN when no annotation is available.
 */
export function generalizedEnergyDistance(predictions: ValueMap[], annotations: (Mask | null)[], options: { threshold?: number; rule?: ThresholdRule } = {}): number {
  const t = options.threshold ?? BINARY_THRESHOLD;
  const rule = options.rule ?? 'gt';
  const S = predictions.map((p) => Uint8Array.from(p, (v) => (passes(v, t, rule) ? 1 : 0)));
  const Y = annotations.filter((a): a is Mask => a !== null).map((a) => Uint8Array.from(a, (v) => (v !== 0 ? 1 : 0)));
  if (Y.length === 0 || S.length === 0) return NaN;
  const meanDistance = (A: Uint8Array[], B: Uint8Array[]): number => {
    let sum = 0;
    for (const a of A) for (const b of B) sum += binaryIouDistance(a, b);
    return sum / (A.length * B.length);
  };
  return 2 * meanDistance(S, Y) - meanDistance(S, S) - meanDistance(Y, Y);
}

/**
 * Expected calibration error of a probability map against a soft target (the mean vote):
 * pixels go to `bins` equal-width bins by probability (bin = min(⌊p·bins⌋, bins − 1), p < 0 → 0);
 * ECE = Σ_b (n_b / N) · |mean p in b − mean target in b|. Pixels whose probability or target is
 * NaN are left out; NaN when no pixel is left.
 */
export function expectedCalibrationError(prob: ValueMap, target: ValueMap, bins = ECE_BINS): number {
  if (prob.length !== target.length) throw new RangeError(`expectedCalibrationError: ${prob.length} vs ${target.length} pixels`);
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`expectedCalibrationError: bad bin count ${bins}`);
  const n = new Float64Array(bins);
  const sp = new Float64Array(bins);
  const sy = new Float64Array(bins);
  let total = 0;
  for (let i = 0; i < prob.length; i++) {
    const p = prob[i];
    const y = target[i];
    if (Number.isNaN(p) || Number.isNaN(y)) continue;
    let b = Math.floor(p * bins);
    if (b >= bins) b = bins - 1;
    else if (b < 0) b = 0;
    n[b]++;
    sp[b] += p;
    sy[b] += y;
    total++;
  }
  if (total === 0) return NaN;
  let ece = 0;
  for (let b = 0; b < bins; b++) if (n[b] > 0) ece += (n[b] / total) * Math.abs(sp[b] / n[b] - sy[b] / n[b]);
  return ece;
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

function undefinedMetrics(M: number): CaseStructureMetrics {
  return {
    meanVoting: NaN,
    perAnnotator: new Array<number>(M).fill(NaN),
    average: NaN,
    cross: Array.from({ length: M }, () => new Array<number>(M).fill(NaN)),
    ged: NaN,
    ece: NaN,
    identified: new Array<number>(M).fill(NaN),
    hardDice: NaN,
    iou: NaN,
  };
}

function checkInput(input: CaseStructureInput, options: MultiAnnotatorOptions): { M: number; N: number; thresholds: readonly number[]; rule: ThresholdRule; bins: number; bt: number } {
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
  return { M, N, thresholds, rule: options.rule ?? 'gt', bins, bt: options.binaryThreshold ?? BINARY_THRESHOLD };
}

/** Same results as `evaluateCaseStructure`, computed pair by pair with the plain functions. */
export function evaluateCaseStructurePlain(input: CaseStructureInput, options: MultiAnnotatorOptions = {}): CaseStructureMetrics {
  const { M, thresholds, rule, bins, bt } = checkInput(input, options);
  if (input.annotations.every((a) => a === null)) return undefinedMetrics(M);
  const opts = { thresholds, rule };
  const mv = meanVote(input.annotations);
  const cross = crossTable(input.annotatorPredictions, input.annotations, opts);
  const perAnnotator = cross.map((row, k) => row[k]);
  return {
    meanVoting: softDice(input.meanPrediction, mv, opts),
    perAnnotator,
    average: nanMean(perAnnotator),
    cross,
    ged: generalizedEnergyDistance(input.annotatorPredictions, input.annotations, { threshold: bt, rule }),
    ece: expectedCalibrationError(input.meanPrediction, mv, bins),
    identified: identifiability(cross),
    hardDice: hardDice(input.meanPrediction, mv, { threshold: bt, rule }),
    iou: iou(input.meanPrediction, mv, { threshold: bt, rule }),
  };
}

// ----------------------------------------------------------------------------------------------
// Fused implementation
// ----------------------------------------------------------------------------------------------

/** Largest M for the fused path (annotation and prediction bits of a pixel fit one 31-bit key). */
const FUSED_MAX_ANNOTATORS = 15;
/** Keys of up to this many bits are compacted with a lookup table, longer ones with a Map. */
const TABLE_BITS = 20;
let compactTable: Int32Array = new Int32Array(0);

interface Compacted {
  /** Per pixel: index of its key among `keys`. */
  index: Int32Array;
  /** The distinct keys, in order of first appearance. */
  keys: number[];
  /** Pixels per distinct key. */
  counts: Float64Array;
}

/** Replaces per-pixel integer keys (< 2^bits) by dense indices 0..D−1 of the distinct keys. */
function compact(keys: Int32Array, bits: number, index: Int32Array): Compacted {
  const distinct: number[] = [];
  const n = keys.length;
  const counts = new Int32Array(Math.min(n, 2 ** bits));
  if (bits <= TABLE_BITS) {
    const size = 1 << bits;
    if (compactTable.length < size) compactTable = new Int32Array(size).fill(-1);
    const table = compactTable;
    for (let i = 0; i < n; i++) {
      const k = keys[i];
      let id = table[k];
      if (id < 0) {
        id = distinct.length;
        table[k] = id;
        distinct.push(k);
      }
      counts[id]++;
      index[i] = id;
    }
    for (const k of distinct) table[k] = -1;
  } else {
    const map = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const k = keys[i];
      let id = map.get(k);
      if (id === undefined) {
        id = distinct.length;
        map.set(k, id);
        distinct.push(k);
      }
      counts[id]++;
      index[i] = id;
    }
  }
  return { index, keys: distinct, counts: Float64Array.from(counts.subarray(0, distinct.length)) };
}

function popcount(x: number): number {
  let c = 0;
  while (x) {
    x &= x - 1;
    c++;
  }
  return c;
}

/**
 * Tail histogram of (prediction level, annotation code): cum[l·D + c] = number of pixels of code c
 * whose prediction passes at least l thresholds. So at sorted threshold i, the pixels of code c in
 * the binarised prediction number cum[(i+1)·D + c].
 *
 * When `bits` is given, the same pass also sets `bits.bit` in bits.codes[i] wherever the pixel
 * passes sorted threshold bits.level (i.e. its level exceeds it): the 0.5 binarisation of GED,
 * free when 0.5 is one of the soft Dice thresholds.
 */
function levelTail(
  pred: ValueMap,
  sorted: Float64Array,
  gt: boolean,
  index: Int32Array,
  D: number,
  bits?: { codes: Int32Array; bit: number; level: number },
): Float64Array {
  const T = sorted.length;
  const hist = new Int32Array((T + 1) * D);
  const n = pred.length;
  const s0 = sorted[0];
  if (bits) {
    const { codes, bit, level } = bits;
    for (let i = 0; i < n; i++) {
      const v = pred[i];
      if (gt ? !(v > s0) : !(v >= s0)) {
        hist[index[i]]++;
        continue;
      }
      let l = 1;
      if (gt) while (l < T && v > sorted[l]) l++;
      else while (l < T && v >= sorted[l]) l++;
      hist[l * D + index[i]]++;
      if (l > level) codes[i] |= bit;
    }
  } else {
    for (let i = 0; i < n; i++) {
      const v = pred[i];
      if (gt ? !(v > s0) : !(v >= s0)) {
        hist[index[i]]++;
        continue;
      }
      let l = 1;
      if (gt) while (l < T && v > sorted[l]) l++;
      else while (l < T && v >= sorted[l]) l++;
      hist[l * D + index[i]]++;
    }
  }
  const cum = new Float64Array((T + 1) * D);
  for (let c = 0; c < D; c++) cum[T * D + c] = hist[T * D + c];
  for (let l = T - 1; l >= 0; l--) for (let c = 0; c < D; c++) cum[l * D + c] = hist[l * D + c] + cum[(l + 1) * D + c];
  return cum;
}

/** Sets `bit` in codes[i] wherever pred[i] passes t. */
function orBinary(pred: ValueMap, t: number, gt: boolean, bit: number, codes: Int32Array): void {
  const n = pred.length;
  if (gt) {
    for (let i = 0; i < n; i++) if (pred[i] > t) codes[i] |= bit;
  } else {
    for (let i = 0; i < n; i++) if (pred[i] >= t) codes[i] |= bit;
  }
}

/**
 * All metrics of one image and one structure in a few passes over the pixels. Results equal those
 * of `evaluateCaseStructurePlain` (counts are exact integers; only the ECE sums are floating point).
 * When no annotation is available every value is NaN.
 */
export function evaluateCaseStructure(input: CaseStructureInput, options: MultiAnnotatorOptions = {}): CaseStructureMetrics {
  const { M, N, thresholds, rule, bins, bt } = checkInput(input, options);
  const available = input.annotations.map((a) => a !== null);
  const Ma = available.filter(Boolean).length;
  if (Ma === 0) return undefinedMetrics(M);
  if (M > FUSED_MAX_ANNOTATORS) return evaluateCaseStructurePlain(input, options);

  const gt = rule === 'gt';
  const sorted = sortedThresholds(thresholds);
  const T = sorted.length;

  // 1. Per-pixel annotation code (bit k = annotator k's vote), compacted to D distinct codes.
  const code = new Int32Array(N);
  input.annotations.forEach((a, k) => {
    if (a === null) return;
    // (x | −x) >>> 31 is 1 for any non-zero byte x, 0 for 0: no branch per pixel.
    for (let i = 0; i < N; i++) {
      const x = a[i];
      code[i] |= ((x | -x) >>> 31) << k;
    }
  });
  const ann = compact(code, M, new Int32Array(N));
  const D = ann.keys.length;
  const voteFrac = new Float64Array(D);
  const voteLevel = new Uint8Array(D);
  const voteBinary = new Uint8Array(D);
  for (let c = 0; c < D; c++) {
    const f = popcount(ann.keys[c]) / Ma;
    voteFrac[c] = f;
    let l = 0;
    while (l < T && passes(f, sorted[l], rule)) l++;
    voteLevel[c] = l;
    voteBinary[c] = passes(f, bt, rule) ? 1 : 0;
  }

  // 2. Mean Voting: level tail of the mean prediction against the mean-vote level of each code.
  const softFromTail = (tail: Float64Array, inTarget: (c: number, i: number) => boolean): number => {
    let sum = 0;
    for (let i = 0; i < T; i++) {
      const row = (i + 1) * D;
      let P = 0;
      let Tt = 0;
      let I = 0;
      for (let c = 0; c < D; c++) {
        const pc = tail[row + c];
        P += pc;
        if (inTarget(c, i)) {
          Tt += ann.counts[c];
          I += pc;
        }
      }
      sum += diceFromCounts(I, P, Tt, SOFT_DICE_SMOOTH);
    }
    return sum / T;
  };
  const meanTail = levelTail(input.meanPrediction, sorted, gt, ann.index, D);
  const meanVoting = softFromTail(meanTail, (c, i) => voteLevel[c] > i);

  // 3. Cross table: level tail of each annotator prediction against each annotation's bit.
  // The GED key of each pixel: annotation bits above bit M, prediction bits (at bt) below.
  const joint = new Int32Array(N);
  for (let i = 0; i < N; i++) joint[i] = code[i] << M;
  const btLevel = sorted.indexOf(bt); // passes bt ⇔ level > btLevel, when bt is a threshold
  const cross: number[][] = input.annotatorPredictions.map((pred, k) => {
    const tail = levelTail(pred, sorted, gt, ann.index, D, btLevel >= 0 ? { codes: joint, bit: 1 << k, level: btLevel } : undefined);
    if (btLevel < 0) orBinary(pred, bt, gt, 1 << k, joint);
    return input.annotations.map((a, j) => {
      if (a === null) return NaN;
      const bit = 1 << j;
      return softFromTail(tail, (c) => (ann.keys[c] & bit) !== 0);
    });
  });
  const perAnnotator = cross.map((row, k) => row[k]);

  // 4. Hard Dice / IoU and ECE of the mean prediction against the mean vote.
  let hP = 0;
  let hT = 0;
  let hI = 0;
  const nb = new Float64Array(bins);
  const sp = new Float64Array(bins);
  const sy = new Float64Array(bins);
  let total = 0;
  const mp = input.meanPrediction;
  const idx = ann.index;
  for (let i = 0; i < N; i++) {
    const p = mp[i];
    const c = idx[i];
    const inP = gt ? p > bt : p >= bt;
    if (inP) {
      hP++;
      if (voteBinary[c]) hI++;
    }
    if (Number.isNaN(p)) continue;
    let b = Math.floor(p * bins);
    if (b >= bins) b = bins - 1;
    else if (b < 0) b = 0;
    nb[b]++;
    sp[b] += p;
    sy[b] += voteFrac[c];
    total++;
  }
  for (let c = 0; c < D; c++) if (voteBinary[c]) hT += ann.counts[c];
  let ece = NaN;
  if (total > 0) {
    ece = 0;
    for (let b = 0; b < bins; b++) if (nb[b] > 0) ece += (nb[b] / total) * Math.abs(sp[b] / nb[b] - sy[b] / nb[b]);
  }

  // 5. GED: joint key (prediction bits | annotation bits << M), compacted; Gram matrix of overlaps.
  const j = compact(joint, 2 * M, ann.index); // reuses the index buffer: ann.index is no longer needed
  const K = 2 * M;
  const gram = new Float64Array(K * K);
  const bitsOf: number[] = [];
  for (let c = 0; c < j.keys.length; c++) {
    const key = j.keys[c];
    const n = j.counts[c];
    bitsOf.length = 0;
    for (let b = 0; b < K; b++) if (key & (1 << b)) bitsOf.push(b);
    for (const a of bitsOf) for (const b of bitsOf) gram[a * K + b] += n;
  }
  const dist = (a: number, b: number): number => {
    const inter = gram[a * K + b];
    const union = gram[a * K + a] + gram[b * K + b] - inter;
    return union === 0 ? 0 : 1 - inter / union;
  };
  const preds = Array.from({ length: M }, (_, k) => k);
  const annots = preds.filter((k) => available[k]).map((k) => M + k);
  const meanDist = (A: number[], B: number[]): number => {
    let s = 0;
    for (const a of A) for (const b of B) s += dist(a, b);
    return s / (A.length * B.length);
  };
  const ged = M === 0 ? NaN : 2 * meanDist(preds, annots) - meanDist(preds, preds) - meanDist(annots, annots);

  return {
    meanVoting,
    perAnnotator,
    average: nanMean(perAnnotator),
    cross,
    ged,
    ece,
    identified: identifiability(cross),
    hardDice: diceFromCounts(hI, hP, hT, HARD_SMOOTH),
    iou: iouFromCounts(hI, hP, hT, HARD_SMOOTH),
  };
}
