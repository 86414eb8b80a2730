/**
 * Training augmentation: flips, a small rotation and scale about the image centre (one affine warp,
 * bilinear for the image, nearest for the label bits so annotations stay binary and aligned), then
 * colour jitter (brightness, contrast, saturation). All randomness comes from the Rng passed in, so a
 * (seed, epoch, case) triple always gives the same augmentation.
 *
 * Borders are filled by mirror reflection, for image and labels alike, so the warped label still
 * describes the warped image everywhere (a constant fill would put black pixels under a background label).
 */
import type { Rng } from '../util/random';

export interface AugmentConfig {
  /** Probability of a horizontal flip. */
  hflip: number;
  /** Probability of a vertical flip. */
  vflip: number;
  /** Rotation drawn uniformly in ±this many degrees. */
  maxRotationDeg: number;
  /** Isotropic scale drawn uniformly in [min, max]. */
  scale: [number, number];
  /** Factors drawn uniformly in [1 - x, 1 + x]. */
  brightness: number;
  contrast: number;
  saturation: number;
}

export const DEFAULT_AUGMENT: AugmentConfig = {
  hflip: 0.5,
  vflip: 0.5,
  maxRotationDeg: 15,
  scale: [0.9, 1.1],
  brightness: 0.1,
  contrast: 0.1,
  saturation: 0.1,
};

export interface AugmentParams {
  hflip: boolean;
  vflip: boolean;
  /** Radians; positive turns the image clockwise on screen (image y points down). */
  angle: number;
  scale: number;
  brightness: number;
  contrast: number;
  saturation: number;
}

export const IDENTITY_AUGMENT: AugmentParams = { hflip: false, vflip: false, angle: 0, scale: 1, brightness: 1, contrast: 1, saturation: 1 };

export function sampleAugment(rng: Rng, cfg: AugmentConfig = DEFAULT_AUGMENT): AugmentParams {
  // A fixed number of draws in a fixed order, whatever the config, keeps streams comparable.
  const hflip = rng.next() < cfg.hflip;
  const vflip = rng.next() < cfg.vflip;
  const angle = rng.uniform(-cfg.maxRotationDeg, cfg.maxRotationDeg) * (Math.PI / 180);
  const scale = rng.uniform(cfg.scale[0], cfg.scale[1]);
  const brightness = rng.uniform(1 - cfg.brightness, 1 + cfg.brightness);
  const contrast = rng.uniform(1 - cfg.contrast, 1 + cfg.contrast);
  const saturation = rng.uniform(1 - cfg.saturation, 1 + cfg.saturation);
  return { hflip, vflip, angle, scale, brightness, contrast, saturation };
}

/** Affine map from output pixel (x, y) to continuous source coordinates (pixel i's centre at i). */
export interface Affine {
  a: number; b: number; c: number;
  d: number; e: number; f: number;
}

export function isGeometricIdentity(p: AugmentParams): boolean {
  return !p.hflip && !p.vflip && p.angle === 0 && p.scale === 1;
}

/**
 * The inverse of "scale and rotate about the centre, then flip": for every output pixel, where to
 * sample the source. With u the output pixel centre relative to the image centre,
 * src = R(-angle) · F · u / scale (F the flips, its own inverse).
 */
export function sourceMap(p: AugmentParams, size: number): Affine {
  const fx = p.hflip ? -1 : 1;
  const fy = p.vflip ? -1 : 1;
  const cos = Math.cos(p.angle) / p.scale;
  const sin = Math.sin(p.angle) / p.scale;
  const a = cos * fx;
  const b = sin * fy;
  const d = -sin * fx;
  const e = cos * fy;
  const h = size / 2;
  // u = (x + 0.5 - h, y + 0.5 - h); source index = map(u) + h - 0.5.
  const u0 = 0.5 - h;
  return { a, b, c: a * u0 + b * u0 + h - 0.5, d, e, f: d * u0 + e * u0 + h - 0.5 };
}

/** Mirror index into [0, n): ... 2 1 0 | 0 1 2 ... n-1 | n-1 n-2 ... */
function reflect(i: number, n: number): number {
  const period = 2 * n;
  let r = i % period;
  if (r < 0) r += period;
  return r < n ? r : period - 1 - r;
}

/**
 * Bilinear warp of a planar [C,S,S] image into `out` ([C,S,S]), multiplying by `scale` (1/maxValue
 * maps integer pixels to [0, 1]).
 */
export function warpBilinear(src: Uint8Array | Uint16Array, channels: number, size: number, m: Affine, scale: number, out: Float32Array): void {
  const plane = size * size;
  for (let y = 0; y < size; y++) {
    let sx = m.b * y + m.c;
    let sy = m.e * y + m.f;
    for (let x = 0; x < size; x++, sx += m.a, sy += m.d) {
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const wx = sx - x0;
      const wy = sy - y0;
      // Most samples fall inside the image; only the border pays for reflection.
      const inX = x0 >= 0 && x0 < size - 1;
      const inY = y0 >= 0 && y0 < size - 1;
      const xa = inX ? x0 : reflect(x0, size);
      const xb = inX ? x0 + 1 : reflect(x0 + 1, size);
      const ya = (inY ? y0 : reflect(y0, size)) * size;
      const yb = (inY ? y0 + 1 : reflect(y0 + 1, size)) * size;
      const w00 = (1 - wx) * (1 - wy) * scale;
      const w01 = wx * (1 - wy) * scale;
      const w10 = (1 - wx) * wy * scale;
      const w11 = wx * wy * scale;
      const o = y * size + x;
      for (let c = 0, base = 0; c < channels; c++, base += plane) {
        out[base + o] = w00 * src[base + ya + xa] + w01 * src[base + ya + xb] + w10 * src[base + yb + xa] + w11 * src[base + yb + xb];
      }
    }
  }
}

/** Nearest-neighbour warp of `planes` planar S×S byte maps (label bits) into `out`. */
export function warpNearest(src: Uint8Array, planes: number, size: number, m: Affine, out: Uint8Array): void {
  const plane = size * size;
  for (let y = 0; y < size; y++) {
    let sx = m.b * y + m.c;
    let sy = m.e * y + m.f;
    for (let x = 0; x < size; x++, sx += m.a, sy += m.d) {
      const ix = Math.round(sx);
      const iy = Math.round(sy);
      const s = (iy >= 0 && iy < size ? iy : reflect(iy, size)) * size + (ix >= 0 && ix < size ? ix : reflect(ix, size));
      const o = y * size + x;
      for (let p = 0, base = 0; p < planes; p++, base += plane) out[base + o] = src[base + s];
    }
  }
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/**
 * Colour jitter of a planar [C,S,S] image in [0, 1], in place: brightness (scale), contrast (about
 * the mean luma), saturation (about each pixel's luma; RGB only). Results are clamped to [0, 1].
 */
export function jitterColour(img: Float32Array, channels: number, size: number, p: AugmentParams): void {
  if (p.brightness === 1 && p.contrast === 1 && p.saturation === 1) return;
  const plane = size * size;
  for (let i = 0; i < img.length; i++) img[i] = clamp01(img[i] * p.brightness);
  const luma = (i: number) => (channels === 3 ? 0.299 * img[i] + 0.587 * img[plane + i] + 0.114 * img[2 * plane + i] : img[i]);
  if (p.contrast !== 1) {
    let mean = 0;
    for (let i = 0; i < plane; i++) mean += luma(i);
    mean /= plane;
    for (let i = 0; i < img.length; i++) img[i] = clamp01((img[i] - mean) * p.contrast + mean);
  }
  if (channels === 3 && p.saturation !== 1) {
    for (let i = 0; i < plane; i++) {
      const l = luma(i);
      for (let c = 0; c < 3; c++) {
        const j = c * plane + i;
        img[j] = clamp01(l + (img[j] - l) * p.saturation);
      }
    }
  }
}
