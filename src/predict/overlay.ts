// A picture for a person: the image with the calibrated map's outline of each structure drawn on it.
import { RawImage, writePng } from '../io/image';

const COLOURS: [number, number, number][] = [[0, 230, 64], [40, 120, 255], [255, 210, 0], [255, 60, 60], [200, 0, 255], [0, 220, 220]];

/** 8-bit RGB copy of any decoded image (grey expanded, 16-bit scaled down). */
export function toRgb8(img: RawImage): Uint8Array {
  const n = img.width * img.height;
  const out = new Uint8Array(n * 3);
  const scale = img.bitDepth === 16 ? 1 / 257 : 1;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round(img.data[i * img.channels + (img.channels >= 3 ? c : 0)] * scale);
  }
  return out;
}

/** Paints, in place, the boundary pixels of `map > 0.5` (a pixel inside whose 4-neighbour is outside). */
export function drawOutline(rgb: Uint8Array, width: number, height: number, map: Float32Array, colour: [number, number, number], thickness = 1): void {
  const inside = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height && map[y * width + x] > 0.5;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (!inside(x, y)) continue;
      let edge = false;
      for (let d = 1; d <= thickness && !edge; d++) edge = !inside(x - d, y) || !inside(x + d, y) || !inside(x, y - d) || !inside(x, y + d);
      if (edge) rgb.set(colour, (y * width + x) * 3);
    }
  }
}

export async function writeOverlay(file: string, image: RawImage, maps: Float32Array[]): Promise<void> {
  const rgb = toRgb8(image);
  const thickness = Math.max(1, Math.round(Math.min(image.width, image.height) / 256));
  maps.forEach((m, s) => drawOutline(rgb, image.width, image.height, m, COLOURS[s % COLOURS.length], thickness));
  await writePng(file, { width: image.width, height: image.height, channels: 3, bitDepth: 8, data: rgb });
}
