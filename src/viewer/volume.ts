// What the browser viewer computes from a NIfTI volume, without the DOM: the page runs it in the browser
// and the tests run the same code in Node. It follows `avap predict` step for step (src/data/volumes.ts,
// src/data/niftiImage.ts, src/data/prepare.ts): each channel normalised over the whole volume (the
// model's CT rule, or a z-score), stored as 16-bit codes over ±Z_RANGE sd, each x-y slice resized to the
// model's input and rounded to 16 bits, then / 65535. The page slices across z only.
import { resizeBilinear } from '../data/resize.js';

/** z-scores beyond ±Z_RANGE are clipped when stored (the value src/data/niftiImage.ts uses). */
export const Z_RANGE = 8;

/** One channel's intensity rule from model.json (src/data/intensity.ts): 'CT' carries its numbers. */
export interface ChannelRule {
  modality: string;
  clip?: [number, number];
  mean?: number;
  sd?: number;
}

export function encodeZ(z: number): number {
  return Math.round(((Math.max(-Z_RANGE, Math.min(Z_RANGE, z)) + Z_RANGE) / (2 * Z_RANGE)) * 65535);
}

/** A NIfTI shape as x, y, z and channels (a 4th axis, or any one beyond z, holds the channels). */
export function volumeLayout(shape: number[]): { shape: [number, number, number]; channels: number } {
  const [x, y = 1, z = 1, ...rest] = shape;
  const extra = rest.filter((n) => n !== 1);
  if (extra.length > 1) throw new Error(`a ${shape.join('×')} volume has more than one axis beyond x, y and z`);
  return { shape: [x, y, z], channels: extra[0] ?? 1 };
}

/** The volume's channels normalised as 16-bit codes, channel-major then x fastest. */
export function volumeCodes(data: ArrayLike<number>, voxels: number, channels: number, rules?: ChannelRule[]): Uint16Array {
  const out = new Uint16Array(voxels * channels);
  for (let c = 0; c < channels; c++) {
    const base = c * voxels;
    const rule = rules?.[c];
    let lo = -Infinity;
    let hi = Infinity;
    let mean: number;
    let sd: number;
    if (rule?.modality === 'CT' && rule.clip && rule.mean !== undefined && rule.sd !== undefined) {
      [lo, hi] = rule.clip;
      mean = rule.mean;
      sd = rule.sd;
    } else {
      let sum = 0;
      let sq = 0;
      let n = 0;
      for (let i = 0; i < voxels; i++) {
        const v = data[base + i];
        if (Number.isFinite(v)) {
          sum += v;
          sq += v * v;
          n++;
        }
      }
      if (n === 0) throw new Error(`channel ${c + 1} holds no finite value`);
      mean = sum / n;
      const s = Math.sqrt(Math.max(0, sq / n - mean * mean));
      sd = s > 0 ? s : Infinity;
    }
    const inv = 1 / sd;
    for (let i = 0; i < voxels; i++) {
      const v = data[base + i];
      out[base + i] = encodeZ(Number.isFinite(v) ? (Math.min(hi, Math.max(lo, v)) - mean) * inv : 0);
    }
  }
  return out;
}

/** Slice z's model input [C, S, S] in [0, 1]. */
export function sliceInput(codes: Uint16Array, shape: [number, number, number], channels: number, z: number, size: number): Float32Array {
  const [X, Y] = shape;
  const plane = X * Y;
  const voxels = plane * shape[2];
  const pixels = new Uint16Array(plane * channels);
  for (let i = 0; i < plane; i++) for (let c = 0; c < channels; c++) pixels[i * channels + c] = codes[c * voxels + z * plane + i];
  const resized = resizeBilinear(pixels, X, Y, channels, size, size);
  const inv = 1 / 65535;
  for (let i = 0; i < resized.length; i++) resized[i] = Math.min(65535, Math.max(0, Math.round(resized[i]))) * inv;
  return resized;
}

/** Slice z of channel 0 as RGBA grey for display: −3 to +3 sd over black to white. */
export function sliceGrey(codes: Uint16Array, shape: [number, number, number], z: number): Uint8ClampedArray {
  const plane = shape[0] * shape[1];
  const rgba = new Uint8ClampedArray(plane * 4);
  for (let i = 0; i < plane; i++) {
    const sdUnits = (codes[z * plane + i] / 65535) * 2 * Z_RANGE - Z_RANGE;
    const g = Math.round(((Math.max(-3, Math.min(3, sdUnits)) + 3) / 6) * 255);
    rgba.set([g, g, g, 255], i * 4);
  }
  return rgba;
}

/** NIfTI datatype codes the viewer reads, and their arrays. */
const ARRAYS: Record<number, (b: ArrayBuffer) => ArrayLike<number>> = {
  2: (b) => new Uint8Array(b), 4: (b) => new Int16Array(b), 8: (b) => new Int32Array(b), 16: (b) => new Float32Array(b),
  64: (b) => new Float64Array(b), 256: (b) => new Int8Array(b), 512: (b) => new Uint16Array(b), 768: (b) => new Uint32Array(b),
};

/** The voxel values of a decoded NIfTI image with the header's scaling applied (little-endian files). */
export function niftiValues(header: { datatypeCode: number; littleEndian: boolean; scl_slope: number; scl_inter: number }, image: ArrayBuffer): ArrayLike<number> {
  const make = ARRAYS[header.datatypeCode];
  if (!make) throw new Error(`NIfTI datatype ${header.datatypeCode} is not read by the viewer`);
  if (!header.littleEndian && header.datatypeCode !== 2 && header.datatypeCode !== 256) throw new Error('big-endian NIfTI files are not read by the viewer (avap predict reads them)');
  const raw = make(image.slice(0));
  const { scl_slope: slope, scl_inter: inter } = header;
  if (!(Number.isFinite(slope) && slope !== 0 && (slope !== 1 || (Number.isFinite(inter) && inter !== 0)))) return raw;
  const b = Number.isFinite(inter) ? inter : 0;
  // As avap predict reads it: float32 unless the file holds float64.
  return header.datatypeCode === 64 ? Float64Array.from(raw, (v) => v * slope + b) : Float32Array.from(raw, (v) => v * slope + b);
}
