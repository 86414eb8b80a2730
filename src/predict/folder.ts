import * as fs from 'node:fs';
import * as path from 'node:path';
import sharp from 'sharp';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { checkStaysInside } from '../io/confine';
import { encodePng, readImage, readImageHeader } from '../io/image';
import { hasEntry } from '../io/readBounded';

/**
 * The prediction layout, written by `avap predict` and read by `avap evaluate`:
 *
 *   PRED_DIR/<case>/<structure>_mean.png          calibrated probability map
 *   PRED_DIR/<case>/<structure>_annotator<k>.png  probability for annotator k, k = 1..M
 *
 * Single-channel PNG at the case's original annotation size. Written as 16 bits with
 * value = round(p × 65535); 16-bit (p = v / 65535) and 8-bit (p = v / 255) are both read.
 */

export const PREDICTION_MAX_16 = 65535;

export interface Size {
  width: number;
  height: number;
}

export interface PredictionFileRef {
  structure: string;
  /** 1-based annotator number, or null for the calibrated (mean) map. */
  annotator: number | null;
  file: string;
}

/** Probability maps of one case, values in [0, 1], row-major. */
export interface PredictionCase {
  width: number;
  height: number;
  /** calibrated[s]: calibrated map of structure s. */
  calibrated: Float32Array[];
  /** annotators[k][s]: map of structure s for annotator k + 1. */
  annotators: Float32Array[][];
}

export function meanPredictionFile(dir: string, caseId: string, structure: string): string {
  return path.join(dir, caseId, `${structure}_mean.png`);
}

/** `k` is 1-based, as in the file name. */
export function annotatorPredictionFile(dir: string, caseId: string, structure: string, k: number): string {
  return path.join(dir, caseId, `${structure}_annotator${k}.png`);
}

/** Every file the layout requires for one case, in structure order, the mean map first. */
export function predictionFiles(dir: string, caseId: string, structures: readonly string[], annotatorCount: number): PredictionFileRef[] {
  const out: PredictionFileRef[] = [];
  for (const structure of structures) {
    out.push({ structure, annotator: null, file: meanPredictionFile(dir, caseId, structure) });
    for (let k = 1; k <= annotatorCount; k++) out.push({ structure, annotator: k, file: annotatorPredictionFile(dir, caseId, structure, k) });
  }
  return out;
}

function toUint16(map: Float32Array | Float64Array, what: string): Uint16Array {
  const out = new Uint16Array(map.length);
  for (let i = 0; i < map.length; i++) {
    const p = map[i];
    if (Number.isNaN(p)) throw new Error(`writePredictionCase: ${what} has NaN at pixel ${i}`);
    out[i] = Math.round((p <= 0 ? 0 : p >= 1 ? 1 : p) * PREDICTION_MAX_16);
  }
  return out;
}

/**
 * Writes one case's predictions (each file atomically) as 16-bit greyscale PNGs, values clamped to
 * [0, 1]. meanMaps[s] and annotatorMaps[k][s] are width × height, row-major. Returns the files.
 */
export async function writePredictionCase(
  dir: string,
  caseId: string,
  structures: readonly string[],
  meanMaps: (Float32Array | Float64Array)[],
  annotatorMaps: (Float32Array | Float64Array)[][],
  width: number,
  height: number,
  /** 1-based annotator number of each entry of annotatorMaps; default 1..M. */
  annotatorNumbers?: readonly number[],
): Promise<string[]> {
  if (meanMaps.length !== structures.length) throw new Error(`writePredictionCase: ${structures.length} structures, ${meanMaps.length} mean maps`);
  annotatorMaps.forEach((perStructure, k) => {
    if (perStructure.length !== structures.length) throw new Error(`writePredictionCase: annotator ${k + 1} has ${perStructure.length} structure maps, expected ${structures.length}`);
  });
  const jobs: { file: string; map: Float32Array | Float64Array }[] = [];
  structures.forEach((s, si) => {
    jobs.push({ file: meanPredictionFile(dir, caseId, s), map: meanMaps[si] });
    annotatorMaps.forEach((perStructure, k) => jobs.push({ file: annotatorPredictionFile(dir, caseId, s, annotatorNumbers?.[k] ?? k + 1), map: perStructure[si] }));
  });
  for (const job of jobs) {
    if (job.map.length !== width * height) throw new Error(`writePredictionCase: ${job.file}: map has ${job.map.length} values, expected ${width}x${height}`);
    checkStaysInside('--out', dir, job.file);
  }
  fs.mkdirSync(path.join(dir, caseId), { recursive: true });
  // Settle every write before reporting a failure, so none lands after the caller has cleaned up.
  const settled = await Promise.allSettled(jobs.map(async (job) => writeFileAtomic(job.file, await encodePng({ width, height, channels: 1, bitDepth: 16, data: toUint16(job.map, job.file) }))));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return jobs.map((j) => j.file);
}

/** Runs `fn` over `items` with at most `limit` in flight; results keep the items' order. */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const sizeText = (s: Size): string => `${s.width}x${s.height}`;

/** One case to check: its id and the sizes its prediction files may have (the first is the original). */
export interface ExpectedPredictionCase {
  id: string;
  sizes: Size[];
}

/**
 * Checks every prediction file of every case without decoding pixels (headers only): the case
 * folder and each file exist, decode as single-channel 8- or 16-bit images, and have an accepted
 * size. Returns one line per problem (empty when all is well).
 */
export async function checkPredictions(dir: string, cases: readonly ExpectedPredictionCase[], structures: readonly string[], annotatorCount: number): Promise<string[]> {
  const perCase = await mapConcurrent(cases, 16, async (c) => {
    const problems: string[] = [];
    const caseDir = path.join(dir, c.id);
    if (!fs.existsSync(caseDir) || !fs.statSync(caseDir).isDirectory()) {
      problems.push(`${caseDir}/: prediction folder missing`);
      return problems;
    }
    for (const ref of predictionFiles(dir, c.id, structures, annotatorCount)) {
      const problem = await checkPredictionFile(ref.file, c.sizes);
      if (problem) problems.push(problem);
    }
    return problems;
  });
  return perCase.flat();
}

async function checkPredictionFile(file: string, sizes: Size[]): Promise<string | null> {
  if (!hasEntry(file)) return `${file}: missing`;
  let meta: sharp.Metadata;
  try {
    meta = await readImageHeader(file);
  } catch (err) {
    if (err instanceof UserError) return err.message;
    throw err;
  }
  const channels = (meta.channels ?? 0) - (meta.hasAlpha ? 1 : 0);
  if (channels !== 1 || meta.isPalette) return `${file}: expected a single-channel greyscale image, got ${meta.isPalette ? 'a palette image' : `${meta.channels} channels`}`;
  if (meta.depth !== 'uchar' && meta.depth !== 'ushort') return `${file}: expected 8- or 16-bit values, got ${meta.depth}`;
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!sizes.some((s) => s.width === w && s.height === h)) return `${file}: is ${w}x${h}, expected ${sizes.map(sizeText).join(' or ')}`;
  return null;
}

/** One-line summary of problems: the first `limit` and how many more. */
export function formatProblems(dir: string, problems: readonly string[], limit = 10): string {
  const shown = problems.slice(0, limit).join('; ');
  const more = problems.length > limit ? `; … and ${problems.length - limit} more` : '';
  return `${dir}: ${problems.length} problem${problems.length === 1 ? '' : 's'} with the predictions: ${shown}${more}`;
}

/** Decodes one prediction file to probabilities (v / 65535 for 16 bits, v / 255 for 8 bits). */
export async function readPredictionMap(file: string, accept?: Size[]): Promise<{ width: number; height: number; data: Float32Array }> {
  const img = await readImage(file);
  if (img.channels !== 1) throw new UserError(`${file}: expected a single-channel greyscale image, got ${img.channels} channels`);
  if (accept && !accept.some((s) => s.width === img.width && s.height === img.height)) {
    throw new UserError(`${file}: is ${img.width}x${img.height}, expected ${accept.map(sizeText).join(' or ')}`);
  }
  const scale = img.bitDepth === 16 ? PREDICTION_MAX_16 : 255;
  const data = new Float32Array(img.data.length);
  for (let i = 0; i < data.length; i++) data[i] = img.data[i] / scale;
  return { width: img.width, height: img.height, data };
}

/**
 * Reads one case's predictions. With `expected`, every file must have that size; without it, all
 * files must share the size of the first. Missing or mis-sized files are UserErrors naming them.
 */
export async function readPredictionCase(dir: string, caseId: string, structures: readonly string[], annotatorCount: number, expected?: Size): Promise<PredictionCase> {
  const refs = predictionFiles(dir, caseId, structures, annotatorCount);
  const settled = await Promise.allSettled(refs.map((r) => readPredictionMap(r.file, expected ? [expected] : undefined)));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason; // the first bad file in layout order, whatever finished first
  const maps = settled.map((r) => (r as PromiseFulfilledResult<Awaited<ReturnType<typeof readPredictionMap>>>).value);
  const first = maps[0];
  maps.forEach((m, i) => {
    if (m.width !== first.width || m.height !== first.height) {
      throw new UserError(`${refs[i].file}: is ${m.width}x${m.height}, expected ${first.width}x${first.height} like ${refs[0].file}`);
    }
  });
  const per = annotatorCount + 1;
  return {
    width: first?.width ?? expected?.width ?? 0,
    height: first?.height ?? expected?.height ?? 0,
    calibrated: structures.map((_, s) => maps[s * per].data),
    annotators: Array.from({ length: annotatorCount }, (_, k) => structures.map((_, s) => maps[s * per + 1 + k].data)),
  };
}
