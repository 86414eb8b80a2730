/**
 * RIGA's published 'DiscRegion' layout, read as users have it (docs/data.md):
 *
 *   DIR/Glaucoma_multirater_<Subset>.csv   one per subset (BinRushed, MESSIDOR, Magrabia)
 *     header  ,imgName,maskName,label,center,xmin,ymin,xmax,ymax,width,height,discFlag,rater
 *     paths relative to DIR with Windows backslashes; each image has consecutive rows: rater 0 is the
 *     fused 'FinalLabel' (not an annotator), then raters 1..M with one mask each.
 *
 * Masks are 8-bit greyscale: 0 background, ~128 disc rim, 255 cup. As in the public RIGA code,
 * disc = value > 0 and cup = value == 255. Everything is read from the CSVs; no file-name patterns.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { isInside, isSafePathComponent, resolvesInside } from '../io/paths';
import { problemText, readTextFile } from '../io/readBounded';
import { CaseRecord, Dataset, Problem, ScanResult } from './dataset';

const CSV_NAME = /^Glaucoma_multirater_(.+)\.csv$/i;
export const RIGA_HEADER = ',imgName,maskName,label,center,xmin,ymin,xmax,ymax,width,height,discFlag,rater';
/** The columns this reader uses; the others (bounding box, discFlag, ...) are not needed. */
const REQUIRED_COLUMNS = ['imgName', 'maskName', 'rater'];
/** The paper's split (after MRNet and PADL): train on BinRushed + MESSIDOR (655 images), test on Magrabia (95). */
export const RIGA_PAPER_SPLIT = { train: ['BinRushed', 'MESSIDOR'], test: ['Magrabia'] };

export interface RigaCsv {
  subset: string;
  file: string;
}

export function findRigaCsvs(root: string): RigaCsv[] {
  let names: string[];
  try {
    names = fs.readdirSync(root);
  } catch {
    return [];
  }
  return names
    .map((n) => ({ n, m: CSV_NAME.exec(n) }))
    .filter((x) => x.m !== null && !isFolder(path.join(root, x.n)))
    .map((x) => ({ subset: x.m![1], file: path.join(root, x.n) }))
    .sort((a, b) => (a.subset < b.subset ? -1 : a.subset > b.subset ? 1 : 0));
}

/**
 * A CSV's name on anything but a folder is taken for the CSV, so that its reader says what is wrong
 * with a named pipe, a device or a link loop rather than the dataset seeming to have no CSV.
 */
function isFolder(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT'; // a dangling link is no CSV; a loop is reported
  }
}

export interface CsvRecord {
  /** 1-based line where the record starts. */
  line: number;
  fields: string[];
}

/** RFC 4180 CSV: quoted fields with "" escapes and embedded newlines; CRLF or LF; blank lines skipped. */
export function parseCsv(text: string): CsvRecord[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const records: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let recordLine = 1;
  let touched = false; // whether the current record has any content (to skip blank lines)
  const endRecord = () => {
    fields.push(field);
    if (touched) records.push({ line: recordLine, fields });
    fields = [];
    field = '';
    touched = false;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else quoted = false;
      } else {
        if (ch === '\n') line++;
        field += ch;
      }
      continue;
    }
    if (ch === '"') {
      quoted = true;
      touched = true;
    } else if (ch === ',') {
      fields.push(field);
      field = '';
      touched = true;
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      endRecord();
      line++;
      recordLine = line;
    } else {
      field += ch;
      touched = true;
    }
  }
  if (touched || field !== '') {
    touched = true;
    endRecord();
  }
  return records;
}

/** Case id from an image path: folders joined by '_', extension dropped, unsafe characters replaced. */
export function rigaCaseId(imgName: string): string {
  const rel = imgName.replace(/\\/g, '/').replace(/^\.?\/+/, '');
  const noExt = rel.slice(0, rel.length - path.posix.extname(rel).length);
  return noExt.split('/').filter((p) => p !== '').join('_').replace(/[^A-Za-z0-9._-]/g, '_');
}

/** A CSV path (Windows backslashes, relative to the dataset folder) as a path on this machine. */
function resolveCsvPath(root: string, rel: string): string {
  return path.join(root, ...rel.replace(/\\/g, '/').split('/'));
}

function escapesRoot(root: string, file: string): boolean {
  return !isInside(root, file) || !resolvesInside(root, file);
}

interface Group {
  csv: string;
  subset: string;
  imgName: string;
  firstLine: number;
  lastLine: number;
  rows: { line: number; rater: string; maskName: string }[];
}

function lineRange(g: { firstLine: number; lastLine: number }): string {
  return g.firstLine === g.lastLine ? `line ${g.firstLine}` : `lines ${g.firstLine}–${g.lastLine}`;
}

type Blocking = (file: string, message: string) => void;

/** Every CSV's rows, grouped into images (consecutive rows of one imgName). */
function readImageGroups(root: string, blocking: Blocking): Group[] {
  const groups: Group[] = [];
  for (const { subset, file } of findRigaCsvs(root)) {
    if (!resolvesInside(root, file)) {
      blocking(file, 'is a symbolic link to a file outside the dataset folder (every file a dataset uses must be inside it)');
      continue;
    }
    let text: string;
    try {
      text = readTextFile(file, 'a CSV file');
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      blocking(file, problemText(err, file));
      continue;
    }
    const records = parseCsv(text);
    if (records.length === 0) {
      blocking(file, `empty CSV (expected the header ${RIGA_HEADER})`);
      continue;
    }
    const header = records[0].fields.map((h) => h.trim());
    const missing = REQUIRED_COLUMNS.filter((c) => !header.includes(c));
    if (missing.length > 0) {
      blocking(file, `missing column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `'${c}'`).join(', ')} (header is '${records[0].fields.join(',')}', expected '${RIGA_HEADER}')`);
      continue;
    }
    const col = (name: string) => header.indexOf(name);
    const [iImg, iMask, iRater] = [col('imgName'), col('maskName'), col('rater')];
    if (records.length === 1) {
      blocking(file, 'has a header but no rows');
      continue;
    }
    let current: Group | null = null;
    for (const rec of records.slice(1)) {
      if (rec.fields.length !== header.length) {
        blocking(file, `line ${rec.line}: ${rec.fields.length} fields, but the header has ${header.length}`);
        continue;
      }
      const imgName = rec.fields[iImg].trim();
      const row = { line: rec.line, rater: rec.fields[iRater].trim(), maskName: rec.fields[iMask].trim() };
      if (imgName === '') {
        blocking(file, `line ${rec.line}: empty imgName`);
        continue;
      }
      if (current && current.imgName === imgName) {
        current.rows.push(row);
        current.lastLine = rec.line;
      } else {
        current = { csv: file, subset, imgName, firstLine: rec.line, lastLine: rec.line, rows: [row] };
        groups.push(current);
      }
    }
  }
  return groups;
}

/**
 * Each image: rater 0 (optional) then raters 1..M once each, in order. An absent rater is a missing
 * annotation; a repeated, out-of-order or non-numeric rater means the rows are not what they claim.
 * Returns each valid image's mask per rater and the largest rater number.
 */
function masksByRater(groups: Group[], blocking: Blocking): { raterRows: Map<Group, Map<number, string>>; maxRater: number } {
  const raterRows = new Map<Group, Map<number, string>>();
  let maxRater = 0;
  for (const g of groups) {
    const raters = g.rows.map((r) => (/^\d+$/.test(r.rater) ? Number(r.rater) : NaN));
    const bad = g.rows.find((_, i) => Number.isNaN(raters[i]));
    if (bad) {
      blocking(g.csv, `line ${bad.line}: rater '${bad.rater}' is not a whole number (image ${g.imgName})`);
      continue;
    }
    const increasing = raters.every((r, i) => i === 0 || r > raters[i - 1]);
    if (!increasing) {
      blocking(g.csv, `${lineRange(g)} (image ${g.imgName}): ${g.rows.length} rows with raters ${raters.join(',')} — expected rater 0 (FinalLabel) then raters 1..M, each once, in order`);
      continue;
    }
    const byRater = new Map<number, string>();
    g.rows.forEach((r, i) => byRater.set(raters[i], r.maskName));
    raterRows.set(g, byRater);
    maxRater = Math.max(maxRater, ...raters);
  }
  if (groups.length > 0 && raterRows.size === groups.length && maxRater === 0) {
    blocking(groups[0].csv, 'no annotator rows: every row has rater 0 (the fused FinalLabel); expected raters 1..M too');
  }
  return { raterRows, maxRater };
}

/**
 * The cases, refusing duplicates (an image listed twice, in one CSV or across subsets, or two paths
 * mapping to one case id), case ids that cannot name a folder, and paths leading out of `root`.
 */
function rigaCases(root: string, groups: Group[], raterRows: Map<Group, Map<number, string>>, annotators: string[], blocking: Blocking): CaseRecord[] {
  const seenImg = new Map<string, Group>();
  const seenId = new Map<string, Group>();
  const cases: CaseRecord[] = [];
  for (const g of groups) {
    const where = (x: Group) => `${path.basename(x.csv)} ${lineRange(x)}`;
    const norm = g.imgName.replace(/\\/g, '/').toLowerCase();
    const id = rigaCaseId(g.imgName);
    const prevImg = seenImg.get(norm);
    if (prevImg) {
      blocking(g.csv, `${lineRange(g)}: duplicate case — image ${g.imgName} is already listed at ${where(prevImg)} (an image's rows must be consecutive and appear once)`);
      continue;
    }
    const prevId = seenId.get(id);
    if (prevId) {
      blocking(g.csv, `${lineRange(g)}: duplicate case id '${id}' — image ${g.imgName} and ${prevId.imgName} (${where(prevId)}) map to the same case id`);
      continue;
    }
    seenImg.set(norm, g);
    seenId.set(id, g);
    const byRater = raterRows.get(g);
    if (!byRater) continue;
    if (!isSafePathComponent(id)) {
      blocking(g.csv, `${lineRange(g)}: image ${g.imgName} gives the case id '${id}', which cannot name a file or folder`);
      continue;
    }
    // Every path a CSV names must stay inside the dataset folder, after '..' and after symbolic links.
    const escapes = [g.imgName, ...byRater.values()].filter((rel) => rel !== '' && escapesRoot(root, resolveCsvPath(root, rel)));
    if (escapes.length > 0) {
      blocking(g.csv, `${lineRange(g)}: path '${escapes[0]}' leads outside the dataset folder ${root} (paths must stay inside it; symbolic links too)`);
      continue;
    }
    const resolve = (rel: string | undefined) => (rel === undefined || rel === '' ? null : resolveCsvPath(root, rel));
    cases.push({
      id,
      subset: g.subset,
      image: resolve(g.imgName)!,
      labels: annotators.map((_, m) => resolve(byRater.get(m + 1))),
      fused: resolve(byRater.get(0)),
    });
  }
  return cases;
}

/** Each subset as a split, plus the paper's train and test splits where their subsets are present. */
function rigaSplits(cases: CaseRecord[]): Record<string, string[]> {
  const splits: Record<string, string[]> = {};
  const subsets = [...new Set(cases.map((c) => c.subset!))];
  for (const s of subsets) splits[s] = cases.filter((c) => c.subset === s).map((c) => c.id);
  for (const [name, members] of Object.entries(RIGA_PAPER_SPLIT)) {
    const wanted = new Set(members.map((m) => m.toLowerCase()));
    const ids = cases.filter((c) => wanted.has(c.subset!.toLowerCase())).map((c) => c.id);
    if (ids.length > 0 && !(name in splits)) splits[name] = ids;
  }
  return splits;
}

export async function scanRiga(root: string): Promise<ScanResult> {
  const problems: Problem[] = [];
  const blocking: Blocking = (file, message) => problems.push({ file, message, blocking: true });
  const groups = readImageGroups(root, blocking);
  const { raterRows, maxRater } = masksByRater(groups, blocking);
  const annotators = Array.from({ length: maxRater }, (_, i) => `A${i + 1}`);
  const cases = rigaCases(root, groups, raterRows, annotators, blocking);
  if (groups.length === 0 && problems.length === 0) blocking(root, 'the Glaucoma_multirater_*.csv files list no images');
  const dataset: Dataset = {
    root,
    layout: 'riga',
    name: 'RIGA',
    annotators,
    structures: [
      { name: 'disc', values: Array.from({ length: 255 }, (_, i) => i + 1), rule: 'value > 0 (rim ~128 and cup 255)' },
      { name: 'cup', values: [255], rule: 'value 255' },
    ],
    channels: 3,
    cases,
    splits: rigaSplits(cases),
    background: [0],
    labelValues: Array.from({ length: 256 }, (_, i) => i),
    colourLabels: 'luma',
  };
  return { layout: 'riga', dataset: problems.some((p) => p.blocking) ? null : dataset, problems };
}
