// npm run bench:convergence — how fast AVAP's variation head (AVM) learns the consensus, next to
// MV-UNet's sigmoid head, on the same backbone initialisation, seed, data order and budget.
//
// Both train on the training split for --steps optimiser steps (AVAP: step 1, backbone + AVM); every
// --eval-every steps both are scored on held-out cases (the test split, up to --eval-cases): soft Dice
// of the calibrated map against the mean vote per structure (Mean Voting), and how well the predicted
// structure area (pixels above 0.5) tracks the consensus area (pixels where the mean vote is above
// 0.5) across those images — Pearson correlation, and the mean ratio predicted / true on the cases
// whose consensus area is below the median (where a head that learned one "typical" size overshoots).
//
// Without --data the built-in synthetic dataset is generated (100 cases, 30 of them for training).
// Flags: --data DIR --size 128 --steps 600 --eval-every 50 --eval-cases 40 --batch 8 --lr 1e-3
//        --schedule poly (the trainer's default) --no-prior --encoder resnet34 --seed 0 --structure cup
//        --methods mv-unet,avap
// Last line: one JSON object.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Dataset, openDataset, selectCases } from '../src/data/dataset';
import { DataLoader, Batch } from '../src/data/pipeline';
import { computeNormalization } from '../src/data/normalization';
import { TrainingStatistics, trainingStatistics } from '../src/data/statistics';
import { writeSynthDataset } from '../src/data/synth';
import { Method } from '../src/methods/method';
import { buildMethod, methodConfigFor } from '../src/methods/registry';
import { softDice } from '../src/metrics/dice';
import { manualSeed, noGrad, optim, tensor, tidy } from '../src/torch';
import { toTrainingBatch } from '../src/train/batch';
import { TRAIN_DEFAULTS } from '../src/train/options';
import type { Schedule } from '../src/train/settings';
import { learningRateAt } from '../src/train/schedule';
import { Rng } from '../src/util/random';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const SIZE = Number(arg('size', '128'));
const STEPS = Number(arg('steps', '600'));
const EVAL_EVERY = Number(arg('eval-every', '50'));
const EVAL_CASES = Number(arg('eval-cases', '40'));
const BATCH = Number(arg('batch', '8'));
const LR = Number(arg('lr', '1e-3'));
const ENCODER = arg('encoder', 'resnet34');
const SEED = Number(arg('seed', '0'));
const METHODS = arg('methods', 'mv-unet,avap').split(',');
const SCHEDULE = arg('schedule', TRAIN_DEFAULTS.schedule) as Schedule;
/** --no-prior: the methods start from PyTorch's default initialisation only (what the paper's code does). */
const PRIOR = !process.argv.includes('--no-prior');

interface EvalPoint {
  step: number;
  loss: number;
  /** Per structure: Mean Voting soft Dice. */
  mean_voting: Record<string, number>;
  /** Per structure: Pearson correlation of predicted and consensus areas over the evaluation cases. */
  area_correlation: Record<string, number>;
  /** Per structure: mean predicted / consensus area on the cases with a below-median consensus area. */
  small_area_ratio: Record<string, number>;
}

function pearson(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}

async function evaluate(method: Method, loader: DataLoader): Promise<Omit<EvalPoint, 'step' | 'loss'>> {
  const K = loader.structures.length;
  const S = loader.size;
  const plane = S * S;
  const dice: number[][] = loader.structures.map(() => []);
  const predicted: number[][] = loader.structures.map(() => []);
  const truth: number[][] = loader.structures.map(() => []);
  method.model.eval();
  for await (const b of loader.epoch(0)) {
    const mean = noGrad(() => tidy(() => method.predict(tensor(b.images, [b.size, loader.channels, S, S])).calibrated.data() as Float32Array));
    for (let i = 0; i < b.size; i++) {
      for (let s = 0; s < K; s++) {
        const at = (i * K + s) * plane;
        const p = mean.subarray(at, at + plane);
        const v = b.meanVotes.subarray(at, at + plane);
        dice[s].push(softDice(p, v));
        let pa = 0, ta = 0;
        for (let j = 0; j < plane; j++) {
          if (p[j] > 0.5) pa++;
          if (v[j] > 0.5) ta++;
        }
        predicted[s].push(pa);
        truth[s].push(ta);
      }
    }
  }
  const byStructure = (f: (s: number) => number) => Object.fromEntries(loader.structures.map((name, s) => [name, +f(s).toFixed(4)]));
  return {
    mean_voting: byStructure((s) => dice[s].reduce((a, x) => a + x, 0) / dice[s].length),
    area_correlation: byStructure((s) => pearson(predicted[s], truth[s])),
    small_area_ratio: byStructure((s) => {
      const median = [...truth[s]].sort((a, b) => a - b)[Math.floor(truth[s].length / 2)];
      const small = truth[s].map((t, i) => [predicted[s][i], t]).filter(([, t]) => t > 0 && t < median);
      return small.reduce((a, [p, t]) => a + p / t, 0) / Math.max(1, small.length);
    }),
  };
}

async function trainAndTrack(name: string, ds: Dataset, train: DataLoader, evalLoader: DataLoader, statistics: TrainingStatistics): Promise<EvalPoint[]> {
  manualSeed(SEED); // the same backbone initialisation for every method
  const method = buildMethod(methodConfigFor(name, {
    structures: ds.structures.map((s) => s.name), annotators: ds.annotators, inChannels: ds.channels,
    encoder: ENCODER, steps: 1,
  }));
  // As the trainer does for a new run (AVAP: the AVM starts from the agreement-class frequencies).
  if (PRIOR) method.initialize?.(statistics);
  const stage = method.stages()[0]; // AVAP: step 1 (backbone + AVM); a baseline: its one stage
  for (const m of stage.frozen) m.eval().requiresGrad_(false);
  const params = [...new Set(stage.trained.flatMap((m) => m.parameters()))];
  const optimizer = new optim.Adam(params, { lr: LR, weightDecay: 1e-5 });
  const M = ds.annotators.length;
  const K = ds.structures.length;
  const curve: EvalPoint[] = [];
  let step = 0;
  let lossSum = 0;
  let lossCount = 0;
  const t0 = Date.now();
  for (let epoch = 0; step < STEPS; epoch++) {
    const rng = Rng.from(SEED, 'stage', 0, 'epoch', epoch);
    for await (const b of train.epoch(epoch) as AsyncIterable<Batch>) {
      for (const m of stage.trained) m.train();
      optimizer.setLr(learningRateAt({ kind: SCHEDULE }, LR, step, STEPS));
      lossSum += tidy(() => {
        optimizer.zeroGrad();
        const batch = toTrainingBatch(b, ds.channels, M, K);
        const l = tidy(() => stage.loss(batch, rng));
        l.backward();
        optimizer.step();
        return l.item();
      });
      lossCount++;
      step++;
      if (step % EVAL_EVERY === 0 || step === STEPS) {
        const point = { step, loss: +(lossSum / lossCount).toFixed(4), ...(await evaluate(method, evalLoader)) };
        lossSum = 0;
        lossCount = 0;
        curve.push(point);
        process.stderr.write(`${name} step ${step}: loss ${point.loss}, mean voting ${JSON.stringify(point.mean_voting)}, area r ${JSON.stringify(point.area_correlation)}, small-area ratio ${JSON.stringify(point.small_area_ratio)} (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`);
      }
      if (step >= STEPS) break;
    }
  }
  method.model.dispose();
  return curve;
}

/** First evaluated step at which the structure's Mean Voting reaches `target`; null if never. */
function stepsTo(curve: EvalPoint[], structure: string, target: number): number | null {
  return curve.find((p) => p.mean_voting[structure] >= target)?.step ?? null;
}

async function main(): Promise<void> {
  let dataDir = arg('data', '');
  if (!dataDir) {
    dataDir = path.resolve('.bench/convergence-data');
    if (!fs.existsSync(path.join(dataDir, 'dataset.json'))) {
      fs.rmSync(dataDir, { recursive: true, force: true });
      await writeSynthDataset({ out: dataDir, cases: 100, size: 256, seed: SEED });
    }
  }
  const ds = await openDataset(dataDir);
  const trainCases = selectCases(ds, { split: 'train' });
  const evalCases = selectCases(ds, { split: 'test' }).slice(0, EVAL_CASES);
  const normalization = await computeNormalization(ds, trainCases, SIZE, { kind: 'per-pixel' });
  const common = { size: SIZE, batchSize: BATCH, normalization, seed: SEED };
  const train = new DataLoader(ds, trainCases, { ...common, shuffle: true, augment: true, dropLast: trainCases.length > BATCH });
  const evalLoader = new DataLoader(ds, evalCases, { ...common, shuffle: false, augment: false, dropLast: false });
  const statistics = await trainingStatistics(ds, trainCases, SIZE);
  process.stderr.write(`${trainCases.length} training cases, ${evalCases.length} evaluation cases, ${SIZE}², ${ENCODER}, batch ${BATCH}, lr ${LR} (${SCHEDULE}), ${STEPS} steps, prior initialisation ${PRIOR ? 'on' : 'off'}\n`);
  const curves: Record<string, EvalPoint[]> = {};
  try {
    for (const name of METHODS) curves[name] = await trainAndTrack(name, ds, train, evalLoader, statistics);
  } finally {
    await Promise.all([train.close(), evalLoader.close()]);
  }
  const structure = arg('structure', 'cup');
  const best = (c: EvalPoint[]) => Math.max(...c.map((p) => p.mean_voting[structure]));
  // A common target: within 2% of the best Mean Voting any method reached in this run.
  const target = +(0.98 * Math.max(...Object.values(curves).map(best))).toFixed(4);
  const summary = Object.fromEntries(Object.entries(curves).map(([name, c]) => {
    const last = c[c.length - 1];
    return [name, {
      steps_to_target: stepsTo(c, structure, target), best_mean_voting: +best(c).toFixed(4),
      final_mean_voting: last.mean_voting[structure], final_area_correlation: last.area_correlation[structure],
      final_small_area_ratio: last.small_area_ratio[structure],
    }];
  }));
  process.stdout.write(`${JSON.stringify({ data: ds.name, train_cases: trainCases.length, eval_cases: evalCases.length, size: SIZE, encoder: ENCODER, lr: LR, schedule: SCHEDULE, prior: PRIOR, steps: STEPS, structure, target_mean_voting: target, ...summary })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
