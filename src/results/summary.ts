// What an evaluation produces (summary.json): the shape every consumer of scores reads (reports,
// the experiment's tables, a method's ablation tables), apart from how the scores are computed.
import type { StructureAggregate } from '../metrics/aggregate';
import type { MetricKey } from '../metrics/table';
import type { ThresholdRule } from '../metrics/dice';
import type { CaseStructureMetrics } from '../metrics/multiAnnotator';

/** A metric value as written to JSON: NaN (undefined) becomes null. */
export type Written<T> = T extends number[][] ? (number | null)[][] : T extends number[] ? (number | null)[] : number | null;

/** The metrics the table (metrics/table.ts) writes per case. */
export type PerCaseMetricKey = Exclude<keyof CaseStructureMetrics, 'cross'>;

/** Metrics of one case and one structure as written to summary.json (null = undefined). */
export type CaseStructureSummary = { [K in PerCaseMetricKey]: Written<CaseStructureMetrics[K]> };

export interface CaseSummary {
  case: string;
  width: number;
  height: number;
  metrics: Record<string, CaseStructureSummary>;
}

/** Each metric of the table, per structure name. */
export type SummaryMetrics = { [K in MetricKey]: Record<string, Written<StructureAggregate[K]>> };

/** summary.json. All metric values are fractions in [0, 1] (GED in [0, 2]); null where undefined. */
export interface EvaluationSummary extends SummaryMetrics {
  cases: number;
  thresholds: number[];
  rule: ThresholdRule;
  structures: string[];
  annotators: string[];
  eval_size: number | null;
  ece_bins: number;
  binary_threshold: number;
  label: string;
  per_case: CaseSummary[];
}
