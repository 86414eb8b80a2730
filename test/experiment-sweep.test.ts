// `avap experiment` at several budgets and seeds: the convergence rule, the paired bootstrap, the
// learning curves and figures, Table II with mean ± sd and daggers, and a tiny sweep that reuses
// every finished run when budgets and seeds are added.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { writeSynthDataset } from '../src/data/synth';
import { EvaluationSummary } from '../src/results/summary';
import { UserError } from '../src/errors';
import { pairedBootstrap } from '../src/experiment/bootstrap';
import { LOSS_FALL_THRESHOLD, SCORE_RISE_THRESHOLD, stageTrend, stillImproving } from '../src/experiment/convergence';
import { curveOf, readRunCurve } from '../src/experiment/curves';
import { differencesToBest } from '../src/experiment/differences';
import { ExperimentOptions, runExperiment } from '../src/experiment/experiment';
import { lineChartSvg, niceTicks, writeLineChart } from '../src/experiment/figures';
import { SharedSettings, recordCombinations } from '../src/experiment/settings';
import { NOT_CONVERGED_NOTE, table2 } from '../src/results/tables';
import { parseIntList } from '../src/util/flags';
import { Rng } from '../src/util/random';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-sweep-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** 20 rounds over `steps` steps, the value of each round from its step. */
function rounds(steps: number, value: (step: number) => number) {
  return Array.from({ length: 20 }, (_, r) => Math.round(((r + 1) * steps) / 20)).map((step) => ({ step, value: value(step) }));
}

test('the convergence rule: last quarter against the quarter before, 1% of a loss or half a Dice point', () => {
  const cases: { name: string; points: { step: number; value: number }[]; steps: number; better: 'lower' | 'higher'; improving: boolean | null }[] = [
    { name: 'a loss still falling steadily', points: rounds(400, (s) => 2 - s / 400), steps: 400, better: 'lower', improving: true },
    { name: 'a flat loss', points: rounds(400, () => 0.7), steps: 400, better: 'lower', improving: false },
    { name: 'a loss falling by 0.5% only', points: rounds(400, (s) => (s > 300 ? 0.995 : 1)), steps: 400, better: 'lower', improving: false },
    { name: 'a loss falling by 2%', points: rounds(400, (s) => (s > 300 ? 0.98 : 1)), steps: 400, better: 'lower', improving: true },
    { name: 'a loss rising again', points: rounds(400, (s) => (s > 300 ? 1.2 : 1)), steps: 400, better: 'lower', improving: false },
    { name: 'a loss of zero', points: rounds(400, () => 0), steps: 400, better: 'lower', improving: false },
    { name: 'a score rising by 1 point', points: rounds(400, (s) => (s > 300 ? 0.81 : 0.8)), steps: 400, better: 'higher', improving: true },
    { name: 'a score rising by 0.3 points', points: rounds(400, (s) => (s > 300 ? 0.803 : 0.8)), steps: 400, better: 'higher', improving: false },
    { name: 'a score falling (overfitting)', points: rounds(400, (s) => (s > 300 ? 0.7 : 0.8)), steps: 400, better: 'higher', improving: false },
    { name: 'one round: nothing to compare', points: [{ step: 1, value: 1 }], steps: 1, better: 'lower', improving: null },
    { name: 'two rounds of two steps: no round in the third quarter', points: [{ step: 1, value: 2 }, { step: 2, value: 1 }], steps: 2, better: 'lower', improving: null },
    { name: 'four rounds: one round per quarter', points: [1, 2, 3, 4].map((step) => ({ step, value: 5 - step })), steps: 4, better: 'lower', improving: true },
  ];
  for (const c of cases) assert.equal(stageTrend(c.points, c.steps, c.better).improving, c.improving, c.name);
  const t = stageTrend(rounds(400, (s) => (s > 300 ? 0.98 : s > 200 ? 1 : 3)), 400, 'lower');
  assert.equal(t.previous_quarter, 1, 'each quarter is the mean of its own rounds only');
  assert.ok(Math.abs(t.last_quarter! - 0.98) < 1e-12);
  assert.ok(Math.abs(t.improvement! - 0.02) < 1e-12);
  assert.equal(LOSS_FALL_THRESHOLD, 0.01);
  assert.equal(SCORE_RISE_THRESHOLD, 0.005);
  assert.equal(stillImproving([{ improving: false }, { improving: true }]), true, 'any stage still improving');
  assert.equal(stillImproving([{ improving: false }, { improving: null }]), false);
  assert.equal(stillImproving([{ improving: null }]), null);
});

test('the paired bootstrap on hand-computed cases', () => {
  const a = [[0.9, 0.8, 0.7, 0.6]];
  const same = pairedBootstrap(a, a)!;
  assert.deepEqual([same.difference, same.low, same.high], [0, 0, 0], 'identical methods: [0, 0]');
  const worse = pairedBootstrap([[1, 2, 3, 4, 5]], [[2, 3, 4, 5, 6]])!;
  assert.deepEqual([worse.difference, worse.low, worse.high], [-1, -1, -1], 'worse by exactly 1 on every case: [-1, -1]');
  // Unpaired spread between cases is large, the paired difference constant: the interval stays a point.
  const shifted = pairedBootstrap([[10, 50, 90], [20, 60, 100]], [[12, 52, 92], [22, 62, 102]])!;
  assert.deepEqual([shifted.low, shifted.high], [-2, -2], 'pairing across cases and seeds');
  // Differences 0 and 2 on two cases: the mean 1, resampled means in {0, 1, 2}, so the interval is [0, 2].
  const two = pairedBootstrap([[1, 3]], [[1, 1]])!;
  assert.deepEqual([two.difference, two.low, two.high], [1, 0, 2]);
  const missing = pairedBootstrap([[1, null, 3]], [[0, 5, 2]])!;
  assert.equal(missing.difference, 1, 'a case without both scores is left out of the pair');
  assert.equal(pairedBootstrap([[null]], [[1]]), null, 'nothing to pair');
  assert.deepEqual(pairedBootstrap([[1, 2, 3]], [[3, 1, 2]], { seed: 5 }), pairedBootstrap([[1, 2, 3]], [[3, 1, 2]], { seed: 5 }), 'seeded: the same interval every time');
  assert.throws(() => pairedBootstrap([[1, 2]], [[1]]), /same 1 seeds × 2 cases/);
});

test('the paired bootstrap covers the true mean difference on a large random sample, with the normal width', () => {
  const rng = new Rng(11);
  const n = 400;
  const base = Array.from({ length: n }, () => rng.normal(0.8, 0.1));
  const other = base.map((x) => x - 0.03 + rng.normal(0, 0.02));
  const r = pairedBootstrap([other], [base])!;
  assert.ok(r.low < -0.03 && -0.03 < r.high, `[${r.low}, ${r.high}] covers −0.03`);
  const width = 2 * 1.96 * 0.02 / Math.sqrt(n);
  assert.ok(Math.abs((r.high - r.low) - width) < 0.2 * width, `width ${r.high - r.low} ≈ ${width}: the shared case spread (0.1) is paired away`);
});

test('curves: steps counted across stages, the last logging of a re-run round kept, each stage judged on its own', () => {
  const run = path.join(tmp, 'run');
  fs.mkdirSync(run, { recursive: true });
  const round = (stage: string, step: number, steps: number, loss: number) => JSON.stringify({ event: 'round', stage, step, steps, loss, lr: 0.001, val: null });
  const lines = [JSON.stringify({ event: 'start' }),
    ...[1, 2, 3, 4].map((s) => round('step1', s, 4, 1)), round('step2', 1, 4, 9),
    JSON.stringify({ event: 'resume' }), round('step2', 1, 4, 4), ...[2, 3, 4].map((s) => round('step2', s, 4, 5 - s)), '{"event": "round", "sta'];
  fs.writeFileSync(path.join(run, 'log.jsonl'), lines.join('\n') + '\n');
  const curve = readRunCurve(run);
  assert.deepEqual(curve.points.map((p) => [p.step, p.stage, p.stage_step, p.loss]), [
    [1, 'step1', 1, 1], [2, 'step1', 2, 1], [3, 'step1', 3, 1], [4, 'step1', 4, 1], [5, 'step2', 1, 4], [6, 'step2', 2, 3], [7, 'step2', 3, 2], [8, 'step2', 4, 1],
  ]);
  assert.deepEqual(curve.stages.map((s) => [s.name, s.offset, s.judged_on, s.trend.improving]), [['step1', 0, 'loss', false], ['step2', 4, 'loss', true]]);
  assert.equal(curve.still_improving, true);

  const val = (mean_voting: number, average: number) => ({ mean_voting, average });
  const validated = curveOf([{ name: 'main', steps: 4, select: 'average' }], [1, 2, 3, 4].map((step) => ({ stage: 'main', step, steps: 4, loss: 1 / step, val: val(0.5, 0.5 + step / 100) })));
  assert.deepEqual([validated.stages[0].judged_on, validated.stages[0].trend.improving], ['average', true], "a validated stage is judged on its selection score, not its loss");
  assert.equal(readRunCurve(path.join(tmp, 'nowhere')).points.length, 0, 'a run without a log has an empty curve');
});

test('charts: axes, ticks, legend, a PNG', async () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0.61, 0.83), [0.6, 0.65, 0.7, 0.75, 0.8, 0.85]);
  assert.ok(niceTicks(0, 0).includes(0), 'a tick at exactly 0, not a rounding residue');
  const panels = [
    { title: 'Average, cup', xLabel: 'steps', yLabel: 'soft Dice (%)', logX: true, series: [{ name: 'AVAP & co', points: [[300, 80], [1000, 84], [3000, 85]] as [number, number][] }, { name: 'MV-UNet', points: [[300, 78], [1000, NaN]] as [number, number][] }] },
    { title: 'empty', xLabel: 'steps', yLabel: 'loss', series: [] },
  ];
  const svg = lineChartSvg(panels, 2);
  for (const text of ['Average, cup', 'AVAP &amp; co', 'MV-UNet', '>300<', '>1000<', '>3000<', 'soft Dice (%)', 'no data yet']) assert.ok(svg.includes(text), text);
  assert.equal((svg.match(/<polyline/g) ?? []).length, 2, 'one line per series; the NaN point is left out');
  const file = path.join(tmp, 'chart.png');
  await writeLineChart(file, panels, 2);
  const meta = await sharp(file).metadata();
  assert.deepEqual([meta.format, meta.width], ['png', 840]);
});

/** A summary with the given per-case Average and Mean Voting of structure 'cup'. */
function summaryOf(average: number[], meanVoting: number[]): EvaluationSummary {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    structures: ['cup'], annotators: ['A1'], average: { cup: mean(average) }, mean_voting: { cup: mean(meanVoting) }, per_annotator: { cup: [mean(average)] },
    per_case: average.map((a, i) => ({ case: `c${i}`, width: 1, height: 1, metrics: { cup: { mean_voting: meanVoting[i], average: a, per_annotator: [a], ged: null, ece: null, hard_dice: null, iou: null, identifiability_per_annotator: [] } } })),
  } as unknown as EvaluationSummary;
}

test('differences to the best: the best by mean, a tie within the interval, a method clearly behind', () => {
  const best = { id: 'best', label: 'Best', bySeed: new Map([[0, summaryOf([0.9, 0.8, 0.7, 0.9], [0.9, 0.9, 0.9, 0.9])], [1, summaryOf([0.9, 0.8, 0.7, 0.9], [0.9, 0.9, 0.9, 0.9])]]) };
  const close = { id: 'close', label: 'Close', bySeed: new Map([[0, summaryOf([0.91, 0.78, 0.71, 0.88], [0.9, 0.9, 0.9, 0.9])], [1, summaryOf([0.89, 0.8, 0.69, 0.9], [0.9, 0.9, 0.9, 0.9])]]) };
  const behind = { id: 'behind', label: 'Behind', bySeed: new Map([[0, summaryOf([0.8, 0.7, 0.6, 0.8], [0.5, 0.5, 0.5, 0.5])], [1, summaryOf([0.8, 0.7, 0.6, 0.8], [0.5, 0.5, 0.5, 0.5])]]) };
  const d = differencesToBest([behind, close, best], ['cup'], 500);
  const of = (id: string, metric: string) => d.find((x) => x.method === id && x.metric === metric)!;
  assert.deepEqual([of('best', 'average').best, of('best', 'average').difference, of('best', 'average').contender], ['best', 0, true]);
  assert.ok(of('close', 'average').low! < 0 && of('close', 'average').high! > 0 && of('close', 'average').contender, 'close: the interval reaches 0');
  assert.ok(Math.abs(of('behind', 'average').difference + 0.1) < 1e-12 && of('behind', 'average').high! < 0 && !of('behind', 'average').contender);
  assert.equal(of('behind', 'mean_voting').best, 'close', 'ties keep the first method with the highest mean');
  assert.equal(of('best', 'mean_voting').contender, true, 'a method tied with the best is within its interval ([0, 0])');
});

test('Table II: mean ± sd over seeds, bold by the intervals, † for a method still improving', () => {
  const scores = (a: number, mv: number) => ({ average: { disc: a, cup: a }, mean_voting: { disc: mv, cup: mv }, per_annotator: { disc: [a], cup: [a] } });
  const text = table2([
    { label: 'AVAP', mean: scores(0.9, 0.8), sd: scores(0.01, 0.02), stillImproving: true, contender: { average: { disc: true, cup: true }, mean_voting: { disc: true, cup: false } } },
    { label: 'MV-UNet', mean: scores(0.85, 0.82), sd: scores(0.005, 0.01), stillImproving: false, contender: { average: { disc: true, cup: false }, mean_voting: { disc: true, cup: true } } },
  ], ['disc', 'cup'], 1, '# caption');
  assert.match(text, /\n\| AVAP † \| \*\*90\.00 ± 1\.00\*\*, \*\*90\.00 ± 1\.00\*\* \| \*\*90\.00 ± 1\.00\*\*, \*\*90\.00 ± 1\.00\*\* \| \*\*80\.00 ± 2\.00\*\*, 80\.00 ± 2\.00 \|/);
  assert.match(text, /\n\| MV-UNet \| 85\.00 ± 0\.50, 85\.00 ± 0\.50 \| \*\*85\.00 ± 0\.50\*\*, 85\.00 ± 0\.50 \| \*\*82\.00 ± 1\.00\*\*, \*\*82\.00 ± 1\.00\*\* \|/);
  assert.ok(text.includes(NOT_CONVERGED_NOTE));
  const oneSeed = table2([{ label: 'AVAP', mean: scores(0.9, 0.8), sd: null, stillImproving: false }], ['disc', 'cup'], 1, '# caption');
  assert.match(oneSeed, /\n\| AVAP \| 90\.00, 90\.00 \| 90\.00, 90\.00 \| 80\.00, 80\.00 \|\n$/, 'one seed: the mean only, no dagger, no footnote');
});

test('list flags: positive integers, each once, one line naming the flag', () => {
  assert.deepEqual(parseIntList('--steps', '300, 1000,3000'), [300, 1000, 3000]);
  assert.deepEqual(parseIntList('--seeds', '0', 0), [0]);
  assert.throws(() => parseIntList('--steps', '300,300'), (e: Error) => e instanceof UserError && e.message === "--steps lists 300 twice: '300,300'");
  assert.throws(() => parseIntList('--steps', '300,0'), /^UserError: --steps must be a positive integer, got '0'$/);
  assert.throws(() => parseIntList('--steps', '300,'), /--steps must be a positive integer, got ''/);
  assert.throws(() => parseIntList('--seeds', '1.5', 0), /--seeds must be a non-negative integer, got '1\.5'/);
});

test('avap experiment refuses a bad --steps or --seeds list in one line naming the flag', () => {
  const cli = path.join(__dirname, '..', 'src', 'cli', 'main.js');
  const cases: [string[], string][] = [
    [['--steps', '300,1000,300'], "avap: --steps lists 300 twice: '300,1000,300'\n"],
    [['--steps', '300,1e3'], "avap: --steps must be a positive integer, got '1e3'\n"],
    [['--seeds', '0,-1'], "avap: --seeds must be a non-negative integer, got '-1'\n"],
    [['--seed', '1', '--seeds', '2,3'], 'avap: --seed and --seeds cannot be combined; give the seeds as one list\n'],
  ];
  for (const [args, message] of cases) {
    const r = spawnSync(process.execPath, [cli, 'experiment', '--data', path.join(tmp, 'nowhere'), '--out', path.join(tmp, 'nowhere-out'), ...args], { encoding: 'utf8' });
    assert.deepEqual([r.status, r.stderr], [1, message], args.join(' '));
  }
  assert.ok(!fs.existsSync(path.join(tmp, 'nowhere-out')), 'nothing written');
});

test('an experiment.json from before budgets and seeds were lists is one combination at OUT; shared settings must match', () => {
  const dir = path.join(tmp, 'legacy');
  fs.mkdirSync(dir);
  const shared = { data: '/d', size: 64, encoder: 'resnet18', preferenceLr: 0.005 } as unknown as SharedSettings;
  fs.writeFileSync(path.join(dir, 'experiment.json'), JSON.stringify({ ...shared, steps: 300, seed: 0, preferenceSteps: 300 }));
  const at = (steps: number, seed: number) => ({ steps, seed, stageOptions: { preferenceSteps: steps } });
  const combinations = recordCombinations(dir, shared, [at(300, 0), at(1000, 0), at(300, 1)]);
  assert.deepEqual(combinations.map((c) => c.folder), ['.', 'steps-1000/seed-0', 'steps-300/seed-1']);
  const record = JSON.parse(fs.readFileSync(path.join(dir, 'experiment.json'), 'utf8'));
  assert.deepEqual([record.steps, record.seed, record.combinations.length], [undefined, undefined, 3]);
  assert.deepEqual(recordCombinations(dir, shared, [at(1000, 0)]).map((c) => c.folder), ['steps-1000/seed-0'], 'found again where it was put');
  assert.throws(() => recordCombinations(dir, { ...shared, size: 32 }, [at(300, 0)]), /holds an experiment with other settings \(size\)/);
  assert.throws(() => recordCombinations(dir, shared, [{ steps: 300, seed: 0, stageOptions: { preferenceSteps: 150 } }]), /holds runs of 300 steps, seed 0 with other settings \(preferenceSteps\)/);
});

const data = path.join(tmp, 'data');
const out = path.join(tmp, 'exp');
function options(lines: string[], more: Partial<ExperimentOptions>): ExperimentOptions {
  return { data, out, methods: ['single:1', 'mv-unet'], profile: 'quick', size: 32, encoder: 'resnet18', ablations: false, print: (l) => lines.push(l), ...more };
}

test('a sweep over budgets and seeds reuses the runs of a one-budget experiment and writes tables, differences, curves and the sweep', async () => {
  await writeSynthDataset({ out: data, cases: 10, train: 6, annotators: 3, size: 32, seed: 0 });
  const first: string[] = [];
  await runExperiment(options(first, { steps: 2, seed: 0 }));
  const flat = path.join(out, 'runs', 'mv-unet', 'model.safetensors');
  assert.ok(fs.existsSync(flat), 'one budget and one seed: the flat layout');
  const before = fs.statSync(flat).mtimeMs;

  const second: string[] = [];
  const result = await runExperiment(options(second, { steps: [2, 1], seeds: [0, 1] }));
  assert.equal(fs.statSync(flat).mtimeMs, before, 'the finished run is untouched');
  assert.ok(second.some((l) => /\[\d+\/8 mv-unet, 2 steps, seed 0\] reusing eval\/mv-unet$/.test(l)), second.join('\n'));
  assert.ok(!second.some((l) => /, 2 steps, seed 0\] train step/.test(l)), 'nothing at (2 steps, seed 0) is trained again');
  assert.ok(second.some((l) => /mv-unet, 2 steps, seed 1\] train step 2\/2/.test(l)), 'a new seed is trained');
  for (const dir of ['steps-1/seed-0', 'steps-1/seed-1', 'steps-2/seed-1']) assert.ok(fs.existsSync(path.join(out, dir, 'eval', 'mv-unet', 'summary.json')), dir);
  const recorded = JSON.parse(fs.readFileSync(path.join(out, 'experiment.json'), 'utf8'));
  assert.deepEqual(recorded.combinations.map((c: { steps: number; seed: number; folder: string }) => [c.steps, c.seed, c.folder]),
    [[2, 0, '.'], [1, 0, 'steps-1/seed-0'], [1, 1, 'steps-1/seed-1'], [2, 1, 'steps-2/seed-1']]);

  assert.deepEqual(result.budgets.map((b) => [b.steps, b.table]), [[1, 'table2-steps1.md'], [2, 'table2-steps2.md']]);
  assert.equal(fs.readFileSync(path.join(out, 'table2.md'), 'utf8'), fs.readFileSync(path.join(out, 'table2-steps2.md'), 'utf8'), 'table2.md is the largest budget');
  const table = fs.readFileSync(path.join(out, 'table2-steps1.md'), 'utf8');
  assert.match(table, /1 step, seeds 0, 1 \(each cell: mean ± standard deviation over the seeds\)/);
  assert.match(table, /\n\| MV-UNet \| (\*\*)?[\d.]+ ± [\d.]+(\*\*)?, (\*\*)?[\d.]+ ± [\d.]+(\*\*)? \|/);
  const mv = result.methods.find((m) => m.id === 'mv-unet')!;
  assert.deepEqual(mv.seeds.map((s) => s.seed), [0, 1]);
  assert.ok(Math.abs(mv.average.cup! - (mv.seeds[0].average.cup! + mv.seeds[1].average.cup!) / 2) < 1e-12, 'the mean over seeds');
  assert.ok(mv.sd !== null && mv.sd.average.cup !== null);

  const differences = fs.readFileSync(path.join(out, 'differences.md'), 'utf8');
  assert.match(differences, /## 1 step[\s\S]*## 2 steps/);
  assert.match(differences, /\| (M1|MV-UNet) \| cup \| Mean Voting \| best \| – \|/);
  assert.match(differences, /\| (M1|MV-UNet) \| cup \| Mean Voting \| -?\d+\.\d\d \| \[-?\d+\.\d\d, -?\d+\.\d\d\] \|/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.deepEqual(summary.budgets.map((b: { steps: number }) => b.steps), [1, 2]);
  assert.equal(summary.budgets[1].differences.length, 2 * 2 * 2, 'two methods × two structures × two metrics');
  assert.deepEqual(summary.figures, ['curves.json', 'curves.png', 'sweep.json', 'sweep.png']);

  const curves = JSON.parse(fs.readFileSync(path.join(out, 'curves.json'), 'utf8'));
  assert.equal(curves.plotted, 'training loss', 'no validation cases held out from 6');
  assert.equal(curves.runs.length, 8);
  const run = curves.runs.find((r: { method: string; steps: number; seed: number }) => r.method === 'mv-unet' && r.steps === 2 && r.seed === 1);
  assert.deepEqual(run.points.map((p: { step: number }) => p.step), [1, 2]);
  assert.equal(run.run, path.join('steps-2', 'seed-1', 'runs', 'mv-unet'));
  const sweep = JSON.parse(fs.readFileSync(path.join(out, 'sweep.json'), 'utf8'));
  assert.deepEqual(sweep.methods.map((m: { budgets: { steps: number }[] }) => m.budgets.map((b) => b.steps)), [[1, 2], [1, 2]]);
  for (const png of ['curves.png', 'sweep.png']) assert.equal((await sharp(path.join(out, png)).metadata()).format, 'png');

  const third: string[] = [];
  await runExperiment(options(third, { steps: [1, 2], seeds: [0, 1] }));
  assert.equal(third.filter((l) => /reusing/.test(l)).length, 8, 'the same lists again: everything reused');
  assert.ok(!third.some((l) => /train step/.test(l)));
  await assert.rejects(runExperiment(options([], { steps: [1, 2], seeds: [0, 1], size: 64 })), (e: Error) => e instanceof UserError && /other settings \(size\)/.test(e.message));
  await assert.rejects(runExperiment(options([], { steps: 2, seed: 0, seeds: [0] })), /--seed and --seeds cannot be combined/);
});
