// How far each method is behind the best one, with a paired bootstrap interval: for each structure
// and for Average and Mean Voting, the best method is the one with the highest mean over seeds, and
// every other method's difference to it is resampled over the test cases and the seeds.
import { EvaluationSummary } from '../results/summary';
import { fixed } from '../util/format';
import { BootstrapInterval, ScoreMatrix, pairedBootstrap } from './bootstrap';

export type Metric = 'average' | 'mean_voting';
export const METRICS: readonly Metric[] = ['average', 'mean_voting'];
export const METRIC_TITLES: Record<Metric, string> = { average: 'Average', mean_voting: 'Mean Voting' };

/** A method's evaluations, one per seed (keyed by seed). */
export interface MethodEvaluations {
  id: string;
  label: string;
  bySeed: Map<number, EvaluationSummary>;
}

export interface Difference {
  method: string;
  label: string;
  structure: string;
  metric: Metric;
  /** The method with the highest mean (itself for the best). */
  best: string;
  /** method − best, as a fraction, over the seeds both have; 0 for the best. */
  difference: number;
  /** 95% paired bootstrap interval of the difference; null for the best (or when nothing pairs). */
  low: number | null;
  high: number | null;
  /** The best, or its interval reaches 0: no other method is ahead of it beyond the interval (bold in Table II). */
  contender: boolean;
}

export const BOOTSTRAP_RESAMPLES = 2000;

/** Mean over seeds of each method's aggregate score, per structure and metric; the best method per structure and metric. */
export function differencesToBest(methods: readonly MethodEvaluations[], structures: readonly string[], resamples = BOOTSTRAP_RESAMPLES): Difference[] {
  const out: Difference[] = [];
  for (const structure of structures) {
    for (const metric of METRICS) {
      const scored = methods.map((m) => ({ m, mean: meanOf([...m.bySeed.values()].map((s) => s[metric][structure])) })).filter((x) => x.mean !== null);
      if (scored.length === 0) continue;
      const best = scored.reduce((a, b) => (b.mean! > a.mean! ? b : a));
      for (const { m } of scored) {
        if (m === best.m) {
          out.push({ method: m.id, label: m.label, structure, metric, best: m.id, difference: 0, low: null, high: null, contender: true });
          continue;
        }
        const interval = compare(m, best.m, structure, metric, resamples);
        out.push({
          method: m.id, label: m.label, structure, metric, best: best.m.id,
          difference: interval?.difference ?? NaN, low: interval?.low ?? null, high: interval?.high ?? null,
          contender: interval !== null && interval.high >= 0,
        });
      }
    }
  }
  return out;
}

/** The paired interval of a − b over the seeds both were evaluated with and the cases both scored. */
function compare(a: MethodEvaluations, b: MethodEvaluations, structure: string, metric: Metric, resamples: number): BootstrapInterval | null {
  const seeds = [...a.bySeed.keys()].filter((s) => b.bySeed.has(s)).sort((x, y) => x - y);
  if (seeds.length === 0) return null;
  const cases = a.bySeed.get(seeds[0])!.per_case.map((c) => c.case);
  const matrix = (m: MethodEvaluations): ScoreMatrix => seeds.map((seed) => {
    const byCase = new Map(m.bySeed.get(seed)!.per_case.map((c) => [c.case, c.metrics[structure]?.[metric] ?? null]));
    return cases.map((id) => byCase.get(id) ?? null);
  });
  return pairedBootstrap(matrix(a), matrix(b), { resamples, seed: 0 });
}

/** Mean of the values that are not null; null when none is. */
export function meanOf(xs: readonly (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null);
  return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
}

/** Sample standard deviation (n − 1) of the values that are not null; null with fewer than two. */
export function sdOf(xs: readonly (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null);
  if (v.length < 2) return null;
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  return Math.sqrt(v.reduce((a, x) => a + (x - m) ** 2, 0) / (v.length - 1));
}

/** The rows of differences.md for one budget: method, structure, metric, difference to the best, its interval (in Dice points). */
export function differencesTable(differences: readonly Difference[]): string[] {
  const points = (x: number | null) => (x === null || !Number.isFinite(x) ? '–' : fixed(100 * x, 2));
  return [
    '| Method | Structure | Metric | Difference to best | 95% CI |',
    '|---|---|---|---|---|',
    ...differences.map((d) => `| ${d.label} | ${d.structure} | ${METRIC_TITLES[d.metric]} | ${d.best === d.method ? 'best' : points(d.difference)} | ${d.low === null ? '–' : `[${points(d.low)}, ${points(d.high)}]`} |`),
  ];
}
