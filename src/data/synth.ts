/**
 * The built-in synthetic dataset (`avap synth`): RIGA-like fundus crops around the optic disc, with M
 * simulated annotators who, as on a real RIGA-like set, mostly differ by per-image noise, and one of
 * whom has a strong, consistent style. It is the project's embedded default for the demo and the
 * tests, so it is deterministic per seed and fast (100 cases at 256² in a few seconds).
 *
 * Image (src/data/fundus.ts): a fundus crop made to be as hard to read as a real photograph — a
 * disc with a soft rim and sometimes a false edge of peripapillary atrophy, a cup seen only through a
 * faint pallor and the bend of the vessels climbing over its rim, and illumination, colour, blur and
 * noise that change from image to image.
 *
 * Annotators: as in RIGA, they agree closely on the disc and disagree on the cup, because the cup's
 * edge is the one that is hard to see. Each draws the latent shapes with per-case jitter scaled by
 * their own noise level (careful to sloppy) and at most a weak habit (a few percent of cup size, a
 * slightly rounder cup), so most of their departure from the consensus changes from image to image and
 * cannot be learnt as a style. A4 is the exception: a cup 30% larger and shifted towards the temporal
 * side on every image, as the real set's one annotator with a distinctly larger cup. Annotators after
 * the sixth are drawn from the seed by the same recipe, with a small chance of a strong style.
 *
 * Splits: a small training set (30 cases by default, like the small real sets this tool is meant for)
 * and every other case as the test split, so scores are measured on many unseen images.
 *
 * Output, in the native layout: dataset.json, images/<case>.png, labels/<case>_<annotator>.png
 * (0 background, 128 disc rim, 255 cup — RIGA's values, with the nesting rule disc ⊃ cup), and the
 * sidecar synth.json with each case's latent true disc and cup and each annotator's style (habit and
 * noise level) and drawn ellipses, so tests can check what a model learned of each annotator.
 */
import * as fs from 'node:fs';
import { checkNewDatasetFolder } from '../io/outputFolder';
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
 * Per-case jitter of an annotator of noise level 1, as a fraction of the structure's radius (std of a
 * normal), and the free-hand wobble of every drawn contour (std of the amplitude of its 2nd–4th radial
 * harmonics); each annotator's `noise` multiplies all of it. Sized, with BASE_STYLES, so that each
 * annotator agrees with the majority vote about as the six ophthalmologists of a real RIGA-like set do
 * (Dice, disc 97–98; cup 91.0, 87.7, 86.0, 72.6, 90.4, 87.8). Measured (majorityVoteAgreement, 100
 * cases of seed 0, 128²; 256² within 0.1): disc 98.3, 97.9, 97.7, 97.7, 98.3, 98.1; cup 90.9, 87.4,
 * 85.8, 72.9, 90.2, 87.8.
 */
export const SYNTH_JITTER = { discScale: 0.015, discCentre: 0.015, cupScale: 0.125, cupCentre: 0.1, cupAngle: 0.14, discContour: 0.015, cupContour: 0.04 };

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
  /**
   * Multiplies this annotator's per-case jitter (SYNTH_JITTER: scale, centre, angle and contour wobble
   * of the cup, scale and wobble of the disc): below 1 a careful annotator, above 1 a sloppy one.
   */
  noise: number;
}

type StyleTemplate = Omit<AnnotatorStyle, 'name'>;

/**
 * The first six annotators (fixed, whatever the seed); further ones are drawn from the seed. As on a
 * real RIGA-like set, most differ from the consensus mainly by how carefully they draw (noise) and
 * only a little by habit; one (A4) draws the cup distinctly larger on every image.
 */
export const BASE_STYLES: StyleTemplate[] = [
  { description: 'careful; cup +2%', cupScale: 1.02, discScale: 1.005, cupRoundness: 0, cupOffset: [0, 0], noise: 0.8 },
  { description: 'a little sloppy; cup -3%', cupScale: 0.97, discScale: 0.995, cupRoundness: 0, cupOffset: [0, 0], noise: 1.1 },
  { description: 'the sloppiest; cup a little rounder', cupScale: 1, discScale: 1, cupRoundness: 0.3, cupOffset: [0, 0], noise: 1.2 },
  { description: 'strong style: cup 30% larger and shifted towards the temporal side; ordinary noise', cupScale: 1.3, discScale: 1.01, cupRoundness: 0, cupOffset: [0.15, 0], noise: 1 },
  { description: 'careful; no habit', cupScale: 1, discScale: 1, cupRoundness: 0, cupOffset: [0, 0], noise: 0.85 },
  { description: 'ordinary noise; cup -2%', cupScale: 0.98, discScale: 1, cupRoundness: 0, cupOffset: [0, 0], noise: 1.05 },
];

/** Chance that an annotator drawn from the seed (A7 on) has a strong style like A4's. */
export const STRONG_STYLE_CHANCE = 0.15;

const r4 = (x: number) => Math.round(x * 1e4) / 1e4;
const percent = (scale: number) => `${scale >= 1 ? '+' : '-'}${Math.round(Math.abs(scale - 1) * 1000) / 10}%`;

/** Styles of M annotators named A1..AM. */
export function annotatorStyles(count: number, seed: number): AnnotatorStyle[] {
  return Array.from({ length: count }, (_, m) => {
    const name = `A${m + 1}`;
    if (m < BASE_STYLES.length) return { name, ...BASE_STYLES[m], cupOffset: [...BASE_STYLES[m].cupOffset] as [number, number] };
    return { name, ...drawnStyle(Rng.from(seed, 'style', m)) };
  });
}

/**
 * An annotator drawn from the seed, by the base annotators' recipe: mostly a noise level with at most
 * a weak habit; rarely a strong, consistent style (a much larger or smaller cup) with ordinary noise.
 */
function drawnStyle(rng: Rng): StyleTemplate {
  const discScale = r4(rng.uniform(0.99, 1.01));
  if (rng.bernoulli(STRONG_STYLE_CHANCE)) {
    const cupScale = r4(rng.bernoulli(0.7) ? rng.uniform(1.25, 1.4) : rng.uniform(0.7, 0.78));
    const temporal = rng.bernoulli(0.5) ? r4(rng.uniform(0.05, 0.15)) : 0;
    const noise = r4(rng.uniform(0.8, 1.2));
    const parts = [`strong style: cup ${percent(cupScale)}`];
    if (temporal > 0) parts.push(`cup offset ${temporal} temporal`);
    return { description: `generated, ${parts.join(', ')}; noise x${noise}`, cupScale, discScale, cupRoundness: 0, cupOffset: [temporal, 0], noise };
  }
  const noise = r4(rng.uniform(0.7, 1.3));
  const cupScale = r4(rng.bernoulli(0.6) ? rng.uniform(0.96, 1.04) : 1);
  const cupRoundness = rng.bernoulli(0.2) ? r4(rng.uniform(0.2, 0.4)) : 0;
  const dir = rng.uniform(0, 2 * Math.PI);
  const mag = rng.bernoulli(0.2) ? rng.uniform(0.03, 0.08) : 0;
  const cupOffset: [number, number] = [r4(mag * Math.cos(dir)), r4(mag * Math.sin(dir))];
  const parts = [`noise x${noise}`];
  if (cupScale !== 1) parts.push(`cup ${percent(cupScale)}`);
  if (cupRoundness > 0) parts.push(`roundness ${cupRoundness}`);
  if (mag > 0) parts.push(`cup offset (${cupOffset[0]}, ${cupOffset[1]})`);
  return { description: `generated, weak style: ${parts.join(', ')}`, cupScale, discScale, cupRoundness, cupOffset, noise };
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

  // Each annotator: its style applied to the latent shapes, plus this case's jitter at its noise level.
  const labels: Uint8Array[] = [];
  const drawn: SynthCase['drawn'] = [];
  styles.forEach((st, m) => {
    const ar = Rng.from(seed, 'annotator', index, m);
    const jitter = SYNTH_JITTER;
    const noise = st.noise;
    const ds = st.discScale * (1 + ar.normal(0, noise * jitter.discScale));
    const aDisc: Ellipse = { cx: disc.cx + ar.normal(0, noise * jitter.discCentre * r), cy: disc.cy + ar.normal(0, noise * jitter.discCentre * r), rx: disc.rx * ds, ry: disc.ry * ds, angle: disc.angle };
    const g = Math.sqrt(cup.rx * cup.ry); // radius of the circle with the cup's area
    const rho = st.cupRoundness;
    const cs = st.cupScale * (1 + ar.normal(0, noise * jitter.cupScale));
    const aCup: Ellipse = {
      cx: cup.cx + temporal * st.cupOffset[0] * cupR + ar.normal(0, noise * jitter.cupCentre * cupR),
      cy: cup.cy + st.cupOffset[1] * cupR + ar.normal(0, noise * jitter.cupCentre * cupR),
      rx: cup.rx ** (1 - rho) * g ** rho * cs,
      ry: cup.ry ** (1 - rho) * g ** rho * cs,
      angle: cup.angle + ar.normal(0, noise * jitter.cupAngle),
    };
    const label = new Uint8Array(plane);
    let discArea = 0;
    let cupArea = 0;
    const inDisc = freehand(aDisc, noise * jitter.discContour, ar);
    const inCup = freehand(aCup, noise * jitter.cupContour, ar);
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

/**
 * How closely each annotator agrees with the others, measured as on a real RIGA-like set: per case
 * and structure, the annotator's mask against the majority vote (the pixels that more than half of
 * the M annotators mark, i.e. a mean vote > 0.5 as the evaluation binarises it), Dice in percent,
 * averaged over the cases. `cases` holds, per case, one label map per annotator with SYNTH_LABELS' values.
 */
export function majorityVoteAgreement(cases: Iterable<readonly ArrayLike<number>[]>): { disc: number[]; cup: number[] } {
  const structures = { disc: (v: number) => v !== SYNTH_LABELS.background, cup: (v: number) => v === SYNTH_LABELS.cup };
  let totals: { disc: number[]; cup: number[] } | null = null;
  let count = 0;
  for (const labels of cases) {
    const M = labels.length;
    const n = labels[0].length;
    const perAnnotator = (totals ??= { disc: new Array(M).fill(0), cup: new Array(M).fill(0) });
    if (perAnnotator.disc.length !== M) throw new RangeError(`majorityVoteAgreement: cases have ${perAnnotator.disc.length} and ${M} annotators`);
    for (const [structure, inside] of Object.entries(structures) as ['disc' | 'cup', (v: number) => boolean][]) {
      const votes = new Uint16Array(n);
      for (const l of labels) for (let j = 0; j < n; j++) votes[j] += inside(l[j]) ? 1 : 0;
      labels.forEach((l, m) => {
        let both = 0;
        let own = 0;
        let majority = 0;
        for (let j = 0; j < n; j++) {
          const a = inside(l[j]);
          const b = 2 * votes[j] > M;
          own += a ? 1 : 0;
          majority += b ? 1 : 0;
          both += a && b ? 1 : 0;
        }
        perAnnotator[structure][m] += own + majority === 0 ? 1 : (2 * both) / (own + majority);
      });
    }
    count++;
  }
  if (!totals) throw new RangeError('majorityVoteAgreement: no cases');
  const percentOfCases = (xs: number[]) => xs.map((x) => (100 * x) / count);
  return { disc: percentOfCases(totals.disc), cup: percentOfCases(totals.cup) };
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
  checkNewDatasetFolder(opts.out, 'synth');
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
