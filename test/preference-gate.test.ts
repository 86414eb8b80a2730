// The preference gate: how far each annotator's map departs from the consensus, chosen on held-out
// folds of the training cases (cross-fitting), so the preference head is never kept for an annotator
// where held-out images show it doing worse than the consensus.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CaseRecord } from '../src/data/dataset';
import { writeSynthDataset } from '../src/data/synth';
import { AVAP, AvapConfig } from '../src/models/avap';
import { GATE_CANDIDATES, PreferenceGate } from '../src/models/heads/preferenceGate';
import { Tensor, loadStateDict, manualSeed, noGrad, randn, tensor, tidy } from '../src/torch';
import { crossFitCases } from '../src/train/loop';
import { TRAIN_DEFAULTS, train } from '../src/train/trainer';
import { UserError } from '../src/errors';

const G = GATE_CANDIDATES.length;

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().amax().item());
}

test('gate candidates: the consensus, the common departure, then more and more of the annotator\'s own', () => {
  manualSeed(1);
  const gate = new PreferenceGate(3, 2);
  tidy(() => {
    const consensus = randn([2, 1, 2, 4, 4]);
    const departures = randn([2, 3, 2, 4, 4]);
    const common = departures.mean(1, true);
    const candidates = gate.candidates(consensus, departures);
    assert.equal(candidates.length, G);
    assert.ok(maxAbsDiff(candidates[0], consensus.expand([2, 3, 2, 4, 4])) < 1e-6, 'first: the consensus itself');
    assert.ok(maxAbsDiff(candidates[1], consensus.add(common).expand([2, 3, 2, 4, 4])) < 1e-6, 'second: the common departure for everyone');
    assert.ok(maxAbsDiff(candidates[G - 1], consensus.add(departures)) < 1e-5, 'last: each annotator\'s full departure');
    // Untouched, the gate is the identity: every annotator keeps the APM's full departure.
    assert.ok(gate.isIdentity());
    assert.ok(maxAbsDiff(gate.forward(consensus, departures), consensus.add(departures)) < 1e-5);
  });
  gate.dispose();
});

// Rows: held-out Dice sums per candidate for one (annotator, structure), its case count, the choice.
const CHOICES: { name: string; sums: number[]; cases: number; chosen: number }[] = [
  { name: 'the full departure wins clearly', sums: [7.0, 7.5, 7.6, 7.7, 7.8, 8.2], cases: 10, chosen: 5 },
  { name: 'noise: the consensus beats every departure', sums: [8.0, 7.9, 7.5, 7.0, 6.5, 6.0], cases: 10, chosen: 0 },
  { name: 'the common departure, not the own one', sums: [7.0, 8.0, 7.9, 7.8, 7.7, 7.6], cases: 10, chosen: 1 },
  { name: 'a tie goes to the more conservative candidate', sums: [7.0, 7.0, 7.5, 7.5, 7.0, 7.0], cases: 10, chosen: 2 },
  { name: 'nothing held out: the consensus', sums: [0, 0, 0, 0, 0, 0], cases: 0, chosen: 0 },
];

test('gate choice per annotator and structure: the best mean held-out soft Dice (table)', () => {
  const M = CHOICES.length;
  const gate = new PreferenceGate(M, 1);
  const sums = new Float64Array(G * M);
  const cases = new Float64Array(M);
  CHOICES.forEach((row, m) => {
    row.sums.forEach((s, g) => { sums[g * M + m] = s; });
    cases[m] = row.cases;
  });
  // Added in two halves, as two folds would.
  gate.addHeldOut(sums.map((s) => s / 2), cases.map((c) => c / 2));
  gate.addHeldOut(sums.map((s) => s / 2), cases.map((c) => c / 2));
  const chosen = gate.choose();
  CHOICES.forEach((row, m) => assert.equal(chosen[m], row.chosen, row.name));
  const common = gate.common.data() as Float32Array;
  const own = gate.own.data() as Float32Array;
  CHOICES.forEach((row, m) => {
    assert.equal(common[m], GATE_CANDIDATES[row.chosen].common, row.name);
    assert.equal(own[m], GATE_CANDIDATES[row.chosen].own, row.name);
  });
  assert.ok(!gate.isIdentity());
  assert.equal(gate.heldOutMeans()[0][4][0], null);
  assert.ok(Math.abs(gate.heldOutMeans()[5][0][0]! - 0.82) < 1e-6);
  gate.dispose();
});

test('cross-fitting folds: disjoint held-out folds that cover every training case once, fixed by the seed', () => {
  const cases = Array.from({ length: 11 }, (_, i) => ({ id: `c${i}` }) as CaseRecord);
  for (const folds of [2, 3]) {
    const heldOut = Array.from({ length: folds }, (_, fold) => crossFitCases(cases, { fold, folds }, 4));
    const all = heldOut.flatMap((f) => f.heldOut.map((c) => c.id)).sort();
    assert.deepEqual(all, cases.map((c) => c.id).sort(), 'each case held out exactly once');
    for (const f of heldOut) {
      assert.equal(f.trained.length + f.heldOut.length, cases.length);
      assert.ok(f.trained.every((c) => !f.heldOut.includes(c)));
      assert.ok(Math.abs(f.heldOut.length - cases.length / folds) < 1);
    }
  }
  assert.deepEqual(crossFitCases(cases, { fold: 0, folds: 2 }, 4), crossFitCases(cases, { fold: 0, folds: 2 }, 4));
  assert.notDeepEqual(crossFitCases(cases, { fold: 0, folds: 2 }, 4).heldOut, crossFitCases(cases, { fold: 0, folds: 2 }, 5).heldOut);
  assert.throws(() => crossFitCases(cases.slice(0, 1), { fold: 0, folds: 2 }, 0), (e: Error) => e instanceof UserError && /needs at least 2 training cases; this run has 1/.test(e.message));
});

function avapConfig(M: number): AvapConfig {
  return {
    structures: ['disc', 'cup'], annotators: Array.from({ length: M }, (_, k) => `A${k + 1}`),
    backbone: { encoder: 'resnet18', inChannels: 3, featureChannels: 8 },
    avm: { hidden: 8, calibration: 'expectation' }, apm: { hidden: 8, conditioning: 'both' },
  };
}

test('a gated AVAP: the consensus annotator gets the calibrated map; a subset equals the full prediction\'s rows', () => {
  manualSeed(3);
  const model = new AVAP(avapConfig(3));
  model.eval();
  noGrad(() => tidy(() => {
    // A trained-like APM: non-zero last layer, so annotators' departures differ.
    for (const [name, p] of model.apm.namedParameters()) if (name.startsWith('controller')) p.copy_(randn(p.shape).mul(0.3));
    // A1: consensus for both structures; A2: the common departure; A3: its full departure.
    model.gate.common.copy_(tensor(Float32Array.from([0, 0, 1, 1, 1, 1]), [3, 2]));
    model.gate.own.copy_(tensor(Float32Array.from([0, 0, 0, 0, 1, 1]), [3, 2]));
    const x = randn([2, 3, 64, 64]);
    const full = model.predict(x);
    const { consensus, departures } = model.departures(x);
    assert.ok(maxAbsDiff(full.annotators.select(1, 0), full.calibrated) < 1e-4, 'A1 gets the calibrated map');
    assert.ok(maxAbsDiff(full.annotators.select(1, 1), consensus.add(departures.mean(1, true)).sigmoid().select(1, 0)) < 1e-5, 'A2 gets the common departure');
    assert.ok(maxAbsDiff(full.annotators.select(1, 2), consensus.add(departures).sigmoid().select(1, 2)) < 1e-5, 'A3 keeps its own');
    assert.ok(maxAbsDiff(full.annotators.select(1, 1), full.annotators.select(1, 2)) > 1e-3, 'A2 and A3 differ');
    const subset = model.predict(x, undefined, [2, 0]);
    assert.ok(maxAbsDiff(subset.annotators.select(1, 0), full.annotators.select(1, 2)) === 0);
    assert.ok(maxAbsDiff(subset.annotators.select(1, 1), full.annotators.select(1, 0)) === 0);
  }));
  model.dispose();
});

test('avap train: step 2 cross-fitted over 2 folds holds out every training case once and saves the chosen gate', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-gate-'));
  const data = path.join(tmp, 'data');
  await writeSynthDataset({ out: data, cases: 12, train: 9, annotators: 3, size: 32, seed: 0 });
  const run = path.join(tmp, 'run');
  const lines: string[] = [];
  const summary = await train({
    ...TRAIN_DEFAULTS, data, out: run, method: 'avap', size: 32, batchSize: 4, encoder: 'resnet18', steps: 2,
    methodOptions: { preferenceSteps: 2 }, resume: false, progress: false, print: (l) => lines.push(l),
  });
  assert.deepEqual(summary.stages.map((s) => s.name), ['variation', 'preference-fold1', 'preference-fold2', 'preference']);
  const { state } = loadStateDict(path.join(run, 'model.safetensors'));
  // 9 training cases, each held out once, each annotated by all 3 annotators.
  assert.deepEqual(Array.from(state['gate.held_out_cases'].data() as Float32Array), Array(6).fill(9));
  const heldOut = state['gate.held_out_dice'].data() as Float32Array;
  assert.ok(heldOut.every((d) => d >= 0 && d <= 9), 'sums of 9 soft Dice values');
  const pairs = Array.from({ length: 6 }, (_, i) => [(state['gate.common'].data() as Float32Array)[i], (state['gate.own'].data() as Float32Array)[i]]);
  for (const [common, own] of pairs) assert.ok(GATE_CANDIDATES.some((c) => c.common === common && c.own === own), `a candidate: ${common}, ${own}`);
  assert.ok(lines.some((l) => /^preference gate from held-out folds: A1 disc /.test(l)), 'the choice is reported');
  for (const t of Object.values(state)) t.dispose();

  // --preference-folds 0: the paper's head, no extra stages, the gate stays the identity.
  const plain = path.join(tmp, 'plain');
  const s0 = await train({
    ...TRAIN_DEFAULTS, data, out: plain, method: 'avap', size: 32, batchSize: 4, encoder: 'resnet18', steps: 2,
    methodOptions: { preferenceSteps: 2, preferenceFolds: 0 }, resume: false, progress: false, print: () => undefined,
  });
  assert.deepEqual(s0.stages.map((s) => s.name), ['variation', 'preference']);
  const plainState = loadStateDict(path.join(plain, 'model.safetensors')).state;
  assert.ok((plainState['gate.own'].data() as Float32Array).every((v) => v === 1));
  for (const t of Object.values(plainState)) t.dispose();
  fs.rmSync(tmp, { recursive: true, force: true });
});
