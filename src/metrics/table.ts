// Every metric `avap evaluate` reports, declared once: its key (the one spelling used in memory, in
// summary.json and in per_case.csv's column names), its label, the shape of one case's value and
// how the values of all cases become the summary's. Aggregation, summary.json, per_case.csv and
// report.md all iterate this table.

/** One case's value: one number, one per annotator, or one per (prediction i, annotation j) pair. */
export type MetricShape = 'scalar' | 'per-annotator' | 'annotator-pairs';

/**
 * How the summary's value is made from the cases':
 * - 'mean over cases': each entry's mean over the cases where it is defined;
 * - 'mean of per-annotator means': the mean of the named per-annotator metric's summary (so each
 *   annotator counts once, over the cases they annotated, as the paper's Table II Average).
 */
export type MetricAggregation = { kind: 'mean over cases' } | { kind: 'mean of per-annotator means'; of: PerAnnotatorMetricKey };

export interface MetricSpec {
  key: MetricKey;
  /** Column title in Markdown tables. */
  label: string;
  shape: MetricShape;
  aggregation: MetricAggregation;
  /** Written for each case (summary.json's per_case). */
  perCase: boolean;
  /** A column of per_case.csv (a per-annotator metric: one column per annotator, A1…AM). */
  csv: boolean;
  /** Shown in percent in report.md (soft and hard Dice, IoU, identifiability); GED and ECE as fractions. */
  percent: boolean;
  /** A row of report.md's further measures: what the value is ({ece_bins} and {binary_threshold} filled in). */
  measure?: string;
}

export type ScalarMetricKey = 'mean_voting' | 'average' | 'ged' | 'ece' | 'identifiability' | 'hard_dice' | 'iou';
export type PerAnnotatorMetricKey = 'per_annotator' | 'identifiability_per_annotator';
export type MetricKey = ScalarMetricKey | PerAnnotatorMetricKey | 'cross';

const MEAN = { kind: 'mean over cases' } as const;

/** In the order summary.json, per_case.csv and report.md list them. */
export const METRICS: readonly MetricSpec[] = [
  { key: 'mean_voting', label: 'Mean Voting', shape: 'scalar', aggregation: MEAN, perCase: true, csv: true, percent: true },
  { key: 'average', label: 'Average', shape: 'scalar', aggregation: { kind: 'mean of per-annotator means', of: 'per_annotator' }, perCase: true, csv: true, percent: true },
  { key: 'per_annotator', label: 'A<k>', shape: 'per-annotator', aggregation: MEAN, perCase: true, csv: true, percent: true },
  { key: 'cross', label: 'P<i> vs A<j>', shape: 'annotator-pairs', aggregation: MEAN, perCase: false, csv: false, percent: true },
  { key: 'ged', label: 'GED', shape: 'scalar', aggregation: MEAN, perCase: true, csv: true,
    percent: false,
    measure: 'Generalised energy distance (d = 1 − IoU, binarised at 0.5; lower is better)' },
  { key: 'ece', label: 'ECE', shape: 'scalar', aggregation: MEAN, perCase: true, csv: true,
    percent: false,
    measure: 'Expected calibration error of the calibrated map vs the mean vote ({ece_bins} bins; lower is better)' },
  { key: 'identifiability', label: 'Identifiability', shape: 'scalar', aggregation: { kind: 'mean of per-annotator means', of: 'identifiability_per_annotator' }, perCase: false, csv: false,
    percent: true,
    measure: 'Identifiability (%): prediction for k closest to annotation k' },
  { key: 'identifiability_per_annotator', label: 'Identifiability per annotator', shape: 'per-annotator', aggregation: MEAN, perCase: true, csv: false, percent: true },
  { key: 'hard_dice', label: 'Hard Dice', shape: 'scalar', aggregation: MEAN, perCase: true, csv: true,
    percent: true,
    measure: 'Hard Dice (%) of the calibrated map vs the mean vote at {binary_threshold}' },
  { key: 'iou', label: 'IoU', shape: 'scalar', aggregation: MEAN, perCase: true, csv: true,
    percent: true,
    measure: 'IoU (%) of the calibrated map vs the mean vote at {binary_threshold}' },
];

/** The table's row of a metric. */
export function metricSpec(key: MetricKey): MetricSpec {
  const spec = METRICS.find((m) => m.key === key);
  if (!spec) throw new Error(`no metric ${key}`);
  return spec;
}

/** Numbers in one case's value of a metric of this shape, with M annotators. */
export function metricLength(shape: MetricShape, M: number): number {
  return shape === 'scalar' ? 1 : shape === 'per-annotator' ? M : M * M;
}
