// AVAP as a trainable method: the two-step strategy of section III-E (step 1 backbone + AVM, step 2 the
// APM alone with a random annotator per sample), or the joint weighted loss of Table V.
import { AVAP, AvapConfig } from '../models/avap';
import { Tensor, tensor, tidy } from '../torch';
import { preferenceLoss, variationLoss } from '../train/losses';
import { Rng } from '../util/random';
import { Method, Prediction, Stage, TrainingBatch } from './method';

export interface AvapTraining {
  /** 'two-step' (the paper's) or 'joint' with one weighted loss (Table V). */
  strategy: 'two-step' | 'joint';
  /** Epochs of step 1 (backbone + AVM) and step 2 (APM); joint training uses variationEpochs. */
  variationEpochs: number;
  preferenceEpochs: number;
  /** Joint only: one weight per AVM branch (structure), then the APM's weight. */
  jointWeights?: number[];
}

export class AvapMethod implements Method {
  readonly name = 'avap';
  readonly model: AVAP;

  constructor(readonly config: AvapConfig, readonly training: AvapTraining) {
    this.model = new AVAP(config);
    const K = config.structures.length;
    if (training.strategy === 'joint' && training.jointWeights && training.jointWeights.length !== K + 1) {
      throw new Error(`joint weights: expected ${K + 1} values (one per structure, then the APM), got ${training.jointWeights.length}`);
    }
  }

  stages(): Stage[] {
    const m = this.model;
    if (this.training.strategy === 'joint') {
      return [{ name: 'joint', epochs: this.training.variationEpochs, trained: [m], frozen: [], select: 'both' }];
    }
    return [
      { name: 'variation', epochs: this.training.variationEpochs, trained: [m.backbone, m.avm], frozen: [m.apm], select: 'mean_voting' },
      { name: 'preference', epochs: this.training.preferenceEpochs, trained: [m.apm], frozen: [m.backbone, m.avm], select: 'average' },
    ];
  }

  loss(stage: Stage, batch: TrainingBatch, rng: Rng): Tensor {
    return tidy(() => {
      const M = this.config.annotators.length;
      const K = this.config.structures.length;
      const wantPreference = stage.name !== 'variation';
      const chosen = wantPreference ? pickAnnotators(batch, M, rng) : undefined;
      const out = this.model.forward(batch.images, chosen?.map((k) => [k]));
      const avmLosses = stage.name === 'preference' ? [] : out.variation.map((logits, s) =>
        variationLoss(logits, batch.counts.select(1, s), batch.meanVotes.select(1, s), M));
      let apmLoss: Tensor | null = null;
      if (wantPreference) {
        // Each sample's target: its chosen annotator's masks, gathered as [B, K, S, S].
        const [B, , , S] = batch.annotatorMasks.shape;
        const rows = tensor(BigInt64Array.from(chosen!, (k, b) => BigInt(b * M + k)), [B]);
        const masks = batch.annotatorMasks.reshape([B * M, K, S, S]).indexSelect(0, rows);
        apmLoss = preferenceLoss(out.preference!.squeeze(1), masks);
      }
      if (stage.name === 'variation') return sum(avmLosses);
      if (stage.name === 'preference') return apmLoss!;
      const w = this.training.jointWeights ?? Array(K + 1).fill(1 / (K + 1));
      return sum([...avmLosses.map((l, s) => l.mul(w[s])), apmLoss!.mul(w[K])]);
    });
  }

  predict(images: Tensor): Prediction {
    const { calibrated, annotators } = this.model.predict(images);
    return { mean: calibrated, annotators };
  }
}

/** A random available annotator per sample (section III-E: random annotator codes during APM training). */
export function pickAnnotators(batch: TrainingBatch, M: number, rng: Rng): number[] {
  return Array.from({ length: batch.size }, (_, b) => {
    const available = [];
    for (let m = 0; m < M; m++) if (batch.available[b * M + m]) available.push(m);
    return available.length ? available[rng.int(available.length)] : rng.int(M);
  });
}

function sum(terms: Tensor[]): Tensor {
  return terms.reduce((a, b) => a.add(b));
}
