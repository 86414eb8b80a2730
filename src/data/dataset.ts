/**
 * The multi-annotator dataset model shared by training, evaluation and the `avap data` commands.
 *
 * A dataset is a set of cases; each case has one image and, per annotator, at most one label map.
 * A label map holds one or more structures (RIGA: optic disc ⊃ optic cup), each defined by the set of
 * label values that mark it. The number of annotators M and the structures always come from the data
 * (dataset.json, or the RIGA CSVs), never from constants.
 *
 * Three on-disk layouts are understood (see docs/data.md): RIGA's published 'DiscRegion' folder
 * (./riga.ts), the QUBIQ challenge's folders of NIfTI files (./qubiq.ts) and the project's native
 * layout (./native.ts). `openDataset` detects which one a folder holds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { readImageInfo } from '../io/image';
import { isNiftiPath } from '../io/nifti';
import type { Intensity } from './intensity';
import { LabelDecoder } from './labels';
import { scanNative } from './native';
import { readNiftiImageInfo } from './niftiImage';
import { isQubiqDataset, qubiqDatasetsIn, readQubiqRater, scanQubiq } from './qubiq';
import { findRigaCsvs, scanRiga } from './riga';
import { readSliceRater, readVolumeAnnotations, sliceSize } from './volumes';
import { hasEntry } from '../io/readBounded';

/** One structure of the label maps and the label values that mark it. */
export interface Structure {
  name: string;
  /**
   * Label-map values that belong to this structure, sorted, with nesting already resolved: when the
   * disc contains the cup, the disc's values include the cup's. A pixel is in the structure iff its
   * value is in this list.
   */
  values: number[];
  /** Human-readable rule, for summaries (e.g. "value > 0", "values 128, 255"). */
  rule: string;
}

export interface CaseRecord {
  /** Unique, file-name safe (no slashes). */
  id: string;
  /** RIGA subset (BinRushed, MESSIDOR, Magrabia) or a native dataset.json subset. */
  subset?: string;
  /** Absolute path of the image. */
  image: string;
  /** Absolute path of each annotator's label map, in `Dataset.annotators` order; null = not annotated. */
  labels: (string | null)[];
  /** RIGA only: the fused 'FinalLabel' (rater 0) mask, which is not an annotator. */
  fused?: string | null;
  /** The case's name in its layout when the id had to qualify it (QUBIQ: the case folder's name). */
  name?: string;
  /**
   * When each structure of an annotation is a file of its own (QUBIQ): [annotator][structure] files,
   * null = not drawn. `labels[m]` is then any one of annotator m's files, or null when there is none.
   */
  parts?: (string | null)[][];
  /** One 2D slice of a 3D volume case (./volumes.ts): `image` and the label files are the volume's. */
  slice?: VolumeSlice;
  /** A 3D volume case: its voxel sizes along x, y, z and its channels (./volumes.ts). */
  volume?: VolumeShape;
}

export interface VolumeSlice {
  /** The id of the volume case it belongs to. */
  volume: string;
  /** The voxel axis (0 = x, 1 = y, 2 = z) the slice is cut across, and its index along it. */
  axis: number;
  index: number;
}

export interface VolumeShape {
  shape: [number, number, number];
  channels: number;
}

export interface Dataset {
  /** Absolute path of the dataset folder. */
  root: string;
  layout: 'riga' | 'native' | 'qubiq';
  name: string;
  annotators: string[];
  /** At most 8 (the input pipeline packs a pixel's structures into one byte). */
  structures: Structure[];
  /** Channels the models get: 1 (greyscale) or 3 (RGB). Images are converted to it when they differ. */
  channels: number;
  cases: CaseRecord[];
  /** Split name -> case ids. Subsets are splits too (RIGA: BinRushed, MESSIDOR, Magrabia, plus the paper's train/test). */
  splits: Record<string, string[]>;
  /** Label values that mean "no structure". */
  background: number[];
  /** Every label value a label map may hold (background and all structures), sorted. */
  labelValues: number[];
  /**
   * How a colour (RGB) label map is read. RIGA: converted to luma, as the public RIGA code does with
   * PIL's convert('L'). Native: a label map must be single-channel (or RGB with R = G = B).
   */
  colourLabels: 'luma' | 'reject';
  /** The challenge score this data is judged by, which evaluation and experiments report beside the paper's. */
  challengeScore?: 'qubiq';
  /**
   * Each channel's imaging modality as declared (native: dataset.json `modality`; QUBIQ: by dataset
   * name). 'CT' selects the dataset-wide CT rule of ./intensity.ts; absent or anything else, per-image z-score.
   */
  modalities?: string[];
  /** The intensity rules raw (NIfTI) images are read with: set by training, or from the run being used. */
  intensity?: Intensity;
  /**
   * A dataset of 3D volumes (./volumes.ts): `cases` are then the volumes' 2D slices across `sliceAxis`,
   * and `volumes` the volume cases they come from, which prediction and the QUBIQ score work on.
   */
  volumes?: CaseRecord[];
  sliceAxis?: number;
}

/** How a dataset is opened: the voxel axis 3D volumes are sliced across (default: the last, z). */
export interface OpenOptions {
  sliceAxis?: number;
}

/** Something wrong with a dataset, tied to the file it is about. */
export interface Problem {
  file: string;
  message: string;
  /** True when the dataset cannot be used at all (openDataset refuses); false for file-level findings. */
  blocking: boolean;
}

/** Where a scan's problems go: blocking ones stop the dataset from being used, findings are reported. */
export interface ProblemReport {
  blocking(file: string, message: string): void;
  finding(file: string, message: string): void;
}

/** A ProblemReport that appends to `problems`. */
export function problemReport(problems: Problem[]): ProblemReport {
  return {
    blocking: (file, message) => problems.push({ file, message, blocking: true }),
    finding: (file, message) => problems.push({ file, message, blocking: false }),
  };
}

/** What a layout reader found: the dataset (null when it cannot be described) and its problems. */
export interface ScanResult {
  layout: 'riga' | 'native' | 'qubiq' | null;
  dataset: Dataset | null;
  problems: Problem[];
}

/** The longest structure list the input pipeline supports (a pixel's structures are bits of one byte). */
export const MAX_STRUCTURES = 8;

/** A path as the user should see it: relative to the working directory when inside it. */
export function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  if (rel === '') return '.';
  return rel.startsWith('..') || path.isAbsolute(rel) ? p : rel;
}

export function formatProblem(p: Problem): string {
  return `${displayPath(p.file)}: ${p.message}`;
}

/**
 * Finds the layout of `dir` and reads its index (dataset.json, or the RIGA CSVs) without decoding
 * any image. Never throws for bad input: everything wrong is a Problem.
 */
export async function scanDataset(dir: string, opts: OpenOptions = {}): Promise<ScanResult> {
  const root = path.resolve(dir);
  const fail = (message: string): ScanResult => ({ layout: null, dataset: null, problems: [{ file: root, message, blocking: true }] });
  if (!fs.existsSync(root)) return fail('no such file or directory');
  if (!fs.statSync(root).isDirectory()) return fail('not a directory (expected a dataset folder)');
  if (hasEntry(path.join(root, 'dataset.json'))) return scanNative(root);
  if (findRigaCsvs(root).length > 0) return scanRiga(root);
  if (isQubiqDataset(root) || qubiqDatasetsIn(root).length > 0) return scanQubiq(root, opts);
  const entries = fs.readdirSync(root).filter((e) => !e.startsWith('.'));
  if (entries.length === 0) return fail('folder is empty (expected dataset.json, RIGA\'s Glaucoma_multirater_<Subset>.csv files, or QUBIQ\'s Training/<case>/image.nii.gz)');
  // A common slip: pointing at the folder above RIGA's DiscRegion.
  const nested = entries.find((e) => {
    const sub = path.join(root, e);
    try {
      return fs.statSync(sub).isDirectory() && (fs.existsSync(path.join(sub, 'dataset.json')) || findRigaCsvs(sub).length > 0);
    } catch {
      return false; // broken link
    }
  });
  const hint = nested ? ` — did you mean ${displayPath(path.join(root, nested))}?` : '';
  return fail(`no dataset found (expected dataset.json, RIGA's Glaucoma_multirater_<Subset>.csv files, or QUBIQ's Training/<case>/image.nii.gz)${hint}`);
}

/**
 * Opens a dataset folder of either layout. Throws a UserError naming the file when the layout cannot
 * be read (missing folder, malformed dataset.json or CSV, duplicate cases, ...). File contents
 * (decodability, sizes, label values) are not checked here; `avap data check` does that, and the
 * readers below fail with a clear error on the first bad file they meet.
 */
export async function openDataset(dir: string, opts: OpenOptions = {}): Promise<Dataset> {
  const scan = await scanDataset(dir, opts);
  const blocking = scan.problems.filter((p) => p.blocking);
  if (!scan.dataset || blocking.length > 0) {
    const first = blocking[0] ?? scan.problems[0];
    const more = blocking.length > 1 ? ` (and ${blocking.length - 1} more problem${blocking.length > 2 ? 's' : ''}; run 'avap data check ${dir}')` : '';
    throw new UserError(`${formatProblem(first)}${more}`);
  }
  return scan.dataset;
}

/** Which cases a command works on: a split, named subsets, or both (a case must then be in both). */
export interface CaseSelection {
  split?: string;
  subsets?: string[];
}

/** "split 'train'", "subsets A, B", "split 'train' and subset A", or "the dataset" when nothing is named. */
export function describeSelection(sel: CaseSelection): string {
  const subsets = sel.subsets?.length ? `subset${sel.subsets.length > 1 ? 's' : ''} ${sel.subsets.join(', ')}` : '';
  const split = sel.split ? `split '${sel.split}'` : '';
  return [split, subsets].filter(Boolean).join(' and ') || 'the dataset';
}

/**
 * The cases of the named subsets and/or split, in dataset order. With both, a case must be in both.
 * Unknown names are a UserError that lists the known ones.
 */
export function selectCases(ds: Dataset, sel: CaseSelection): CaseRecord[] {
  let cases = ds.cases;
  if (sel.subsets && sel.subsets.length > 0) {
    const known = [...new Set(ds.cases.map((c) => c.subset).filter((s): s is string => s !== undefined))];
    const unknown = sel.subsets.filter((s) => !known.includes(s));
    if (unknown.length > 0) {
      throw new UserError(`${displayPath(ds.root)}: unknown subset${unknown.length > 1 ? 's' : ''} ${unknown.map((s) => `'${s}'`).join(', ')} (known: ${known.length > 0 ? known.join(', ') : 'none — this dataset has no subsets'})`);
    }
    const wanted = new Set(sel.subsets);
    cases = cases.filter((c) => c.subset !== undefined && wanted.has(c.subset));
  }
  if (sel.split !== undefined) {
    const ids = ds.splits[sel.split];
    if (!ids) {
      const known = Object.keys(ds.splits);
      throw new UserError(`${displayPath(ds.root)}: unknown split '${sel.split}' (known: ${known.length > 0 ? known.join(', ') : 'none — this dataset declares no splits'})`);
    }
    const wanted = new Set(ids);
    cases = cases.filter((c) => wanted.has(c.id));
  }
  return cases;
}

/** One case's annotations at the image's original size. */
export interface CaseAnnotations {
  width: number;
  height: number;
  /** Per annotator: does a label map exist. */
  available: boolean[];
  /** [annotator][structure], 0/1 row-major HxW; all zero when the annotation is missing. */
  masks: Uint8Array[][];
}

/** Each annotator's mask of one structure, null where the annotation is missing. */
export function structureMasks(ann: CaseAnnotations, structure: number): (Uint8Array | null)[] {
  return ann.masks.map((perStructure, m) => (ann.available[m] ? perStructure[structure] : null));
}

const decoders = new WeakMap<Dataset, LabelDecoder>();

/** The (cached) label decoder of a dataset. */
export function labelDecoderFor(ds: Dataset): LabelDecoder {
  let d = decoders.get(ds);
  if (!d) {
    d = new LabelDecoder(ds);
    decoders.set(ds, d);
  }
  return d;
}

/**
 * Reads every available label map of a case and splits it into per-structure binary masks.
 * Throws a UserError naming the file for a missing or undecodable file, a label map whose size differs
 * from the image, or label values the dataset does not declare.
 */
export async function readAnnotations(ds: Dataset, c: CaseRecord): Promise<CaseAnnotations> {
  if (c.volume && !c.slice) return readVolumeAnnotations(ds, c);
  const decoder = labelDecoderFor(ds);
  const { width, height } = c.slice ? sliceSize(c.volume!, c.slice.axis) : await (isNiftiPath(c.image) ? readNiftiImageInfo(c.image) : readImageInfo(c.image));
  const n = width * height;
  const masks = ds.annotators.map(() => ds.structures.map(() => new Uint8Array(n)));
  const available = c.labels.map((l) => l !== null);
  await Promise.all(c.labels.map(async (file, m) => {
    if (file === null) return;
    const expect = { width, height, imageFile: c.image };
    const label = c.slice ? await readSliceRater(c, m) : c.parts ? await readQubiqRater(c.parts[m], expect) : await decoder.read(file, expect);
    const bits = decoder.structureBits(label.values);
    for (let k = 0; k < ds.structures.length; k++) {
      const mask = masks[m][k];
      const bit = 1 << k;
      for (let i = 0; i < n; i++) mask[i] = (bits[i] & bit) !== 0 ? 1 : 0;
    }
  }));
  return { width, height, available, masks };
}
