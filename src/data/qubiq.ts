/**
 * The QUBIQ challenge layout, read as downloaded (docs/data.md):
 *
 *   ROOT/<dataset>/Training/<case>/image.nii.gz
 *   ROOT/<dataset>/Training/<case>/task01_seg01.nii.gz … taskTT_segRR.nii.gz   one mask per task and rater
 *   ROOT/<dataset>/Validation/…, ROOT/<dataset>/Testing/…                       the other splits
 *
 * Tasks are the structures (task01, task02, …) and raters the annotators (seg01, seg02, …). A dataset
 * folder without split folders (some 2021 sets) holds its case folders directly; they form the split
 * 'Training'. Pointing at ROOT picks its dataset when it holds one; with several, the error names them.
 * Case ids are `<split>-<case>` (QUBIQ reuses case names across splits); the case folder's own name is
 * kept for submissions.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors';
import { readNiftiShape } from '../io/nifti';
import { fileNameProblem } from '../io/names';
import { isFolder, resolvesInside } from '../io/paths';
import { hasEntry, readJsonText } from '../io/readBounded';
import { CaseRecord, Dataset, MAX_STRUCTURES, OpenOptions, Problem, ProblemReport, problemReport, ScanResult, Structure } from './dataset';
import { compareIds } from './native';
import { planeShape, readNiftiMask } from './niftiImage';
import { isVolumeMask, sliceVolumeDataset, volumeShape } from './volumes';

/**
 * QUBIQ datasets whose images are CT (Hounsfield units), by folder name; the others (prostate,
 * brain-growth, brain-tumor) are MR and are z-scored per image.
 */
export const QUBIQ_CT = ['kidney', 'pancreas', 'pancreatic-lesion'];
/**
 * A dataset folder's own declaration of its channels' modalities (e.g. ["CT"]), which wins over the
 * table above: for a renamed or unofficial set. QUBIQ distributes no such file.
 */
export const QUBIQ_MODALITY_FILE = 'modality.json';
const modalityFileSchema = z.array(z.string().min(1)).min(1);

/** The channels' modalities of a QUBIQ dataset: its modality.json, else the table by name, else none declared. */
function qubiqModalities(root: string, channels: number): string[] | undefined {
  const file = path.join(root, QUBIQ_MODALITY_FILE);
  if (hasEntry(file)) {
    const r = modalityFileSchema.safeParse(readJsonText(file, 'a modality list'));
    if (!r.success) throw new UserError(`${file}: must be a list of modality names, one per channel, e.g. ["CT"] (${r.error.issues[0].message})`);
    if (r.data.length !== channels) throw new UserError(`${file}: lists ${r.data.length} modalities, the images have ${channels} channel(s)`);
    return r.data;
  }
  return QUBIQ_CT.includes(path.basename(root).toLowerCase()) ? Array(channels).fill('CT') : undefined;
}

export const QUBIQ_SPLITS = ['Training', 'Validation', 'Testing'] as const;
const MASK_NAME = /^task(\d+)_seg(\d+)\.nii(\.gz)?$/i;
const IMAGE_NAMES = ['image.nii.gz', 'image.nii'];

function visible(dir: string): string[] {
  return fs.readdirSync(dir).filter((e) => !e.startsWith('.')).sort(compareIds);
}

function isCaseDir(dir: string): boolean {
  return isFolder(dir) && IMAGE_NAMES.some((n) => fs.existsSync(path.join(dir, n)));
}

/** Does `dir` hold one QUBIQ dataset (split folders of case folders, or case folders)? */
export function isQubiqDataset(dir: string): boolean {
  if (!isFolder(dir)) return false;
  const entries = visible(dir);
  if (entries.some((e) => (QUBIQ_SPLITS as readonly string[]).includes(e) && isFolder(path.join(dir, e)) && visible(path.join(dir, e)).some((c) => isCaseDir(path.join(dir, e, c))))) return true;
  return entries.some((e) => isCaseDir(path.join(dir, e)));
}

/** The QUBIQ datasets directly under `dir` (a downloaded challenge folder). */
export function qubiqDatasetsIn(dir: string): string[] {
  if (!isFolder(dir)) return [];
  return visible(dir).filter((e) => isQubiqDataset(path.join(dir, e)));
}

const pad = (n: number) => String(n).padStart(2, '0');

/** A case folder as found on disk: its image and its masks by `task/rater`. */
interface FoundCase {
  split: string;
  name: string;
  dir: string;
  image: string;
  masks: Map<string, string>;
}

export async function scanQubiq(root: string, opts: OpenOptions = {}): Promise<ScanResult> {
  const problems: Problem[] = [];
  const report = problemReport(problems);
  const fail = (): ScanResult => ({ layout: 'qubiq', dataset: null, problems });

  if (!isQubiqDataset(root)) {
    const found = qubiqDatasetsIn(root);
    if (found.length === 1) return scanQubiq(path.join(root, found[0]), opts);
    report.blocking(root, `holds ${found.length} QUBIQ datasets (${found.join(', ')}); point at one of them, e.g. ${path.join(root, found[0] ?? '')}`);
    return fail();
  }

  const found: FoundCase[] = [];
  for (const g of splitFolders(root, report)) {
    for (const name of visible(g.dir)) {
      const c = scanCaseFolder(root, g, name, report);
      if (c !== null) found.push(c);
    }
  }
  const numbering = tasksAndRaters(root, found, report);
  if (numbering === null) return fail();
  const { tasks, raters } = numbering;
  const cases = caseRecords(found, tasks, raters, report);
  const splits: Record<string, string[]> = {};
  for (const c of cases) (splits[c.subset!] ??= []).push(c.id);

  // A rater's label map packs the tasks as bits: task k is bit k, so value v marks every task whose bit is set.
  const all = Array.from({ length: 2 ** tasks.length }, (_, v) => v);
  const structures: Structure[] = tasks.map((t, k) => ({ name: `task${pad(t)}`, values: all.filter((v) => (v & (1 << k)) !== 0), rule: `task${pad(t)}_segRR mask > 0.5` }));
  const { channels, volumetric } = await imageGeometry(found, report);
  let modalities: string[] | undefined;
  try {
    modalities = qubiqModalities(root, channels);
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    report.blocking(path.join(root, QUBIQ_MODALITY_FILE), err.message.replace(`${path.join(root, QUBIQ_MODALITY_FILE)}: `, ''));
  }
  const dataset: Dataset = {
    root,
    layout: 'qubiq',
    name: path.basename(root),
    annotators: raters.map((r) => `seg${pad(r)}`),
    structures,
    channels,
    ...(modalities ? { modalities } : {}),
    cases,
    splits,
    background: [0],
    labelValues: all,
    colourLabels: 'reject',
    challengeScore: 'qubiq',
  };
  if (volumetric && !problems.some((p) => p.blocking)) await sliceVolumeDataset(dataset, opts.sliceAxis, problems);
  return { layout: 'qubiq', dataset: problems.some((p) => p.blocking) ? null : dataset, problems };
}

/** The task and rater numbers the masks use, sorted; null (with the reason reported) when there is nothing to learn. */
function tasksAndRaters(root: string, found: FoundCase[], report: ProblemReport): { tasks: number[]; raters: number[] } | null {
  if (found.length === 0) {
    report.blocking(root, 'holds no case folders');
    return null;
  }
  const numbers = found.flatMap((c) => [...c.masks.keys()].map((key) => key.split('/').map(Number)));
  if (numbers.length === 0) {
    report.blocking(root, 'no case holds a taskTT_segRR.nii.gz mask, so there are no tasks to learn');
    return null;
  }
  const tasks = [...new Set(numbers.map(([task]) => task))].sort((a, b) => a - b);
  if (tasks.length > MAX_STRUCTURES) {
    report.blocking(root, `${tasks.length} tasks; at most ${MAX_STRUCTURES} are supported (a rater's tasks are packed into one byte per pixel)`);
    return null;
  }
  const raters = [...new Set(numbers.map(([, rater]) => rater))].sort((a, b) => a - b);
  // Tasks and raters are numbered from 01 without gaps in every QUBIQ set; a gap is a missing file.
  for (const [what, list] of [['task', tasks], ['rater', raters]] as const) {
    const missing = Array.from({ length: list[list.length - 1] }, (_, i) => i + 1).filter((n) => !list.includes(n));
    if (missing.length > 0) report.finding(root, `no case holds ${what} ${missing.map(pad).join(', ')} (found ${list.map(pad).join(', ')})`);
  }
  return { tasks, raters };
}

/** The split folders of a dataset; a dataset without them holds its cases directly, as split 'Training'. */
function splitFolders(root: string, report: ProblemReport): { split: string; dir: string }[] {
  const splitDirs = QUBIQ_SPLITS.filter((s) => isFolder(path.join(root, s)));
  if (splitDirs.length === 0) return [{ split: 'Training', dir: root }];
  for (const e of visible(root)) {
    if (!(QUBIQ_SPLITS as readonly string[]).includes(e) && e !== QUBIQ_MODALITY_FILE) report.finding(path.join(root, e), `not a QUBIQ split folder (expected ${QUBIQ_SPLITS.join(', ')}); ignored`);
  }
  return splitDirs.map((s) => ({ split: s, dir: path.join(root, s) }));
}

/** One entry of a split folder as a case, or null (with the reason reported) when it is not a usable one. */
function scanCaseFolder(root: string, g: { split: string; dir: string }, name: string, report: ProblemReport): FoundCase | null {
  const dir = path.join(g.dir, name);
  if (!isFolder(dir)) {
    if (!(g.dir === root && name === QUBIQ_MODALITY_FILE)) report.finding(dir, `unexpected file in ${g.split}/ (expected one folder per case)`);
    return null;
  }
  if (!resolvesInside(root, dir)) {
    report.blocking(dir, 'is a symbolic link leading outside the dataset folder');
    return null;
  }
  // The case's folder name becomes prediction and submission folder names.
  const unsafe = fileNameProblem(name);
  if (unsafe !== null) {
    report.blocking(dir, `case folder name ${unsafe}`);
    return null;
  }
  const entries = visible(dir);
  const images = IMAGE_NAMES.filter((n) => entries.includes(n));
  if (images.length === 0) {
    report.blocking(dir, 'case folder without image.nii.gz');
    return null;
  }
  if (images.length > 1) report.blocking(path.join(dir, images[1]), `a second image beside ${images[0]}`);
  return { split: g.split, name, dir, image: path.join(dir, images[0]), masks: caseMasks(dir, entries, report) };
}

/** A case folder's taskTT_segRR masks by `task/rater`; other files are reported and ignored. */
function caseMasks(dir: string, entries: string[], report: ProblemReport): Map<string, string> {
  const masks = new Map<string, string>();
  for (const e of entries) {
    if (IMAGE_NAMES.includes(e)) continue;
    const m = MASK_NAME.exec(e);
    if (!m) {
      report.finding(path.join(dir, e), 'not a QUBIQ file (expected image.nii.gz or taskTT_segRR.nii.gz); ignored');
      continue;
    }
    const task = Number(m[1]);
    const rater = Number(m[2]);
    if (task < 1 || rater < 1) {
      report.blocking(path.join(dir, e), 'task and rater numbers start at 01');
      continue;
    }
    const key = `${task}/${rater}`;
    if (masks.has(key)) {
      report.blocking(path.join(dir, e), `task ${pad(task)} of rater ${pad(rater)} twice (also ${path.basename(masks.get(key)!)})`);
      continue;
    }
    masks.set(key, path.join(dir, e));
  }
  return masks;
}

/** The cases with their mask files per rater and task; a rater with only some task masks is reported. */
function caseRecords(found: FoundCase[], tasks: number[], raters: number[], report: ProblemReport): CaseRecord[] {
  const cases: CaseRecord[] = found.map((f) => {
    const parts = raters.map((r) => tasks.map((t) => f.masks.get(`${t}/${r}`) ?? null));
    // A rater's annotation exists when any of their task masks does.
    const labels = parts.map((perTask) => perTask.find((p) => p !== null) ?? null);
    return { id: `${f.split}-${f.name}`, name: f.name, subset: f.split, image: f.image, labels, parts };
  });
  for (const c of cases) {
    for (let r = 0; r < raters.length; r++) {
      const have = c.parts![r].filter((p) => p !== null).length;
      if (have > 0 && have < tasks.length) report.finding(path.dirname(c.image), `rater seg${pad(raters[r])} has ${have} of the ${tasks.length} task masks (a missing task mask is read as empty)`);
    }
  }
  return cases;
}

/** The image channels, and whether the cases are 3D volumes, from the first case's image and mask. */
async function imageGeometry(found: FoundCase[], report: ProblemReport): Promise<{ channels: number; volumetric: boolean }> {
  let channels = 1;
  const first = found[0];
  const firstMask = [...first.masks.values()][0] ?? [...found.flatMap((f) => [...f.masks.values()])][0];
  // The 2021 pancreas sets are 3D: their masks have slices, which tells a volume from a 2D image's channels.
  let volumetric = false;
  try {
    volumetric = isVolumeMask((await readNiftiShape(firstMask)).shape);
    const imageShape = (await readNiftiShape(first.image)).shape;
    channels = volumetric ? volumeShape(first.image, imageShape).channels : planeShape(first.image, imageShape).channels;
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    const file = err.message.startsWith(`${firstMask}: `) ? firstMask : first.image;
    report.blocking(file, err.message.replace(`${file}: `, ''));
  }
  return { channels, volumetric };
}

/**
 * One rater's masks of a case packed into one label map (bit k = task k), as the pipeline's label maps
 * are. A missing task mask is empty. Sizes must agree with each other and with `expect` (the image).
 */
export async function readQubiqRater(parts: (string | null)[], expect?: { width: number; height: number; imageFile: string }): Promise<{ width: number; height: number; values: Uint8Array }> {
  let width = expect?.width ?? 0;
  let height = expect?.height ?? 0;
  let values: Uint8Array | null = null;
  for (let k = 0; k < parts.length; k++) {
    const file = parts[k];
    if (file === null) continue;
    const m = await readNiftiMask(file);
    if (values === null && !expect) {
      width = m.width;
      height = m.height;
    }
    if (m.width !== width || m.height !== height) {
      throw new UserError(`${file}: mask is ${m.width}x${m.height} but ${expect ? `its image ${expect.imageFile}` : 'the other task masks'} ${expect ? 'is' : 'are'} ${width}x${height}`);
    }
    values ??= new Uint8Array(width * height);
    for (let i = 0; i < values.length; i++) if (m.mask[i]) values[i] |= 1 << k;
  }
  if (values === null) throw new Error('readQubiqRater: no mask file');
  return { width, height, values };
}
