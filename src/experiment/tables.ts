// The experiment's Markdown tables, laid out like the paper's: soft Dice in percent as
// 'disc, cup' pairs (one number per structure), the best value of each column and structure in bold.
import { EvaluationSummary } from '../eval/evaluate';
import { percent } from '../util/format';

export interface TableRow {
  label: string;
  summary: EvaluationSummary;
}

/** A column of the table: one value per structure for each row. */
type Column = { title: string; values: (row: TableRow) => (number | null)[] };

function render(rows: TableRow[], structures: string[], columns: Column[], leading: { title: string; cell: (row: TableRow) => string }[]): string[] {
  // Best per (column, structure), so ties are all bold and a missing value never is.
  const best = columns.map((c) => structures.map((_, s) => Math.max(...rows.map((r) => c.values(r)[s] ?? -Infinity))));
  const head = `| ${[...leading.map((l) => l.title), ...columns.map((c) => c.title)].join(' | ')} |`;
  const rule = `|${'---|'.repeat(leading.length + columns.length)}`;
  const body = rows.map((r) => {
    const cells = columns.map((c, ci) => c.values(r).map((v, s) => {
      const text = percent(v);
      return rows.length > 1 && v !== null && v === best[ci][s] ? `**${text}**` : text;
    }).join(', '));
    return `| ${[...leading.map((l) => l.cell(r)), ...cells].join(' | ')} |`;
  });
  return [head, rule, ...body];
}

const average: Column = { title: 'Average', values: (r) => r.summary.structures.map((s) => r.summary.average[s]) };
const meanVoting: Column = { title: 'Mean Voting', values: (r) => r.summary.structures.map((s) => r.summary.mean_voting[s]) };

/** Table II: rows = methods, columns A1..AM, Average, Mean Voting. */
export function table2(rows: TableRow[], caption: string): string {
  if (rows.length === 0) return `${caption}\n\n(no method evaluated yet)\n`;
  const { structures, annotators } = rows[0].summary;
  const perAnnotator: Column[] = annotators.map((_, k) => ({ title: `A${k + 1}`, values: (r) => structures.map((s) => r.summary.per_annotator[s][k]) }));
  return [caption, '', ...render(rows, structures, [...perAnnotator, average, meanVoting], [{ title: 'Methods', cell: (r) => r.label }]), ''].join('\n');
}

/** Tables III and V: one row per variant, Average and Mean Voting. */
export function averageMeanTable(rows: TableRow[], caption: string, firstColumn: string, note?: string): string {
  if (rows.length === 0) return `${caption}\n\n(no variant evaluated yet)\n`;
  const structures = rows[0].summary.structures;
  return [caption, '', ...render(rows, structures, [average, meanVoting], [{ title: firstColumn, cell: (r) => r.label }]), ...(note ? ['', note] : []), ''].join('\n');
}

/** Table IV: which conditions the APM's controller sees. */
export function conditioningTable(rows: (TableRow & { code: boolean; features: boolean })[], caption: string): string {
  if (rows.length === 0) return `${caption}\n\n(no variant evaluated yet)\n`;
  const structures = rows[0].summary.structures;
  const mark = (b: boolean) => (b ? '✓' : '×');
  return [caption, '', ...render(rows, structures, [average, meanVoting], [
    { title: 'Task coding', cell: (r) => mark((r as (typeof rows)[number]).code) },
    { title: 'Feature coding', cell: (r) => mark((r as (typeof rows)[number]).features) },
  ]), ''].join('\n');
}
