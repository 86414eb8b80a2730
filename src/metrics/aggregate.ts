// The aggregation over cases that `avap evaluate` reports and training validation selects epochs by,
// as the metric table (./table.ts) declares it: per structure, each metric's mean over the cases where
// it is defined, or the mean of a per-annotator metric's means (Average, as the paper's Table II).
import { NanMeanAccumulator, nanMean } from './accumulator';
import { CaseStructureMetrics } from './caseMetrics';
import { MetricKey, METRICS, metricLength } from './table';

/** One structure's metrics over all cases (NaN = never defined). */
export type StructureAggregate = CaseStructureMetrics & { identifiability: number };

type MetricValue = number | number[] | number[][];

export class StructureAccumulator {
  /** One accumulator per metric averaged over cases, over its value's numbers. */
  private readonly means = new Map<MetricKey, NanMeanAccumulator>();

  constructor(readonly annotators: number) {
    for (const m of METRICS) if (m.aggregation.kind === 'mean over cases') this.means.set(m.key, new NanMeanAccumulator(metricLength(m.shape, annotators)));
  }

  add(m: CaseStructureMetrics): this {
    for (const [key, accumulator] of this.means) {
      const value = (m as unknown as Record<MetricKey, MetricValue>)[key];
      accumulator.add(typeof value === 'number' ? [value] : value.flat());
    }
    return this;
  }

  aggregate(): StructureAggregate {
    const M = this.annotators;
    const out: Partial<Record<MetricKey, MetricValue>> = {};
    for (const m of METRICS) {
      const accumulator = this.means.get(m.key);
      if (!accumulator) continue;
      const v = accumulator.aggregate();
      out[m.key] = m.shape === 'scalar' ? v[0] : m.shape === 'per-annotator' ? v : Array.from({ length: M }, (_, i) => v.slice(i * M, (i + 1) * M));
    }
    for (const m of METRICS) if (m.aggregation.kind === 'mean of per-annotator means') out[m.key] = nanMean(out[m.aggregation.of] as number[]);
    return out as StructureAggregate;
  }
}
