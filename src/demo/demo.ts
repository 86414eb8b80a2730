// `avap demo`: the whole method on the built-in synthetic dataset — generate, train, evaluate on cases
// it did not train on, and show that AVAP mimics each annotator better than one calibrated map does.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDataset, readAnnotations, selectCases, structureMasks } from '../data/dataset';
import { writeSynthDataset } from '../data/synth';
import { writeFileAtomic } from '../io/atomic';
import { readImage } from '../io/image';
import { readPredictionCase } from '../predict/folder';
import { EvaluationSummary } from '../results/summary';
import { hardDice } from '../metrics/dice';
import { averageDice, meanVotingDice } from '../metrics/multiAnnotator';
import { nanMean } from '../metrics/accumulator';
import { identifiability } from '../metrics/caseMetrics';
import { evaluateModel } from '../eval/evaluateModel';
import { train } from '../train/trainer';
import { perStructure } from '../util/format';
import { writeFigure, FigureRow } from './figure';

export interface DemoProfile {
  cases: number;
  /** Training cases (the first ones); the others are the test split. */
  train: number;
  annotators: number;
  size: number;
  /** Optimiser steps of step 1 (backbone + AVM) and step 2 (APM). */
  variationSteps: number;
  preferenceSteps: number;
  batchSize: number;
  lr: number;
  preferenceLr: number;
  encoder: string;
}

/**
 * Sized for a 2-core CPU (docs/benchmarks.md has the measured times). Both
 * train on 30 images, as a small real dataset would, and test on every other case. Step 2 trains three
 * times (two cross-fitting folds for the preference gate, then on every image), so its budget is half
 * of step 1's.
 */
export const DEMO_PROFILES: Record<'full' | 'quick', DemoProfile> = {
  full: { cases: 130, train: 30, annotators: 6, size: 64, variationSteps: 1200, preferenceSteps: 600, batchSize: 8, lr: 1e-3, preferenceLr: 5e-3, encoder: 'resnet34' },
  quick: { cases: 60, train: 30, annotators: 6, size: 64, variationSteps: 300, preferenceSteps: 150, batchSize: 8, lr: 1e-3, preferenceLr: 5e-3, encoder: 'resnet18' },
};

export interface DemoResult {
  profile: string;
  seconds: number;
  test_cases: number;
  avap: { average: Record<string, number | null>; mean_voting: Record<string, number | null>; per_annotator: Record<string, (number | null)[]> };
  /** The same calibrated map used as every annotator's prediction: what AVAP's preference head must beat. */
  calibrated_for_every_annotator: { average: Record<string, number> };
  /** Per structure: annotators k whose prediction is, on average, closest to annotation k (Table I's row k peaks at column k). */
  identified: Record<string, { count: number; of: number }>;
  line: string;
}

export interface DemoOptions {
  out: string;
  quick: boolean;
  seed?: number;
  print?: (line: string) => void;
  /** Replaces the quick/full profile (the tests run a tiny one). */
  profile?: DemoProfile;
}

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const print = opts.print ?? ((l: string) => process.stderr.write(l + '\n'));
  const profileName = opts.profile ? 'custom' : opts.quick ? 'quick' : 'full';
  const p = opts.profile ?? DEMO_PROFILES[opts.quick ? 'quick' : 'full'];
  const seed = opts.seed ?? 0;
  const out = path.resolve(opts.out);
  const started = Date.now();
  const dataDir = path.join(out, 'data');
  const runDir = path.join(out, 'run');
  const evalDir = path.join(out, 'evaluation');
  for (const d of [dataDir, runDir, evalDir]) fs.rmSync(d, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });

  const annotatorNote = p.annotators >= 4 ? 'mostly per-image noise, A4 a consistently larger cup' : 'mostly per-image noise';
  print(`[1/3] synthetic dataset: ${p.cases} RIGA-like cases (${p.train} to train on), ${p.annotators} annotators (${annotatorNote}), ${p.size}×${p.size}`);
  await writeSynthDataset({ out: dataDir, cases: p.cases, train: p.train, annotators: p.annotators, size: p.size, seed });

  print(`[2/3] training AVAP (${p.encoder} U-Net; step 1: ${p.variationSteps} steps backbone + AVM, step 2: ${p.preferenceSteps} steps APM)`);
  await train({
    data: dataDir, out: runDir, method: 'avap', split: 'train', size: p.size, batchSize: p.batchSize, lr: p.lr,
    steps: p.variationSteps, methodOptions: { preferenceSteps: p.preferenceSteps, preferenceLr: p.preferenceLr }, encoder: p.encoder, seed, resume: false, print,
  });

  print('[3/3] evaluating on the test split (cases not seen in training)');
  const ds = await openDataset(dataDir);
  const cases = selectCases(ds, { split: 'test' });
  const summary = await evaluateModel(runDir, ds, cases, evalDir, { label: 'AVAP' });
  const structures = summary.structures;
  const M = ds.annotators.length;

  // Baseline: the calibrated map as every annotator's prediction, scored like AVAP's Average.
  const calibratedAverage: number[][] = structures.map(() => []);
  const figureRows: FigureRow[] = [];
  for (const [i, c] of cases.entries()) {
    const ann = await readAnnotations(ds, c);
    const pred = await readPredictionCase(path.join(evalDir, 'predictions'), c.id, structures, M);
    structures.forEach((_, s) => {
      const annotations = structureMasks(ann, s);
      calibratedAverage[s].push(averageDice(Array(M).fill(pred.calibrated[s]), annotations).average);
    });
    if (i < 2) figureRows.push(await figureRow(c.id, c.image, pred, ann, structures));
  }
  const baseline = Object.fromEntries(structures.map((s, i) => [s, nanMean(calibratedAverage[i])]));
  const identified = Object.fromEntries(structures.map((s) => [s, identifiedAnnotators(summary.cross[s] as (number | null)[][])]));

  const pair = (r: Record<string, number | null>) => perStructure(structures, (s) => r[s]);
  const cols = Array.from({ length: M }, (_, k) => `A${k + 1} ${perStructure(structures, (s) => summary.per_annotator[s][k])}`);
  const line = `AVAP (synthetic, ${cases.length} test cases, soft Dice % ${structures.join(', ')}): ${cols.join(' | ')} | Average ${pair(summary.average)} | Mean Voting ${pair(summary.mean_voting)}`;
  const result: DemoResult = {
    profile: profileName,
    seconds: Math.round((Date.now() - started) / 1000),
    test_cases: cases.length,
    avap: { average: summary.average, mean_voting: summary.mean_voting, per_annotator: summary.per_annotator },
    calibrated_for_every_annotator: { average: baseline },
    identified,
    line,
  };
  await writeFigure(path.join(out, 'figure.png'), figureRows);
  writeFileAtomic(path.join(out, 'summary.json'), JSON.stringify(result, null, 2) + '\n');
  writeFileAtomic(path.join(out, 'report.md'), demoReport(result, summary, structures));
  return result;
}

/**
 * How many annotators the predictions tell apart: the evaluation's identifiability rule applied to the
 * cross table averaged over the test cases (Table I), i.e. row k — the prediction for annotator k scored
 * against every annotator's annotation — peaks at column k, strictly, over at least one other column.
 */
export function identifiedAnnotators(cross: (number | null)[][]): { count: number; of: number } {
  const count = identifiability(cross.map((row) => row.map((v) => v ?? NaN))).filter((v) => v === 1).length;
  return { count, of: cross.length };
}

async function figureRow(caseId: string, imageFile: string, pred: Awaited<ReturnType<typeof readPredictionCase>>,
  ann: Awaited<ReturnType<typeof readAnnotations>>, structures: string[]): Promise<FigureRow> {
  const M = ann.available.length;
  const dice = (s: number, k: number) => (ann.available[k] ? (100 * hardDice(pred.annotators[k][s], ann.masks[k][s], { smooth: 1 })).toFixed(1) : '–');
  const softVsVote = structures.map((_, s) => (100 * meanVotingDice(pred.calibrated[s], structureMasks(ann, s))).toFixed(1));
  return {
    caseId,
    image: await readImage(imageFile),
    calibrated: pred.calibrated,
    annotators: pred.annotators,
    annotations: ann.masks.map((perStructure, k) => (ann.available[k] ? perStructure : null)),
    captions: Array.from({ length: M }, (_, k) => `A${k + 1} ${structures.map((_, s) => dice(s, k)).join(', ')}`),
    meanCaption: `MV ${softVsVote.join(', ')}`,
  };
}

function demoReport(r: DemoResult, summary: EvaluationSummary, structures: string[]): string {
  const pair = (rec: Record<string, number | null>) => perStructure(structures, (s) => rec[s]);
  const M = summary.annotators.length;
  const head = `| Method | ${Array.from({ length: M }, (_, k) => `A${k + 1}`).join(' | ')} | Average | Mean Voting |`;
  const rule = `|${'---|'.repeat(M + 3)}`;
  const avap = `| AVAP | ${Array.from({ length: M }, (_, k) => perStructure(structures, (s) => summary.per_annotator[s][k])).join(' | ')} | ${pair(summary.average)} | ${pair(summary.mean_voting)} |`;
  const calibrated = `| calibrated map for every annotator | ${Array(M).fill('').join(' | ')} | ${pair(r.calibrated_for_every_annotator.average)} | ${pair(summary.mean_voting)} |`;
  return [
    `# avap demo (${r.profile} profile)`, '',
    `Synthetic RIGA-like data, ${r.test_cases} test cases never seen in training; soft Dice in percent as (${structures.join(', ')}), thresholds 0.1…0.9.`, '',
    head, rule, avap, calibrated, '',
    `Annotators whose own prediction is closest to their own annotation: ${structures.map((s) => `${s} ${r.identified[s].count}/${r.identified[s].of}`).join(', ')}.`, '',
    '![Fig. 3-style figure: image, calibrated map (MV = soft Dice against the mean vote), and each annotator\'s predicted outline (green disc, blue cup) over their annotation (white disc, yellow cup) with hard Dice](figure.png)', '',
    `Total time: ${r.seconds} s. Full evaluation: evaluation/report.md and evaluation/summary.json.`, '',
  ].join('\n');
}
