/**
 * Input normalisation. The paper: "All images were normalized via subtracting the mean and dividing by
 * the standard deviation on a pixel-by-pixel basis. The mean and standard deviation were counted on
 * training cases." — 'per-pixel': a mean and a std for every (channel, row, column) of the resized
 * training images. 'imagenet' is the per-channel ImageNet mean/std that the public RIGA code uses;
 * 'per-channel' is the usual per-channel statistic of the training images.
 *
 * A Normalization is plain JSON, so it is saved with a model and applied unchanged at prediction.
 * Values are in [0, 1] (8-bit / 255, 16-bit / 65535) before normalising.
 */
import { constants } from 'node:buffer';
import { z } from 'zod';
import { UserError } from '../errors';
import type { CaseRecord, Dataset } from './dataset';
import { prepareCaseImage, PreparedImage } from './prepare';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

/**
 * Floor on a standard deviation. Pixel positions that hardly vary over the training images (a constant
 * border) would otherwise turn tiny differences at prediction time into huge inputs.
 */
export const MIN_STD = 1 / 255;

export const normalizationSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('per-pixel'), size: z.number().int().positive(), channels: z.number().int().positive(), mean: z.array(z.number()), std: z.array(z.number().positive()) }),
  z.object({ kind: z.literal('per-channel'), mean: z.array(z.number()).min(1), std: z.array(z.number().positive()).min(1) }),
  z.object({ kind: z.literal('imagenet') }),
]).superRefine((n, ctx) => {
  if (n.kind === 'per-pixel' && (n.mean.length !== n.channels * n.size * n.size || n.std.length !== n.mean.length)) {
    ctx.addIssue({ code: 'custom', message: `per-pixel mean/std must have channels·size² = ${n.channels * n.size * n.size} values, got ${n.mean.length}/${n.std.length}` });
  }
  if (n.kind === 'per-channel' && n.std.length !== n.mean.length) ctx.addIssue({ code: 'custom', message: 'per-channel mean and std differ in length' });
});

export type Normalization = z.infer<typeof normalizationSchema>;
export type NormalizationKind = Normalization['kind'];

/**
 * Characters one value takes in normalization.json at most ('-1.2345678901234567e-100,'). The file
 * is one JSON string, and V8 cannot build a string longer than buffer.constants.MAX_STRING_LENGTH
 * (2^29 − 24 characters), so per-pixel statistics for a large input cannot be written (or read).
 */
const CHARS_PER_VALUE = 25;
const MAX_STRING_LENGTH = constants.MAX_STRING_LENGTH;

/** The largest side (a multiple of 32) whose per-pixel mean and std fit one JSON string. */
export function largestPerPixelSize(channels: number): number {
  const side = Math.sqrt(MAX_STRING_LENGTH / (2 * channels * CHARS_PER_VALUE));
  return Math.floor(side / 32) * 32;
}

/** Refuses an input size whose per-pixel normalisation could not be written to normalization.json. */
export function checkNormalizationFits(flag: string, kind: NormalizationKind, channels: number, size: number): void {
  const largest = largestPerPixelSize(channels);
  if (kind === 'per-pixel' && size > largest) {
    throw new UserError(
      `${flag} ${size} with --normalization per-pixel: ${2 * channels * size * size} mean and std values are too many to write to normalization.json ` +
        `(over the longest string JavaScript can hold); use ${flag} ${largest} or less for ${channels}-channel images, or --normalization per-channel`,
    );
  }
}

/** Validates a normalization read back from JSON (e.g. a checkpoint). `source` names the file in errors. */
export function parseNormalization(value: unknown, source: string): Normalization {
  const r = normalizationSchema.safeParse(value);
  if (!r.success) throw new UserError(`${source}: invalid normalization (${r.error.issues[0].message})`);
  return r.data;
}

/** Per-element mean and 1/std for a [C,S,S] input. */
export class Normalizer {
  readonly mean: Float32Array;
  readonly invStd: Float32Array;

  constructor(norm: Normalization, readonly channels: number, readonly size: number) {
    const plane = size * size;
    this.mean = new Float32Array(channels * plane);
    this.invStd = new Float32Array(channels * plane);
    if (norm.kind === 'per-pixel') {
      if (norm.size !== size || norm.channels !== channels) {
        throw new UserError(`per-pixel normalization was computed for ${norm.channels}x${norm.size}x${norm.size} inputs, not ${channels}x${size}x${size}`);
      }
      for (let i = 0; i < norm.mean.length; i++) {
        this.mean[i] = norm.mean[i];
        this.invStd[i] = 1 / Math.max(norm.std[i], MIN_STD);
      }
      return;
    }
    const [mean, std] = norm.kind === 'imagenet' ? imagenetFor(channels) : [norm.mean, norm.std];
    if (mean.length !== channels) throw new UserError(`per-channel normalization has ${mean.length} channels, the input has ${channels}`);
    for (let c = 0; c < channels; c++) {
      this.mean.fill(mean[c], c * plane, (c + 1) * plane);
      this.invStd.fill(1 / Math.max(std[c], MIN_STD), c * plane, (c + 1) * plane);
    }
  }

  /** dst[offset + i] = (src[i] - mean[i]) / std[i] for a [C,S,S] input in [0, 1]. */
  apply(src: Float32Array, dst: Float32Array, offset = 0): void {
    const { mean, invStd } = this;
    for (let i = 0; i < mean.length; i++) dst[offset + i] = (src[i] - mean[i]) * invStd[i];
  }
}

/** ImageNet statistics; a greyscale input gets the average of the three channels. */
function imagenetFor(channels: number): [number[], number[]] {
  if (channels === 3) return [IMAGENET_MEAN, IMAGENET_STD];
  const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return [Array(channels).fill(avg(IMAGENET_MEAN)), Array(channels).fill(avg(IMAGENET_STD))];
}

const round6 = (x: number) => Math.round(x * 1e6) / 1e6;

/**
 * Mean and std of the (unaugmented) training images, resized to size×size exactly as the pipeline
 * resizes them. 'per-pixel' (default, the paper) keeps one value per channel and position;
 * 'per-channel' pools positions. `imagenet` needs no data and is returned as is.
 */
export async function computeNormalization(
  ds: Dataset,
  cases: CaseRecord[],
  size: number,
  opts: { kind?: NormalizationKind; concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<Normalization> {
  const kind = opts.kind ?? 'per-pixel';
  if (kind === 'imagenet') return { kind: 'imagenet' };
  if (cases.length === 0) throw new UserError(`${ds.root}: cannot compute normalization statistics from zero cases`);
  const C = ds.channels;
  const plane = size * size;
  const sum = new Float64Array(C * plane);
  const sumSq = new Float64Array(C * plane);
  const accumulate = (img: PreparedImage) => {
    const inv = 1 / img.maxValue;
    for (let i = 0; i < sum.length; i++) {
      const v = img.pixels[i] * inv;
      sum[i] += v;
      sumSq[i] += v * v;
    }
  };
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++];
      accumulate(await prepareCaseImage(c, size, C, ds.intensity));
      opts.onProgress?.(++done, cases.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 4, cases.length) }, worker));
  const n = cases.length;
  const stats = (s: number, sq: number, count: number) => {
    const mean = s / count;
    return [mean, Math.sqrt(Math.max(0, sq / count - mean * mean))];
  };
  if (kind === 'per-pixel') {
    const mean: number[] = new Array(sum.length);
    const std: number[] = new Array(sum.length);
    for (let i = 0; i < sum.length; i++) {
      const [m, s] = stats(sum[i], sumSq[i], n);
      mean[i] = round6(m);
      std[i] = round6(Math.max(s, MIN_STD));
    }
    return { kind: 'per-pixel', size, channels: C, mean, std };
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (let c = 0; c < C; c++) {
    let s = 0;
    let sq = 0;
    for (let i = c * plane; i < (c + 1) * plane; i++) {
      s += sum[i];
      sq += sumSq[i];
    }
    const [m, sd] = stats(s, sq, n * plane);
    mean.push(round6(m));
    std.push(round6(Math.max(sd, MIN_STD)));
  }
  return { kind: 'per-channel', mean, std };
}

