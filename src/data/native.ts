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
import { CaseRecord, Dataset, Problem, ScanResult } from './dataset';
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

export async function scanNative(root: string): Promise<ScanResult> {
  const problems: Problem[] = [];
  const blocking = (file: string, message: string) => problems.push({ file, message, blocking: true });
  const finding = (file: string, message: string) => problems.push({ file, message, blocking: false });
  const jsonFile = path.join(root, 'dataset.json');
  // Symbolic links are followed when they stay inside the dataset folder and refused when they lead out.
  const outside = 'is a symbolic link leading outside the dataset folder (every file a dataset uses must be inside it; link the whole dataset folder instead)';
  if (!resolvesInside(root, jsonFile)) {
    blocking(jsonFile, outside);
    return { layout: 'native', dataset: null, problems };
  }
  let text: string;
  try {
    text = readTextFile(jsonFile, 'a dataset description');
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    blocking(jsonFile, problemText(err, jsonFile));
    return { layout: 'native', dataset: null, problems };
  }
  const parsed = parseDatasetJson(text);
  if (!parsed.ok) {
    for (const e of parsed.errors) blocking(jsonFile, e);
    return { layout: 'native', dataset: null, problems };
  }
  const spec = parsed.value;

  const imagesDir = path.join(root, 'images');
  const labelsDir = path.join(root, 'labels');
  for (const dir of [imagesDir, labelsDir]) {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) blocking(dir, 'folder not found (the native layout needs images/ and labels/ next to dataset.json)');
    else if (!resolvesInside(root, dir)) blocking(dir, outside);
  }
  if (problems.length > 0) return { layout: 'native', dataset: null, problems };

  // Cases: one per image file. Two files with the same stem would be two images for one case.
  const imageOf = new Map<string, string>();
  for (const entry of fs.readdirSync(imagesDir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const file = path.join(imagesDir, entry.name);
    // A link leading out is refused, but its case stays known, so its label maps are not reported as strays.
    if (entry.isSymbolicLink() && !resolvesInside(root, file)) blocking(file, outside);
    else if (!(entry.isFile() || (entry.isSymbolicLink() && isFile(file)))) {
      finding(file, 'unexpected entry in images/ (expected only image files)');
      continue;
    }
    const ext = extensionOf(entry.name);
    if (!IMAGE_EXTENSIONS.includes(ext)) {
      finding(file, `not an image file (expected ${IMAGE_EXTENSIONS.join(', ')})`);
      continue;
    }
    const id = entry.name.slice(0, -ext.length);
    if (!isSafePathComponent(id)) {
      blocking(file, `the file name gives the case id '${id}', which cannot name a file or folder`);
      continue;
    }
    const prev = imageOf.get(id);
    if (prev !== undefined) {
      blocking(file, `duplicate case '${id}': also ${path.relative(root, prev)}`);
      continue;
    }
    imageOf.set(id, file);
  }
  const ids = [...imageOf.keys()].sort(compareIds);
  if (ids.length === 0) blocking(imagesDir, 'holds no images (expected images/<case>.png, .jpg, .tif or .nii.gz)');

  // Labels: the expected name of every (case, annotator) pair; anything else in labels/ is reported.
  const present = new Set(fs.readdirSync(labelsDir).filter((n) => !n.startsWith('.')));
  const expected = new Set<string>();
  const cases: CaseRecord[] = ids.map((id) => {
    const labels = spec.annotators.map((a) => {
      const names = LABEL_EXTENSIONS.map((ext) => labelFileName(id, a, ext));
      for (const n of names) expected.add(n);
      const found = names.filter((n) => present.has(n));
      if (found.length > 1) blocking(path.join(labelsDir, found[1]), `a second label map for case '${id}' and annotator '${a}': also ${found[0]}`);
      const name = found[0];
      if (name === undefined) return null;
      const file = path.join(labelsDir, name);
      if (!resolvesInside(root, file)) blocking(file, outside);
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
      finding(file, `label maps must be lossless .png or NIfTI (.nii, .nii.gz) files, found '${ext}'`);
    } else {
      finding(file, `matches no case and annotator (expected labels/<case>_<annotator>.png with annotators ${spec.annotators.join(', ')} and a case from images/)`);
    }
  }

  // Splits and subsets must name existing cases; subsets are offered as splits too.
  const known = new Set(ids);
  const checkLists = (field: 'splits' | 'subsets', lists: Record<string, string[]>) => {
    for (const [name, members] of Object.entries(lists)) {
      const unknown = members.filter((m) => !known.has(m));
      if (unknown.length > 0) {
        const shown = unknown.slice(0, 5).map((u) => `'${u}'`).join(', ');
        blocking(jsonFile, `${field}.${name} lists ${unknown.length} case${unknown.length > 1 ? 's' : ''} with no image in images/: ${shown}${unknown.length > 5 ? ', …' : ''}`);
      }
      const dups = duplicates(members);
      if (dups.length > 0) blocking(jsonFile, `${field}.${name} lists case '${dups[0]}' more than once`);
    }
  };
  const splits = spec.splits ?? {};
  const subsets = spec.subsets ?? {};
  checkLists('splits', splits);
  checkLists('subsets', subsets);
  const subsetOf = new Map<string, string>();
  for (const [name, members] of Object.entries(subsets)) {
    if (name in splits) blocking(jsonFile, `'${name}' is both a split and a subset (subsets are usable as splits, so names must differ)`);
    for (const m of members) {
      const prev = subsetOf.get(m);
      if (prev !== undefined && prev !== name) blocking(jsonFile, `case '${m}' is in two subsets: ${prev} and ${name}`);
      subsetOf.set(m, name);
    }
  }
  for (const c of cases) {
    const s = subsetOf.get(c.id);
    if (s !== undefined) c.subset = s;
  }

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
