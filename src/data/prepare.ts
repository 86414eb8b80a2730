/**
 * Decoding a case into the compact form the input pipeline keeps in memory: the image resized to
 * S×S (bilinear) in its own integer type, and each annotator's label map resized (nearest) and
 * reduced to one byte per pixel whose bit k says "structure k". At 256² an RGB case with 6 annotators
 * takes 256²·(3 + 6) bytes ≈ 0.6 MB, so RIGA's 750 cases fit in ~440 MB and later epochs never decode.
 *
 * Training, normalisation statistics and prediction all go through `prepareImage`, so a model sees
 * exactly the same pixels (same resize, same rounding) at training and at prediction time.
 */
import { UserError } from '../errors';
import { readImage, RawImage } from '../io/image';
import { isNiftiPath } from '../io/nifti';
import { CaseRecord, Dataset, labelDecoderFor, MAX_STRUCTURES } from './dataset';
import type { Intensity } from './intensity';
import { readNiftiImage } from './niftiImage';
import { readQubiqRater } from './qubiq';
import { resizeBilinear, resizeNearest } from './resize';
import { readSliceImage, readSliceRater } from './volumes';

/** An image at the model's size, planar [C,S,S], in its source integer range. */
export interface PreparedImage {
  size: number;
  channels: number;
  /** Divide by this to get [0, 1]: 255 for 8-bit sources, 65535 for 16-bit. */
  maxValue: number;
  pixels: Uint8Array | Uint16Array;
  originalWidth: number;
  originalHeight: number;
}

/** Converts an interleaved image to `channels` (1 ↔ 3): grey is replicated; RGB becomes luma. Other counts must match. */
function toChannels(img: RawImage, channels: number): { data: RawImage['data'] | Float32Array; channels: number; replicate: boolean } {
  if (img.channels === channels) return { data: img.data, channels, replicate: false };
  if (img.channels === 1 && channels === 3) return { data: img.data, channels: 1, replicate: true }; // replicate after resizing: 3x cheaper
  if (img.channels === 3 && channels === 1) {
    const n = img.width * img.height;
    const out = new Float32Array(n);
    for (let i = 0, j = 0; i < n; i++, j += 3) out[i] = 0.299 * img.data[j] + 0.587 * img.data[j + 1] + 0.114 * img.data[j + 2];
    return { data: out, channels: 1, replicate: false };
  }
  throw new UserError(`the image has ${img.channels} channels but the model takes ${channels}`);
}

/** Resizes a decoded image to size×size with `channels` channels, rounding back to its integer type. */
export function prepareRawImage(img: RawImage, size: number, channels: number): PreparedImage {
  const conv = toChannels(img, channels);
  const resized = resizeBilinear(conv.data, img.width, img.height, conv.channels, size, size);
  const maxValue = img.bitDepth === 16 ? 65535 : 255;
  const plane = size * size;
  const pixels = img.bitDepth === 16 ? new Uint16Array(channels * plane) : new Uint8Array(channels * plane);
  for (let i = 0; i < resized.length; i++) {
    const v = Math.round(resized[i]);
    pixels[i] = v < 0 ? 0 : v > maxValue ? maxValue : v;
  }
  if (conv.replicate) for (let c = 1; c < channels; c++) pixels.copyWithin(c * plane, 0, plane);
  return { size, channels, maxValue, pixels, originalWidth: img.width, originalHeight: img.height };
}

/**
 * Decodes an image file and prepares it (see prepareRawImage). Throws a UserError naming a bad file.
 * `intensity`: the run's rules for NIfTI intensities (./intensity.ts); absent, per-image z-score.
 */
export async function prepareImage(file: string, size: number, channels: number, intensity?: Intensity): Promise<PreparedImage> {
  return prepareRawImage(await readAnyImage(file, intensity), size, channels);
}

/** A case's image prepared (see prepareRawImage): its file, or its slice of a 3D volume. */
export async function prepareCaseImage(c: CaseRecord, size: number, channels: number, intensity?: Intensity): Promise<PreparedImage> {
  return c.slice ? prepareRawImage(await readSliceImage(c, intensity), size, channels) : prepareImage(c.image, size, channels, intensity);
}

/** PNG/JPEG/TIFF as stored; NIfTI normalised per channel by `intensity` (./niftiImage.ts). */
export async function readAnyImage(file: string, intensity?: Intensity): Promise<RawImage> {
  return isNiftiPath(file) ? readNiftiImage(file, intensity) : readImage(file);
}

/** A case as the pipeline caches it. */
export interface PreparedCase {
  id: string;
  image: PreparedImage;
  /** [M,S,S]: bit k of a pixel set when the annotator marks structure k there; 0 when missing. */
  labels: Uint8Array;
  /** [M]: 1 when the annotator's label map exists. */
  available: Uint8Array;
}

/** Decodes a case (image and every available label map) at size×size. */
export async function prepareCase(ds: Dataset, c: CaseRecord, size: number): Promise<PreparedCase> {
  if (ds.structures.length > MAX_STRUCTURES) throw new UserError(`${ds.root}: ${ds.structures.length} structures; at most ${MAX_STRUCTURES} are supported`);
  const decoder = labelDecoderFor(ds);
  const raw = c.slice ? await readSliceImage(c, ds.intensity) : await readAnyImage(c.image, ds.intensity);
  const image = prepareRawImage(raw, size, ds.channels);
  const plane = size * size;
  const labels = new Uint8Array(ds.annotators.length * plane);
  const available = new Uint8Array(ds.annotators.length);
  await Promise.all(c.labels.map(async (file, m) => {
    if (file === null) return;
    const expect = { width: raw.width, height: raw.height, imageFile: c.image };
    const label = c.slice ? await readSliceRater(c, m) : c.parts ? await readQubiqRater(c.parts[m], expect) : await decoder.read(file, expect);
    // Nearest on the raw values, then the value→structures table: same result as resizing each binary
    // mask, at 1/K of the work.
    const small = resizeNearest(label.values, label.width, label.height, size, size);
    const lut = decoder.bitsLut;
    for (let i = 0; i < plane; i++) labels[m * plane + i] = lut[small[i]];
    available[m] = 1;
  }));
  return { id: c.id, image, labels, available };
}

/**
 * Prepared cases by index, each decoded once. Concurrent requests for one case share the decode.
 * A failed decode is not cached, so its error is reported again rather than a stale result.
 */
export class CaseCache {
  private readonly entries = new Map<number, Promise<PreparedCase>>();
  private bytesHeld = 0;

  constructor(private readonly ds: Dataset, private readonly cases: CaseRecord[], private readonly size: number) {}

  get(index: number): Promise<PreparedCase> {
    let p = this.entries.get(index);
    if (!p) {
      p = this.prepare(index);
      // A volume's slices are prepared together, in order, while the decoded volume is at hand, rather
      // than each decoding it again after the volume cache has moved on.
      const volume = this.cases[index].slice?.volume;
      if (volume !== undefined) {
        let chain: Promise<unknown> = p.catch(() => undefined);
        this.cases.forEach((c, i) => {
          if (c.slice?.volume !== volume || this.entries.has(i)) return;
          const next = chain.then(() => this.prepare(i));
          this.entries.set(i, next);
          next.catch(() => this.entries.delete(i));
          chain = next.catch(() => undefined);
        });
      }
    }
    return p;
  }

  private prepare(index: number): Promise<PreparedCase> {
    const p = prepareCase(this.ds, this.cases[index], this.size);
    this.entries.set(index, p);
    p.then((c) => { this.bytesHeld += c.image.pixels.byteLength + c.labels.byteLength; }, () => this.entries.delete(index));
    return p;
  }

  /** Bytes of pixel data held. */
  get bytes(): number {
    return this.bytesHeld;
  }
}
