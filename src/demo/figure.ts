// A figure like the paper's Fig. 3: per case, the image, the calibrated map, and each annotator's
// predicted outline with its Dice against that annotator's annotation.
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic';
import { RawImage } from '../io/image';
import { drawOutline, toRgb8 } from '../predict/overlay';

export interface FigureRow {
  caseId: string;
  image: RawImage;
  /** Calibrated map per structure (image size). */
  calibrated: Float32Array[];
  /** annotators[k][s]: predicted probability for annotator k (image size). */
  annotators: Float32Array[][];
  /** Annotation masks [k][s], for the thin reference outline; null when missing. */
  annotations: (Uint8Array[] | null)[];
  /** Label under each annotator panel, e.g. "A1 96.1, 84.0". */
  captions: string[];
  /** Label under the calibrated map. */
  meanCaption: string;
}

const PREDICTED: [number, number, number][] = [[0, 230, 64], [40, 120, 255]];
const ANNOTATED: [number, number, number][] = [[255, 255, 255], [255, 210, 0]];

/** Heat colouring of a [0, 1] map: black → red → yellow → white. */
function heat(map: Float32Array): Uint8Array {
  const out = new Uint8Array(map.length * 3);
  for (let i = 0; i < map.length; i++) {
    const v = Math.min(1, Math.max(0, map[i])) * 3;
    out[i * 3] = Math.round(255 * Math.min(1, v));
    out[i * 3 + 1] = Math.round(255 * Math.min(1, Math.max(0, v - 1)));
    out[i * 3 + 2] = Math.round(255 * Math.min(1, Math.max(0, v - 2)));
  }
  return out;
}

/** Writes the figure PNG atomically; each panel is `panel` pixels wide plus a caption strip. */
export async function writeFigure(file: string, rows: FigureRow[], panel = 160): Promise<void> {
  const caption = 22;
  const cols = 2 + (rows[0]?.annotators.length ?? 0);
  const width = cols * panel;
  const height = rows.length * (panel + caption);
  const composites: sharp.OverlayOptions[] = [];
  const place = async (rgb: Uint8Array, w: number, h: number, col: number, row: number, text: string) => {
    const tile = await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).resize(panel, panel, { kernel: 'nearest' }).png().toBuffer();
    const top = row * (panel + caption);
    composites.push({ input: tile, left: col * panel, top });
    const svg = `<svg width="${panel}" height="${caption}"><text x="4" y="16" font-family="sans-serif" font-size="13" fill="white">${escapeXml(text)}</text></svg>`;
    composites.push({ input: Buffer.from(svg), left: col * panel, top: top + panel });
  };
  for (const [r, row] of rows.entries()) {
    const { width: w, height: h } = row.image;
    await place(toRgb8(row.image), w, h, 0, r, row.caseId);
    // The calibrated maps of all structures summed and scaled to [0, 1]: with nested structures each
    // level of the heat scale is one more structure, and soft edges show where annotators disagree.
    const combined = new Float32Array(w * h);
    row.calibrated.forEach((m) => m.forEach((v, i) => (combined[i] += v / row.calibrated.length)));
    await place(heat(combined), w, h, 1, r, row.meanCaption);
    for (const [k, maps] of row.annotators.entries()) {
      const rgb = toRgb8(row.image);
      row.annotations[k]?.forEach((mask, s) => drawOutline(rgb, w, h, Float32Array.from(mask), ANNOTATED[s % ANNOTATED.length]));
      maps.forEach((m, s) => drawOutline(rgb, w, h, m, PREDICTED[s % PREDICTED.length]));
      await place(rgb, w, h, 2 + k, r, row.captions[k]);
    }
  }
  const png = await sharp({ create: { width, height, channels: 3, background: { r: 0, g: 0, b: 0 } } }).composite(composites).png().toBuffer();
  writeFileAtomic(file, png);
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
