/**
 * Label maps: decoding a file into label values, validating them against what the dataset declares,
 * and turning values into per-structure membership bits.
 */
import { UserError } from '../errors';
import { readImage } from '../io/image';
import { isNiftiPath, readNifti } from '../io/nifti';
import { planeShape } from './niftiImage';
import type { Dataset } from './dataset';

/** A decoded single-channel label map (row-major values). */
export interface LabelMap {
  width: number;
  height: number;
  values: Uint8Array | Uint16Array;
}

/** Label values found in a map that the dataset does not declare. */
export interface UnknownValues {
  /** Distinct undeclared values, ascending. */
  values: number[];
  /** Number of pixels holding one of them. */
  pixels: number;
}

/** "0, 128, 255" or "0–255": a sorted integer list with runs collapsed. */
export function describeValues(values: readonly number[], limit = 12): string {
  const parts: string[] = [];
  let i = 0;
  while (i < values.length) {
    let j = i;
    while (j + 1 < values.length && values[j + 1] === values[j] + 1) j++;
    parts.push(j - i >= 2 ? `${values[i]}–${values[j]}` : j === i ? `${values[i]}` : `${values[i]}, ${values[j]}`);
    i = j + 1;
  }
  const flat = parts.join(', ').split(', ');
  return flat.length > limit ? `${flat.slice(0, limit).join(', ')}, …` : flat.join(', ');
}

/**
 * Decodes label maps of one dataset. Lookup tables over all 16-bit values make the per-pixel work a
 * single array read, whatever the structure rules are.
 */
export class LabelDecoder {
  /** Bit k set when value v belongs to structure k. */
  readonly bitsLut = new Uint8Array(65536);
  /** 1 when value v is declared (background or some structure). */
  readonly knownLut = new Uint8Array(65536);
  private readonly declared: string;

  constructor(private readonly ds: Pick<Dataset, 'structures' | 'labelValues' | 'colourLabels' | 'background'>) {
    ds.structures.forEach((s, k) => {
      for (const v of s.values) this.bitsLut[v] |= 1 << k;
    });
    for (const v of ds.labelValues) this.knownLut[v] = 1;
    const parts = [`${describeValues(ds.background)} (background)`, ...ds.structures.map((s) => `${s.name}: ${s.rule}`)];
    this.declared = parts.join('; ');
  }

  /**
   * Reads a label map. With `expect`, its size must match the image's. Throws a UserError naming the
   * file on a missing/undecodable file, a size mismatch, a colour map (native layout) or undeclared values.
   */
  async read(file: string, expect?: { width: number; height: number; imageFile: string }): Promise<LabelMap> {
    const label = await this.decode(file);
    if (expect && (label.width !== expect.width || label.height !== expect.height)) {
      throw new UserError(`${file}: label map is ${label.width}x${label.height} but its image ${expect.imageFile} is ${expect.width}x${expect.height}`);
    }
    const unknown = this.unknownValues(label.values);
    if (unknown.pixels > 0) throw new UserError(`${file}: ${this.describeUnknown(unknown)}`);
    return label;
  }

  /** Decodes to one value per pixel, without checking the values. */
  async decode(file: string): Promise<LabelMap> {
    if (isNiftiPath(file)) return decodeNiftiLabels(file);
    const img = await readImage(file);
    const { width, height, channels, data } = img;
    if (channels === 1) return { width, height, values: data };
    const n = width * height;
    const values = data instanceof Uint16Array ? new Uint16Array(n) : new Uint8Array(n);
    if (this.ds.colourLabels === 'luma') {
      // PIL's convert('L') (ITU-R 601 luma, fixed point), which the public RIGA code applies to its masks.
      for (let i = 0, j = 0; i < n; i++, j += channels) {
        values[i] = (data[j] * 19595 + data[j + 1] * 38470 + data[j + 2] * 7471 + 0x8000) / 65536 | 0;
      }
      return { width, height, values };
    }
    for (let i = 0, j = 0; i < n; i++, j += channels) {
      const r = data[j];
      if (data[j + 1] !== r || data[j + 2] !== r) {
        throw new UserError(`${file}: label map is colour (pixel ${i % width},${Math.floor(i / width)} is ${r},${data[j + 1]},${data[j + 2]}); save label maps as single-channel greyscale PNG`);
      }
      values[i] = r;
    }
    return { width, height, values };
  }

  unknownValues(values: Uint8Array | Uint16Array): UnknownValues {
    const known = this.knownLut;
    let pixels = 0;
    const seen = new Set<number>();
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (known[v] === 0) {
        pixels++;
        seen.add(v);
      }
    }
    return { values: [...seen].sort((a, b) => a - b), pixels };
  }

  describeUnknown(u: UnknownValues): string {
    const s = u.values.length > 1 ? 's' : '';
    return `undeclared label value${s} ${describeValues(u.values, 8)} in ${u.pixels} pixel${u.pixels > 1 ? 's' : ''} (declared: ${this.declared})`;
  }

  /** Per pixel, bit k set when the pixel belongs to structure k. */
  structureBits(values: Uint8Array | Uint16Array): Uint8Array {
    const out = new Uint8Array(values.length);
    const lut = this.bitsLut;
    for (let i = 0; i < values.length; i++) out[i] = lut[values[i]];
    return out;
  }
}

/** A 2D NIfTI label map: one integer label value (0–65535) per voxel, x fastest as in a PNG's rows. */
async function decodeNiftiLabels(file: string): Promise<LabelMap> {
  const volume = await readNifti(file);
  const { width, height, channels } = planeShape(file, volume.shape);
  if (channels !== 1) throw new UserError(`${file}: a label map must be a single 2D slice, found ${volume.shape.join('×')}`);
  const values = new Uint16Array(width * height);
  for (let i = 0; i < values.length; i++) {
    const v = volume.data[i];
    if (!Number.isInteger(v) || v < 0 || v > 65535) throw new UserError(`${file}: label values must be integers 0–65535, found ${v} at voxel ${i % width},${Math.floor(i / width)}`);
    values[i] = v;
  }
  return { width, height, values };
}
