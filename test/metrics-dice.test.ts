import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { UserError } from '../src/errors';
import {
  hardDice,
  iou,
  levelsOf,
  PAPER_THRESHOLDS,
  softDice,
  sortedThresholds,
  thresholdCounts,
  ThresholdRule,
  validateRule,
  validateThresholds,
} from '../src/metrics/dice';
import { meanVote } from '../src/metrics/multiAnnotator';

const EPS = 1e-6;
const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const f64 = (xs: number[]): Float64Array => Float64Array.from(xs);
const u8 = (xs: number[]): Uint8Array => Uint8Array.from(xs);

/** Plain re-implementation, written from the definition with arrays of booleans. */
function naiveDiceAt(pred: ArrayLike<number>, target: ArrayLike<number>, t: number, rule: ThresholdRule, smooth: number, kind: 'dice' | 'iou' = 'dice'): number {
  const on = (v: number): boolean => (rule === 'gt' ? v > t : v >= t);
  const P = Array.from(pred, on);
  const T = Array.from(target, on);
  const inter = P.filter((p, i) => p && T[i]).length;
  const np = P.filter(Boolean).length;
  const nt = T.filter(Boolean).length;
  if (kind === 'iou') return (inter + smooth) / (np + nt - inter + smooth);
  return (2 * inter + smooth) / (np + nt + smooth);
}
function naiveSoftDice(pred: ArrayLike<number>, target: ArrayLike<number>, ts: readonly number[], rule: ThresholdRule): number {
  return ts.map((t) => naiveDiceAt(pred, target, t, rule, EPS)).reduce((a, b) => a + b, 0) / ts.length;
}

function close(actual: number, expected: number, tol = 1e-12, what = ''): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${what} expected ${expected}, got ${actual}`);
}

// A 2×2 image is [top-left, top-right, bottom-left, bottom-right].
const softCases: { name: string; pred: ArrayLike<number>; target: ArrayLike<number>; rule: ThresholdRule; expected: number }[] = [
  { name: 'both empty → 1 through the smoothing', pred: f32([0, 0, 0, 0]), target: u8([0, 0, 0, 0]), rule: 'gt', expected: 1 },
  { name: 'empty prediction vs non-empty target → ≈ 0', pred: f32([0, 0, 0, 0]), target: u8([1, 0, 0, 0]), rule: 'gt', expected: EPS / (1 + EPS) },
  { name: 'non-empty prediction vs empty target → ≈ 0', pred: f32([0.95, 0, 0, 0]), target: u8([0, 0, 0, 0]), rule: 'gt', expected: EPS / (1 + EPS) },
  { name: 'confident and right → 1', pred: f32([0.95, 0.95, 0, 0]), target: u8([1, 1, 0, 0]), rule: 'gt', expected: 1 },
  {
    // p = 0.4 passes 0.1 and 0.3 only: Dice 1 at two thresholds, 2·1/(1+2) at three.
    name: 'half-confident pixel',
    pred: f32([0.95, 0.4, 0, 0]),
    target: u8([1, 1, 0, 0]),
    rule: 'gt',
    expected: (2 * 1 + 3 * ((2 + EPS) / (3 + EPS))) / 5,
  },
  {
    // Mean vote 3/6 = 0.5 at the first pixel: under '>' it drops out of the target at t = 0.5.
    name: 't = 0.5 edge, 3 of 6 votes, rule gt',
    pred: f32([0.6, 1, 0, 0]),
    target: f64([3 / 6, 6 / 6, 0, 0]),
    rule: 'gt',
    expected: (4 + (2 + EPS) / (3 + EPS)) / 5,
  },
  { name: 't = 0.5 edge, 3 of 6 votes, rule ge', pred: f32([0.6, 1, 0, 0]), target: f64([3 / 6, 6 / 6, 0, 0]), rule: 'ge', expected: 1 },
  {
    name: 'prediction exactly 0.5, rule gt',
    pred: f32([0.5, 0.5, 0, 0]),
    target: u8([1, 1, 0, 0]),
    rule: 'gt',
    expected: (2 + 3 * (EPS / (2 + EPS))) / 5,
  },
  { name: 'prediction exactly 0.5, rule ge', pred: f32([0.5, 0.5, 0, 0]), target: u8([1, 1, 0, 0]), rule: 'ge', expected: (3 + 2 * (EPS / (2 + EPS))) / 5 },
  {
    name: 'NaN counts as background',
    pred: f32([NaN, 1, 0, 0]),
    target: u8([1, 1, 0, 0]),
    rule: 'gt',
    expected: (2 + EPS) / (3 + EPS),
  },
  { name: 'a 0/255 mask binarises like a 0/1 mask', pred: f32([0.95, 0.95, 0, 0]), target: u8([255, 255, 0, 0]), rule: 'gt', expected: 1 },
];

for (const c of softCases) {
  test(`softDice: ${c.name}`, () => {
    const got = softDice(c.pred as Float32Array, c.target as Uint8Array, { rule: c.rule });
    close(got, c.expected, 1e-12, c.name);
    close(got, naiveSoftDice(c.pred, c.target, PAPER_THRESHOLDS, c.rule), 1e-12, `${c.name} (naive)`);
  });
}

test('softDice: the 3-of-6 edge built from six annotations', () => {
  // Pixel 0: annotators 1-3 say yes; pixel 1: all six; pixels 2-3: nobody.
  const anns = [0, 1, 2, 3, 4, 5].map((k) => u8([k < 3 ? 1 : 0, 1, 0, 0]));
  const mv = meanVote(anns);
  assert.deepEqual(Array.from(mv), [0.5, 1, 0, 0]);
  close(softDice(f32([0.6, 1, 0, 0]), mv, { rule: 'gt' }), (4 + (2 + EPS) / (3 + EPS)) / 5);
  close(softDice(f32([0.6, 1, 0, 0]), mv, { rule: 'ge' }), 1);
});

const binaryCases: { name: string; pred: number[]; target: number[]; dice: number; iou: number }[] = [
  // P = {0, 2}, T = {0, 1}, I = 1
  { name: 'one overlap of two', pred: [0.9, 0.2, 0.7, 0], target: [1, 1, 0, 0], dice: 3 / 5, iou: 2 / 4 },
  { name: 'both empty', pred: [0, 0, 0, 0], target: [0, 0, 0, 0], dice: 1, iou: 1 },
  // Smoothing 1 keeps this far from 0 on tiny images: (0 + 1) / (0 + 1 + 1).
  { name: 'empty prediction, one target pixel', pred: [0, 0, 0, 0], target: [1, 0, 0, 0], dice: 1 / 2, iou: 1 / 2 },
  { name: 'exact match', pred: [1, 1, 1, 0], target: [1, 1, 1, 0], dice: 1, iou: 1 },
  { name: 'disjoint', pred: [1, 1, 0, 0], target: [0, 0, 1, 1], dice: 1 / 5, iou: 1 / 5 },
];

for (const c of binaryCases) {
  test(`hardDice / iou (smoothing 1): ${c.name}`, () => {
    close(hardDice(f32(c.pred), u8(c.target)), c.dice);
    close(iou(f32(c.pred), u8(c.target)), c.iou);
  });
}

test('hardDice / iou: threshold and rule options', () => {
  const pred = f32([0.5, 0.3, 0, 0]);
  const target = u8([1, 1, 0, 0]);
  close(hardDice(pred, target), 1 / 3); // nothing passes > 0.5
  close(hardDice(pred, target, { rule: 'ge' }), 3 / 4); // pixel 0 passes >= 0.5
  close(hardDice(pred, target, { threshold: 0.25 }), 1);
  close(iou(pred, target, { threshold: 0.25, smooth: 0 }), 1);
});

test('thresholdCounts: one pass gives each threshold its counts, in the order given', () => {
  const pred = f32([0.05, 0.2, 0.4, 0.6, 0.8, 0.95]);
  const target = f64([0, 0.5, 0.5, 1, 1, 1]);
  const c = thresholdCounts(pred, target, [0.9, 0.1, 0.5], 'gt');
  assert.deepEqual(c.thresholds, [0.9, 0.1, 0.5]);
  assert.deepEqual(Array.from(c.pred), [1, 5, 3]);
  assert.deepEqual(Array.from(c.target), [3, 5, 3]);
  assert.deepEqual(Array.from(c.intersection), [1, 5, 3]);
});

test('levelsOf: number of sorted thresholds passed', () => {
  const sorted = sortedThresholds([0.9, 0.1, 0.5]);
  assert.deepEqual(Array.from(sorted), [0.1, 0.5, 0.9]);
  assert.deepEqual(Array.from(levelsOf(f64([0, 0.1, 0.5, 0.6, 0.9, 1, NaN]), sorted, 'gt')), [0, 0, 1, 2, 2, 3, 0]);
  assert.deepEqual(Array.from(levelsOf(f64([0, 0.1, 0.5, 0.6, 0.9, 1, NaN]), sorted, 'ge')), [0, 1, 2, 2, 3, 3, 0]);
});

test('thresholds and rule are validated with a UserError naming the flag', () => {
  for (const bad of [[], [0], [1], [0.5, 1.5], [NaN], [-0.1]]) {
    assert.throws(() => validateThresholds(bad), (e: unknown) => e instanceof UserError && /--thresholds/.test(e.message), JSON.stringify(bad));
  }
  assert.deepEqual(validateThresholds([0.25, 0.75]), [0.25, 0.75]);
  assert.throws(() => validateRule('gte'), (e: unknown) => e instanceof UserError && /--rule/.test(e.message));
  assert.equal(validateRule('ge'), 'ge');
});

test('mismatched lengths are a bug (RangeError), not a silent result', () => {
  assert.throws(() => softDice(f32([0, 1]), u8([0, 1, 1])), RangeError);
});

// ---- random agreement with the plain implementation ----

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

test('random data: softDice / hardDice / iou agree with the plain implementation', () => {
  const r = rng(12345);
  const special = [0, 0.1, 0.3, 0.5, 0.7, 0.9, 1];
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + Math.floor(r() * 300);
    const rule: ThresholdRule = r() < 0.5 ? 'gt' : 'ge';
    // Probabilities: 16-bit quantised, 8-bit quantised, or exactly on a threshold.
    const pred = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const u = r();
      pred[i] = u < 0.2 ? special[Math.floor(r() * special.length)] : u < 0.6 ? Math.round(r() * 65535) / 65535 : Math.round(r() * 255) / 255;
    }
    // Targets: binary masks or mean votes of M annotators.
    const M = 1 + Math.floor(r() * 10);
    const target = r() < 0.4 ? Uint8Array.from({ length: n }, () => (r() < 0.5 ? 1 : 0)) : Float64Array.from({ length: n }, () => Math.floor(r() * (M + 1)) / M);
    const ts = trial % 3 === 0 ? [...PAPER_THRESHOLDS] : Array.from({ length: 1 + Math.floor(r() * 7) }, () => (trial % 2 ? special[1 + Math.floor(r() * 5)] : 0.01 + 0.98 * r()));
    close(softDice(pred, target, { thresholds: ts, rule }), naiveSoftDice(pred, target, ts, rule), 1e-12, `trial ${trial} soft`);
    const t = ts[0];
    close(hardDice(pred, target, { threshold: t, rule }), naiveDiceAt(pred, target, t, rule, 1), 1e-12, `trial ${trial} hard`);
    close(iou(pred, target, { threshold: t, rule }), naiveDiceAt(pred, target, t, rule, 1, 'iou'), 1e-12, `trial ${trial} iou`);
  }
});
