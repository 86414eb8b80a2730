// The multi-annotator metrics computed pair by pair with the plain overlap functions: easy to read,
// and the reference the fused implementation (src/metrics/fused.ts) is tested against.
import { nanMean } from './accumulator';
import { CalibrationBins, CaseStructureInput, CaseStructureMetrics, checkInput, ECE_BINS, BINARY_THRESHOLD, identifiability, Mask, MultiAnnotatorOptions, undefinedMetrics } from './caseMetrics';
import { hardDice, iou, passes, softDice, ThresholdRule, ValueMap } from './dice';

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
export function averageDice(predictions: ValueMap[], annotations: (Mask | null)[], options: MultiAnnotatorOptions = {}): { per_annotator: number[]; average: number } {
  if (predictions.length !== annotations.length) throw new RangeError(`averageDice: ${predictions.length} predictions for ${annotations.length} annotators`);
  const opts = { thresholds: options.thresholds, rule: options.rule };
  const perAnnotator = annotations.map((a, k) => (a === null ? NaN : softDice(predictions[k], a, opts)));
  return { per_annotator: perAnnotator, average: nanMean(perAnnotator) };
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

/** Expected calibration error of a probability map against a soft target (the mean vote); see CalibrationBins. */
export function expectedCalibrationError(prob: ValueMap, target: ValueMap, bins = ECE_BINS): number {
  if (prob.length !== target.length) throw new RangeError(`expectedCalibrationError: ${prob.length} vs ${target.length} pixels`);
  if (!Number.isInteger(bins) || bins < 1) throw new RangeError(`expectedCalibrationError: bad bin count ${bins}`);
  const calibration = new CalibrationBins(bins);
  for (let i = 0; i < prob.length; i++) calibration.add(prob[i], target[i]);
  return calibration.value();
}

/** Same results as `evaluateCaseStructure`, computed pair by pair with the plain functions. */
export function evaluateCaseStructurePlain(input: CaseStructureInput, options: MultiAnnotatorOptions = {}): CaseStructureMetrics {
  const { M, thresholds, rule, bins, binaryThreshold } = checkInput(input, options);
  if (input.annotations.every((a) => a === null)) return undefinedMetrics(M);
  const opts = { thresholds, rule };
  const mv = meanVote(input.annotations);
  const cross = crossTable(input.annotatorPredictions, input.annotations, opts);
  const perAnnotator = cross.map((row, k) => row[k]);
  return {
    mean_voting: softDice(input.meanPrediction, mv, opts),
    per_annotator: perAnnotator,
    average: nanMean(perAnnotator),
    cross,
    ged: generalizedEnergyDistance(input.annotatorPredictions, input.annotations, { threshold: binaryThreshold, rule }),
    ece: expectedCalibrationError(input.meanPrediction, mv, bins),
    identifiability_per_annotator: identifiability(cross),
    hard_dice: hardDice(input.meanPrediction, mv, { threshold: binaryThreshold, rule }),
    iou: iou(input.meanPrediction, mv, { threshold: binaryThreshold, rule }),
  };
}

