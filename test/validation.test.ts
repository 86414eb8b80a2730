// Training-time validation scores the held-out cases with the same metric functions and aggregation as
// `avap evaluate`: on a set with missing annotations both give the same Mean Voting and Average, where
// averaging over (case, annotator) pairs would not.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import {
  Method, MethodConfig, MethodDescriptor, Prediction, TrainingBatch,
  availableRows, evaluate, losses, openDataset, pickRows, registerMethod, torch, train, writeSynthDataset,
} from '../src/index';

/**
 * Binary per-annotator maps (their mean is a multiple of 1/M): written as 16-bit PNGs and read back,
 * they fall on the same side of every threshold, so `evaluate` sees exactly what validation saw.
 */
interface BinaryConfig extends MethodConfig { inChannels: number; steps: number }

class BinaryMethod implements Method {
  readonly name = 'binary';
  readonly encoder = null;
  readonly model: torch.nn.Conv2d;
  constructor(readonly config: BinaryConfig) {
    this.model = new torch.nn.Conv2d(config.inChannels, config.annotators.length * config.structures.length, 1);
  }
  private logits(images: torch.Tensor): torch.Tensor {
    const [B, , H, W] = images.shape;
    return this.model.forward(images).view([B, this.config.annotators.length, this.config.structures.length, H, W]);
  }
  stages() {
    return binary.plan(this.config).map((p) => ({ ...p, trained: [this.model], frozen: [], loss: (b: TrainingBatch) => torch.tidy(() => {
      const rows = availableRows(b, this.config.annotators.length)!;
      return losses.segmentationLoss(pickRows(this.logits(b.images), rows), pickRows(b.annotatorMasks, rows));
    }) }));
  }
  predict(images: torch.Tensor): Prediction {
    return torch.noGrad(() => torch.tidy(() => {
      const annotators = this.logits(images).gt(0).float();
      return { calibrated: annotators.mean(1), annotators };
    }));
  }
}

const binary: MethodDescriptor<BinaryConfig> = {
  name: 'binary', label: 'Binary', description: 'binary per-annotator maps from a 1×1 convolution',
  schema: z.object({ method: z.literal('binary'), structures: z.array(z.string()), annotators: z.array(z.string()), inChannels: z.number(), steps: z.number() }),
  configure: (c) => ({ method: 'binary', structures: c.structures, annotators: c.annotators, inChannels: c.inChannels, steps: c.steps }),
  plan: (c) => [{ name: 'fit', steps: c.steps, select: 'mean_of_mean_voting_and_average' }],
  build: (c) => new BinaryMethod(c),
};
registerMethod(binary);

test('validation during training reports what evaluate reports for the validation cases, missing annotations included', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-validation-'));
  const data = path.join(tmp, 'data');
  await writeSynthDataset({ out: data, cases: 16, annotators: 3, size: 32, seed: 2 });
  // Annotator A1 skipped every third case, A3 every second one (case000 keeps A2).
  const ds = await openDataset(data);
  ds.cases.forEach((c, i) => {
    if (i % 3 === 0) fs.rmSync(c.labels[0]!);
    if (i % 2 === 0) fs.rmSync(c.labels[2]!);
  });
  const run = path.join(tmp, 'run');
  const summary = await train({ data, out: run, method: 'binary', size: 32, batchSize: 4, lr: 1e-2, steps: 2, valFraction: 0.5, progress: false, print: () => undefined });

  const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
  const out = path.join(tmp, 'eval');
  // The validation cases as a split of their own, so evaluate selects exactly them.
  const datasetJson = path.join(data, 'dataset.json');
  fs.writeFileSync(datasetJson, JSON.stringify({ ...JSON.parse(fs.readFileSync(datasetJson, 'utf8')), splits: { val: config.data.valCases } }));
  const evaluation = await evaluate({ data, split: 'val', model: run, out });
  const mean = (r: Record<string, number | null>) => (r.disc! + r.cup!) / 2;
  assert.equal(summary.validation!.mean_voting, mean(evaluation.mean_voting));
  assert.equal(summary.validation!.average, mean(evaluation.average));

  // The set is one where the aggregation matters: the mean over available (case, annotator) pairs differs.
  const pairs = evaluation.per_case.flatMap((c) => Object.values(c.metrics).flatMap((m) => m.per_annotator.filter((x): x is number => x !== null)));
  const pairMean = pairs.reduce((a, b) => a + b, 0) / pairs.length;
  assert.ok(evaluation.per_case.some((c) => c.metrics.cup.per_annotator.includes(null)), 'some validation case lacks an annotation');
  assert.ok(Math.abs(pairMean - summary.validation!.average) > 1e-6, `pair mean ${pairMean} vs column mean ${summary.validation!.average}`);
});
