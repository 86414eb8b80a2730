/**
 * NIfTI images and masks as the 2D input pipeline sees them.
 *
 * A case is one 2D slice with any number of channels. Axes of size 1 after the first two are dropped
 * (prostate images stored X×Y×1, label maps stored X×Y×1 beside an X×Y image), and a remaining third
 * axis is the channels (brain-tumor: X×Y×4 MR modalities). x is the image's width and y its height,
 * in the file's own voxel order, so a written prediction lines up with the image voxel for voxel.
 *
 * Intensities are normalised per modality as nnU-Net does (./intensity.ts: a CT channel with the
 * dataset-wide statistics recorded at training, any other per image), then
 * stored as 16-bit values over ±Z_RANGE standard deviations, the integer form the input cache keeps
 * (a step of 2.4·10⁻⁴ sd, far below any image's noise). Training and prediction both read through here,
 * so a model sees the same values at both.
 */
import { UserError } from '../errors';
import { RawImage } from '../io/image';
import { NiftiVolume, readNifti, readNiftiShape } from '../io/nifti';
import { ChannelIntensity, Intensity, normalizeChannel } from './intensity';

/** z-scores beyond ±Z_RANGE are clipped when stored. */
export const Z_RANGE = 8;

/** The shape of a 2D case: width, height, channels; throws a UserError naming the file when the volume is not one. */
export function planeShape(file: string, shape: number[]): { width: number; height: number; channels: number } {
  const [width, height = 1, ...rest] = shape;
  const extra = rest.filter((n) => n !== 1);
  if (extra.length > 1) throw new UserError(`${file}: a ${shape.join('×')} volume is not a 2D image (at most one axis beyond x and y may exceed 1, as its channels)`);
  return { width, height, channels: extra[0] ?? 1 };
}

/**
 * A 2D NIfTI image (any number of channels) normalised channel by channel (./intensity.ts: `rules[c]`,
 * per-image z-score where none is given), as a 16-bit interleaved RawImage.
 */
export async function readNiftiImage(file: string, rules?: Intensity): Promise<RawImage & { volume: NiftiVolume }> {
  const volume = await readNifti(file);
  const { width, height, channels } = planeShape(file, volume.shape);
  if (rules && rules.length !== channels) throw new UserError(`${file}: ${channels} channels, but the intensity rules recorded at training cover ${rules.length}`);
  const plane = width * height;
  const data = new Uint16Array(plane * channels);
  for (let c = 0; c < channels; c++) {
    const z = normalizeChannel(volume.data.subarray(c * plane, (c + 1) * plane), rules?.[c] ?? PER_IMAGE, file, c);
    for (let i = 0; i < plane; i++) data[i * channels + c] = encodeZ(z[i]);
  }
  return { width, height, channels, bitDepth: 16, data, volume };
}

const PER_IMAGE: ChannelIntensity = { modality: 'per-image' };

/** A normalised value as the 16-bit integer the input cache keeps (clipped to ±Z_RANGE). */
export function encodeZ(z: number): number {
  return Math.round(((Math.max(-Z_RANGE, Math.min(Z_RANGE, z)) + Z_RANGE) / (2 * Z_RANGE)) * 65535);
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
