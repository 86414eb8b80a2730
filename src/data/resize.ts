/**
 * Resizing with the pixel-centre convention (pixel i covers [i, i+1), its centre is i + 0.5), so
 * images (bilinear) and masks (nearest) resized to the same size stay aligned.
 *
 * "Bilinear" is the triangle filter as PIL and torchvision (antialias=True) implement it: plain
 * bilinear interpolation when enlarging, and a triangle widened by the shrink factor when reducing, so
 * a 2000-pixel fundus image shrunk to 256 averages its pixels instead of aliasing vessels and noise.
 */

export interface Taps {
  /** Taps per output sample (the same for all; unused taps have weight 0). */
  count: number;
  /** First source index per output sample. */
  start: Int32Array;
  /** count weights per output sample, summing to 1. */
  weights: Float32Array;
}

/** Weights of the antialiased linear filter mapping `inSize` samples to `outSize`. */
export function linearTaps(inSize: number, outSize: number): Taps {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // triangle half-width 1, stretched when shrinking
  const count = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const weights = new Float32Array(outSize * count);
  for (let i = 0; i < outSize; i++) {
    const centre = (i + 0.5) * scale;
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    start[i] = lo;
    let total = 0;
    for (let x = lo; x < hi && x - lo < count; x++) {
      const w = Math.max(0, 1 - Math.abs((x - centre + 0.5) / filterScale));
      weights[i * count + (x - lo)] = w;
      total += w;
    }
    if (total > 0) for (let t = 0; t < count; t++) weights[i * count + t] /= total;
    else weights[i * count] = 1; // cannot happen for in, out >= 1; keeps the output defined anyway
  }
  return { count, start, weights };
}

type Pixels = Uint8Array | Uint16Array | Float32Array;

/**
 * Antialiased bilinear resize of an interleaved (HWC) image to planar (CHW) float output, in the
 * source's units (no rounding, no scaling).
 */
export function resizeBilinear(src: Pixels, width: number, height: number, channels: number, outWidth: number, outHeight: number): Float32Array {
  if (src.length !== width * height * channels) throw new Error(`resizeBilinear: ${src.length} values for ${width}x${height}x${channels}`);
  const out = new Float32Array(channels * outWidth * outHeight);
  if (width === outWidth && height === outHeight) {
    const plane = outWidth * outHeight;
    for (let i = 0; i < plane; i++) for (let c = 0; c < channels; c++) out[c * plane + i] = src[i * channels + c];
    return out;
  }
  const tx = linearTaps(width, outWidth);
  const ty = linearTaps(height, outHeight);
  // Horizontal pass: height x outWidth x channels (interleaved), then vertical into planar output.
  const tmp = new Float32Array(height * outWidth * channels);
  for (let y = 0; y < height; y++) {
    const row = y * width * channels;
    for (let ox = 0; ox < outWidth; ox++) {
      const base = tx.start[ox];
      const wOff = ox * tx.count;
      const o = (y * outWidth + ox) * channels;
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let t = 0; t < tx.count; t++) {
          const w = tx.weights[wOff + t];
          if (w !== 0) acc += w * src[row + (base + t) * channels + c];
        }
        tmp[o + c] = acc;
      }
    }
  }
  const plane = outWidth * outHeight;
  for (let oy = 0; oy < outHeight; oy++) {
    const base = ty.start[oy];
    const wOff = oy * ty.count;
    for (let ox = 0; ox < outWidth; ox++) {
      for (let c = 0; c < channels; c++) {
        let acc = 0;
        for (let t = 0; t < ty.count; t++) {
          const w = ty.weights[wOff + t];
          if (w !== 0) acc += w * tmp[((base + t) * outWidth + ox) * channels + c];
        }
        out[c * plane + oy * outWidth + ox] = acc;
      }
    }
  }
  return out;
}

/** Source index of each output sample for nearest-neighbour resampling (centre convention). */
export function nearestIndices(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) idx[i] = Math.min(inSize - 1, Math.floor((i + 0.5) * scale));
  return idx;
}

/** Nearest-neighbour resize of a single-channel row-major map (labels, masks): values are never mixed. */
export function resizeNearest<T extends Uint8Array | Uint16Array>(src: T, width: number, height: number, outWidth: number, outHeight: number): T {
  if (src.length !== width * height) throw new Error(`resizeNearest: ${src.length} values for ${width}x${height}`);
  const out = (src instanceof Uint16Array ? new Uint16Array(outWidth * outHeight) : new Uint8Array(outWidth * outHeight)) as T;
  const ix = nearestIndices(width, outWidth);
  const iy = nearestIndices(height, outHeight);
  for (let oy = 0; oy < outHeight; oy++) {
    const row = iy[oy] * width;
    const o = oy * outWidth;
    for (let ox = 0; ox < outWidth; ox++) out[o + ox] = src[row + ix[ox]];
  }
  return out;
}
