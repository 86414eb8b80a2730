// The experiment's Markdown tables, laid out like the paper's: soft Dice in percent as
// 'disc, cup' pairs (one number per structure), the best value of each column and structure in bold.
// Table II over several seeds shows mean ± standard deviation, and bolds Average and Mean Voting by
// the bootstrap intervals of the differences to the best method rather than by the best mean alone.
import { EvaluationSummary } from './summary';
import { percent } from '../util/format';
import { metricSpec } from '../metrics/table';

export interface TableRow {
  label: string;
  summary: EvaluationSummary;
}

/** A column of the table: one value per structure for each row. */
interface Column<R> {
  title: string;
  values: (row: R) => (number | null)[];
  /** Standard deviations, shown as '± x' where not null. */
  spreads?: (row: R) => (number | null)[];
  /** Whether a cell is bold; by default the best value of its column and structure is. */
  bold?: (row: R, structure: number) => boolean;
}

function render<R>(rows: R[], structures: string[], columns: Column<R>[], leading: { title: string; cell: (row: R) => string }[]): string[] {
  // Best per (column, structure), so ties are all bold and a missing value never is.
  const best = columns.map((c) => structures.map((_, s) => Math.max(...rows.map((r) => c.values(r)[s] ?? -Infinity))));
  const head = `| ${[...leading.map((l) => l.title), ...columns.map((c) => c.title)].join(' | ')} |`;
  const rule = `|${'---|'.repeat(leading.length + columns.length)}`;
  const body = rows.map((r) => {
    const cells = columns.map((c, ci) => {
      const spreads = c.spreads?.(r);
      return c.values(r).map((v, s) => {
        const text = percent(v) + (spreads?.[s] !== null && spreads?.[s] !== undefined ? ` ± ${percent(spreads[s])}` : '');
        const bold = rows.length > 1 && v !== null && (c.bold ? c.bold(r, s) : v === best[ci][s]);
        return bold ? `**${text}**` : text;
      }).join(', ');
    });
    return `| ${[...leading.map((l) => l.cell(r)), ...cells].join(' | ')} |`;
  });
  return [head, rule, ...body];
}

const average: Column<TableRow> = { title: metricSpec('average').label, values: (r) => r.summary.structures.map((s) => r.summary.average[s]) };
const meanVoting: Column<TableRow> = { title: metricSpec('mean_voting').label, values: (r) => r.summary.structures.map((s) => r.summary.mean_voting[s]) };

/** The scores a Table II row shows (fractions), per structure. */
export type MethodScores = Pick<EvaluationSummary, 'average' | 'mean_voting' | 'per_annotator'>;

/** A row of Table II: a method's scores over its seeds. */
export interface MethodRow {
  label: string;
  /** Means over the seeds. */
  mean: MethodScores;
  /** Sample standard deviations over the seeds; null with one seed. */
  sd: MethodScores | null;
  /** Still improving at the end of its budget: marked †. */
  stillImproving: boolean;
  /** Per structure: Average and Mean Voting not behind the best method beyond the interval (bold); absent = bold the best mean. */
  contender?: { average: Record<string, boolean>; mean_voting: Record<string, boolean> };
}

export const NOT_CONVERGED_MARK = '†';
export const NOT_CONVERGED_NOTE = `${NOT_CONVERGED_MARK} still improving over the last quarter of its budget: not converged. Where a row is marked, this table ranks how fast the methods learn, not how well they end up; compare at a larger --steps (a budget sweep: docs/experiments.md).`;

/** Table II: rows = methods, columns A1..AM, Average, Mean Voting. */
export function table2(rows: MethodRow[], structures: string[], annotators: number, caption: string): string {
  if (rows.length === 0) return `${caption}\n\n(no method evaluated yet)\n`;
  const column = (title: string, scores: (m: MethodScores) => (number | null)[], key?: 'average' | 'mean_voting'): Column<MethodRow> => ({
    title, values: (r) => scores(r.mean), spreads: (r) => (r.sd ? scores(r.sd) : structures.map(() => null)),
    ...(key && rows.every((r) => r.contender) ? { bold: (r: MethodRow, s: number) => r.contender![key][structures[s]] } : {}),
  });
  const perAnnotator = Array.from({ length: annotators }, (_, k) => column(`A${k + 1}`, (m) => structures.map((s) => m.per_annotator[s]?.[k] ?? null)));
  const columns = [...perAnnotator, column(metricSpec('average').label, (m) => structures.map((s) => m.average[s]), 'average'), column(metricSpec('mean_voting').label, (m) => structures.map((s) => m.mean_voting[s]), 'mean_voting')];
  const label = (r: MethodRow) => (r.stillImproving ? `${r.label} ${NOT_CONVERGED_MARK}` : r.label);
  const notes = rows.some((r) => r.stillImproving) ? ['', NOT_CONVERGED_NOTE] : [];
  return [caption, '', ...render(rows, structures, columns, [{ title: 'Methods', cell: label }]), ...notes, ''].join('\n');
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
