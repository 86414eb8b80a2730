// Whether a training stage was still improving when its budget ran out. Each stage logs 20 evenly
// spread rounds; the rule compares the mean of the rounds in the last quarter of the stage's steps
// with the mean of those in the quarter before it. Means of several rounds, not single rounds, so
// that one noisy round neither hides nor fakes a trend.
//
// Thresholds: a training loss counts as still falling when the last quarter's mean is more than 1%
// below the previous quarter's (relative, as losses differ in scale between methods); a validation
// score (a fraction) counts as still rising when it is more than 0.005 (half a Dice point) above it.
// Half a point is about the smallest difference the tables are read for, and below the ±0.9 points
// a 20-case mean is uncertain by; a smaller rise is settled for the purpose of comparing methods.

/** Relative fall of the loss, last quarter against the previous, above which the stage is still improving. */
export const LOSS_FALL_THRESHOLD = 0.01;
/** Rise of a validation score (a fraction in [0, 1]) above which the stage is still improving. */
export const SCORE_RISE_THRESHOLD = 0.005;

export interface TrendPoint {
  /** Step within the stage (1..steps) at the end of the round. */
  step: number;
  value: number;
}

export interface StageTrend {
  /** true: still improving; false: settled; null: too few rounds to tell (no round in one of the two quarters). */
  improving: boolean | null;
  /** Mean of the rounds in the last quarter of the steps and in the quarter before; null when empty. */
  last_quarter: number | null;
  previous_quarter: number | null;
  /** Improvement of the last quarter over the previous (relative fall for a loss, rise for a score); null when unknown. */
  improvement: number | null;
}

/**
 * The trend of one stage's rounds. `better` says which way is an improvement: 'lower' for a loss,
 * 'higher' for a validation score.
 */
export function stageTrend(points: readonly TrendPoint[], steps: number, better: 'lower' | 'higher'): StageTrend {
  const inQuarter = (from: number, to: number) => points.filter((p) => p.step > from * steps && p.step <= to * steps && Number.isFinite(p.value)).map((p) => p.value);
  const last = inQuarter(0.75, 1);
  const previous = inQuarter(0.5, 0.75);
  const lastMean = last.length ? mean(last) : null;
  const previousMean = previous.length ? mean(previous) : null;
  const means = { last_quarter: lastMean, previous_quarter: previousMean };
  if (lastMean === null || previousMean === null) return { improving: null, ...means, improvement: null };
  if (better === 'higher') {
    const improvement = lastMean - previousMean;
    return { improving: improvement > SCORE_RISE_THRESHOLD, ...means, improvement };
  }
  // A loss at zero has nothing left to fall, whatever its relative change.
  const improvement = previousMean > 0 ? (previousMean - lastMean) / previousMean : 0;
  return { improving: improvement > LOSS_FALL_THRESHOLD, ...means, improvement };
}

/** A run is still improving when any of its stages is; unknown only when no stage can tell. */
export function stillImproving(trends: readonly { improving: boolean | null }[]): boolean | null {
  if (trends.some((t) => t.improving === true)) return true;
  return trends.some((t) => t.improving === false) ? false : null;
}

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
