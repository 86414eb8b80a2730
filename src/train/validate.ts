// Validation during training: the paper's two scores on the held-out training cases, computed by the
// same metric functions and the same aggregation as `avap evaluate` (src/metrics/aggregate.ts), so
// the score that selects the best epoch is the score a test-time evaluation of those cases reports.
import { DataLoader } from '../data/pipeline';
import { Method } from '../methods/method';
import { StructureAccumulator } from '../metrics/aggregate';
import { nanMean, NanMeanAccumulator } from '../metrics/accumulator';
import { CaseStructureEvaluator, Mask, meanVotingDice } from '../metrics/multiAnnotator';
import { noGrad, onDevice, tensor, tidy } from '../torch';
import { AnnotatorLayout } from '../data/layout';

/**
 * Mean over structures of: Mean Voting (the calibrated map against the mean vote) and Average (the
 * mean of the per-annotator columns, each over the cases that annotator annotated), as fractions.
 * A method's alternative calibrated maps add their Mean Voting by group (AVAP: `calibration`).
 */
export type ValidationScores = { mean_voting: number; average: number } & { [group: string]: number | Record<string, number> };

/**
 * Fewest validation cases whose score may choose a stage's weights. A case's cup soft Dice varies by
 * 6–9 points from image to image (measured on the synthetic test split), so the mean over n cases is
 * uncertain by about 4/√n points of the selection score: ±2.3 with 3 cases, ±0.9 with 20. Late
 * checkpoints under a decaying learning rate differ by less than that, so with fewer cases selection
 * follows noise (on a real 3-case validation set: 90.4 validation against 73.7 test Mean Voting) and
 * the final weights are the better choice.
 */
export const MIN_SELECTION_CASES = 20;

export async function validate(method: Method, loader: DataLoader): Promise<ValidationScores> {
  const M = loader.annotators.length;
  const K = loader.structures.length;
  const C = loader.channels;
  const S = loader.size;
  const plane = S * S;
  const layout = new AnnotatorLayout(M, K, plane);
  const evaluator = new CaseStructureEvaluator();
  const structures = Array.from({ length: K }, () => new StructureAccumulator(M));
  /** group → name → Mean Voting per structure. */
  const alternatives = new Map<string, Map<string, NanMeanAccumulator>>();
  method.model.eval(); // the caller restores its own modes before training on
  const device = method.model.parameterDevice();
  for await (const b of loader.epoch(0)) {
    const p = noGrad(() => tidy(() => {
      const images = onDevice(tensor(b.images, [b.size, C, S, S]), device);
      const out = method.predictForValidation?.(images) ?? { ...method.predict(images), alternatives: {} };
      return {
        calibrated: out.calibrated.data() as Float32Array,
        annotators: out.annotators.data() as Float32Array,
        alternatives: Object.entries(out.alternatives).map(([group, maps]) => [group, Object.entries(maps).map(([name, t]) => [name, t.data() as Float32Array] as const)] as const),
      };
    }));
    for (let i = 0; i < b.size; i++) {
      const annotations = Array.from({ length: K }, (_, s) => Array.from({ length: M }, (_, m): Mask | null =>
        (b.available[layout.slot(i, m)] ? layout.map(b.annotatorMasks, i, m, s) : null)));
      for (let s = 0; s < K; s++) {
        structures[s].add(evaluator.evaluate({
          meanPrediction: layout.structureMap(p.calibrated, i, s),
          annotatorPredictions: Array.from({ length: M }, (_, m) => layout.map(p.annotators, i, m, s)),
          annotations: annotations[s],
        }));
      }
      for (const [group, maps] of p.alternatives) {
        const byName = alternatives.get(group) ?? alternatives.set(group, new Map()).get(group)!;
        for (const [name, map] of maps) {
          const acc = byName.get(name) ?? byName.set(name, new NanMeanAccumulator(K)).get(name)!;
          acc.add(annotations.map((a, s) => meanVotingDice(layout.structureMap(map, i, s), a)));
        }
      }
    }
  }
  const aggregates = structures.map((a) => a.aggregate());
  const scores: ValidationScores = {
    mean_voting: score(aggregates.map((a) => a.mean_voting)),
    average: score(aggregates.map((a) => a.average)),
  };
  for (const [group, maps] of alternatives) scores[group] = Object.fromEntries([...maps].map(([name, acc]) => [name, score(acc.aggregate())]));
  return scores;
}

/** The mean over structures; 0 when nothing could be scored (no validation case has an annotation). */
function score(perStructure: number[]): number {
  const x = nanMean(perStructure);
  return Number.isFinite(x) ? x : 0;
}

export function selectionScore(scores: ValidationScores, select: 'mean_voting' | 'average' | 'mean_of_mean_voting_and_average'): number {
  if (select === 'mean_of_mean_voting_and_average') return (scores.mean_voting + scores.average) / 2;
  return scores[select];
}
