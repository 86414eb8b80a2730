/**
 * The dataset-wide intensity statistics of CT channels (./intensity.ts), computed once at training
 * from the training cases' raw NIfTI values under the raters' masks.
 */
import { UserError } from '../errors';
import { isNiftiPath } from '../io/nifti';
import { CaseRecord, Dataset, labelDecoderFor } from './dataset';
import { ctRule, Intensity, isCt } from './intensity';
import { readNiftiImage } from './niftiImage';
import { readQubiqRater } from './qubiq';
import { volumeForeground } from './volumes';

/**
 * Foreground voxels one training case contributes to the CT statistics at most (nnU-Net takes 10 000
 * too): bounds the memory and time on large datasets, and evenly strided so a run is reproducible.
 */
export const FOREGROUND_SAMPLES_PER_CASE = 10_000;

/**
 * The intensity rules for a dataset's NIfTI images (./intensity.ts): the CT rule for each channel
 * declared 'CT', from the raw intensities of the training cases' foreground (any rater marks any
 * structure there); per-image z-score for the others. Undefined when no channel is CT: nothing to record.
 */
export async function computeIntensity(ds: Dataset, cases: CaseRecord[]): Promise<Intensity | undefined> {
  const modalities = ds.modalities ?? [];
  if (!modalities.some(isCt)) return undefined;
  const notNifti = cases.find((c) => !isNiftiPath(c.image));
  if (notNifti) throw new UserError(`${notNifti.image}: the dataset declares a CT channel, so its images must be NIfTI (raw intensities), not PNG/JPEG/TIFF`);
  const samples: number[][] = Array.from({ length: ds.channels }, () => []);
  const decoder = labelDecoderFor(ds);
  for (const [ch, values] of (await volumeForeground(cases, FOREGROUND_SAMPLES_PER_CASE)).entries()) for (const v of values) samples[ch]?.push(v);
  for (const c of cases) {
    if (c.slice) continue; // counted over their volumes above
    const image = await readNiftiImage(c.image);
    const plane = image.width * image.height;
    const fg = new Uint8Array(plane);
    for (let m = 0; m < c.labels.length; m++) {
      if (c.labels[m] === null) continue;
      const expect = { width: image.width, height: image.height, imageFile: c.image };
      const label = c.parts ? await readQubiqRater(c.parts[m], expect) : await decoder.read(c.labels[m]!, expect);
      for (let i = 0; i < plane; i++) if (decoder.bitsLut[label.values[i]] !== 0) fg[i] = 1;
    }
    const where: number[] = [];
    for (let i = 0; i < plane; i++) if (fg[i]) where.push(i);
    const step = Math.max(1, where.length / FOREGROUND_SAMPLES_PER_CASE);
    for (let ch = 0; ch < ds.channels; ch++) {
      if (!isCt(modalities[ch])) continue;
      const raw = image.volume.data;
      for (let j = 0; j < where.length; j += step) samples[ch].push(raw[ch * plane + where[Math.floor(j)]]);
    }
  }
  return Array.from({ length: ds.channels }, (_, ch) => (isCt(modalities[ch]) ? ctRule(samples[ch], ds.root) : { modality: 'per-image' as const }));
}
