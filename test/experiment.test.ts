// `avap experiment` reuses what an earlier (interrupted) session finished, resumes what it
// started, trains only what is new, and lays the results out like the paper's Table II.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSynthDataset } from '../src/data/synth';
import { UserError } from '../src/errors';
import { ExperimentOptions, runExperiment } from '../src/experiment/experiment';
import { planAblations, planMethods } from '../src/experiment/plan';
import { ExperimentProgress } from '../src/experiment/progress';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-experiment-'));
const data = path.join(tmp, 'data');
const out = path.join(tmp, 'out');

function options(methods: string[], lines: string[]): ExperimentOptions {
  return { data, out, methods, profile: 'quick', steps: 1, size: 32, encoder: 'resnet18', seed: 0, ablations: false, print: (l) => lines.push(l) };
}

const mtimes = (files: string[]) => files.map((f) => fs.statSync(f).mtimeMs);

test('an experiment interrupted after one method continues with the others, reusing the finished one', async () => {
  await writeSynthDataset({ out: data, cases: 12, annotators: 3, size: 32, seed: 0 });
  const first: string[] = [];
  const a = await runExperiment(options(['mv-unet'], first));
  assert.deepEqual(a.methods.map((m) => m.id), ['mv-unet']);
  const aFiles = ['runs/mv-unet/model.safetensors', 'runs/mv-unet/summary.json', 'eval/mv-unet/summary.json'].map((f) => path.join(out, f));
  const before = mtimes(aFiles);

  const second: string[] = [];
  const b = await runExperiment(options(['mv-unet', 'single:1'], second));
  assert.deepEqual(mtimes(aFiles), before, "mv-unet's run and evaluation are untouched");
  assert.ok(second.some((l) => l.includes('[2/2 mv-unet] reusing')), 'mv-unet is reported as reused');
  assert.ok(!second.some((l) => /mv-unet\] train step/.test(l)), 'mv-unet is not trained again');
  assert.ok(second.some((l) => /single:1\] train step 1\/1: .*experiment 2\/2 steps, ETA/.test(l)), 'single:1 trains, with experiment-wide progress');
  assert.deepEqual(b.methods.map((m) => m.id), ['single:1', 'mv-unet'], "the paper's row order");
  assert.equal(b.methods[1].mean_voting.cup, a.methods[0].mean_voting.cup);

  const table = fs.readFileSync(path.join(out, 'table2.md'), 'utf8');
  assert.match(table, /\| Methods \| A1 \| A2 \| A3 \| Average \| Mean Voting \|/);
  assert.match(table, /\n\| M1 \| [\d.*]+, [\d.*]+ \|/);
  assert.match(table, /\n\| MV-UNet \|/);
  assert.ok(table.indexOf('| M1 |') < table.indexOf('| MV-UNet |'), "rows follow the paper's order");
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.deepEqual(summary.methods.map((m: { id: string }) => m.id), ['single:1', 'mv-unet']);
});

test('a run that was started but not finished resumes from its checkpoint', async () => {
  // As if the process died after training single:1's last step but before its summary and evaluation.
  fs.rmSync(path.join(out, 'runs', 'single-1', 'summary.json'));
  fs.rmSync(path.join(out, 'eval', 'single-1'), { recursive: true });
  const lines: string[] = [];
  await runExperiment(options(['single:1'], lines));
  assert.ok(lines.some((l) => /single:1\] resuming .*all 1 stage\(s\) trained/.test(l)), lines.join('\n'));
  assert.ok(!lines.some((l) => /train step/.test(l)), 'no step is trained twice');
  assert.ok(fs.existsSync(path.join(out, 'eval', 'single-1', 'summary.json')));
});

test('an experiment folder refuses other settings, and unknown methods are named', async () => {
  // Budgets and seeds may be added (test/experiment-sweep.test.ts); the settings every run shares may not change.
  await assert.rejects(runExperiment({ ...options(['mv-unet'], []), size: 64, encoder: 'resnet34' }), (e: Error) => e instanceof UserError && /other settings \(size, encoder\)/.test(e.message));
  await assert.rejects(runExperiment({ ...options(['u-net'], []) }), (e: Error) => e instanceof UserError && /--methods: unknown method 'u-net'/.test(e.message));
  await assert.rejects(runExperiment({ ...options(['single:7'], []) }), (e: Error) => e instanceof UserError && /annotator 7 does not exist/.test(e.message));
});

test('the ETA comes from the pace of steps trained in this session', () => {
  let now = 0;
  const p = new ExperimentProgress(100, () => now);
  p.skip(40);
  assert.equal(p.etaSeconds(), null);
  now = 6000;
  p.trained(20);
  assert.equal(p.stepsDone, 60);
  assert.equal(p.etaSeconds(), 12); // 0.3 s per step, 40 steps left
  assert.match(p.describe(), /^experiment 60\/100 steps, ETA 12s$/);
});

test("the ablations are the paper's Tables III–V, joint weights as in Table V", () => {
  const context = { structures: ['disc', 'cup'], annotators: ['A1', 'A2'], inChannels: 3, steps: 10, options: { preferenceSteps: 5 } };
  const runs = planAblations(context, false);
  assert.deepEqual(runs.map((r) => [r.table, r.id]), [
    ['IV', 'avap@code'], ['IV', 'avap@features'], ['V', 'avap@joint-average'], ['V', 'avap@joint-apm-heavy'], ['V', 'avap@joint-avm-heavy'],
  ]);
  assert.deepEqual(runs.filter((r) => r.table === 'V').map((r) => r.overrides.methodOptions!.jointWeights), [[1 / 3, 1 / 3, 1 / 3].map((w) => Math.round(w * 1e6) / 1e6), [0.2, 0.2, 0.6], [0.4, 0.4, 0.2]]);
  assert.ok(runs.filter((r) => r.table === 'V').every((r) => r.overrides.steps === 15 && r.stageSteps.length === 1 && r.stageSteps[0] === 15), 'joint training gets the two-step budget');
  assert.ok(runs.filter((r) => r.table === 'IV').every((r) => r.stageSteps.join() === '10,5,5,5'), 'the conditioning variants train both steps');
  assert.equal(runs.find((r) => r.id === 'avap@joint-apm-heavy')!.label, 'Weight (0.2, 0.2, 0.6)');
  assert.ok(planAblations(context, true).some((r) => r.table === 'III' && r.overrides.fromScratch === true));
  assert.deepEqual(planMethods(['avap', 'single', 'mv-unet'], context).map((r) => r.label), ['M1', 'M2', 'MV-UNet', 'AVAP']);
});
