// npm run bench:preference — is AVAP's preference head ever worse than its own consensus for an
// annotator, with and without the cross-fitted gate, and how does AVAP compare with MH-UNet and
// MV-UNet at budgets where they have converged, over several seeds?
//
// For each seed and budget (step 1 and the baselines: N steps; AVAP's step 2: N/2 steps at 5× lr) it
// trains AVAP (gate cross-fitted over 2 folds), MH-UNet and MV-UNet on the training split and scores
// them on the test split. The gated AVAP run is scored three ways: as trained (gate), with the gate
// set back to identity (the APM's full departure for everyone: the head without the gate, the same
// weights), and with its calibrated map given to every annotator (consensus).
//
// Without --data the built-in synthetic dataset is generated (--cases 92, --train 32).
// Flags: --data DIR --out DIR --size 64 --encoder resnet18 --steps 300,1000 --seeds 0,1,2
// Last line: one JSON object (means over seeds; per seed in `runs`).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDataset, readAnnotations, selectCases, structureMasks } from '../src/data/dataset';
import { writeSynthDataset } from '../src/data/synth';
import { readPredictionCase } from '../src/predict/folder';
import { EvaluationSummary } from '../src/results/summary';
import { nanMean } from '../src/metrics/accumulator';
import { averageDice } from '../src/metrics/multiAnnotator';
import { evaluateModel } from '../src/eval/evaluateModel';
import { loadStateDict, ones, saveStateDict, tidy } from '../src/torch';
import { train } from '../src/train/trainer';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const list = (s: string) => s.split(',').map(Number);

const OUT = path.resolve(arg('out', '/tmp/avap-bench-preference'));
const SIZE = Number(arg('size', '64'));
const ENCODER = arg('encoder', 'resnet18');
const BUDGETS = list(arg('steps', '300,1000'));
const SEEDS = list(arg('seeds', '0,1,2'));
const CASES = Number(arg('cases', '92'));
const TRAIN = Number(arg('train', '32'));

/** Per structure: per-annotator columns, their Average, and Mean Voting where it applies. */
interface Scores { per_annotator: Record<string, number[]>; average: Record<string, number>; mean_voting?: Record<string, number> }

const r2 = (x: number) => Math.round(x * 1e4) / 100;
const percentScores = (s: Scores): Scores => ({
  per_annotator: Object.fromEntries(Object.entries(s.per_annotator).map(([k, v]) => [k, v.map(r2)])),
  average: Object.fromEntries(Object.entries(s.average).map(([k, v]) => [k, r2(v)])),
  ...(s.mean_voting ? { mean_voting: Object.fromEntries(Object.entries(s.mean_voting).map(([k, v]) => [k, r2(v)])) } : {}),
});

function fromSummary(s: EvaluationSummary): Scores {
  return {
    per_annotator: Object.fromEntries(s.structures.map((k) => [k, s.per_annotator[k].map((v) => v ?? NaN)])),
    average: Object.fromEntries(s.structures.map((k) => [k, s.average[k] ?? NaN])),
    mean_voting: Object.fromEntries(s.structures.map((k) => [k, s.mean_voting[k] ?? NaN])),
  };
}

async function main(): Promise<void> {
  const started = Date.now();
  fs.mkdirSync(OUT, { recursive: true });
  let data = arg('data', '');
  if (!data) {
    data = path.join(OUT, 'data');
    if (!fs.existsSync(path.join(data, 'dataset.json'))) await writeSynthDataset({ out: data, cases: CASES, train: TRAIN, size: Math.max(SIZE, 128), seed: 7 });
  }
  const ds = await openDataset(data);
  const testCases = selectCases(ds, { split: 'test' });
  const structures = ds.structures.map((s) => s.name);
  const M = ds.annotators.length;
  const runs: Record<string, unknown>[] = [];

  for (const steps of BUDGETS) {
    for (const seed of SEEDS) {
      const row: Record<string, unknown> = { steps, seed };
      for (const method of ['avap', 'mh-unet', 'mv-unet']) {
        const runDir = path.join(OUT, `steps${steps}`, `seed${seed}`, method);
        if (!fs.existsSync(path.join(runDir, 'summary.json'))) {
          fs.rmSync(runDir, { recursive: true, force: true });
          await train({
            data, out: runDir, method, split: 'train', size: SIZE, encoder: ENCODER, steps, seed, resume: false,
            methodOptions: method === 'avap' ? { preferenceSteps: Math.round(steps / 2) } : {}, print: () => undefined,
          });
        }
        const summary = await evaluateModel(runDir, ds, testCases, path.join(runDir, 'eval'), { label: method });
        row[method] = percentScores(fromSummary(summary));
        if (method !== 'avap') continue;

        // The same weights with the gate back at identity: every annotator keeps the APM's full departure.
        const ungated = `${runDir}-nogate`;
        fs.rmSync(ungated, { recursive: true, force: true });
        fs.cpSync(runDir, ungated, { recursive: true });
        fs.rmSync(path.join(ungated, 'eval'), { recursive: true, force: true });
        tidy(() => {
          const { state } = loadStateDict(path.join(runDir, 'model.safetensors'));
          for (const key of ['gate.common', 'gate.own']) state[key] = ones(state[key].shape);
          saveStateDict(path.join(ungated, 'model.safetensors'), state);
        });
        row['avap-nogate'] = percentScores(fromSummary(await evaluateModel(ungated, ds, testCases, path.join(ungated, 'eval'), { label: 'avap-nogate' })));

        // The calibrated map given to every annotator.
        const perAnnotator = structures.map(() => Array.from({ length: M }, () => [] as number[]));
        for (const c of testCases) {
          const ann = await readAnnotations(ds, c);
          const pred = await readPredictionCase(path.join(runDir, 'eval', 'predictions'), c.id, structures, M);
          structures.forEach((_, s) => {
            const annotations = structureMasks(ann, s);
            averageDice(Array(M).fill(pred.calibrated[s]), annotations).per_annotator.forEach((d, k) => { if (Number.isFinite(d)) perAnnotator[s][k].push(d); });
          });
        }
        const consensus: Scores = {
          per_annotator: Object.fromEntries(structures.map((k, s) => [k, perAnnotator[s].map((v) => nanMean(v))])),
          average: Object.fromEntries(structures.map((k, s) => [k, nanMean(perAnnotator[s].map((v) => nanMean(v)))])),
        };
        row['avap-consensus'] = percentScores(consensus);
      }
      runs.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
    }
  }

  // Means over seeds per budget and variant.
  const variants = ['avap', 'avap-nogate', 'avap-consensus', 'mh-unet', 'mv-unet'];
  const means: Record<string, Record<string, unknown>> = {};
  for (const steps of BUDGETS) {
    const rows = runs.filter((r) => r.steps === steps);
    means[`steps${steps}`] = Object.fromEntries(variants.map((v) => {
      const all = rows.map((r) => r[v] as Scores);
      const mean = (f: (s: Scores) => number) => Math.round(100 * all.reduce((a, s) => a + f(s), 0) / all.length) / 100;
      return [v, {
        average: Object.fromEntries(structures.map((k) => [k, mean((s) => s.average[k])])),
        ...(all[0].mean_voting ? { mean_voting: Object.fromEntries(structures.map((k) => [k, mean((s) => s.mean_voting![k])])) } : {}),
        per_annotator: Object.fromEntries(structures.map((k) => [k, Array.from({ length: M }, (_, m) => mean((s) => s.per_annotator[k][m]))])),
      }];
    }));
  }
  const result = { data: ds.name, train_cases: selectCases(ds, { split: 'train' }).length, test_cases: testCases.length, size: SIZE, encoder: ENCODER, seeds: SEEDS, budgets: BUDGETS, means, runs, seconds: Math.round((Date.now() - started) / 1000) };
  fs.writeFileSync(path.join(OUT, 'result.json'), JSON.stringify(result, null, 1));
  process.stdout.write(`${JSON.stringify({ ...result, runs: undefined })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
