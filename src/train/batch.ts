// Data-pipeline batches (typed arrays) → the tensors a method's loss takes.
import { Batch } from '../data/pipeline';
import { TrainingBatch } from '../methods/method';
import { UserError } from '../errors';
import { tensor, tidy } from '../torch';

/**
 * counts become classes 0..M for the AVM. When a case lacks some annotations, its count over the A
 * available annotators is rescaled to M (round(count · M / A)) so that class c always means "a fraction
 * c/M of the annotators".
 */
export function toTrainingBatch(b: Batch, channels: number, annotators: number, structures: number): TrainingBatch {
  const B = b.size;
  const S = Math.round(Math.sqrt(b.images.length / (B * channels)));
  const plane = structures * S * S;
  const counts = new BigInt64Array(b.counts.length);
  for (let i = 0; i < B; i++) {
    const available = b.annotatorCount[i];
    const scale = available > 0 ? annotators / available : 0;
    for (let j = i * plane; j < (i + 1) * plane; j++) counts[j] = BigInt(Math.round(b.counts[j] * scale));
  }
  return tidy(() => ({
    size: B,
    images: tensor(b.images, [B, channels, S, S]),
    counts: tensor(counts, [B, structures, S, S]),
    meanVotes: tensor(b.meanVotes, [B, structures, S, S]),
    annotatorMasks: tensor(b.annotatorMasks, [B, annotators, structures, S, S], 'float32'),
    available: b.available,
  }));
}

/**
 * Rank `rank`'s rows of a global batch split evenly over `worldSize` ranks (data-parallel training).
 * The global batch's annotator availability travels along so that random per-sample draws are those
 * of the global batch.
 */
export function shardBatch(batch: TrainingBatch, rank: number, worldSize: number): TrainingBatch {
  if (batch.size % worldSize !== 0) {
    throw new UserError(`a batch of ${batch.size} image(s) cannot be split evenly over ${worldSize} ranks: choose --batch-size (and a training set of at least that many cases) divisible by WORLD_SIZE`);
  }
  const n = batch.size / worldSize;
  const first = rank * n;
  const M = batch.available.length / batch.size;
  return tidy(() => ({
    size: n,
    images: batch.images.narrow(0, first, n),
    counts: batch.counts.narrow(0, first, n),
    meanVotes: batch.meanVotes.narrow(0, first, n),
    annotatorMasks: batch.annotatorMasks.narrow(0, first, n),
    available: batch.available.slice(first * M, (first + n) * M),
    shard: { first, global: batch.size, globalAvailable: batch.available },
  }));
}
