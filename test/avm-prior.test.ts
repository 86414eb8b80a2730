// The AVM's classifier can start at the training set's agreement-class frequencies (prior
// initialisation); the trainer hands a new run's statistics to the method before its first step.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeSynthDataset } from '../src/data/synth';
import { openDataset, selectCases } from '../src/data/dataset';
import { trainingStatistics } from '../src/data/statistics';
import { VariationHead, expectedAgreement } from '../src/models/heads/variation';
import { manualSeed, noGrad, randn, tidy } from '../src/torch';

test('with zero classifier weights, the prior makes every pixel predict the training frequencies', () => {
  manualSeed(0);
  const M = 4;
  const head = new VariationHead(8, 1, M, 8);
  const counts = [850, 50, 40, 0, 60]; // class 3 never seen: floored at 1e-4, not log(0)
  noGrad(() => head.branches.items[0].classifier.weight.zero_());
  head.initializePrior([counts]);
  head.eval();
  noGrad(() => tidy(() => {
    const logits = head.forward(randn([2, 8, 6, 6]))[0];
    const p = logits.softmax(1).data() as Float32Array;
    const plane = 36;
    const floor = 1e-4;
    const f = counts.map((n) => Math.max(n / 1000, floor));
    const z = f.reduce((a, b) => a + b, 0);
    for (let c = 0; c <= M; c++) assert.ok(Math.abs(p[c * plane] - f[c] / z) < 1e-6, `class ${c}: ${p[c * plane]} vs ${f[c] / z}`);
    // Expected agreement (count / M) everywhere: Σ c·f_c / M = (50 + 80 + 0 + 240) / 1000 / 4 ≈ 0.0925.
    const e = expectedAgreement(logits, M).data() as Float32Array;
    const expected = f.reduce((a, x, c) => a + (c * x) / z, 0) / M;
    assert.ok(e.every((v) => Math.abs(v - expected) < 1e-6), `${e[0]} vs ${expected}`);
  }));
  assert.throws(() => head.initializePrior([[1, 2]]), /expected 5 class counts, got 2/);
});

test('training statistics: the agreement-class histogram of the training pixels, as the AVM target counts them', async () => {
  const data = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'avap-prior-')), 'data');
  await writeSynthDataset({ out: data, cases: 3, train: 3, annotators: 3, size: 32, seed: 4 });
  const ds = await openDataset(data);
  const cases = selectCases(ds, { split: 'train' });
  const stats = await trainingStatistics(ds, cases, 32);
  assert.equal(stats.agreementHistogram.length, 2);
  for (const h of stats.agreementHistogram) {
    assert.equal(h.length, 4);
    assert.equal(h.reduce((a, b) => a + b, 0), 3 * 32 * 32, 'every pixel of every case counted once');
  }
  // The disc contains the cup: at least as many pixels with 3 of 3 annotators for the disc.
  assert.ok(stats.agreementHistogram[0][3] >= stats.agreementHistogram[1][3]);
  assert.ok(stats.agreementHistogram[1][0] > stats.agreementHistogram[1][3], 'most pixels are nobody\'s cup');
});
