/**
 * The native layout (docs/data.md):
 *
 *   DIR/dataset.json                   name, annotators, structures, channels, optional splits/subsets
 *   DIR/images/<case>.<png|jpg|tif>    one image per case; the case id is the file name without extension
 *   DIR/labels/<case>_<annotator>.png  one label map per (case, annotator) (or .nii.gz / .nii); absent = not annotated
 *
 * Label file names are built from the declared (case, annotator) pairs rather than parsed, so case ids
 * and annotator names may contain '_' without ambiguity.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { isSafePathComponent, resolvesInside } from '../io/paths';
import { problemText, readTextFile } from '../io/readBounded';
import { duplicates } from '../util/duplicates';
import { CaseRecord, Dataset, Problem, ProblemReport, problemReport, ScanResult } from './dataset';
import { parseDatasetJson, resolveStructures } from './schema';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.nii', '.nii.gz'];
/** Label map extensions, in the order a case's file is looked for: lossless formats only. */
export const LABEL_EXTENSIONS = ['.png', '.nii.gz', '.nii'];

/** A file name's extension, `.nii.gz` counted as one, lower-cased. */
export function extensionOf(name: string): string {
  return /\.nii\.gz$/i.test(name) ? '.nii.gz' : path.extname(name).toLowerCase();
}

/** Case ids in a stable, human order (case2 before case10). */
export function compareIds(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true }) || (a < b ? -1 : a > b ? 1 : 0);
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false; // a broken link
  }
}

export function labelFileName(caseId: string, annotator: string, ext = '.png'): string {
  return `${caseId}_${annotator}${ext}`;
}

// Symbolic links are followed when they stay inside the dataset folder and refused when they lead out.
const LEADS_OUTSIDE = 'is a symbolic link leading outside the dataset folder (every file a dataset uses must be inside it; link the whole dataset folder instead)';

export async function scanNative(root: string): Promise<ScanResult> {
  const problems: Problem[] = [];
  const report = problemReport(problems);
  const jsonFile = path.join(root, 'dataset.json');
  const spec = readDescription(root, jsonFile, report);
  if (!spec) return { layout: 'native', dataset: null, problems };

  const imagesDir = path.join(root, 'images');
  const labelsDir = path.join(root, 'labels');
  for (const dir of [imagesDir, labelsDir]) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) report.blocking(dir, 'folder not found (the native layout needs images/ and labels/ next to dataset.json)');
    else if (!resolvesInside(root, dir)) report.blocking(dir, LEADS_OUTSIDE);
  }
  if (problems.length > 0) return { layout: 'native', dataset: null, problems };

  const imageOf = scanImages(root, imagesDir, report);
  const cases = matchLabels(root, labelsDir, imageOf, spec.annotators, report);
  const splits = spec.splits ?? {};
  const subsets = spec.subsets ?? {};
  checkSplitsAndSubsets(jsonFile, cases, splits, subsets, report);

  const structures = resolveStructures(spec);
  const labelValues = [...new Set([...spec.background, ...structures.flatMap((s) => s.values)])].sort((a, b) => a - b);
  const dataset: Dataset = {
    root,
    layout: 'native',
    name: spec.name,
    annotators: spec.annotators,
    structures,
    channels: spec.channels,
    ...(spec.modality ? { modalities: spec.modality } : {}),
    cases,
    splits: { ...splits, ...subsets },
    background: [...spec.background].sort((a, b) => a - b),
    labelValues,
    colourLabels: 'reject',
  };
  return { layout: 'native', dataset: problems.some((p) => p.blocking) ? null : dataset, problems };
}

/** dataset.json, parsed and validated; null (with the problems reported) when it cannot be used. */
function readDescription(root: string, jsonFile: string, report: ProblemReport) {
  if (!resolvesInside(root, jsonFile)) {
    report.blocking(jsonFile, LEADS_OUTSIDE);
    return null;
  }
  let text: string;
  try {
    text = readTextFile(jsonFile, 'a dataset description');
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    report.blocking(jsonFile, problemText(err, jsonFile));
    return null;
  }
  const parsed = parseDatasetJson(text);
  if (!parsed.ok) {
    for (const e of parsed.errors) report.blocking(jsonFile, e);
    return null;
  }
  return parsed.value;
}

/** Cases: one per image file, case id → image. Two files with the same stem would be two images for one case. */
function scanImages(root: string, imagesDir: string, report: ProblemReport): Map<string, string> {
  const imageOf = new Map<string, string>();
  for (const entry of fs.readdirSync(imagesDir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const file = path.join(imagesDir, entry.name);
    // A link leading out is refused, but its case stays known, so its label maps are not reported as strays.
    if (entry.isSymbolicLink() && !resolvesInside(root, file)) report.blocking(file, LEADS_OUTSIDE);
    else if (!(entry.isFile() || (entry.isSymbolicLink() && isFile(file)))) {
      report.finding(file, 'unexpected entry in images/ (expected only image files)');
      continue;
    }
    const ext = extensionOf(entry.name);
    if (!IMAGE_EXTENSIONS.includes(ext)) {
      report.finding(file, `not an image file (expected ${IMAGE_EXTENSIONS.join(', ')})`);
      continue;
    }
    const id = entry.name.slice(0, -ext.length);
    if (!isSafePathComponent(id)) {
      report.blocking(file, `the file name gives the case id '${id}', which cannot name a file or folder`);
      continue;
    }
    const prev = imageOf.get(id);
    if (prev !== undefined) {
      report.blocking(file, `duplicate case '${id}': also ${path.relative(root, prev)}`);
      continue;
    }
    imageOf.set(id, file);
  }
  if (imageOf.size === 0) report.blocking(imagesDir, 'holds no images (expected images/<case>.png, .jpg, .tif or .nii.gz)');
  return imageOf;
}

/** Labels: the expected name of every (case, annotator) pair; anything else in labels/ is reported. */
function matchLabels(root: string, labelsDir: string, imageOf: Map<string, string>, annotators: string[], report: ProblemReport): CaseRecord[] {
  const ids = [...imageOf.keys()].sort(compareIds);
  const present = new Set(fs.readdirSync(labelsDir).filter((n) => !n.startsWith('.')));
  const expected = new Set<string>();
  const cases: CaseRecord[] = ids.map((id) => {
    const labels = annotators.map((a) => {
      const names = LABEL_EXTENSIONS.map((ext) => labelFileName(id, a, ext));
      for (const n of names) expected.add(n);
      const found = names.filter((n) => present.has(n));
      if (found.length > 1) report.blocking(path.join(labelsDir, found[1]), `a second label map for case '${id}' and annotator '${a}': also ${found[0]}`);
      const name = found[0];
      if (name === undefined) return null;
      const file = path.join(labelsDir, name);
      if (!resolvesInside(root, file)) report.blocking(file, LEADS_OUTSIDE);
      return file;
    });
    return { id, image: imageOf.get(id)!, labels };
  });
  const expectedStems = new Set([...expected].map((n) => n.slice(0, -extensionOf(n).length)));
  for (const name of [...present].sort(compareIds)) {
    if (expected.has(name)) continue;
    const file = path.join(labelsDir, name);
    const ext = extensionOf(name);
    if (expectedStems.has(name.slice(0, name.length - ext.length))) {
      report.finding(file, `label maps must be lossless .png or NIfTI (.nii, .nii.gz) files, found '${ext}'`);
    } else {
      report.finding(file, `matches no case and annotator (expected labels/<case>_<annotator>.png with annotators ${annotators.join(', ')} and a case from images/)`);
    }
  }
  return cases;
}

/** Splits and subsets must name existing cases; subsets are offered as splits too. Sets each case's subset. */
function checkSplitsAndSubsets(jsonFile: string, cases: CaseRecord[], splits: Record<string, string[]>, subsets: Record<string, string[]>, report: ProblemReport): void {
  const known = new Set(cases.map((c) => c.id));
  const checkLists = (field: 'splits' | 'subsets', lists: Record<string, string[]>) => {
    for (const [name, members] of Object.entries(lists)) {
      const unknown = members.filter((m) => !known.has(m));
      if (unknown.length > 0) {
        const shown = unknown.slice(0, 5).map((u) => `'${u}'`).join(', ');
        report.blocking(jsonFile, `${field}.${name} lists ${unknown.length} case${unknown.length > 1 ? 's' : ''} with no image in images/: ${shown}${unknown.length > 5 ? ', …' : ''}`);
      }
      const dups = duplicates(members);
      if (dups.length > 0) report.blocking(jsonFile, `${field}.${name} lists case '${dups[0]}' more than once`);
    }
  };
  checkLists('splits', splits);
  checkLists('subsets', subsets);
  const subsetOf = new Map<string, string>();
  for (const [name, members] of Object.entries(subsets)) {
    if (name in splits) report.blocking(jsonFile, `'${name}' is both a split and a subset (subsets are usable as splits, so names must differ)`);
    for (const m of members) {
      const prev = subsetOf.get(m);
      if (prev !== undefined && prev !== name) report.blocking(jsonFile, `case '${m}' is in two subsets: ${prev} and ${name}`);
      subsetOf.set(m, name);
    }
  }
  for (const c of cases) {
    const s = subsetOf.get(c.id);
    if (s !== undefined) c.subset = s;
  }
}
