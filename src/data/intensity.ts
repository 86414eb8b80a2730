/**
 * Intensity normalisation of raw (NIfTI) images per modality, as nnU-Net does it.
 *
 * - CT: intensities mean the same thing in every scan (Hounsfield units), so one transform serves the
 *   whole dataset: clip to the 0.5 and 99.5 percentiles of the training set's foreground intensities
 *   (foreground = voxels any rater marks), then subtract the foreground mean and divide by its sd. As
 *   in nnU-Net the mean and sd are those of the unclipped foreground values. Computed once at training
 *   and recorded in the run (intensity.json), so every later reader applies the same numbers.
 * - Any other modality (MR, …): scanner units are arbitrary, so each image is z-scored on its own.
 *
 * A rule is plain JSON, one per image channel.
 */
import { z } from 'zod';
import { UserError } from '../errors';

/** The modality name that selects the dataset-wide CT rule; compared case-insensitively. */
export const CT = 'CT';
/** Percentiles of the foreground intensities a CT image is clipped to. */
export const CT_PERCENTILES: [number, number] = [0.5, 99.5];

export const channelIntensitySchema = z.discriminatedUnion('modality', [
  z.object({ modality: z.literal('CT'), clip: z.tuple([z.number(), z.number()]), mean: z.number(), sd: z.number().positive() }).strict(),
  z.object({ modality: z.literal('per-image') }).strict(),
]).superRefine((r, ctx) => {
  if (r.modality === 'CT' && !(r.clip[0] <= r.clip[1])) ctx.addIssue({ code: 'custom', path: ['clip'], message: 'the lower clip bound exceeds the upper' });
});
export const intensitySchema = z.array(channelIntensitySchema).min(1);

export type ChannelIntensity = z.infer<typeof channelIntensitySchema>;
export type Intensity = ChannelIntensity[];

/** True when a declared modality name selects the CT rule. */
export function isCt(modality: string | undefined): boolean {
  return modality !== undefined && modality.toUpperCase() === CT;
}

/** Validates intensity rules read back from JSON; errors name `source` and the field. */
export function parseIntensity(value: unknown, source: string): Intensity {
  const r = intensitySchema.safeParse(value);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue.path.length ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '') : '(root)';
    throw new UserError(`${source}: invalid intensity rule at ${field} (${issue.message})`);
  }
  return r.data;
}

/** The p-th percentile (0–100) of sorted values, linear between ranks (numpy's default, which nnU-Net uses). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) throw new Error('percentile of no values');
  const rank = (p / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/**
 * The CT rule from the training set's foreground intensities of one channel. `source` names the data
 * in the error raised when there is no foreground to learn from.
 */
export function ctRule(foreground: ArrayLike<number>, source: string): ChannelIntensity {
  const values = Float64Array.from(foreground).filter(Number.isFinite).sort();
  if (values.length === 0) throw new UserError(`${source}: no rater marks any voxel of the training images, so the CT intensity statistics cannot be computed`);
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / values.length;
  let sq = 0;
  for (const v of values) sq += (v - mean) * (v - mean);
  const sd = Math.sqrt(sq / values.length);
  // A constant foreground has sd 0; dividing by 1 instead keeps the values finite and centred.
  return { modality: 'CT', clip: [percentile(values, CT_PERCENTILES[0]), percentile(values, CT_PERCENTILES[1])], mean, sd: sd > 0 ? sd : 1 };
}

/** Applies one channel's rule to its raw values; non-finite values become 0 (the mean). */
export function normalizeChannel(values: ArrayLike<number>, rule: ChannelIntensity, file: string, channel: number): Float64Array {
  const out = new Float64Array(values.length);
  if (rule.modality === 'CT') {
    const [lo, hi] = rule.clip;
    const inv = 1 / rule.sd;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      out[i] = Number.isFinite(v) ? (Math.min(hi, Math.max(lo, v)) - rule.mean) * inv : 0;
    }
    return out;
  }
  const { mean, sd } = finiteMeanSd(values, file, channel);
  const inv = sd > 0 ? 1 / sd : 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = Number.isFinite(v) ? (v - mean) * inv : 0;
  }
  return out;
}

/** Mean and (population) sd of a channel's finite values; a UserError naming the file when there is none. */
export function finiteMeanSd(values: ArrayLike<number>, file: string, channel: number): { mean: number; sd: number } {
  let sum = 0;
  let sq = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      sum += v;
      sq += v * v;
      n++;
    }
  }
  if (n === 0) throw new UserError(`${file}: channel ${channel + 1} holds no finite value`);
  const mean = sum / n;
  return { mean, sd: Math.sqrt(Math.max(0, sq / n - mean * mean)) };
}
