import * as path from 'node:path';
import { writeFileAtomic } from '../io/atomic';
import { fixed, percent, perStructure } from '../util/format';
import { metricSpec, METRICS, ScalarMetricKey } from '../metrics/table';
import type { EvaluationSummary } from '../results/summary';

/**
 * The three outputs of `avap evaluate`: summary.json (fractions), per_case.csv (fractions, one
 * row per case) and report.md (percent, two decimals, laid out like the paper's Tables II and I,
 * each cell a 'disc, cup' pair in the order of the dataset's structures).
 */

export const SUMMARY_FILE = 'summary.json';
export const PER_CASE_FILE = 'per_case.csv';
export const REPORT_FILE = 'report.md';

/** Writes summary.json, per_case.csv and report.md into outDir, each atomically. */
export function writeEvaluationOutputs(outDir: string, summary: EvaluationSummary): { summary: string; perCase: string; report: string } {
  const files = { summary: path.join(outDir, SUMMARY_FILE), perCase: path.join(outDir, PER_CASE_FILE), report: path.join(outDir, REPORT_FILE) };
  // Render everything first, so a rendering bug cannot leave a partial set of files.
  const json = summaryJson(summary);
  const csv = perCaseCsv(summary);
  const md = reportMarkdown(summary);
  writeFileAtomic(files.summary, json);
  writeFileAtomic(files.perCase, csv);
  writeFileAtomic(files.report, md);
  return files;
}

export function summaryJson(summary: EvaluationSummary): string {
  return `${JSON.stringify(summary, null, 2)}\n`;
}

/**
 * One CSV cell of text. A spreadsheet runs a cell that starts with = + - @ (or tab, CR) as a formula,
 * so such text gets a leading apostrophe (OWASP's rule against CSV injection: a case id '=1+2' stays text).
 */
export function csvField(s: string): string {
  const text = /^[=+\-@\t\r]/.test(s) ? `'${s}` : s;
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

function frac(x: number | null | undefined): string {
  return x === null || x === undefined ? '' : x.toFixed(6);
}

/** The metric table's CSV columns; a per-annotator metric takes one column per annotator, A<k>. */
const CSV_METRICS = METRICS.filter((m) => m.csv);

/** Column names: A<k> are 1-based annotator numbers (names are listed in summary.json). */
export function perCaseCsv(summary: EvaluationSummary): string {
  const M = summary.annotators.length;
  const header = ['case', 'width', 'height'];
  for (const s of summary.structures) {
    for (const m of CSV_METRICS) {
      if (m.shape === 'scalar') header.push(`${s}_${m.key}`);
      else for (let k = 1; k <= M; k++) header.push(`${s}_A${k}`);
    }
  }
  const lines = [header.map(csvField).join(',')];
  for (const c of summary.per_case) {
    const row = [csvField(c.case), String(c.width), String(c.height)];
    for (const s of summary.structures) {
      const values = c.metrics[s] as unknown as Record<string, number | null | (number | null)[]>;
      for (const m of CSV_METRICS) {
        const v = values[m.key];
        if (Array.isArray(v)) row.push(...v.map(frac));
        else row.push(frac(v));
      }
    }
    lines.push(row.join(','));
  }
  return `${lines.join('\n')}\n`;
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** A 'disc, cup' cell: one value per structure, in the dataset's order. */
function pair(summary: EvaluationSummary, value: (structure: string) => number | null | undefined, fmt: (x: number | null | undefined) => string = percent): string {
  return perStructure(summary.structures, value, fmt);
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function reportMarkdown(summary: EvaluationSummary): string {
  const M = summary.annotators.length;
  const A = Array.from({ length: M }, (_, k) => `A${k + 1}`);
  const structs = summary.structures.join(', ');
  const rule = summary.rule === 'gt' ? 'value > t' : 'value >= t';
  const size = summary.eval_size ? `resized to ${summary.eval_size}×${summary.eval_size} (predictions bilinear, annotations nearest)` : 'at the original annotation size';
  const label = mdEscape(summary.label || 'predictions');

  const out: string[] = [];
  out.push(`# Evaluation: ${label}`, '');
  out.push(`${summary.cases} case${summary.cases === 1 ? '' : 's'}, scored ${size}. Soft Dice: mean over thresholds ${summary.thresholds.join(', ')} (binarised with ${rule}), then over cases. Each cell is '${structs}' in percent.`, '');
  out.push(`Annotators: ${summary.annotators.map((a, k) => `A${k + 1} = ${mdEscape(a)}`).join(', ')}.`, '');

  out.push(`## Table II layout: soft Dice (%) (${structs})`, '');
  out.push(
    'A<sub>k</sub>: the prediction for annotator k against annotator k\'s annotation; Average: the mean of the A columns; Mean Voting: the calibrated prediction against the mean of the annotations.',
    '',
  );
  out.push(
    table(
      ['Method', ...A, metricSpec('average').label, metricSpec('mean_voting').label],
      [[label, ...A.map((_, k) => pair(summary, (s) => summary.per_annotator[s]?.[k])), pair(summary, (s) => summary.average[s]), pair(summary, (s) => summary.mean_voting[s])]],
    ),
    '',
  );

  out.push(`## Table I layout: soft Dice (%) (${structs}), prediction for annotator i (row P<sub>i</sub>, the paper's M<sub>i</sub>) against annotation j (column A<sub>j</sub>)`, '');
  out.push(
    table(
      ['', ...A],
      A.map((_, i) => [
        `P${i + 1}`,
        ...A.map((__, j) => {
          const cell = pair(summary, (s) => summary.cross[s]?.[i]?.[j]);
          return i === j ? `**${cell}**` : cell;
        }),
      ]),
    ),
    '',
  );

  out.push(`## Further measures (${structs})`, '');
  out.push(
    table(
      ['Measure', 'Value'],
      [
        ...METRICS.filter((m) => m.measure).map((m) => [
          m.measure!.replace('{ece_bins}', String(summary.ece_bins)).replace('{binary_threshold}', String(summary.binary_threshold)),
          pair(summary, (s) => (summary[m.key as ScalarMetricKey] as Record<string, number | null>)[s], m.percent ? percent : (x) => fixed(x)),
        ]),
      ],
    ),
    '',
  );
  out.push(
    table(
      ['Identifiability (%)', ...A],
      [['per annotator', ...A.map((_, k) => pair(summary, (s) => summary.identifiability_per_annotator[s]?.[k]))]],
    ),
    '',
  );
  return `${out.join('\n')}`;
}
