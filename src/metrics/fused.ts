// All multi-annotator metrics of one image and one structure in a few passes over the pixels
// (per-pixel annotation codes and level histograms): what `avap evaluate` and training validation run.
// Results equal those of the plain implementation (src/metrics/plain.ts).
import { nanMean } from './accumulator';
import { CalibrationBins, CaseStructureInput, CaseStructureMetrics, checkInput, identifiability, MultiAnnotatorOptions, undefinedMetrics } from './caseMetrics';
import { diceFromCounts, HARD_SMOOTH, iouFromCounts, passes, SOFT_DICE_SMOOTH, sortedThresholds, ThresholdRule, ValueMap } from './dice';
import { evaluateCaseStructurePlain } from './plain';

/** Largest M for the fused path (annotation and prediction bits of a pixel fit one 31-bit key). */
const FUSED_MAX_ANNOTATORS = 15;
/** Keys of up to this many bits are compacted with a lookup table, longer ones with a Map. */
const TABLE_BITS = 20;
interface Compacted {
  /** Per pixel: index of its key among `keys`. */
  index: Int32Array;
  /** The distinct keys, in order of first appearance. */
  keys: number[];
  /** Pixels per distinct key. */
  counts: Float64Array;
}

/**
 * Replaces per-pixel integer keys by dense indices of the distinct keys. Keeps its lookup table
 * (up to 2^TABLE_BITS entries, all −1 between calls) for the next call, so an evaluation reuses it.
 */
class KeyCompactor {
  private table = new Int32Array(0);

  /** keys < 2^bits → indices 0..D−1 written into `index`. */
  compact(keys: Int32Array, bits: number, index: Int32Array): Compacted {
    const distinct: number[] = [];
    const n = keys.length;
    const counts = new Int32Array(Math.min(n, 2 ** bits));
    if (bits <= TABLE_BITS) {
      const size = 1 << bits;
      if (this.table.length < size) this.table = new Int32Array(size).fill(-1);
      const table = this.table;
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

/** Per pixel, the bits of the annotators who mark it (bit k = annotator k; a missing annotation sets none). */
function annotationCodes(annotations: CaseStructureInput['annotations'], N: number): Int32Array {
  const code = new Int32Array(N);
  annotations.forEach((a, k) => {
    if (a === null) return;
    // (x | −x) >>> 31 is 1 for any non-zero byte x, 0 for 0: no branch per pixel.
    for (let i = 0; i < N; i++) {
      const x = a[i];
      code[i] |= ((x | -x) >>> 31) << k;
    }
  });
  return code;
}

/** Per distinct annotation code: its mean vote, how many sorted thresholds that passes, and whether it passes the binary threshold. */
function voteTables(codes: number[], availableAnnotators: number, sorted: Float64Array, rule: ThresholdRule, binaryThreshold: number) {
  const D = codes.length;
  const fraction = new Float64Array(D);
  const level = new Uint8Array(D);
  const binary = new Uint8Array(D);
  for (let c = 0; c < D; c++) {
    const f = popcount(codes[c]) / availableAnnotators;
    fraction[c] = f;
    let l = 0;
    while (l < sorted.length && passes(f, sorted[l], rule)) l++;
    level[c] = l;
    binary[c] = passes(f, binaryThreshold, rule) ? 1 : 0;
  }
  return { fraction, level, binary };
}

/**
 * Soft Dice from a level tail (see levelTail): at each sorted threshold i, the pixels of the codes
 * `inTarget(c, i)` selects are the target, those the tail counts at level i + 1 the prediction.
 */
function softDiceFromTail(tail: Float64Array, thresholdCount: number, codePixels: Float64Array, inTarget: (c: number, i: number) => boolean): number {
  const D = codePixels.length;
  let sum = 0;
  for (let i = 0; i < thresholdCount; i++) {
    const row = (i + 1) * D;
    let predictedPixels = 0;
    let targetPixels = 0;
    let overlap = 0;
    for (let c = 0; c < D; c++) {
      const pc = tail[row + c];
      predictedPixels += pc;
      if (inTarget(c, i)) {
        targetPixels += codePixels[c];
        overlap += pc;
      }
    }
    sum += diceFromCounts(overlap, predictedPixels, targetPixels, SOFT_DICE_SMOOTH);
  }
  return sum / thresholdCount;
}

/** Hard Dice and IoU at the binary threshold, and the calibration error, of the mean prediction against the mean vote. */
function hardScoresAndCalibration(
  meanPrediction: ValueMap, codeIndex: Int32Array, votes: ReturnType<typeof voteTables>, codePixels: Float64Array,
  binaryThreshold: number, gt: boolean, bins: number,
): { hardDice: number; iou: number; ece: number } {
  let predicted = 0;
  let target = 0;
  let overlap = 0;
  const calibration = new CalibrationBins(bins);
  for (let i = 0; i < meanPrediction.length; i++) {
    const p = meanPrediction[i];
    const c = codeIndex[i];
    if (gt ? p > binaryThreshold : p >= binaryThreshold) {
      predicted++;
      if (votes.binary[c]) overlap++;
    }
    calibration.add(p, votes.fraction[c]);
  }
  for (let c = 0; c < codePixels.length; c++) if (votes.binary[c]) target += codePixels[c];
  return { hardDice: diceFromCounts(overlap, predicted, target, HARD_SMOOTH), iou: iouFromCounts(overlap, predicted, target, HARD_SMOOTH), ece: calibration.value() };
}

/**
 * GED from the compacted joint key of each pixel (prediction bits 0..M−1, annotation bits M..2M−1):
 * the Gram matrix of the 2M binary masks' overlaps gives every IoU distance at once.
 */
function generalizedEnergyFromJoint(joint: Compacted, M: number, available: boolean[]): number {
  if (M === 0) return NaN;
  const maskCount = 2 * M;
  const gram = new Float64Array(maskCount * maskCount);
  const bitsOf: number[] = [];
  for (let c = 0; c < joint.keys.length; c++) {
    const key = joint.keys[c];
    const n = joint.counts[c];
    bitsOf.length = 0;
    for (let b = 0; b < maskCount; b++) if (key & (1 << b)) bitsOf.push(b);
    for (const a of bitsOf) for (const b of bitsOf) gram[a * maskCount + b] += n;
  }
  const dist = (a: number, b: number): number => {
    const inter = gram[a * maskCount + b];
    const union = gram[a * maskCount + a] + gram[b * maskCount + b] - inter;
    return union === 0 ? 0 : 1 - inter / union;
  };
  const preds = Array.from({ length: M }, (_, k) => k);
  const annots = preds.filter((k) => available[k]).map((k) => M + k);
  const meanDist = (A: number[], B: number[]): number => {
    let s = 0;
    for (const a of A) for (const b of B) s += dist(a, b);
    return s / (A.length * B.length);
  };
  return 2 * meanDist(preds, annots) - meanDist(preds, preds) - meanDist(annots, annots);
}

/**
 * Evaluates (image, structure) pairs; owns the buffers it reuses from one call to the next, so one
 * instance per evaluation (or per training run) keeps them alive only as long as they are useful.
 */
export class CaseStructureEvaluator {
  private readonly compactor = new KeyCompactor();

  /**
   * All metrics of one image and one structure in a few passes over the pixels. Results equal those
   * of `evaluateCaseStructurePlain` (counts are exact integers; only the ECE sums are floating point).
   * When no annotation is available every value is NaN.
   */
  evaluate(input: CaseStructureInput, options: MultiAnnotatorOptions = {}): CaseStructureMetrics {
    const { M, N, thresholds, rule, bins, binaryThreshold } = checkInput(input, options);
    const available = input.annotations.map((a) => a !== null);
    const availableAnnotators = available.filter(Boolean).length;
    if (availableAnnotators === 0) return undefinedMetrics(M);
    if (M > FUSED_MAX_ANNOTATORS) return evaluateCaseStructurePlain(input, options);

    const gt = rule === 'gt';
    const sorted = sortedThresholds(thresholds);
    const T = sorted.length;

    // 1. Per-pixel annotation codes, compacted to D distinct codes, and each code's mean vote.
    const code = annotationCodes(input.annotations, N);
    const ann = this.compactor.compact(code, M, new Int32Array(N));
    const D = ann.keys.length;
    const votes = voteTables(ann.keys, availableAnnotators, sorted, rule, binaryThreshold);

    // 2. Mean Voting: level tail of the mean prediction against the mean-vote level of each code.
    const meanTail = levelTail(input.meanPrediction, sorted, gt, ann.index, D);
    const meanVoting = softDiceFromTail(meanTail, T, ann.counts, (c, i) => votes.level[c] > i);

    // 3. Cross table: level tail of each annotator prediction against each annotation's bit. The
    // same pass writes the GED key of each pixel: annotation bits above bit M, prediction bits below.
    const joint = new Int32Array(N);
    for (let i = 0; i < N; i++) joint[i] = code[i] << M;
    const binaryLevel = sorted.indexOf(binaryThreshold); // passes the binary threshold ⇔ level > binaryLevel, when it is one of the sorted thresholds
    const cross: number[][] = input.annotatorPredictions.map((pred, k) => {
      const tail = levelTail(pred, sorted, gt, ann.index, D, binaryLevel >= 0 ? { codes: joint, bit: 1 << k, level: binaryLevel } : undefined);
      if (binaryLevel < 0) orBinary(pred, binaryThreshold, gt, 1 << k, joint);
      return input.annotations.map((a, j) => {
        if (a === null) return NaN;
        const bit = 1 << j;
        return softDiceFromTail(tail, T, ann.counts, (c) => (ann.keys[c] & bit) !== 0);
      });
    });
    const perAnnotator = cross.map((row, k) => row[k]);

    // 4. Hard Dice / IoU and ECE of the mean prediction against the mean vote.
    const { hardDice, iou, ece } = hardScoresAndCalibration(input.meanPrediction, ann.index, votes, ann.counts, binaryThreshold, gt, bins);

    // 5. GED, from the joint keys compacted into the index buffer (ann.index is no longer needed).
    const ged = generalizedEnergyFromJoint(this.compactor.compact(joint, 2 * M, ann.index), M, available);

    return {
      mean_voting: meanVoting, per_annotator: perAnnotator, average: nanMean(perAnnotator), cross, ged, ece,
      identifiability_per_annotator: identifiability(cross), hard_dice: hardDice, iou,
    };
  }
}

/** All metrics of one image and one structure with a fresh evaluator (for one-off calls; loops should keep a CaseStructureEvaluator). */
export function evaluateCaseStructure(input: CaseStructureInput, options: MultiAnnotatorOptions = {}): CaseStructureMetrics {
  return new CaseStructureEvaluator().evaluate(input, options);
}
