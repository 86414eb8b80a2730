// Data-pipeline batches (typed arrays) → the tensors a method's loss takes.
import { Batch } from '../data/pipeline';
import { agreementClass } from '../data/targets';
import { TrainingBatch } from '../methods/method';
import { UserError } from '../errors';
import { Device, onDevice, tensor, tidy } from '../torch';

/**
 * The pipeline's typed arrays as tensors on `device`, uploaded once per batch; agreement counts become
 * the AVM's classes 0..M (agreementClass).
 */
export function toTrainingBatch(b: Batch, channels: number, annotators: number, structures: number, device: Device = 'cpu'): TrainingBatch {
  const B = b.size;
  const S = Math.round(Math.sqrt(b.images.length / (B * channels)));
  const plane = structures * S * S;
  const classes = new BigInt64Array(b.agreementCounts.length);
  for (let i = 0; i < B; i++) {
    const available = b.annotatorCount[i];
    for (let j = i * plane; j < (i + 1) * plane; j++) classes[j] = BigInt(agreementClass(b.agreementCounts[j], available, annotators));
  }
  return tidy(() => ({
    size: B,
    images: onDevice(tensor(b.images, [B, channels, S, S]), device),
    agreementClasses: onDevice(tensor(classes, [B, structures, S, S]), device),
    meanVotes: onDevice(tensor(b.meanVotes, [B, structures, S, S]), device),
    annotatorMasks: onDevice(tensor(b.annotatorMasks, [B, annotators, structures, S, S], 'float32'), device),
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
    agreementClasses: batch.agreementClasses.narrow(0, first, n),
    meanVotes: batch.meanVotes.narrow(0, first, n),
    annotatorMasks: batch.annotatorMasks.narrow(0, first, n),
    available: batch.available.slice(first * M, (first + n) * M),
    shard: { first, global: batch.size, globalAvailable: batch.available },
  }));
}
