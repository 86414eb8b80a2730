import * as fs from 'node:fs';
import * as path from 'node:path';
import { CaseAnnotations, CaseRecord, Dataset, readAnnotations } from '../data/dataset';
import { resizeBilinear, resizeNearest } from '../data/resize';
import { UserError } from '../errors';
import { readImageInfo } from '../io/image';
import { isNiftiPath } from '../io/nifti';
import { readNiftiImageInfo } from '../data/niftiImage';
import { StructureAccumulator } from '../metrics/aggregate';
import { METRICS } from '../metrics/table';
import { PAPER_THRESHOLDS, ThresholdRule, validateRule, validateThresholds } from '../metrics/dice';
import { BINARY_THRESHOLD, CaseStructureEvaluator, CaseStructureMetrics, ECE_BINS, Mask } from '../metrics/multiAnnotator';
import { checkPredictions, formatProblems, mapConcurrent, predictionFiles, readPredictionMap, Size } from '../predict/folder';
import { writeEvaluationOutputs } from './report';
import type { CaseStructureSummary, EvaluationSummary, PerCaseMetricKey, SummaryMetrics, Written } from '../results/summary';

export interface ReferenceCase {
  id: string;
  load(): Promise<CaseAnnotations>;
  /** The annotation size without decoding the masks; when absent, `load()` is used. */
  size?(): Promise<Size>;
}

/** What predictions are scored against: any source of per-case multi-annotator masks. */
export interface ReferenceSource {
  structures: string[];
  annotators: string[];
  cases: ReferenceCase[];
}

export interface EvaluateOptions {
  /** Soft Dice thresholds; default PAPER_THRESHOLDS. */
  thresholds?: readonly number[];
  /** 'gt' (value > t, default, RIGA code) or 'ge' (value >= t, MRNet code). */
  rule?: ThresholdRule;
  /** Resize predictions (bilinear) and annotations (nearest) to N×N before scoring (paper: 256). */
  evalSize?: number;
  /** Default ECE_BINS (15). */
  eceBins?: number;
  /** Row label in report.md; default the predictions folder's name. */
  label?: string;
  /** Cases read and scored at once; default 4. */
  concurrency?: number;
  /** Called after each scored case. */
  onProgress?: (done: number, total: number) => void;
}

/** Per-case results in memory (NaN = undefined). */
export interface CaseResult {
  id: string;
  /** The case's original annotation size (scoring happens at eval_size when that is set). */
  width: number;
  height: number;
  /** metrics[s] for reference.structures[s]. */
  metrics: CaseStructureMetrics[];
}

interface ResolvedOptions {
  thresholds: number[];
  rule: ThresholdRule;
  evalSize: number | null;
  eceBins: number;
  label: string;
  concurrency: number;
}

function resolveOptions(options: EvaluateOptions, predictionsDir: string): ResolvedOptions {
  const thresholds = validateThresholds(options.thresholds ?? PAPER_THRESHOLDS, '--thresholds');
  const rule = validateRule(options.rule ?? 'gt', '--rule');
  const evalSize = options.evalSize ?? null;
  if (evalSize !== null && (!Number.isInteger(evalSize) || evalSize < 1 || evalSize > 16384)) {
    throw new UserError(`--eval-size: expected a whole number of pixels between 1 and 16384, got ${evalSize}`);
  }
  const eceBins = options.eceBins ?? ECE_BINS;
  if (!Number.isInteger(eceBins) || eceBins < 1 || eceBins > 10000) throw new UserError(`--ece-bins: expected a whole number between 1 and 10000, got ${eceBins}`);
  const concurrency = Math.max(1, Math.floor(options.concurrency ?? 4));
  return { thresholds, rule, evalSize, eceBins, label: options.label ?? path.basename(path.resolve(predictionsDir)), concurrency };
}

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** A metric value for JSON: each NaN (or infinity) becomes null. */
function written<T extends number | number[] | number[][]>(value: T): Written<T> {
  if (typeof value === 'number') return finite(value) as Written<T>;
  return (value as (number | number[])[]).map((v) => (typeof v === 'number' ? finite(v) : v.map(finite))) as Written<T>;
}

/**
 * Scores saved predictions against a reference and writes OUT_DIR/summary.json, per_case.csv and
 * report.md (each atomically, all three only after every case is scored). Every prediction file
 * is checked first (exists, decodes, single channel, right size); all problems are reported
 * together in one UserError before anything is computed or written.
 */
export async function evaluatePredictions(reference: ReferenceSource, predictionsDir: string, outDir: string, options: EvaluateOptions = {}): Promise<EvaluationSummary> {
  const opts = resolveOptions(options, predictionsDir);
  const { structures, annotators, cases } = reference;
  const M = annotators.length;
  if (cases.length === 0) throw new UserError('evaluate: no cases selected (check --subset / --split)');
  if (structures.length === 0) throw new UserError('evaluate: the dataset defines no structures');
  if (M === 0) throw new UserError('evaluate: the dataset defines no annotators');
  if (!fs.existsSync(predictionsDir) || !fs.statSync(predictionsDir).isDirectory()) {
    throw new UserError(`${predictionsDir}: predictions folder not found`);
  }
  if (fs.existsSync(outDir) && !fs.statSync(outDir).isDirectory()) throw new UserError(`${outDir}: exists and is not a folder`);

  // 1. Expected sizes (annotation headers, or the annotations themselves, kept for step 3).
  const loaded = new Map<string, CaseAnnotations>();
  const sizes = await mapConcurrent(cases, 8, async (c): Promise<Size> => {
    if (c.size) return c.size();
    const a = await c.load();
    loaded.set(c.id, a);
    return { width: a.width, height: a.height };
  });

  // 2. Every prediction file, before computing anything.
  const accepted = (s: Size): Size[] => (opts.evalSize && (s.width !== opts.evalSize || s.height !== opts.evalSize) ? [s, { width: opts.evalSize, height: opts.evalSize }] : [s]);
  const problems = await checkPredictions(
    predictionsDir,
    cases.map((c, i) => ({ id: c.id, sizes: accepted(sizes[i]) })),
    structures,
    M,
  );
  if (problems.length > 0) throw new UserError(formatProblems(predictionsDir, problems));

  // 3. Score case by case.
  const metricOptions = { thresholds: opts.thresholds, rule: opts.rule, eceBins: opts.eceBins, binaryThreshold: BINARY_THRESHOLD };
  const evaluator = new CaseStructureEvaluator();
  let done = 0;
  const results = await mapConcurrent(cases, opts.concurrency, async (c, i): Promise<CaseResult> => {
    const expected = sizes[i];
    const ann = loaded.get(c.id) ?? (await c.load());
    loaded.delete(c.id);
    checkAnnotations(c.id, ann, expected, structures.length, M);
    const refs = predictionFiles(predictionsDir, c.id, structures, M);
    const settled = await Promise.allSettled(refs.map((r) => readPredictionMap(r.file, accepted(expected))));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason; // e.g. a file changed since the check; the first in layout order
    const maps = settled.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof readPredictionMap>>>).value);
    const W = opts.evalSize ?? expected.width;
    const H = opts.evalSize ?? expected.height;
    const pred = maps.map((m) => (m.width === W && m.height === H ? m.data : resizeBilinear(m.data, m.width, m.height, 1, W, H)));
    const per = M + 1;
    const metrics = structures.map((_, s) => {
      const annotations: (Mask | null)[] = ann.available.map((ok, k) => {
        if (!ok) return null;
        const mask = ann.masks[k][s];
        return W === ann.width && H === ann.height ? mask : resizeNearest(mask, ann.width, ann.height, W, H);
      });
      return evaluator.evaluate({ meanPrediction: pred[s * per], annotatorPredictions: pred.slice(s * per + 1, (s + 1) * per), annotations }, metricOptions);
    });
    options.onProgress?.(++done, cases.length);
    return { id: c.id, width: expected.width, height: expected.height, metrics };
  });

  const summary = summarize(reference, results, opts);
  writeEvaluationOutputs(outDir, summary);
  return summary;
}

function checkAnnotations(id: string, ann: CaseAnnotations, expected: Size, S: number, M: number): void {
  if (ann.width !== expected.width || ann.height !== expected.height) {
    throw new UserError(`case ${id}: annotations are ${ann.width}x${ann.height} but their header said ${expected.width}x${expected.height}`);
  }
  const structures = ann.masks.find((row) => row.length !== S)?.length ?? S;
  if (ann.available.length !== M || ann.masks.length !== M || structures !== S) {
    throw new UserError(`case ${id}: annotations have ${ann.masks.length} annotators x ${structures} structures (${ann.available.length} availability flags), expected ${M} x ${S}`);
  }
  ann.masks.forEach((row, k) => {
    if (!ann.available[k]) return;
    row.forEach((mask, s) => {
      if (mask.length !== ann.width * ann.height) {
        throw new UserError(`case ${id}: mask of structure ${s + 1}, annotator ${k + 1} has ${mask.length} pixels, expected ${ann.width}x${ann.height}`);
      }
    });
  });
}

/** Aggregates per-case results into summary.json's content (pure). */
export function summarize(
  reference: Pick<ReferenceSource, 'structures' | 'annotators'>,
  results: readonly CaseResult[],
  opts: { thresholds: readonly number[]; rule: ThresholdRule; evalSize?: number | null; eceBins?: number; label?: string },
): EvaluationSummary {
  const { structures, annotators } = reference;
  const M = annotators.length;
  const aggregates = structures.map((_, s) => {
    const accumulator = new StructureAccumulator(M);
    for (const r of results) accumulator.add(r.metrics[s]);
    return accumulator.aggregate();
  });
  const perStructure = (value: (s: number) => unknown) => Object.fromEntries(structures.map((name, s) => [name, value(s)]));
  const metrics = Object.fromEntries(METRICS.map((m) => [m.key, perStructure((s) => written(aggregates[s][m.key]))])) as unknown as SummaryMetrics;
  const perCase = METRICS.filter((m) => m.perCase).map((m) => m.key as PerCaseMetricKey);
  return {
    ...metrics,
    cases: results.length,
    thresholds: [...opts.thresholds],
    rule: opts.rule,
    structures: [...structures],
    annotators: [...annotators],
    eval_size: opts.evalSize ?? null,
    ece_bins: opts.eceBins ?? ECE_BINS,
    binary_threshold: BINARY_THRESHOLD,
    label: opts.label ?? '',
    per_case: results.map((r) => ({
      case: r.id,
      width: r.width,
      height: r.height,
      metrics: perStructure((s) => Object.fromEntries(perCase.map((key) => [key, written(r.metrics[s][key])]))) as Record<string, CaseStructureSummary>,
    })),
  };
}

/**
 * The reference of `avap evaluate --data DIR`: the selected cases of a dataset, their size read from
 * the image header (label maps are the image's size) and their masks from `readAnnotations`.
 */
export function referenceFromDataset(ds: Dataset, cases: readonly CaseRecord[]): ReferenceSource {
  return {
    structures: ds.structures.map((s) => s.name),
    annotators: [...ds.annotators],
    cases: cases.map((c) => ({
      id: c.id,
      load: () => readAnnotations(ds, c),
      size: async () => {
        const info = await (isNiftiPath(c.image) ? readNiftiImageInfo(c.image) : readImageInfo(c.image));
        return { width: info.width, height: info.height };
      },
    })),
  };
}
