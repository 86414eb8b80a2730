/**
 * The built-in synthetic dataset (`avap synth`): RIGA-like fundus crops around the optic disc, with M
 * simulated annotators who each have a consistent personal style plus per-case jitter. It is the
 * project's embedded default for the demo and the tests, so it is deterministic per seed and fast
 * (100 cases at 256² in a few seconds).
 *
 * Image (src/data/fundus.ts): a fundus crop made to be as hard to read as a real photograph — a
 * disc with a soft rim and sometimes a false edge of peripapillary atrophy, a cup seen only through a
 * faint pallor and the bend of the vessels climbing over its rim, and illumination, colour, blur and
 * noise that change from image to image.
 *
 * Annotators: as in RIGA, they agree closely on the disc (scale differences of ~1–2%) and disagree on
 * the cup (±20% size, rounder, offset), because the cup's edge is the one that is hard to see. At
 * 128 px the cup's radius is ~12 px and A1 and A2 differ by ~5 px in diameter.
 *
 * Splits: a small training set (30 cases by default, like the small real sets this tool is meant for)
 * and every other case as the test split, so scores are measured on many unseen images.
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
export type { Ellipse } from './fundus';
import { Ellipse, ellipseRho, renderFundus } from './fundus';
import type { DatasetJsonInput } from './schema';

export const SYNTH_DEFAULTS = { cases: 100, annotators: 6, size: 256, seed: 0, train: 30 };
/** Label values written to the label maps. */
export const SYNTH_LABELS = { background: 0, disc: 128, cup: 255 };
/**
 * Per-case jitter of every annotator, as a fraction of the structure's radius (std of a normal), and
 * the free-hand wobble of every drawn contour (std of the amplitude of its 2nd–4th radial harmonics).
 * Sized so the majority vote scores about as RIGA's does against the individual annotators (soft Dice
 * ≈ 97–98 disc, ≈ 85–86 cup).
 */
export const SYNTH_JITTER = { discScale: 0.015, discCentre: 0.015, cupScale: 0.09, cupCentre: 0.07, cupAngle: 0.1, discContour: 0.015, cupContour: 0.03 };

export interface AnnotatorStyle {
  name: string;
  description: string;
  /** Multiplies the latent cup's semi-axes. */
  cupScale: number;
  /** Multiplies the latent disc's semi-axes. */
  discScale: number;
  /** 0 = the cup's true shape, 1 = a circle of the same area. */
  cupRoundness: number;
  /**
   * Cup centre shift as a fraction of the latent cup's mean radius: towards the eye's temporal side
   * (left or right, depending on the eye), and down the image.
   */
  cupOffset: [number, number];
}

type StyleTemplate = Omit<AnnotatorStyle, 'name'>;

/** The first six annotators (fixed, whatever the seed); further ones are drawn from the seed. */
export const BASE_STYLES: StyleTemplate[] = [
  { description: 'draws the cup larger (+20%)', cupScale: 1.2, discScale: 1.01, cupRoundness: 0, cupOffset: [0, 0] },
  { description: 'draws the cup smaller (-20%)', cupScale: 0.8, discScale: 0.99, cupRoundness: 0, cupOffset: [0, 0] },
  { description: 'draws the cup rounder (a circle of the same area)', cupScale: 1, discScale: 1, cupRoundness: 1, cupOffset: [0, 0] },
  { description: 'draws the cup offset towards the temporal side (the paler side of the disc)', cupScale: 1, discScale: 1, cupRoundness: 0, cupOffset: [0.3, 0] },
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
  latent: { disc: Ellipse; cup: Ellipse; temporal: 1 | -1 };
  drawn: { disc: Ellipse; cup: Ellipse; discArea: number; cupArea: number }[];
}

/**
 * An annotator's free-hand version of an ellipse: the normalised radius (< 1 inside) against a contour
 * whose radius wobbles with random 2nd–4th harmonics of the polar angle.
 */
function freehand(e: Ellipse, wobble: number, rng: Rng): (px: number, py: number) => number {
  const rho = ellipseRho(e);
  const harmonics = [2, 3, 4].map((k) => ({ k, a: rng.normal(0, wobble), phase: rng.uniform(0, 2 * Math.PI) }));
  return (px, py) => {
    const theta = Math.atan2(py - e.cy, px - e.cx);
    let r = 1;
    for (const h of harmonics) r += h.a * Math.cos(h.k * theta + h.phase);
    return rho(px, py) / r;
  };
}

/** Generates case `index` of the dataset for `seed` (independent of how many cases are generated). */
export function synthCase(index: number, seed: number, size: number, styles: AnnotatorStyle[]): SynthCase {
  const rng = Rng.from(seed, 'case', index);
  const S = size;
  const plane = S * S;

  // Latent anatomy: a vertically elongated disc near the centre (RIGA's DiscRegion images are crops
  // centred on the disc), and a cup inside it (cup-to-disc ratio 0.4–0.68, a glaucoma-screening population).
  const r = S * rng.uniform(0.17, 0.23);
  const discElong = rng.uniform(1.0, 1.15);
  const disc: Ellipse = { cx: S * rng.uniform(0.46, 0.54), cy: S * rng.uniform(0.46, 0.54), rx: r / Math.sqrt(discElong), ry: r * Math.sqrt(discElong), angle: rng.uniform(-0.35, 0.35) };
  const cupR = r * rng.uniform(0.4, 0.68);
  const cupElong = rng.uniform(1.0, 1.35);
  const cup: Ellipse = { cx: disc.cx + r * rng.uniform(-0.08, 0.08), cy: disc.cy + r * rng.uniform(-0.08, 0.08), rx: cupR / Math.sqrt(cupElong), ry: cupR * Math.sqrt(cupElong), angle: rng.uniform(-0.35, 0.35) };

  const temporal: 1 | -1 = rng.bernoulli(0.5) ? 1 : -1;
  const image = renderFundus(rng, S, { disc, cup, temporal });

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
      cx: cup.cx + temporal * st.cupOffset[0] * cupR + ar.normal(0, SYNTH_JITTER.cupCentre * cupR),
      cy: cup.cy + st.cupOffset[1] * cupR + ar.normal(0, SYNTH_JITTER.cupCentre * cupR),
      rx: cup.rx ** (1 - rho) * g ** rho * cs,
      ry: cup.ry ** (1 - rho) * g ** rho * cs,
      angle: cup.angle + ar.normal(0, SYNTH_JITTER.cupAngle),
    };
    const label = new Uint8Array(plane);
    let discArea = 0;
    let cupArea = 0;
    const inDisc = freehand(aDisc, SYNTH_JITTER.discContour, ar);
    const inCup = freehand(aCup, SYNTH_JITTER.cupContour, ar);
    // Only the disc's bounding box can hold structure pixels.
    const reach = 1.2 * Math.max(aDisc.rx, aDisc.ry) + 1; // room for the contour's wobble
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
  return { image, labels, latent: { disc, cup, temporal }, drawn };
}

export interface SynthOptions {
  out: string;
  cases?: number;
  annotators?: number;
  size?: number;
  seed?: number;
  /** Cases in the train split (the first ones); the rest form the test split. */
  train?: number;
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
    /** +1: the temporal side is to the right of the image, −1: to the left. */
    temporal: 1 | -1;
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
  // Without --train: up to 30 training cases, always leaving at least one for the test split.
  const nTrain = opts.train ?? (cases >= 2 ? Math.min(SYNTH_DEFAULTS.train, cases - 1) : cases);
  checkInt('train', nTrain, 1, cases);
  const nTest = cases - nTrain;
  const ids = Array.from({ length: cases }, (_, i) => synthCaseId(i, cases));
  const splits: Record<string, string[]> = { train: ids.slice(0, nTrain) };
  if (nTest > 0) splits.test = ids.slice(nTrain);
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
      split: i < nTrain ? 'train' : 'test',
      disc: roundEllipse(c.latent.disc),
      cup: roundEllipse(c.latent.cup),
      temporal: c.latent.temporal,
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
    description: `avap synth --cases ${cases} --train ${nTrain} --annotators ${M} --size ${size} --seed ${seed}: RIGA-like fundus crops; latent shapes and annotator styles in synth.json`,
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
