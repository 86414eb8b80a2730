// Line charts of the experiment (learning curves, the budget sweep): drawn as SVG, written as PNG by
// sharp. One or more panels side by side, each with its axes, ticks and title, and one legend for
// all of them (every panel draws the same series in the same colours).
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic';

export interface ChartSeries {
  name: string;
  /** [x, y] in drawing order; non-finite values are left out. */
  points: [number, number][];
}

export interface ChartPanel {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Logarithmic x axis, ticks at the data's x values (a budget sweep: 300, 1000, 3000). */
  logX?: boolean;
  series: ChartSeries[];
}

/** Distinguishable colours (Tableau 20's dark and light tones alternating), one per series name. */
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#aec7e8', '#ffbb78', '#98df8a', '#ff9896', '#c5b0d5', '#c49c94', '#f7b6d2', '#c7c7c7', '#dbdb8d', '#9edae5'];

const PANEL_WIDTH = 420;
const PANEL_HEIGHT = 330;
const MARGIN = { left: 62, right: 16, top: 30, bottom: 46 };
const LEGEND_ROW = 18;
const FONT = 'font-family="sans-serif"';

/** The SVG of panels in a grid of `columns`, with a legend below them. */
export function lineChartSvg(panels: readonly ChartPanel[], columns = panels.length): string {
  const names = [...new Set(panels.flatMap((p) => p.series.map((s) => s.name)))];
  const colour = new Map(names.map((n, i) => [n, PALETTE[i % PALETTE.length]]));
  const rows = Math.ceil(panels.length / columns);
  const width = columns * PANEL_WIDTH;
  const legendPerRow = Math.max(1, Math.floor(width / 140));
  const legendHeight = Math.ceil(names.length / legendPerRow) * LEGEND_ROW + 10;
  const height = rows * PANEL_HEIGHT + legendHeight;
  const parts = panels.map((p, i) => panelSvg(p, (i % columns) * PANEL_WIDTH, Math.floor(i / columns) * PANEL_HEIGHT, colour));
  const legend = names.map((n, i) => {
    const x = 12 + (i % legendPerRow) * 140;
    const y = rows * PANEL_HEIGHT + 8 + Math.floor(i / legendPerRow) * LEGEND_ROW;
    return `<line x1="${x}" y1="${y + 6}" x2="${x + 22}" y2="${y + 6}" stroke="${colour.get(n)}" stroke-width="2.5"/>`
      + `<text x="${x + 28}" y="${y + 10}" ${FONT} font-size="12">${escapeXml(n)}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`
    + `<rect width="${width}" height="${height}" fill="white"/>${parts.join('')}${legend.join('')}</svg>`;
}

function panelSvg(panel: ChartPanel, left: number, top: number, colour: Map<string, string>): string {
  const x0 = left + MARGIN.left;
  const x1 = left + PANEL_WIDTH - MARGIN.right;
  const y0 = top + PANEL_HEIGHT - MARGIN.bottom;
  const y1 = top + MARGIN.top;
  const points = panel.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!panel.logX || x > 0));
  const out = [`<text x="${(x0 + x1) / 2}" y="${top + 18}" ${FONT} font-size="13" font-weight="bold" text-anchor="middle">${escapeXml(panel.title)}</text>`,
    `<line x1="${x0}" y1="${y0}" x2="${x1}" y2="${y0}" stroke="black"/>`, `<line x1="${x0}" y1="${y0}" x2="${x0}" y2="${y1}" stroke="black"/>`,
    `<text x="${(x0 + x1) / 2}" y="${y0 + 36}" ${FONT} font-size="12" text-anchor="middle">${escapeXml(panel.xLabel)}</text>`,
    `<text transform="translate(${left + 14} ${(y0 + y1) / 2}) rotate(-90)" ${FONT} font-size="12" text-anchor="middle">${escapeXml(panel.yLabel)}</text>`];
  if (points.length === 0) {
    out.push(`<text x="${(x0 + x1) / 2}" y="${(y0 + y1) / 2}" ${FONT} font-size="12" text-anchor="middle" fill="#777">no data yet</text>`);
    return out.join('');
  }
  const fx = panel.logX ? Math.log10 : (x: number) => x;
  const xs = points.map(([x]) => fx(x));
  const ys = points.map(([, y]) => y);
  const xTicks = panel.logX ? [...new Set(points.map(([x]) => x))].sort((a, b) => a - b) : niceTicks(Math.min(0, ...xs), Math.max(...xs));
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys));
  const [xMin, xMax] = panel.logX ? widen(Math.min(...xs), Math.max(...xs)) : [xTicks[0], xTicks[xTicks.length - 1]];
  const [yMin, yMax] = [yTicks[0], yTicks[yTicks.length - 1]];
  const px = (x: number) => x0 + ((fx(x) - xMin) / (xMax - xMin)) * (x1 - x0);
  const py = (y: number) => y0 - ((y - yMin) / (yMax - yMin)) * (y0 - y1);
  for (const t of xTicks) {
    out.push(`<line x1="${px(t)}" y1="${y0}" x2="${px(t)}" y2="${y0 + 4}" stroke="black"/>`,
      `<text x="${px(t)}" y="${y0 + 17}" ${FONT} font-size="11" text-anchor="middle">${tickText(t)}</text>`);
  }
  for (const t of yTicks) {
    out.push(`<line x1="${x0 - 4}" y1="${py(t)}" x2="${x1}" y2="${py(t)}" stroke="${t === yMin ? 'black' : '#e4e4e4'}"/>`,
      `<text x="${x0 - 7}" y="${py(t) + 4}" ${FONT} font-size="11" text-anchor="end">${tickText(t)}</text>`);
  }
  for (const s of panel.series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!panel.logX || x > 0));
    if (pts.length === 0) continue;
    const c = colour.get(s.name)!;
    out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    // Markers where lines are short (a sweep's few budgets), so a single point still shows.
    if (pts.length <= 6) for (const [x, y] of pts) out.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${c}"/>`);
  }
  return out.join('');
}

/** About five round-numbered ticks covering [lo, hi] (1, 2 or 5 times a power of ten apart). */
export function niceTicks(lo: number, hi: number): number[] {
  if (lo === hi) [lo, hi] = widen(lo, hi);
  const raw = (hi - lo) / 5;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const first = Math.floor(lo / step) * step;
  const ticks: number[] = [];
  // Each tick as first + i·step rounded to the step, so a running sum's error never shows (0, not 5.6e-17).
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  for (let i = 0; first + i * step < hi + step * 0.999; i++) ticks.push(Number((first + i * step).toFixed(decimals)));
  return ticks;
}

function widen(lo: number, hi: number): [number, number] {
  const pad = lo === hi ? Math.max(Math.abs(lo) * 0.05, 0.5) : (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

function tickText(t: number): string {
  return Math.abs(t) >= 1e4 || (t !== 0 && Math.abs(t) < 1e-3) ? t.toExponential(1) : String(Number(t.toPrecision(6)));
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Renders the panels and writes them as a PNG, atomically. */
export async function writeLineChart(file: string, panels: readonly ChartPanel[], columns?: number): Promise<void> {
  writeFileAtomic(file, await sharp(Buffer.from(lineChartSvg(panels, columns))).png().toBuffer());
}
