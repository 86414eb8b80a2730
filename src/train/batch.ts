// Data-pipeline batches (typed arrays) → the tensors a method's loss takes.
import { Batch } from '../data/pipeline';
import { TrainingBatch } from '../methods/method';
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
