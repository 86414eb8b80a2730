import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { QubiqAccumulator, qubiqCaseScore, qubiqDicePerThreshold, QUBIQ_THRESHOLDS } from '../src/metrics/qubiq';

const u8 = (xs: number[]): Uint8Array => Uint8Array.from(xs);
const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);

test('QUBIQ thresholds are 0.1 … 0.9', () => {
  assert.deepEqual([...QUBIQ_THRESHOLDS], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
});

test('hand-computed cases: the raters\' mean as ground truth, nine thresholds with `>`, both-empty counts 1', () => {
  // Two raters on 4 voxels: mean = [1, 0.5, 0.5, 0]. GT > t: t < 0.5 → {0,1,2}; t ≥ 0.5 → {0}.
  const raters = [u8([1, 1, 0, 0]), u8([1, 0, 1, 0])];
  // A perfect copy of the mean: Dice 1 at every threshold.
  assert.equal(qubiqCaseScore(f32([1, 0.5, 0.5, 0]), raters), 1);
  // Prediction [1, 1, 0, 0]: P = {0,1} at every t. t=0.1..0.4: T={0,1,2}, Dice = 2·2/(2+3) = 0.8;
  // t=0.5..0.9: T={0}, Dice = 2·1/(2+1) = 2/3. Mean = (4·0.8 + 5·2/3)/9.
  const perT = qubiqDicePerThreshold(f32([1, 1, 0, 0]), Float64Array.from([1, 0.5, 0.5, 0]));
  assert.deepEqual(perT.map((d) => Math.round(d * 1e12) / 1e12), [0.8, 0.8, 0.8, 0.8, 0.666666666667, 0.666666666667, 0.666666666667, 0.666666666667, 0.666666666667]);
  assert.ok(Math.abs(qubiqCaseScore(f32([1, 1, 0, 0]), raters) - (4 * 0.8 + 5 * (2 / 3)) / 9) < 1e-12);
  // A graded prediction [0.95, 0.35, 0, 0.15]: P = {0,1,3} at t=0.1, {0,1} at t=0.2,0.3, {0} from t=0.4.
  // t=0.1: T={0,1,2}, I=2 → 4/6; t=0.2,0.3: I=2 → 4/5; t=0.4: P={0}, I=1 → 2/4; t=0.5..0.9: T={0}, I=1 → 1.
  const graded = qubiqCaseScore(f32([0.95, 0.35, 0, 0.15]), raters);
  assert.ok(Math.abs(graded - (4 / 6 + 0.8 + 0.8 + 0.5 + 5) / 9) < 1e-12, String(graded));
  // Nobody marked anything: an empty prediction scores 1, any foreground 0 at the thresholds it passes.
  const none = [u8([0, 0, 0]), u8([0, 0, 0])];
  assert.equal(qubiqCaseScore(f32([0, 0, 0]), none), 1);
  assert.ok(Math.abs(qubiqCaseScore(f32([0.45, 0, 0]), none) - 5 / 9) < 1e-12); // passes t = 0.1 … 0.4
  // A missing rater is left out of the mean; no rater at all is "not scored".
  assert.equal(qubiqCaseScore(f32([1, 1, 0, 0]), [u8([1, 1, 0, 0]), null]), 1);
  assert.ok(Number.isNaN(qubiqCaseScore(f32([1]), [null, null])));
});

test('the accumulator averages cases per task, then tasks; a task no case scored is NaN and left out', () => {
  const acc = new QubiqAccumulator(3);
  acc.add([1, 0.5, NaN]).add([0.5, NaN, NaN]).add([0, 1, NaN]);
  const r = acc.result();
  assert.deepEqual(r.perTask.slice(0, 2), [0.5, 0.75]);
  assert.ok(Number.isNaN(r.perTask[2]));
  assert.equal(r.overall, 0.625);
  assert.deepEqual(r.cases, [3, 2, 0]);
});

/** The metric written the plain way, voxel by voxel, as the challenge describes it. */
function reference(pred: Float32Array, raters: Uint8Array[]): number {
  let total = 0;
  for (let k = 1; k <= 9; k++) {
    const t = k / 10;
    let p = 0, g = 0, both = 0;
    for (let i = 0; i < pred.length; i++) {
      let s = 0;
      for (const r of raters) s += r[i];
      const gi = s / raters.length > t;
      const pi = pred[i] > t;
      if (pi) p++;
      if (gi) g++;
      if (pi && gi) both++;
    }
    total += p + g === 0 ? 1 : (2 * both) / (p + g);
  }
  return total / 9;
}

test('random data: the counted score agrees with the plain voxel-by-voxel reference', () => {
  let s = 2021;
  const r = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(r() * 200);
    const m = 1 + Math.floor(r() * 7);
    const density = r();
    const raters = Array.from({ length: m }, () => Uint8Array.from({ length: n }, () => (r() < density ? 1 : 0)));
    // Values on the thresholds themselves test the strict `>`.
    const pred = Float32Array.from({ length: n }, () => (r() < 0.3 ? Math.floor(r() * 11) / 10 : r()));
    const got = qubiqCaseScore(pred, raters);
    const want = reference(pred, raters);
    assert.ok(Math.abs(got - want) < 1e-12, `trial ${trial}: ${got} vs ${want}`);
  }
});
