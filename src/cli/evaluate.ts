import * as path from 'node:path';
import { Command } from 'commander';
import { evaluate } from '../eval/evaluateModel';
import { evaluateQubiq, QubiqEvaluation } from '../eval/qubiq';
import { collectList, parseChoice, parseIntFlag, setThreadsFlag, splitList } from '../util/flags';
import { perStructure, plural } from '../util/format';
import { progressBar } from '../util/progress';
import { UserError } from '../errors';
import { DEVICE_CHOICES } from '../torch/device';
import { DEVICE_HELP } from '../train/settings';
import { EvaluateOptions } from '../eval/evaluate';
import { EvaluationSummary } from '../results/summary';
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
  const values = splitList(text).map((s) => {
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

/** A few lines for the terminal: Mean Voting and Average per structure, and where the outputs are. */
export function formatSummaryLines(summary: EvaluationSummary, outDir: string): string[] {
  const pair = (rec: Record<string, number | null>): string => perStructure(summary.structures, (s) => rec[s]);
  return [
    `${plural(summary.cases, 'case')} evaluated (soft Dice %, ${summary.structures.join(', ')})`,
    `  Mean Voting: ${pair(summary.mean_voting)}`,
    `  Average:     ${pair(summary.average)}`,
    ...summary.annotators.map((a, k) => `  A${k + 1} (${a}): ${perStructure(summary.structures, (s) => summary.per_annotator[s][k])}`),
    `Wrote ${[SUMMARY_FILE, PER_CASE_FILE, REPORT_FILE].map((f) => path.join(outDir, f)).join(', ')}`,
  ];
}

/** QUBIQ's score per task and overall, and the maps' soft Dice, as printed. */
function qubiqLines(e: QubiqEvaluation): string[] {
  const pct = (v: number) => (100 * v).toFixed(2);
  return [
    `QUBIQ score ${pct(e.qubiq.overall)} (${e.tasks.map((t, k) => `${t} ${pct(e.qubiq.perTask[k])}`).join(', ')}) over ${e.rows.length / e.tasks.length} cases of ${e.dataset}`,
    `soft Dice ${e.tasks.map((t, k) => `${t} ${pct(e.softDice[k])}`).join(', ')}`,
    ...(e.unscored.length > 0 ? [`not scored (no rater's mask): ${e.unscored.length} cases`] : []),
  ];
}

/** `avap evaluate`: only parses arguments and calls evaluatePredictions. */
export function registerEvaluateCommand(program: Command): void {
  program
    .command('evaluate')
    .description("score saved predictions against a dataset's annotations (the paper's soft Dice: Mean Voting, Average, cross table; plus GED, ECE, identifiability)")
    .option('--data <dir>', 'dataset folder (native dataset.json layout or RIGA DiscRegion)')
    .option('--subset <names>', 'only these subsets (repeatable, or a comma-separated list)', collectList)
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
    .option('--device <kind>', `with --model: ${DEVICE_HELP}`, 'auto')
    .option('--format <fmt>', "'avap' (the predictions above) or 'qubiq' (--data a QUBIQ dataset; --predictions a submission tree SUB/<dataset>/<case>/taskTT.nii.gz, or --model a run to write one into OUT_DIR/submission): QUBIQ's score and soft Dice per task", 'avap')
    .action(async (opts: EvaluateCliOptions & { format: string; device: string }) => {
      await setThreadsFlag(opts.threads);
      const device = parseChoice('--device', opts.device, DEVICE_CHOICES);
      if (parseChoice('--format', opts.format, ['avap', 'qubiq'] as const) === 'qubiq') {
        if (!opts.out) throw new UserError('evaluate: --out OUT_DIR is required');
        if (!opts.data) throw new UserError('evaluate: --data DIR is required');
        if (opts.subset?.length) throw new UserError('--subset: with --format qubiq, pick the cases with --split (Training, Validation, Testing)');
        const e = await evaluateQubiq({ data: opts.data, split: opts.split, predictions: opts.predictions, model: opts.model, out: opts.out, label: opts.label, device });
        process.stdout.write([...qubiqLines(e), `Wrote ${e.files.join(', ')}`].join('\n') + '\n');
        return;
      }
      const options = evaluateOptionsFromCli(opts);
      if (!opts.out) throw new UserError('evaluate: --out OUT_DIR is required');
      if (!opts.data) throw new UserError('evaluate: --data DIR is required');
      const bar = progressBar('evaluating cases', opts.progress !== false && process.stderr.isTTY === true);
      let summary: EvaluationSummary & { qubiq?: QubiqEvaluation };
      try {
        summary = await evaluate({
          ...options, data: opts.data, split: opts.split, subsets: opts.subset, predictions: opts.predictions, model: opts.model, out: opts.out, device,
          onProgress: (done, total) => bar.update(done, total),
        });
      } finally {
        bar.stop();
      }
      process.stdout.write(`${formatSummaryLines(summary, opts.out).join('\n')}\n`);
      if (summary.qubiq) process.stdout.write(`${qubiqLines(summary.qubiq).join('\n')}\n`);
    });
}
