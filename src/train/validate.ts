// Validation during training: the paper's two scores on held-out training cases, computed with the
// same soft Dice as `avap evaluate`.
import { DataLoader } from '../data/pipeline';
import { Method } from '../methods/method';
import { AvapMethod } from '../methods/avap';
import { softDice } from '../metrics/dice';
import { noGrad, tensor, tidy } from '../torch';

export interface ValidationScores {
  /** Mean over structures of the soft Dice of the calibrated map against the mean vote. */
  mean_voting: number;
  /** Mean over structures and available annotators of the soft Dice of annotator k's prediction against k's mask. */
  average: number;
  /** AVAP only: mean voting under each calibration rule, to choose the default on data. */
  calibration?: { expectation: number; argmax: number };
}

export async function validate(method: Method, loader: DataLoader, epoch = 0): Promise<ValidationScores> {
  const M = loader.annotators.length;
  const K = loader.structures.length;
  const C = loader.channels;
  const S = loader.size;
  const plane = S * S;
  let mv = 0, mvCount = 0, avg = 0, avgCount = 0;
  const calib = { expectation: 0, argmax: 0 };
  const avap = method instanceof AvapMethod ? method : null;
  method.model.eval(); // the caller restores its own modes before training on
  for await (const b of loader.epoch(epoch)) {
    const { mean, annotators, variants } = noGrad(() => tidy(() => {
      const images = tensor(b.images, [b.size, C, S, S]);
      if (avap) {
        const p = avap.model.predictBothCalibrations(images);
        const variants = { expectation: p.expectation.data() as Float32Array, argmax: p.argmax.data() as Float32Array };
        return { mean: variants[avap.config.avm.calibration], annotators: p.annotators.data() as Float32Array, variants };
      }
      const p = method.predict(images);
      return { mean: p.mean.data() as Float32Array, annotators: p.annotators.data() as Float32Array, variants: null };
    }));
    for (let i = 0; i < b.size; i++) {
      for (let s = 0; s < K; s++) {
        const at = (i * K + s) * plane;
        const vote = b.meanVotes.subarray(at, at + plane);
        mv += softDice(mean.subarray(at, at + plane), vote);
        if (variants) {
          calib.expectation += softDice(variants.expectation.subarray(at, at + plane), vote);
          calib.argmax += softDice(variants.argmax.subarray(at, at + plane), vote);
        }
        mvCount++;
        for (let m = 0; m < M; m++) {
          if (!b.available[i * M + m]) continue;
          const a = ((i * M + m) * K + s) * plane;
          avg += softDice(annotators.subarray(a, a + plane), b.annotatorMasks.subarray(a, a + plane));
          avgCount++;
        }
      }
    }
  }
  const scores: ValidationScores = { mean_voting: mv / Math.max(1, mvCount), average: avg / Math.max(1, avgCount) };
  if (avap) scores.calibration = { expectation: calib.expectation / Math.max(1, mvCount), argmax: calib.argmax / Math.max(1, mvCount) };
  return scores;
}

export function selectionScore(scores: ValidationScores, select: 'mean_voting' | 'average' | 'both'): number {
  if (select === 'both') return (scores.mean_voting + scores.average) / 2;
  return scores[select];
}

