/**
 * The built-in synthetic dataset (`avap synth`): RIGA-like fundus crops around the optic disc, with M
 * simulated annotators who each have a consistent personal style plus per-case jitter. It is the
 * project's embedded default for the demo and the tests, so it is deterministic per seed and fast
 * (100 cases at 256² in a few seconds).
 *
 * Image: orange-red background with illumination fall-off and choroidal texture, vessels leaving the
 * disc, a bright disc with a brighter, fuzzy-edged cup (random position, size, ellipticity, rotation),
 * blur and noise.
 *
 * Annotators: as in RIGA, they agree closely on the disc (scale differences of ~1–2%) and disagree on
 * the cup (±20% size, rounder, offset), because the cup's edge is the fuzzy one. Cup differences are
 * sized so a network at 64–128 px can learn them: at 128 px the cup's radius is ~12 px and A1 and A2
 * differ by ~5 px in diameter.
 *
 * Output, in the native layout: dataset.json, images/<case>.png, labels/<case>_<annotator>.png
 * (0 background, 128 disc rim, 255 cup — RIGA's values, with the nesting rule disc ⊃ cup), and the
 * sidecar synth.json with each case's latent true disc and cup and each annotator's style and drawn
 * ellipses, so tests can check that a model learned each style.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { writeFileAtomic, writeFileInNewFolder } from '../io/atomic';
import { encodePng } from '../io/image';
import { Rng } from '../util/random';
import { labelFileName } from './native';
import { resizeBilinear } from './resize';
import type { DatasetJsonInput } from './schema';

export const SYNTH_DEFAULTS = { cases: 100, annotators: 6, size: 256, seed: 0 };
/** Label values written to the label maps. */
export const SYNTH_LABELS = { background: 0, disc: 128, cup: 255 };
/** Per-case jitter of every annotator, as a fraction of the structure's radius (std of a normal). */
export const SYNTH_JITTER = { discScale: 0.01, discCentre: 0.01, cupScale: 0.04, cupCentre: 0.03, cupAngle: 0.05 };
/** Share of cases in the train split; the rest is test. */
export const SYNTH_TRAIN_SHARE = 0.8;

/** An ellipse in pixel coordinates at the dataset's size; angle in radians (rotation of the x semi-axis). */
export interface Ellipse {
  cx: number;
  cy: number;
  rx: number;
  ry: number;
  angle: number;
}

export interface AnnotatorStyle {
  name: string;
  description: string;
  /** Multiplies the latent cup's semi-axes. */
  cupScale: number;
  /** Multiplies the latent disc's semi-axes. */
  discScale: number;
  /** 0 = the cup's true shape, 1 = a circle of the same area. */
  cupRoundness: number;
  /** Cup centre shift (x, y; image axes, y down) as a fraction of the latent cup's mean radius. */
  cupOffset: [number, number];
}

type StyleTemplate = Omit<AnnotatorStyle, 'name'>;

/** The first six annotators (fixed, whatever the seed); further ones are drawn from the seed. */
export const BASE_STYLES: StyleTemplate[] = [
  { description: 'draws the cup larger (+20%)', cupScale: 1.2, discScale: 1.01, cupRoundness: 0, cupOffset: [0, 0] },
  { description: 'draws the cup smaller (-20%)', cupScale: 0.8, discScale: 0.99, cupRoundness: 0, cupOffset: [0, 0] },
  { description: 'draws the cup rounder (a circle of the same area)', cupScale: 1, discScale: 1, cupRoundness: 1, cupOffset: [0, 0] },
  { description: 'draws the cup offset to the right and up', cupScale: 1, discScale: 1, cupRoundness: 0, cupOffset: [0.25, -0.1] },
  { description: 'draws cup and disc slightly larger (+8%, +2%)', cupScale: 1.08, discScale: 1.02, cupRoundness: 0, cupOffset: [0, 0] },
  { description: 'neutral', cupScale: 1, discScale: 1, cupRoundness: 0, cupOffset: [0, 0] },
];

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;

/** Styles of M annotators named A1..AM. */
export function annotatorStyles(count: number, seed: number): AnnotatorStyle[] {
  return Array.from({ length: count }, (_, m) => {
    const name = `A${m + 1}`;
    if (m < BASE_STYLES.length) return { name, ...BASE_STYLES[m], cupOffset: [...BASE_STYLES[m].cupOffset] as [number, number] };
    const rng = Rng.from(seed, 'style', m);
    const cupScale = r4(rng.uniform(0.8, 1.2));
    const discScale = r4(rng.uniform(0.98, 1.02));
    const cupRoundness = rng.bernoulli(0.3) ? r4(rng.uniform(0.5, 1)) : 0;
    const dir = rng.uniform(0, 2 * Math.PI);
    const mag = rng.bernoulli(0.3) ? rng.uniform(0.1, 0.25) : 0;
    const cupOffset: [number, number] = [r4(mag * Math.cos(dir)), r4(mag * Math.sin(dir))];
    const parts = [`cup x${cupScale}`, `disc x${discScale}`];
    if (cupRoundness > 0) parts.push(`roundness ${cupRoundness}`);
    if (mag > 0) parts.push(`cup offset (${cupOffset[0]}, ${cupOffset[1]})`);
    return { name, description: `generated: ${parts.join(', ')}`, cupScale, discScale, cupRoundness, cupOffset };
  });
}

/** One generated case: an RGB image (HWC) and one label map per annotator. */
export interface SynthCase {
  image: Uint8Array;
  labels: Uint8Array[];
  latent: { disc: Ellipse; cup: Ellipse };
  drawn: { disc: Ellipse; cup: Ellipse; discArea: number; cupArea: number }[];
}

/** Normalised radius of a point w.r.t. an ellipse (< 1 inside), with the trigonometry done once. */
function ellipseRho(e: Ellipse): (px: number, py: number) => number {
  const c = Math.cos(e.angle);
  const s = Math.sin(e.angle);
  const irx = 1 / e.rx;
  const iry = 1 / e.ry;
  return (px, py) => {
    const dx = px - e.cx;
    const dy = py - e.cy;
    const u = (dx * c + dy * s) * irx;
    const v = (-dx * s + dy * c) * iry;
    return Math.sqrt(u * u + v * v);
  };
}

/** Smooth noise in [-1, 1]: a random grid×grid lattice, bilinearly enlarged. */
function valueNoise(rng: Rng, grid: number, size: number): Float32Array {
  const lattice = new Float32Array(grid * grid);
  for (let i = 0; i < lattice.length; i++) lattice[i] = rng.uniform(-1, 1);
  return resizeBilinear(lattice, grid, grid, 1, size, size);
}

/** Blurs a planar float image in place with two passes of a (2r+1) box, ≈ a Gaussian of σ ≈ r. */
function boxBlur(img: Float32Array, channels: number, size: number, radius: number): void {
  if (radius < 1) return;
  const line = new Float32Array(size);
  const plane = size * size;
  const width = 2 * radius + 1;
  const pass = (stride: number, step: number) => {
    for (let c = 0; c < channels; c++) {
      for (let l = 0; l < size; l++) {
        const base = c * plane + l * stride;
        for (let i = 0; i < size; i++) line[i] = img[base + i * step];
        // Running sum with edge clamping: O(1) per pixel whatever the radius.
        let acc = 0;
        for (let k = -radius; k <= radius; k++) acc += line[Math.min(size - 1, Math.max(0, k))];
        for (let i = 0; i < size; i++) {
          img[base + i * step] = acc / width;
          acc += line[Math.min(size - 1, i + radius + 1)] - line[Math.max(0, i - radius)];
        }
      }
    }
  };
  for (let p = 0; p < 2; p++) {
    pass(size, 1); // rows
    pass(1, size); // columns
  }
}

/** Dark vessel map in [0, 1]: random-walk trees leaving the disc. */
function drawVessels(rng: Rng, size: number, origin: { x: number; y: number }): Float32Array {
  const f = size / 256;
  const v = new Float32Array(size * size);
  const segment = (x0: number, y0: number, x1: number, y1: number, w: number) => {
    const half = w / 2;
    const minX = Math.max(0, Math.floor(Math.min(x0, x1) - half - 1));
    const maxX = Math.min(size - 1, Math.ceil(Math.max(x0, x1) + half + 1));
    const minY = Math.max(0, Math.floor(Math.min(y0, y1) - half - 1));
    const maxY = Math.min(size - 1, Math.ceil(Math.max(y0, y1) + half + 1));
    const dx = x1 - x0;
    const dy = y1 - y0;
    const len2 = dx * dx + dy * dy || 1e-9;
    for (let y = minY; y <= maxY; y++) {
      for (let x = minX; x <= maxX; x++) {
        const px = x + 0.5 - x0;
        const py = y + 0.5 - y0;
        const t = Math.max(0, Math.min(1, (px * dx + py * dy) / len2));
        const ex = px - t * dx;
        const ey = py - t * dy;
        const a = half + 0.5 - Math.sqrt(ex * ex + ey * ey);
        if (a > 0) {
          const i = y * size + x;
          const val = Math.min(1, a);
          if (val > v[i]) v[i] = val;
        }
      }
    }
  };
  const stack: { x: number; y: number; heading: number; width: number }[] = [];
  const trunks = 6 + rng.int(5);
  for (let t = 0; t < trunks; t++) {
    // Main arcades leave upwards and downwards; a few smaller vessels go sideways.
    const vertical = t < 4;
    const heading = vertical ? (t % 2 === 0 ? -Math.PI / 2 : Math.PI / 2) + rng.uniform(-0.7, 0.7) : rng.uniform(0, 2 * Math.PI);
    stack.push({ x: origin.x + rng.normal(0, 2 * f), y: origin.y + rng.normal(0, 2 * f), heading, width: f * (vertical ? rng.uniform(2.6, 3.6) : rng.uniform(1.4, 2.2)) });
  }
  const step = 5 * f;
  let budget = 2000; // segments, bounds the work per case
  while (stack.length > 0 && budget > 0) {
    let { x, y, heading, width } = stack.pop()!;
    for (let s = 0; s < 200 && budget > 0; s++, budget--) {
      heading += rng.normal(0, 0.12);
      const nx = x + step * Math.cos(heading);
      const ny = y + step * Math.sin(heading);
      segment(x, y, nx, ny, width);
      x = nx;
      y = ny;
      width = Math.max(0.7 * f, width * 0.99);
      if (x < -step || y < -step || x > size + step || y > size + step) break;
      if (rng.bernoulli(0.03) && width > 1.2 * f && stack.length < 40) {
        stack.push({ x, y, heading: heading + (rng.bernoulli(0.5) ? 1 : -1) * rng.uniform(0.4, 0.9), width: width * 0.7 });
      }
    }
  }
  return v;
}

/** Generates case `index` of the dataset for `seed` (independent of how many cases are generated). */
export function synthCase(index: number, seed: number, size: number, styles: AnnotatorStyle[]): SynthCase {
  const rng = Rng.from(seed, 'case', index);
  const f = size / 256;
  const S = size;
  const plane = S * S;

  // Latent anatomy: a vertically elongated disc, and a cup inside it (cup-to-disc ratio 0.3–0.6).
  const r = S * rng.uniform(0.17, 0.23);
  const discElong = rng.uniform(1.0, 1.15);
  const disc: Ellipse = { cx: S * rng.uniform(0.38, 0.62), cy: S * rng.uniform(0.38, 0.62), rx: r / Math.sqrt(discElong), ry: r * Math.sqrt(discElong), angle: rng.uniform(-0.35, 0.35) };
  const cupR = r * rng.uniform(0.3, 0.6);
  const cupElong = rng.uniform(1.0, 1.35);
  const cup: Ellipse = { cx: disc.cx + r * rng.uniform(-0.08, 0.08), cy: disc.cy + r * rng.uniform(-0.08, 0.08), rx: cupR / Math.sqrt(cupElong), ry: cupR * Math.sqrt(cupElong), angle: rng.uniform(-0.35, 0.35) };

  // Background: orange-red, darker away from an illumination centre near the disc, with texture.
  const base = [rng.uniform(175, 215), rng.uniform(62, 92), rng.uniform(22, 42)];
  const icx = disc.cx + rng.normal(0, 0.12 * S);
  const icy = disc.cy + rng.normal(0, 0.12 * S);
  const coarse = valueNoise(rng, 5, S);
  const fine = valueNoise(rng, 18, S);
  const tint = valueNoise(rng, 4, S);
  const img = new Float32Array(3 * plane);
  const discCol = [238, 168, 112];
  const cupCol = [255, 238, 212];
  const discEdge = 2.5 * f; // px: the disc rim is sharp
  const cupEdge = 7 * f; // px: the cup edge is fuzzy, which is why annotators disagree on it
  const discRho = ellipseRho(disc);
  const cupRho = ellipseRho(cup);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const i = y * S + x;
      const px = x + 0.5;
      const py = y + 0.5;
      const d = Math.hypot(px - icx, py - icy) / (0.9 * S);
      const light = Math.max(0.35, 1 - 0.45 * d * d) * (1 + 0.08 * coarse[i] + 0.04 * fine[i]);
      let rC = base[0] * light * (1 + 0.03 * tint[i]);
      let gC = base[1] * light * (1 - 0.05 * tint[i]);
      let bC = base[2] * light;
      const rhoD = discRho(px, py);
      const aD = Math.min(1, Math.max(0, (1 - rhoD) * (r / discEdge) + 0.5)) * 0.85;
      if (aD > 0) {
        const glow = 0.9 + 0.1 * Math.max(0, 1 - rhoD);
        rC += (discCol[0] * glow - rC) * aD;
        gC += (discCol[1] * glow - gC) * aD;
        bC += (discCol[2] * glow - bC) * aD;
      }
      const rhoC = cupRho(px, py);
      const aC = Math.min(1, Math.max(0, (1 - rhoC) * (cupR / cupEdge) + 0.5)) * 0.9;
      if (aC > 0) {
        rC += (cupCol[0] - rC) * aC;
        gC += (cupCol[1] - gC) * aC;
        bC += (cupCol[2] - bC) * aC;
      }
      img[i] = rC;
      img[plane + i] = gC;
      img[2 * plane + i] = bC;
    }
  }
  const vessels = drawVessels(rng, S, { x: cup.cx, y: cup.cy });
  const vesselTint = [0.55, 0.35, 0.4];
  for (let i = 0; i < plane; i++) {
    const a = vessels[i] * 0.8;
    if (a > 0) for (let c = 0; c < 3; c++) img[c * plane + i] *= 1 - a * (1 - vesselTint[c]);
  }
  boxBlur(img, 3, S, Math.max(1, Math.round(f)));
  const image = new Uint8Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.round(img[c * plane + i] + rng.normal(0, 2.5));
      image[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }

  // Each annotator: its style applied to the latent shapes, plus this case's jitter.
  const labels: Uint8Array[] = [];
  const drawn: SynthCase['drawn'] = [];
  styles.forEach((st, m) => {
    const ar = Rng.from(seed, 'annotator', index, m);
    const ds = st.discScale * (1 + ar.normal(0, SYNTH_JITTER.discScale));
    const aDisc: Ellipse = { cx: disc.cx + ar.normal(0, SYNTH_JITTER.discCentre * r), cy: disc.cy + ar.normal(0, SYNTH_JITTER.discCentre * r), rx: disc.rx * ds, ry: disc.ry * ds, angle: disc.angle };
    const g = Math.sqrt(cup.rx * cup.ry); // radius of the circle with the cup's area
    const rho = st.cupRoundness;
    const cs = st.cupScale * (1 + ar.normal(0, SYNTH_JITTER.cupScale));
    const aCup: Ellipse = {
      cx: cup.cx + st.cupOffset[0] * cupR + ar.normal(0, SYNTH_JITTER.cupCentre * cupR),
      cy: cup.cy + st.cupOffset[1] * cupR + ar.normal(0, SYNTH_JITTER.cupCentre * cupR),
      rx: cup.rx ** (1 - rho) * g ** rho * cs,
      ry: cup.ry ** (1 - rho) * g ** rho * cs,
      angle: cup.angle + ar.normal(0, SYNTH_JITTER.cupAngle),
    };
    const label = new Uint8Array(plane);
    let discArea = 0;
    let cupArea = 0;
    const inDisc = ellipseRho(aDisc);
    const inCup = ellipseRho(aCup);
    // Only the disc's bounding box can hold structure pixels.
    const reach = Math.max(aDisc.rx, aDisc.ry) + 1;
    const [x0, x1] = [Math.max(0, Math.floor(aDisc.cx - reach)), Math.min(S - 1, Math.ceil(aDisc.cx + reach))];
    const [y0, y1] = [Math.max(0, Math.floor(aDisc.cy - reach)), Math.min(S - 1, Math.ceil(aDisc.cy + reach))];
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        if (inDisc(x + 0.5, y + 0.5) > 1) continue;
        discArea++;
        // Nesting: an annotator's cup is always inside their own disc.
        if (inCup(x + 0.5, y + 0.5) <= 1) {
          cupArea++;
          label[y * S + x] = SYNTH_LABELS.cup;
        } else label[y * S + x] = SYNTH_LABELS.disc;
      }
    }
    labels.push(label);
    drawn.push({ disc: aDisc, cup: aCup, discArea, cupArea });
  });
  return { image, labels, latent: { disc, cup }, drawn };
}

export interface SynthOptions {
  out: string;
  cases?: number;
  annotators?: number;
  size?: number;
  seed?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SynthSidecar {
  generator: 'avap synth';
  version: 1;
  seed: number;
  size: number;
  labelValues: typeof SYNTH_LABELS;
  jitter: typeof SYNTH_JITTER;
  annotators: AnnotatorStyle[];
  cases: {
    id: string;
    split: string;
    disc: Ellipse;
    cup: Ellipse;
    annotators: { name: string; disc: Ellipse; cup: Ellipse; discArea: number; cupArea: number }[];
  }[];
}

const roundEllipse = (e: Ellipse): Ellipse => ({ cx: r4(e.cx), cy: r4(e.cy), rx: r4(e.rx), ry: r4(e.ry), angle: r4(e.angle) });

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) throw new UserError(`--${name} must be an integer in ${min}..${max}, got ${v}`);
}

/** Case ids case000, case001, ... (wider when there are more than 1000 cases). */
export function synthCaseId(index: number, total: number): string {
  return `case${String(index).padStart(Math.max(3, String(total - 1).length), '0')}`;
}

/**
 * Writes a synthetic dataset to `out` (which must not exist or be empty). dataset.json is written
 * last, so an interrupted run never leaves a folder that looks like a complete dataset.
 */
export async function writeSynthDataset(opts: SynthOptions): Promise<{ out: string; cases: number; annotators: number; size: number; seed: number; splits: Record<string, number> }> {
  const cases = opts.cases ?? SYNTH_DEFAULTS.cases;
  const M = opts.annotators ?? SYNTH_DEFAULTS.annotators;
  const size = opts.size ?? SYNTH_DEFAULTS.size;
  const seed = opts.seed ?? SYNTH_DEFAULTS.seed;
  checkInt('cases', cases, 1, 100000);
  checkInt('annotators', M, 1, 64);
  checkInt('size', size, 32, 4096);
  checkInt('seed', seed, 0, 2 ** 32 - 1);
  const out = path.resolve(opts.out);
  if (fs.existsSync(out) && (!fs.statSync(out).isDirectory() || fs.readdirSync(out).length > 0)) {
    throw new UserError(`${opts.out}: already exists and is not an empty folder (synth writes a new dataset)`);
  }
  fs.mkdirSync(path.join(out, 'images'), { recursive: true });
  fs.mkdirSync(path.join(out, 'labels'), { recursive: true });

  const styles = annotatorStyles(M, seed);
  const nTest = cases >= 2 ? Math.max(1, Math.round(cases * (1 - SYNTH_TRAIN_SHARE))) : 0;
  const ids = Array.from({ length: cases }, (_, i) => synthCaseId(i, cases));
  const splits: Record<string, string[]> = { train: ids.slice(0, cases - nTest) };
  if (nTest > 0) splits.test = ids.slice(cases - nTest);
  const sidecar: SynthSidecar = { generator: 'avap synth', version: 1, seed, size, labelValues: SYNTH_LABELS, jitter: SYNTH_JITTER, annotators: styles, cases: [] };

  // Generation is synchronous JS; PNG encoding runs on libuv's pool. A small window of cases in flight
  // overlaps the two without holding many images in memory.
  const window: Promise<void>[] = [];
  let done = 0;
  for (let i = 0; i < cases; i++) {
    const id = ids[i];
    const c = synthCase(i, seed, size, styles);
    sidecar.cases.push({
      id,
      split: i < cases - nTest ? 'train' : 'test',
      disc: roundEllipse(c.latent.disc),
      cup: roundEllipse(c.latent.cup),
      annotators: c.drawn.map((d, m) => ({ name: styles[m].name, disc: roundEllipse(d.disc), cup: roundEllipse(d.cup), discArea: d.discArea, cupArea: d.cupArea })),
    });
    const written = (async () => {
      const files: [string, Promise<Buffer>][] = [[path.join(out, 'images', `${id}.png`), encodePng({ width: size, height: size, channels: 3, bitDepth: 8, data: c.image })]];
      c.labels.forEach((l, m) => files.push([path.join(out, 'labels', labelFileName(id, styles[m].name)), encodePng({ width: size, height: size, channels: 1, bitDepth: 8, data: l })]));
      for (const [file, bytes] of files) writeFileInNewFolder(file, await bytes);
      opts.onProgress?.(++done, cases);
    })();
    written.catch(() => undefined); // awaited below; this only keeps an early failure from counting as unhandled
    window.push(written);
    if (window.length >= 4) await window.shift();
  }
  await Promise.all(window);

  const datasetJson: DatasetJsonInput = {
    name: 'synthetic-fundus',
    description: `avap synth --cases ${cases} --annotators ${M} --size ${size} --seed ${seed}: RIGA-like fundus crops; latent shapes and annotator styles in synth.json`,
    annotators: styles.map((s) => s.name),
    structures: [
      { name: 'disc', values: [SYNTH_LABELS.disc], contains: ['cup'] },
      { name: 'cup', values: [SYNTH_LABELS.cup] },
    ],
    background: [SYNTH_LABELS.background],
    channels: 3,
    splits,
  };
  writeFileAtomic(path.join(out, 'synth.json'), `${JSON.stringify(sidecar, null, 1)}\n`);
  writeFileAtomic(path.join(out, 'dataset.json'), `${JSON.stringify(datasetJson, null, 2)}\n`);
  return { out, cases, annotators: M, size, seed, splits: Object.fromEntries(Object.entries(splits).map(([k, v]) => [k, v.length])) };
}
