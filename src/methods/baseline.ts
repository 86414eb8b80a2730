// What the paper's comparison methods (Table II) share: the config fields every one of them has, one
// training stage on the shared trainer, and the tensor plumbing for per-annotator targets.
import { BackboneConfig } from '../models/backbone';
import { Tensor, nn, tensor, tidy } from '../torch';
import { Stage, TrainingBatch } from './method';

/** Config fields common to every baseline (the AVAP config keeps its own, older shape). */
export interface BaselineConfig {
  structures: string[];
  annotators: string[];
  backbone: BackboneConfig;
  /** Baselines train in one stage; `avap train --variation-epochs N` (or `--epochs N`) sets it. */
  training: { epochs: number };
}

/** One stage training the whole model, the best epoch chosen by `select` on the validation cases. */
export function singleStage(model: nn.Module, epochs: number, select: Stage['select']): Stage[] {
  return [{ name: 'train', epochs, trained: [model], frozen: [], select }];
}

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
  for (let b = 0; b < batch.size; b++) {
    for (let m = 0; m < annotators; m++) {
      if ((only === undefined || m === only) && batch.available[b * annotators + m]) rows.push(BigInt(b * annotators + m));
    }
  }
  return rows.length ? tensor(BigInt64Array.from(rows), [rows.length]) : null;
}

/** Picks rows of a per-annotator tensor [B, M, ...] by flat index: [R, ...]. */
export function pickRows(perAnnotator: Tensor, rows: Tensor): Tensor {
  const [B, M, ...rest] = perAnnotator.shape;
  return perAnnotator.reshape([B * M, ...rest]).indexSelect(0, rows);
}

/** A zero that keeps the graph connected (for a batch without any usable target). */
export function zeroLoss(output: Tensor): Tensor {
  return output.sum().mul(0);
}
