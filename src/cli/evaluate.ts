import * as path from 'node:path';
import { Command } from 'commander';
import * as cliProgress from 'cli-progress';
import { CaseRecord, Dataset, openDataset, selectCases } from '../data/dataset';
import { evaluateModel } from '../predict/evaluateModel';
import { parseIntFlag, setThreadsFlag } from './flags';
import { UserError } from '../errors';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import { checkPredictionsForEvaluation } from '../predict/manifest';
import { EvaluationSummary, evaluatePredictions, EvaluateOptions, ReferenceSource, referenceFromDataset } from '../eval/evaluate';
import { PER_CASE_FILE, REPORT_FILE, SUMMARY_FILE } from '../eval/report';
import { PAPER_THRESHOLDS, validateRule, validateThresholds } from '../metrics/dice';

/** Options of `avap evaluate` as commander hands them over. */
export interface EvaluateCliOptions {
  data?: string;
  subset?: string[];
  split?: string;
  predictions?: string;
  model?: string;
  out?: string;
  thresholds?: string;
  rule?: string;
  evalSize?: string;
  eceBins?: string;
  label?: string;
  progress?: boolean;
  threads?: string;
}

/** '0.1,0.3,0.5' → [0.1, 0.3, 0.5]; a UserError naming --thresholds otherwise. */
export function parseThresholds(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const values = parts.map((s) => {
    const v = s === '' ? NaN : Number(s);
    if (!Number.isFinite(v)) throw new UserError(`--thresholds: '${s}' is not a number (expected a comma-separated list such as 0.1,0.3,0.5,0.7,0.9)`);
    return v;
  });
  return validateThresholds(values, '--thresholds');
}

/** Turns the shared flags (thresholds, rule, sizes, label) into library options. */
export function evaluateOptionsFromCli(opts: EvaluateCliOptions): EvaluateOptions {
  return {
    thresholds: opts.thresholds !== undefined ? parseThresholds(opts.thresholds) : [...PAPER_THRESHOLDS],
    rule: validateRule(opts.rule ?? 'gt', '--rule'),
    evalSize: opts.evalSize !== undefined ? parseIntFlag('--eval-size', opts.evalSize) : undefined,
    eceBins: opts.eceBins !== undefined ? parseIntFlag('--ece-bins', opts.eceBins) : undefined,
    label: opts.label,
  };
}

/** The reference selected by --data, --subset and --split. */
export async function referenceFromCli(opts: EvaluateCliOptions): Promise<ReferenceSource> {
  const { ds, cases } = await selectionFromCli(opts);
  return referenceFromDataset(ds, cases);
}

/** The dataset and the cases selected by --data, --subset and --split. */
export async function selectionFromCli(opts: EvaluateCliOptions): Promise<{ ds: Dataset; cases: CaseRecord[] }> {
  if (!opts.data) throw new UserError('evaluate: --data DIR is required');
  const ds = await openDataset(opts.data);
  const subsets = (opts.subset ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
  const cases = selectCases(ds, { subsets: subsets.length > 0 ? subsets : undefined, split: opts.split });
  if (cases.length === 0) throw new UserError(`${opts.data}: the selection (${[subsets.length ? `--subset ${subsets.join(',')}` : '', opts.split ? `--split ${opts.split}` : ''].filter(Boolean).join(' ') || 'all cases'}) holds no cases`);
  return { ds, cases };
}

const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '–' : (x * 100).toFixed(2));

/** A few lines for the terminal: Mean Voting and Average per structure, and where the outputs are. */
export function formatSummaryLines(summary: EvaluationSummary, outDir: string): string[] {
  const pair = (rec: Record<string, number | null>): string => summary.structures.map((s) => pct(rec[s])).join(', ');
  return [
    `${summary.cases} case${summary.cases === 1 ? '' : 's'} evaluated (soft Dice %, ${summary.structures.join(', ')})`,
    `  Mean Voting: ${pair(summary.mean_voting)}`,
    `  Average:     ${pair(summary.average)}`,
    ...summary.annotators.map((a, k) => `  A${k + 1} (${a}): ${summary.structures.map((s) => pct(summary.per_annotator[s][k])).join(', ')}`),
    `Wrote ${[SUMMARY_FILE, PER_CASE_FILE, REPORT_FILE].map((f) => path.join(outDir, f)).join(', ')}`,
  ];
}

/** Progress bar on stderr when it is a terminal; otherwise nothing. */
export function progressReporter(enabled: boolean): { onProgress?: (done: number, total: number) => void; stop: () => void } {
  if (!enabled || !process.stderr.isTTY) return { stop: () => undefined };
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'evaluate [{bar}] {value}/{total} cases', hideCursor: true }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    onProgress: (done, total) => {
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.update(done);
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

/** `avap evaluate` (issue 4): only parses arguments and calls evaluatePredictions. */
export function registerEvaluateCommand(program: Command): void {
  program
    .command('evaluate')
    .description("score saved predictions against a dataset's annotations (the paper's soft Dice: Mean Voting, Average, cross table; plus GED, ECE, identifiability)")
    .option('--data <dir>', 'dataset folder (native dataset.json layout or RIGA DiscRegion)')
    .option('--subset <names>', 'only these subsets (repeatable, or a comma-separated list)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--split <name>', 'only the cases of this split')
    .option('--predictions <dir>', 'predictions folder: <case>/<structure>_mean.png and <case>/<structure>_annotator<k>.png')
    .option('--model <run>', 'a trained run folder: predict the selected cases into OUT_DIR/predictions, then evaluate them')
    .option('--out <dir>', 'where summary.json, per_case.csv and report.md go')
    .option('--thresholds <list>', 'soft Dice thresholds, comma-separated', PAPER_THRESHOLDS.join(','))
    .option('--rule <rule>', "binarisation: 'gt' (value > t, RIGA/PADL code) or 'ge' (value >= t, MRNet code)", 'gt')
    .option('--eval-size <n>', 'score at N×N: predictions resized bilinearly, annotations by nearest neighbour (the paper: 256)')
    .option('--ece-bins <n>', 'bins of the expected calibration error', '15')
    .option('--label <name>', "row label in report.md (default: the predictions folder's name)")
    .option('--no-progress', 'no progress bar')
    .option('--threads <n>', 'torch threads (default: all cores)')
    .action(async (opts: EvaluateCliOptions) => {
      await setThreadsFlag(opts.threads);
      const options = evaluateOptionsFromCli(opts);
      if (!opts.predictions === !opts.model) throw new UserError('evaluate: pass exactly one of --predictions PRED_DIR and --model RUN');
      if (!opts.out) throw new UserError('evaluate: --out OUT_DIR is required');
      const out = opts.out;
      checkOutputFolder('--out', out);
      const progress = progressReporter(opts.progress !== false);
      let summary: EvaluationSummary;
      try {
        summary = await withOutputRollback(out, async () => {
          if (opts.model) {
            const { ds, cases } = await selectionFromCli(opts);
            return evaluateModel(opts.model, ds, cases, out, { ...options, onProgress: progress.onProgress });
          }
          const reference = await referenceFromCli(opts);
          checkPredictionsForEvaluation(opts.predictions!, reference.annotators.length);
          return evaluatePredictions(reference, opts.predictions!, out, { ...options, onProgress: progress.onProgress });
        });
      } finally {
        progress.stop();
      }
      process.stdout.write(`${formatSummaryLines(summary, out).join('\n')}\n`);
    });
}
