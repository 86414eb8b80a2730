/**
 * `avap synth --layout qubiq`: the synthetic fundus cases of ./synth.ts written as a QUBIQ-layout
 * dataset of NIfTI files, so tests and the demo exercise the challenge's layout without a download.
 * The disc is task01 and the cup task02; the simulated annotators are the raters seg01, seg02, ….
 *
 * Variants, each carrying one of the quirks of the published sets:
 *   mr            float32 X×Y image; masks stored X×Y×1 (3D with one slice) as uint8 0/1
 *   ct            int16 image in Hounsfield-like units (air −1000), stored X×Y×1 (a trailing size-1 axis)
 *   multichannel  float32 X×Y×4 image (four "modalities"); masks as float32 with values 0 and 0.75,
 *                 which binarising with `> 0.5` reads as 0/1
 *   volume        int16 X×Y×Z CT-like volume (air −1000) with one task (the disc, as QUBIQ 2021's
 *                 pancreas sets have one), masks uint8 X×Y×Z: the structure spans the middle slices,
 *                 the first and last two slices are air that no rater marks
 */
import * as fs from 'node:fs';
import { checkNewDatasetFolder } from '../io/outputFolder';
import * as path from 'node:path';
import { UserError } from '../errors';
import { blankNiftiTemplate, encodeNifti } from '../io/nifti';
import { writeFileInNewFolder } from '../io/atomic';
import { QUBIQ_MODALITY_FILE } from './qubiq';
import { annotatorStyles, synthCase, SYNTH_LABELS } from './synth';
import { Rng } from '../util/random';

export const QUBIQ_SYNTH_VARIANTS = ['mr', 'ct', 'multichannel', 'volume'] as const;
export type QubiqSynthVariant = (typeof QUBIQ_SYNTH_VARIANTS)[number];

export interface QubiqSynthOptions {
  out: string;
  variant?: QubiqSynthVariant;
  cases?: number;
  /** Cases in Training; the rest go to Validation. */
  train?: number;
  annotators?: number;
  size?: number;
  seed?: number;
  /** The volume variant's slices per case. */
  slices?: number;
  onProgress?: (done: number, total: number) => void;
}

/** The voxel size and origin every synthetic image carries, so that copied geometry can be checked. */
export const QUBIQ_SYNTH_GEOMETRY = { pixdim: [0.5, 0.5, 2], origin: [-30, 12.5, 4] };

export async function writeQubiqSynth(opts: QubiqSynthOptions): Promise<{ out: string; dataset: string; cases: number; splits: Record<string, number> }> {
  const variant = opts.variant ?? 'mr';
  const cases = opts.cases ?? 12;
  const M = opts.annotators ?? 3;
  const size = opts.size ?? 64;
  const seed = opts.seed ?? 1;
  const nTrain = opts.train ?? Math.max(1, cases - Math.max(1, Math.floor(cases / 4)));
  if (nTrain < 1 || nTrain > cases) throw new UserError(`--train: must be 1 to ${cases} (got ${nTrain})`);
  const out = path.resolve(opts.out);
  checkNewDatasetFolder(opts.out, 'synth');
  const dataset = `synthetic-${variant}`;
  const styles = annotatorStyles(M, seed);
  const template = blankNiftiTemplate(QUBIQ_SYNTH_GEOMETRY.pixdim, QUBIQ_SYNTH_GEOMETRY.origin);
  const plane = size * size;
  const width = String(cases).length < 2 ? 2 : String(cases).length;
  const splits: Record<string, number> = {};
  for (let i = 0; i < cases; i++) {
    const split = i < nTrain ? 'Training' : 'Validation';
    const index = i < nTrain ? i + 1 : i - nTrain + 1;
    splits[split] = (splits[split] ?? 0) + 1;
    const dir = path.join(out, dataset, split, `case${String(index).padStart(width, '0')}`);
    fs.mkdirSync(dir, { recursive: true });
    if (variant === 'volume') {
      writeSynthVolume(dir, i, opts.slices ?? 8, { seed, size, styles, template });
      opts.onProgress?.(i + 1, cases);
      continue;
    }
    const c = synthCase(i, seed, size, styles);
    // Luma of the RGB fundus crop, and its channels as separate "modalities".
    const luma = new Float32Array(plane);
    for (let p = 0; p < plane; p++) luma[p] = 0.299 * c.image[3 * p] + 0.587 * c.image[3 * p + 1] + 0.114 * c.image[3 * p + 2];
    let image: Buffer;
    if (variant === 'ct') {
      const hu = new Int16Array(plane);
      for (let p = 0; p < plane; p++) hu[p] = Math.round(luma[p] * 6 - 1000);
      image = encodeNifti(template, [size, size, 1], hu, true);
    } else if (variant === 'multichannel') {
      const data = new Float32Array(4 * plane);
      for (let p = 0; p < plane; p++) {
        data[p] = c.image[3 * p];
        data[plane + p] = c.image[3 * p + 1];
        data[2 * plane + p] = c.image[3 * p + 2];
        data[3 * plane + p] = 255 - luma[p];
      }
      image = encodeNifti(template, [size, size, 4], data, true);
    } else {
      image = encodeNifti(template, [size, size], luma, true);
    }
    writeFileInNewFolder(path.join(dir, 'image.nii.gz'), image);
    c.labels.forEach((label, m) => {
      const tasks = [(v: number) => v === SYNTH_LABELS.disc || v === SYNTH_LABELS.cup, (v: number) => v === SYNTH_LABELS.cup];
      tasks.forEach((inTask, k) => {
        let bytes: Buffer;
        if (variant === 'multichannel') {
          const mask = new Float32Array(plane);
          for (let p = 0; p < plane; p++) mask[p] = inTask(label[p]) ? 0.75 : 0;
          bytes = encodeNifti(template, [size, size], mask, true);
        } else {
          const mask = new Uint8Array(plane);
          for (let p = 0; p < plane; p++) mask[p] = inTask(label[p]) ? 1 : 0;
          bytes = encodeNifti(template, [size, size, 1], mask, true);
        }
        writeFileInNewFolder(path.join(dir, `task${String(k + 1).padStart(2, '0')}_seg${String(m + 1).padStart(2, '0')}.nii.gz`), bytes);
      });
    });
    opts.onProgress?.(i + 1, cases);
  }
  // Its name is not one of QUBIQ's CT sets, so the modality is declared the way a user would.
  if (variant === 'ct' || variant === 'volume') writeFileInNewFolder(path.join(out, dataset, QUBIQ_MODALITY_FILE), '["CT"]\n');
  return { out, dataset, cases, splits };
}

/**
 * One CT-like volume case: slice z of the middle ones is synthetic case (index·slices + z) in
 * Hounsfield-like units, the first and last two slices air with a little noise, unmarked.
 */
function writeSynthVolume(dir: string, index: number, slices: number, o: { seed: number; size: number; styles: ReturnType<typeof annotatorStyles>; template: ReturnType<typeof blankNiftiTemplate> }): void {
  if (slices < 1) throw new UserError(`--slices: must be at least 1 (got ${slices})`);
  const plane = o.size * o.size;
  const margin = slices >= 6 ? 2 : 0;
  const image = new Int16Array(plane * slices);
  const masks = o.styles.map(() => new Uint8Array(plane * slices));
  const noise = Rng.from(o.seed, 'volume-air', index);
  for (let z = 0; z < slices; z++) {
    const at = z * plane;
    if (z < margin || z >= slices - margin) {
      for (let p = 0; p < plane; p++) image[at + p] = -1000 + noise.int(21) - 10;
      continue;
    }
    const c = synthCase(index * slices + z, o.seed, o.size, o.styles);
    for (let p = 0; p < plane; p++) image[at + p] = Math.round((0.299 * c.image[3 * p] + 0.587 * c.image[3 * p + 1] + 0.114 * c.image[3 * p + 2]) * 6 - 1000);
    c.labels.forEach((label, m) => {
      for (let p = 0; p < plane; p++) if (label[p] === SYNTH_LABELS.disc || label[p] === SYNTH_LABELS.cup) masks[m][at + p] = 1;
    });
  }
  const shape = [o.size, o.size, slices];
  writeFileInNewFolder(path.join(dir, 'image.nii.gz'), encodeNifti(o.template, shape, image, true));
  masks.forEach((mask, m) => writeFileInNewFolder(path.join(dir, `task01_seg${String(m + 1).padStart(2, '0')}.nii.gz`), encodeNifti(o.template, shape, mask, true)));
}
