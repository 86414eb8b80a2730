// Tensor plumbing for per-annotator targets and outputs, shared by the methods.
import { Tensor, tensor, tidy } from '../torch';
import { Rng } from '../util/random';
import { TrainingBatch, drawingBatch } from './method';
import { AnnotatorLayout } from '../data/layout';

/**
 * A method with one output map gives it to every annotator ([B, K, H, W] → [B, M, K, H, W]), as the
 * paper's Table II scores MV-UNet, LS-UNet and M1–M6 against each annotator.
 */
export function broadcastToAnnotators(map: Tensor, annotators: number): Tensor {
  return tidy(() => {
    const [B, K, H, W] = map.shape;
    return map.unsqueeze(1).expand([B, annotators, K, H, W]).contiguous();
  });
}

/** Flat indices b·M + m of the (image, annotator) pairs whose annotation exists; null when none does. */
export function availableRows(batch: TrainingBatch, annotators: number, only?: number): Tensor | null {
  const rows: bigint[] = [];
  const layout = new AnnotatorLayout(annotators, 1);
  for (let b = 0; b < batch.size; b++) {
    for (let m = 0; m < annotators; m++) {
      if ((only === undefined || m === only) && batch.available[layout.slot(b, m)]) rows.push(BigInt(layout.slot(b, m)));
    }
  }
  return rows.length ? tensor(BigInt64Array.from(rows), [rows.length]) : null;
}

/** Picks rows of a per-annotator tensor [B, M, ...] by flat index: [R, ...]. */
export function pickRows(perAnnotator: Tensor, rows: Tensor): Tensor {
  const [B, M, ...rest] = perAnnotator.shape;
  return perAnnotator.reshape([B * M, ...rest]).indexSelect(0, rows.to(perAnnotator.device));
}

/** A random available annotator per sample (section III-E: random annotator codes during APM training). */
export function pickAnnotators(batch: TrainingBatch, M: number, rng: Rng): number[] {
  const all = drawingBatch(batch);
  const layout = new AnnotatorLayout(M, 1);
  const chosen = Array.from({ length: all.size }, (_, b) => {
    const available = [];
    for (let m = 0; m < M; m++) if (all.available[layout.slot(b, m)]) available.push(m);
    return available.length ? available[rng.int(available.length)] : rng.int(M);
  });
  return batch.shard ? chosen.slice(batch.shard.first, batch.shard.first + batch.size) : chosen;
}

/** Flat rows b·M + chosen[b] of one annotator per sample. */
export function chosenRows(chosen: number[], annotators: number): Tensor {
  const layout = new AnnotatorLayout(annotators, 1);
  return tensor(BigInt64Array.from(chosen, (m, b) => BigInt(layout.slot(b, m))), [chosen.length]);
}

/** A zero that keeps the graph connected (for a batch without any usable target). */
export function zeroLoss(output: Tensor): Tensor {
  return output.sum().mul(0);
}
