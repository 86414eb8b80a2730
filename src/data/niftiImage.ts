/**
 * NIfTI images and masks as the 2D input pipeline sees them.
 *
 * A case is one 2D slice with any number of channels. Axes of size 1 after the first two are dropped
 * (prostate images stored X×Y×1, label maps stored X×Y×1 beside an X×Y image), and a remaining third
 * axis is the channels (brain-tumor: X×Y×4 MR modalities). x is the image's width and y its height,
 * in the file's own voxel order, so a written prediction lines up with the image voxel for voxel.
 *
 * Intensities are normalised per image as nnU-Net does for non-CT modalities (z-score per channel), then
 * stored as 16-bit values over ±Z_RANGE standard deviations, the integer form the input cache keeps
 * (a step of 2.4·10⁻⁴ sd, far below any image's noise). Training and prediction both read through here,
 * so a model sees the same values at both.
 */
import { UserError } from '../errors';
import { RawImage } from '../io/image';
import { NiftiVolume, readNifti, readNiftiShape } from '../io/nifti';

/** z-scores beyond ±Z_RANGE are clipped when stored. */
export const Z_RANGE = 8;

/** The shape of a 2D case: width, height, channels; throws a UserError naming the file when the volume is not one. */
export function planeShape(file: string, shape: number[]): { width: number; height: number; channels: number } {
  const [width, height = 1, ...rest] = shape;
  const extra = rest.filter((n) => n !== 1);
  if (extra.length > 1) throw new UserError(`${file}: a ${shape.join('×')} volume is not a 2D image (at most one axis beyond x and y may exceed 1, as its channels)`);
  return { width, height, channels: extra[0] ?? 1 };
}

/** A 2D NIfTI image (any number of channels), per-channel z-scored, as a 16-bit interleaved RawImage. */
export async function readNiftiImage(file: string): Promise<RawImage & { volume: NiftiVolume }> {
  const volume = await readNifti(file);
  const { width, height, channels } = planeShape(file, volume.shape);
  const plane = width * height;
  const data = new Uint16Array(plane * channels);
  for (let c = 0; c < channels; c++) {
    let sum = 0;
    let sq = 0;
    let n = 0;
    for (let i = 0; i < plane; i++) {
      const v = volume.data[c * plane + i];
      if (Number.isFinite(v)) {
        sum += v;
        sq += v * v;
        n++;
      }
    }
    if (n === 0) throw new UserError(`${file}: channel ${c + 1} holds no finite value`);
    const mean = sum / n;
    const sd = Math.sqrt(Math.max(0, sq / n - mean * mean));
    const inv = sd > 0 ? 1 / sd : 0;
    for (let i = 0; i < plane; i++) {
      const v = volume.data[c * plane + i];
      const z = Number.isFinite(v) ? (v - mean) * inv : 0;
      data[i * channels + c] = Math.round(((Math.max(-Z_RANGE, Math.min(Z_RANGE, z)) + Z_RANGE) / (2 * Z_RANGE)) * 65535);
    }
  }
  return { width, height, channels, bitDepth: 16, data, volume };
}

/** A 2D NIfTI mask binarised with `value > 0.5` (QUBIQ's masks hold 0/1, 0/255 or fractional values), row-major. */
export async function readNiftiMask(file: string): Promise<{ width: number; height: number; mask: Uint8Array }> {
  const volume = await readNifti(file);
  const { width, height, channels } = planeShape(file, volume.shape);
  if (channels !== 1) throw new UserError(`${file}: a mask must be a single 2D slice, found ${volume.shape.join('×')}`);
  const mask = new Uint8Array(width * height);
  for (let i = 0; i < mask.length; i++) mask[i] = volume.data[i] > 0.5 ? 1 : 0;
  return { width, height, mask };
}

/** Width, height and channels of a 2D NIfTI image from its header. */
export async function readNiftiImageInfo(file: string): Promise<{ width: number; height: number; channels: number; bitDepth: 16 }> {
  return { ...planeShape(file, (await readNiftiShape(file)).shape), bitDepth: 16 };
}
