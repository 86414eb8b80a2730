/**
 * `avap data check DIR` as a library function: detect the layout, validate every referenced file
 * (exists, decodes, image and label maps agree in size, label values are declared, annotator
 * coverage) and summarise the dataset. The CLI only prints the report.
 *
 * The summary's per-annotator mean structure area is the first hint of each expert's preference
 * (in RIGA, some annotators draw the cup consistently larger than others).
 */
import { UserError } from '../errors';
import { readImage } from '../io/image';
import { isNiftiPath } from '../io/nifti';
import { readNiftiImage } from './niftiImage';
import { readQubiqRater } from './qubiq';
import { readSliceImage, readSliceRater } from './volumes';
import { CaseRecord, Dataset, displayPath, formatProblem, labelDecoderFor, Problem, scanDataset } from './dataset';

export interface CheckSummary {
  name: string;
  layout: Dataset['layout'];
  root: string;
  cases: number;
  /** Subset -> number of cases (empty when the dataset has no subsets). */
  subsets: Record<string, number>;
  /** Split -> number of cases (subsets included, as they are usable as splits). */
  splits: Record<string, number>;
  structures: { name: string; rule: string }[];
  annotators: {
    name: string;
    /** Cases with a label map from this annotator. */
    annotated: number;
    /** Per structure, mean share of the image the annotator marks (0..1), over their readable label maps. */
    meanArea: number[];
  }[];
  /** Distinct image sizes, most frequent first. */
  imageSizes: { width: number; height: number; cases: number }[];
  /** Distinct (channels, alpha, bit depth) of the images; channels exclude alpha, which is dropped on reading. NIfTI images: their datatype. */
  imageFormats: { channels: number; alpha: boolean; bitDepth: number; nifti?: string; cases: number }[];
  channels: number;
  /** Every (case, annotator) without a label map. */
  missing: { caseId: string; annotator: string }[];
}

export interface CheckReport {
  /** The folder as given. */
  dir: string;
  layout: Dataset['layout'] | null;
  /** True when there is no problem (warnings do not count). */
  ok: boolean;
  problems: Problem[];
  /** Findings that do not make the dataset wrong but deserve a look. */
  warnings: Problem[];
  summary: CheckSummary | null;
}

export interface CheckOptions {
  /** Cases decoded at a time (default 4). */
  concurrency?: number;
  onProgress?: (done: number, total: number) => void;
}

interface CaseFindings {
  problems: Problem[];
  warnings: Problem[];
  image?: { width: number; height: number; channels: number; alpha: boolean; bitDepth: number; nifti?: string };
  /** [annotator][structure] share of the image, or null when the label map was missing or unreadable. */
  areas: (number[] | null)[];
  nearCupPixels: number;
}

const problem = (file: string, message: string): Problem => ({ file, message, blocking: false });

/** The message of an error about `file`, without the "file: " prefix its UserError carries. */
function messageFor(file: string, err: unknown): string {
  if (!(err instanceof UserError)) throw err; // a bug, not bad input: keep its stack
  const prefix = `${file}: `;
  return err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
}

async function checkCase(ds: Dataset, c: CaseRecord): Promise<CaseFindings> {
  const out: CaseFindings = { problems: [], warnings: [], areas: c.labels.map(() => null), nearCupPixels: 0 };
  const decoder = labelDecoderFor(ds);
  let width = 0;
  let height = 0;
  try {
    const nifti = isNiftiPath(c.image) && !c.slice ? await readNiftiImage(c.image) : null;
    const img = c.slice ? await readSliceImage(c) : nifti ?? await readImage(c.image);
    ({ width, height } = img);
    out.image = { width, height, channels: img.channels, alpha: img.alpha === true, bitDepth: img.bitDepth, ...(nifti ? { nifti: nifti.volume.datatype } : {}) };
    if (img.alpha) out.warnings.push(problem(c.image, 'image has an alpha channel, which is ignored (the models see only its colour or grey channels)'));
    if (ds.layout !== 'riga' && img.channels !== ds.channels) {
      const declared = ds.layout === 'native' ? `dataset.json declares channels ${ds.channels}` : `the first case's image has ${ds.channels}`;
      out.problems.push(problem(c.image, `image has ${img.channels} channel${img.channels > 1 ? 's' : ''} but ${declared}`));
    }
  } catch (err) {
    out.problems.push(problem(c.image, messageFor(c.image, err)));
  }
  await Promise.all(c.labels.map(async (file, m) => {
    if (file === null) return;
    try {
      const label = c.slice ? await readSliceRater(c, m) : c.parts ? await readQubiqRater(c.parts[m], out.image ? { width, height, imageFile: c.image } : undefined) : await decoder.decode(file);
      if (out.image && (label.width !== width || label.height !== height)) {
        out.problems.push(problem(file, `label map is ${label.width}x${label.height} but its image ${displayPath(c.image)} is ${width}x${height}`));
        return;
      }
      const unknown = decoder.unknownValues(label.values);
      if (unknown.pixels > 0) {
        out.problems.push(problem(file, decoder.describeUnknown(unknown)));
        return;
      }
      const counts = new Array<number>(ds.structures.length).fill(0);
      const lut = decoder.bitsLut;
      const v = label.values;
      for (let i = 0; i < v.length; i++) {
        const bits = lut[v[i]];
        if (bits !== 0) for (let k = 0; k < counts.length; k++) if (bits & (1 << k)) counts[k]++;
        // RIGA: cup is exactly 255 (the public code's rule); values just below are probably lossy-saved
        // cup pixels and are counted as disc rim. Say so when it happens.
        if (ds.layout === 'riga' && v[i] >= 200 && v[i] < 255) out.nearCupPixels++;
      }
      out.areas[m] = counts.map((n) => n / v.length);
    } catch (err) {
      // A rater's annotation read from several files (QUBIQ): name the one at fault.
      const culprit = c.parts?.[m].find((p) => p !== null && err instanceof UserError && err.message.startsWith(`${p}: `)) ?? file;
      out.problems.push(problem(culprit, messageFor(culprit, err)));
    }
  }));
  if (c.labels.every((l) => l === null)) out.warnings.push(problem(c.image, `case '${c.id}' has no annotation from any annotator`));
  return out;
}

export async function checkDataset(dir: string, opts: CheckOptions = {}): Promise<CheckReport> {
  const scan = await scanDataset(dir);
  const report: CheckReport = { dir, layout: scan.layout, ok: false, problems: [...scan.problems], warnings: [], summary: null };
  const ds = scan.dataset;
  if (!ds) return report;

  const findings: CaseFindings[] = new Array(ds.cases.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < ds.cases.length) {
      const i = next++;
      findings[i] = await checkCase(ds, ds.cases[i]);
      opts.onProgress?.(++done, ds.cases.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 4, ds.cases.length) }, worker));
  for (const f of findings) {
    report.problems.push(...f.problems);
    report.warnings.push(...f.warnings);
  }

  const K = ds.structures.length;
  const annotators = ds.annotators.map((name, m) => {
    const areas = findings.map((f) => f.areas[m]).filter((a): a is number[] => a !== null);
    const meanArea = Array.from({ length: K }, (_, k) => (areas.length > 0 ? areas.reduce((s, a) => s + a[k], 0) / areas.length : 0));
    return { name, annotated: ds.cases.filter((c) => c.labels[m] !== null).length, meanArea };
  });
  for (const a of annotators) {
    if (a.annotated === 0) report.warnings.push(problem(ds.root, `annotator ${a.name} has no label map in any case`));
  }
  const nearCup = findings.reduce((s, f) => s + f.nearCupPixels, 0);
  if (nearCup > 0) {
    report.warnings.push(problem(ds.root, `${nearCup} mask pixels have values 200–254; by the RIGA rule (cup = 255, disc = value > 0) they count as disc rim, not cup — lossy-saved masks?`));
  }
  const tally = <T>(items: T[], key: (t: T) => string) => {
    const m = new Map<string, { item: T; n: number }>();
    for (const it of items) {
      const k = key(it);
      const e = m.get(k);
      if (e) e.n++;
      else m.set(k, { item: it, n: 1 });
    }
    return [...m.values()].sort((a, b) => b.n - a.n);
  };
  const images = findings.map((f) => f.image).filter((x): x is NonNullable<typeof x> => x !== undefined);
  const subsets: Record<string, number> = {};
  for (const c of ds.cases) if (c.subset !== undefined) subsets[c.subset] = (subsets[c.subset] ?? 0) + 1;
  report.summary = {
    name: ds.name,
    layout: ds.layout,
    root: ds.root,
    cases: ds.cases.length,
    subsets,
    splits: Object.fromEntries(Object.entries(ds.splits).filter(([k]) => !(k in subsets)).map(([k, v]) => [k, v.length])),
    structures: ds.structures.map((s) => ({ name: s.name, rule: s.rule })),
    annotators,
    imageSizes: tally(images, (i) => `${i.width}x${i.height}`).map(({ item, n }) => ({ width: item.width, height: item.height, cases: n })),
    imageFormats: tally(images, (i) => `${i.channels}/${i.alpha}/${i.bitDepth}/${i.nifti}`).map(({ item, n }) => ({ channels: item.channels, alpha: item.alpha, bitDepth: item.bitDepth, ...(item.nifti ? { nifti: item.nifti } : {}), cases: n })),
    channels: ds.channels,
    missing: ds.cases.flatMap((c) => c.labels.map((l, m) => (l === null ? { caseId: c.id, annotator: ds.annotators[m] } : null)).filter((x): x is { caseId: string; annotator: string } => x !== null)),
  };
  report.ok = report.problems.length === 0;
  return report;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The report as the CLI prints it: summary first, then warnings and problems, one per line. */
export function formatCheckReport(r: CheckReport, maxListed = 50): string {
  const lines: string[] = [];
  const s = r.summary;
  if (s) {
    const counts = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ');
    lines.push(`dataset     ${s.name} (${s.layout} layout) at ${displayPath(s.root)}`);
    lines.push(`cases       ${s.cases}${Object.keys(s.subsets).length > 0 ? `; subsets: ${counts(s.subsets)}` : ''}${Object.keys(s.splits).length > 0 ? `; splits: ${counts(s.splits)}` : '; no splits'}`);
    lines.push(`annotators  ${s.annotators.length}: ${s.annotators.map((a) => a.name).join(', ')}`);
    lines.push(`structures  ${s.structures.map((x) => `${x.name} (${x.rule})`).join('; ')}`);
    const fmt = (f: { channels: number; alpha: boolean; bitDepth: number; nifti?: string; cases: number }) => f.nifti
      ? `${f.channels}-channel NIfTI ${f.nifti} ×${f.cases}`
      : `${f.channels === 1 ? 'greyscale' : f.channels === 3 ? 'RGB' : `${f.channels}-channel`}${f.alpha ? (f.channels === 3 ? 'A' : '+alpha') : ''} ${f.bitDepth}-bit ×${f.cases}`;
    const sizes = s.imageSizes.slice(0, 5).map((x) => `${x.width}x${x.height} ×${x.cases}`).join(', ') + (s.imageSizes.length > 5 ? `, … (${s.imageSizes.length} sizes)` : '');
    lines.push(`images      ${s.imageFormats.map(fmt).join(', ') || 'none readable'}; sizes ${sizes || '-'}; models get ${s.channels} channel${s.channels > 1 ? 's' : ''}`);
    const total = s.cases * s.annotators.length;
    lines.push(`annotations ${total - s.missing.length} of ${total}; missing ${s.missing.length}${s.missing.length > 0 ? `: ${s.missing.slice(0, 10).map((x) => `${x.caseId}/${x.annotator}`).join(', ')}${s.missing.length > 10 ? `, … (${s.missing.length - 10} more)` : ''}` : ''}`);
    lines.push('');
    lines.push('mean structure area per annotator (% of image)');
    const nameW = Math.max(10, ...s.annotators.map((a) => a.name.length + 2));
    const colW = Math.max(8, ...s.structures.map((x) => x.name.length + 2));
    lines.push(`${'annotator'.padEnd(nameW)}${'cases'.padStart(7)}${s.structures.map((x) => x.name.padStart(colW)).join('')}`);
    for (const a of s.annotators) {
      lines.push(`${a.name.padEnd(nameW)}${String(a.annotated).padStart(7)}${a.meanArea.map((v) => (v * 100).toFixed(2).padStart(colW)).join('')}`);
    }
    lines.push('');
  }
  const list = (title: string, items: Problem[]) => {
    if (items.length === 0) return;
    lines.push(`${plural(items.length, title)}:`);
    for (const p of items.slice(0, maxListed)) lines.push(`  ${formatProblem(p)}`);
    if (items.length > maxListed) lines.push(`  … and ${items.length - maxListed} more`);
  };
  list('warning', r.warnings);
  list('problem', r.problems);
  if (r.ok) lines.push(`OK: ${displayPath(s!.root)} passes every check${r.warnings.length > 0 ? ` (${plural(r.warnings.length, 'warning')})` : ''}`);
  return lines.join('\n');
}
