// What the browser viewer computes from pixels and maps, as plain functions without the DOM: the page
// (src/viewer/page.ts) runs them in the browser, and the tests run the very same code in Node to check
// what the page drew. Imports carry '.js' so that the browser can load the compiled ES modules as they are.
import { resizeBilinear } from '../data/resize.js';

/** One colour per annotator, distinguishable on a fundus image (and on each other). */
export const ANNOTATOR_COLOURS: [number, number, number][] = [
  [0, 230, 64], [40, 150, 255], [255, 210, 0], [255, 60, 60], [220, 80, 255], [0, 230, 230], [255, 140, 0], [255, 255, 255],
];

export function annotatorColour(annotator: number): [number, number, number] {
  return ANNOTATOR_COLOURS[(annotator - 1) % ANNOTATOR_COLOURS.length];
}

/**
 * The model input [C, S, S] in [0, 1] from 8-bit RGBA pixels, as `avap predict` prepares an image:
 * antialiased bilinear resize, rounding back to 8 bits, then / 255 (a 1-channel model gets luma).
 */
export function modelInput(rgba: Uint8ClampedArray | Uint8Array, width: number, height: number, size: number, channels: number): Float32Array {
  const n = width * height;
  const source = new Float32Array(n * channels);
  for (let i = 0; i < n; i++) {
    const [r, g, b] = [rgba[i * 4], rgba[i * 4 + 1], rgba[i * 4 + 2]];
    if (channels === 1) source[i] = 0.299 * r + 0.587 * g + 0.114 * b;
    else for (let c = 0; c < channels; c++) source[i * channels + c] = [r, g, b][Math.min(c, 2)];
  }
  const resized = resizeBilinear(source, width, height, channels, size, size);
  const inv = 1 / 255;
  for (let i = 0; i < resized.length; i++) resized[i] = Math.min(255, Math.max(0, Math.round(resized[i]))) * inv;
  return resized;
}

/** A model-resolution map at the size it is shown. */
export function displayMap(map: Float32Array, size: number, width: number, height: number): Float32Array {
  return resizeBilinear(map, size, size, 1, width, height);
}

/** Outline thickness for a picture of this size (the overlay of `avap predict` uses the same rule). */
export function outlineThickness(width: number, height: number): number {
  return Math.max(1, Math.round(Math.min(width, height) / 256));
}

/** 1 on the boundary pixels of `map > 0.5`: inside, with a 4-neighbour within `thickness` outside. */
export function outlineMask(map: Float32Array, width: number, height: number, thickness: number): Uint8Array {
  const mask = new Uint8Array(width * height);
  const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height && map[y * width + x] > 0.5;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!inside(x, y)) continue;
      for (let d = 1; d <= thickness; d++) {
        if (!inside(x - d, y) || !inside(x + d, y) || !inside(x, y - d) || !inside(x, y + d)) {
          mask[y * width + x] = 1;
          break;
        }
      }
    }
  }
  return mask;
}

/** Per-pixel standard deviation across the annotators' maps: 0 where they agree, up to 0.5. */
export function spread(maps: Float32Array[]): Float32Array {
  const n = maps[0].length;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    let sumSq = 0;
    for (const m of maps) {
      sum += m[i];
      sumSq += m[i] * m[i];
    }
    const mean = sum / maps.length;
    out[i] = Math.sqrt(Math.max(0, sumSq / maps.length - mean * mean));
  }
  return out;
}

// A dark-to-bright ramp (black → purple → orange → yellow), legible over a reddish fundus.
const RAMP: [number, number, number][] = [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]];

/**
 * The heat colour of a value in [0, 1]. Its alpha grows with the value up to 0.5, so that the image shows
 * through where the map is near 0 instead of being tinted everywhere.
 */
export function heatColour(value: number, opacity: number): [number, number, number, number] {
  const v = Math.min(1, Math.max(0, value));
  const x = v * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x));
  const t = x - i;
  const mix = (c: number) => Math.round(RAMP[i][c] + (RAMP[i + 1][c] - RAMP[i][c]) * t);
  return [mix(0), mix(1), mix(2), Math.round(255 * opacity * Math.min(1, 2 * v))];
}

export interface StructureStats {
  /** Pixels of the structure's largest connected region (probability > 0.5), in the original image's pixels. */
  area: number;
  /** Rows that region spans, in the original image's rows (0 when there is none). */
  height: number;
}

/**
 * Area and vertical extent of the largest 4-connected region of `map > 0.5` (model resolution S×S),
 * scaled to an original W×H image. A reader measures one disc and one cup, so stray specks elsewhere
 * must not stretch the extent.
 */
export function structureStats(map: Float32Array, size: number, width: number, height: number): StructureStats {
  const label = new Int32Array(size * size).fill(-1);
  let best = { count: 0, top: 0, bottom: -1 };
  const stack: number[] = [];
  for (let start = 0; start < map.length; start++) {
    if (map[start] <= 0.5 || label[start] >= 0) continue;
    const region = { count: 0, top: size, bottom: -1 };
    label[start] = start;
    stack.push(start);
    while (stack.length > 0) {
      const i = stack.pop()!;
      const [x, y] = [i % size, Math.floor(i / size)];
      region.count++;
      region.top = Math.min(region.top, y);
      region.bottom = Math.max(region.bottom, y);
      for (const [nx, ny] of [[x - 1, y], [x + 1, y], [x, y - 1], [x, y + 1]]) {
        const j = ny * size + nx;
        if (nx < 0 || ny < 0 || nx >= size || ny >= size || map[j] <= 0.5 || label[j] >= 0) continue;
        label[j] = start;
        stack.push(j);
      }
    }
    if (region.count > best.count) best = region;
  }
  return { area: (best.count * width * height) / (size * size), height: best.count === 0 ? 0 : ((best.bottom - best.top + 1) * height) / size };
}

/**
 * Cup-to-disc ratios from a reader's two structures: vertical (cup height / disc height, the one glaucoma
 * readers quote) and by area. Null where the disc is empty.
 */
export function cupToDisc(disc: StructureStats, cup: StructureStats): { vertical: number | null; area: number | null } {
  return { vertical: disc.height > 0 ? cup.height / disc.height : null, area: disc.area > 0 ? cup.area / disc.area : null };
}

/** The size with this aspect ratio whose longer side is `box`: how big the viewer shows a picture. */
export function fitWithin(width: number, height: number, box: number): { width: number; height: number } {
  const scale = box / Math.max(width, height);
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}
