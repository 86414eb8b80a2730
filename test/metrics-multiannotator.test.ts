import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { NanMeanAccumulator, nanMean } from '../src/metrics/accumulator';
import { PAPER_THRESHOLDS, thresholdCounts, ThresholdRule } from '../src/metrics/dice';
import {
  averageDice,
  CaseStructureInput,
  CaseStructureMetrics,
  crossTable,
  evaluateCaseStructure,
  evaluateCaseStructurePlain,
  expectedCalibrationError,
  generalizedEnergyDistance,
  identifiability,
  Mask,
  meanVote,
  meanVotingDice,
} from '../src/metrics/multiAnnotator';

const EPS = 1e-6;
const f32 = (xs: number[]): Float32Array => Float32Array.from(xs);
const u8 = (xs: number[]): Uint8Array => Uint8Array.from(xs);

function close(actual: number, expected: number, tol = 1e-12, what = ''): void {
  if (Number.isNaN(expected)) {
    assert.ok(Number.isNaN(actual), `${what} expected NaN, got ${actual}`);
    return;
  }
  assert.ok(Math.abs(actual - expected) <= tol, `${what} expected ${expected}, got ${actual}`);
}

// ---------------------------------------------------------------- hand-computed cases

test('meanVote: mean over the available annotations, in double precision', () => {
  assert.deepEqual(Array.from(meanVote([u8([1, 0, 1, 0]), null, u8([1, 1, 0, 0])])), [1, 0.5, 0.5, 0]);
  // 1 vote of 10 is exactly 0.1, so it is not > 0.1 (float32 would make it 0.10000000149 > 0.1).
  const ten = Array.from({ length: 10 }, (_, k) => u8([k === 0 ? 1 : 0]));
  const mv = meanVote(ten);
  assert.equal(mv[0], 0.1);
  assert.equal(thresholdCounts(f32([1]), mv, [0.1], 'gt').target[0], 0);
  assert.equal(thresholdCounts(f32([1]), mv, [0.1], 'ge').target[0], 1);
  assert.throws(() => meanVote([null, null]), RangeError);
});

test('crossTable / averageDice / identifiability: two annotators, disjoint halves', () => {
  const preds = [f32([0.95, 0.95, 0, 0]), f32([0, 0, 0.95, 0.95])];
  const anns = [u8([1, 1, 0, 0]), u8([0, 0, 1, 1])];
  const off = EPS / (4 + EPS);
  const cross = crossTable(preds, anns);
  cross.flat().forEach((v, i) => close(v, [1, off, off, 1][i]));
  const avg = averageDice(preds, anns);
  assert.deepEqual(avg.per_annotator, [1, 1]);
  assert.equal(avg.average, 1);
  assert.deepEqual(identifiability(cross), [1, 1]);
  // Swapped predictions: each is closest to the other annotator.
  assert.deepEqual(identifiability(crossTable([preds[1], preds[0]], anns)), [0, 0]);
});

test('averageDice skips a missing annotation', () => {
  const preds = [f32([0.95, 0, 0, 0]), f32([0.95, 0.95, 0, 0]), f32([0, 0, 0, 0])];
  const anns = [u8([1, 0, 0, 0]), null, u8([1, 1, 0, 0])];
  const r = averageDice(preds, anns);
  close(r.per_annotator[0], 1);
  assert.ok(Number.isNaN(r.per_annotator[1]));
  close(r.per_annotator[2], EPS / (2 + EPS));
  close(r.average, (1 + EPS / (2 + EPS)) / 2);
});

test('identifiability: strict, ties and missing annotations', () => {
  const cross = [
    [0.9, 0.8, NaN],
    [0.7, 0.7, 0.6],
    [NaN, NaN, NaN],
  ];
  const got = identifiability(cross);
  assert.equal(got[0], 1); // 0.9 > 0.8 (annotation 3 missing)
  assert.equal(got[1], 0); // a tie is not identified
  assert.ok(Number.isNaN(got[2])); // own annotation missing
  assert.ok(Number.isNaN(identifiability([[0.5]])[0])); // nobody to be confused with
});

const gedCases: { name: string; preds: number[][]; anns: (number[] | null)[]; expected: number }[] = [
  { name: 'predictions equal the annotations → 0', preds: [[1, 1, 0, 0], [0, 1, 1, 0]], anns: [[1, 1, 0, 0], [0, 1, 1, 0]], expected: 0 },
  // d(S,Y): pairs (A,A)=0 (A,B)=1 twice → 0.5; d(S,S)=0; d(Y,Y)=(0+1+1+0)/4=0.5 → 2·0.5 − 0 − 0.5
  { name: 'both predictions A, annotations A and B disjoint → 0.5', preds: [[1, 1, 0, 0], [1, 1, 0, 0]], anns: [[1, 1, 0, 0], [0, 0, 1, 1]], expected: 0.5 },
  { name: 'one empty prediction vs one annotation → 2', preds: [[0, 0, 0, 0]], anns: [[1, 0, 0, 0]], expected: 2 },
  { name: 'all empty → 0 (two empty masks are at distance 0)', preds: [[0, 0, 0, 0], [0, 0, 0, 0]], anns: [[0, 0, 0, 0], [0, 0, 0, 0]], expected: 0 },
  // IoU(A,C) = 1/2 with A = {0,1}, C = {1}; S = {A}, Y = {C} (second annotation missing) → 2·0.5.
  { name: 'missing annotations are left out', preds: [[0.9, 0.9, 0, 0]], anns: [[0, 1, 0, 0], null], expected: 1 },
];

for (const c of gedCases) {
  test(`generalizedEnergyDistance: ${c.name}`, () => {
    close(generalizedEnergyDistance(c.preds.map(f32), c.anns.map((a) => (a ? u8(a) : null))), c.expected);
  });
}

test('generalizedEnergyDistance: binarisation at 0.5 follows the rule', () => {
  const preds = [f32([0.5, 0.5, 0, 0])];
  const anns = [u8([1, 1, 0, 0])];
  close(generalizedEnergyDistance(preds, anns, { rule: 'gt' }), 2);
  close(generalizedEnergyDistance(preds, anns, { rule: 'ge' }), 0);
  assert.ok(Number.isNaN(generalizedEnergyDistance(preds, [null])));
});

test('expectedCalibrationError: hand-computed bins', () => {
  // bin of 0.2: mean p 0.2, mean y 0.25, weight 1/2; bin of 0.9: mean p 0.9, mean y 1, weight 1/2.
  const p = f32([0.2, 0.2, 0.9, 0.9]).map((v) => v); // float32 values, as read from a file
  const y = Float64Array.from([0, 0.5, 1, 1]);
  const expected = 0.5 * Math.abs((p[0] + p[1]) / 2 - 0.25) + 0.5 * Math.abs((p[2] + p[3]) / 2 - 1);
  close(expectedCalibrationError(p, y, 15), expected);
  close(expectedCalibrationError(p, y, 10), expected);
  close(expected, 0.075, 1e-7);
  close(expectedCalibrationError(f32([1]), Float64Array.from([0]), 15), 1); // p = 1 falls in the last bin
  close(expectedCalibrationError(f32([0.3, NaN]), Float64Array.from([0.3, 1]), 10), Math.abs(f32([0.3])[0] - 0.3)); // NaN pixel left out
  assert.ok(Number.isNaN(expectedCalibrationError(f32([NaN]), Float64Array.from([1]))));
});

test('evaluateCaseStructure: the hand case, and all annotations missing → NaN', () => {
  const input: CaseStructureInput = {
    meanPrediction: f32([0.6, 1, 0, 0]),
    annotatorPredictions: [0, 1, 2, 3, 4, 5].map(() => f32([0.95, 0.95, 0, 0])),
    annotations: [0, 1, 2, 3, 4, 5].map((k) => u8([k < 3 ? 1 : 0, 1, 0, 0])),
  };
  const gt = evaluateCaseStructure(input, { rule: 'gt' });
  close(gt.mean_voting, (4 + (2 + EPS) / (3 + EPS)) / 5);
  close(evaluateCaseStructure(input, { rule: 'ge' }).mean_voting, 1);
  // Annotators 1-3 drew both pixels: Dice 1; annotators 4-6 drew one: (2+ε)/(3+ε).
  gt.per_annotator.forEach((v, k) => close(v, k < 3 ? 1 : (2 + EPS) / (3 + EPS)));
  // Mean vote at 0.5 under '>' is pixel 1 only; the mean prediction at 0.5 is pixels 0 and 1.
  close(gt.hard_dice, (2 * 1 + 1) / (2 + 1 + 1));
  close(gt.iou, (1 + 1) / (2 + 1));
  const none = evaluateCaseStructure({ ...input, annotations: input.annotations.map(() => null) });
  for (const v of [none.mean_voting, none.average, none.ged, none.ece, none.hard_dice, none.iou, ...none.per_annotator, ...none.cross.flat(), ...none.identifiability_per_annotator]) assert.ok(Number.isNaN(v));
});

test('NanMeanAccumulator: per-entry means over the cases that define them', () => {
  const acc = new NanMeanAccumulator(3);
  acc.add([1, NaN, NaN]).add([3, 2, NaN]);
  const agg = acc.aggregate();
  assert.deepEqual(agg.slice(0, 2), [2, 2]);
  assert.ok(Number.isNaN(agg[2]));
  assert.deepEqual(acc.countPerEntry(), [2, 1, 0]);
  assert.equal(acc.caseCount, 2);
  assert.throws(() => acc.add([1]), RangeError);
  acc.reset();
  assert.equal(acc.caseCount, 0);
  assert.ok(Number.isNaN(nanMean([NaN])));
  assert.equal(nanMean([1, NaN, 2]), 1.5);
});

// ---------------------------------------------------------------- random agreement

/** Independent plain implementation of every per-case metric, from the definitions. */
function naive(input: CaseStructureInput, ts: readonly number[], rule: ThresholdRule, bins: number): CaseStructureMetrics {
  const on = (v: number, t: number): boolean => (rule === 'gt' ? v > t : v >= t);
  const diceAt = (p: ArrayLike<number>, q: ArrayLike<number>, t: number, smooth: number, kind: 'dice' | 'iou' = 'dice'): number => {
    let i = 0;
    let a = 0;
    let b = 0;
    for (let x = 0; x < p.length; x++) {
      const pp = on(p[x], t);
      const qq = on(q[x], t);
      if (pp) a++;
      if (qq) b++;
      if (pp && qq) i++;
    }
    return kind === 'dice' ? (2 * i + smooth) / (a + b + smooth) : (i + smooth) / (a + b - i + smooth);
  };
  const soft = (p: ArrayLike<number>, q: ArrayLike<number>): number => ts.reduce((s, t) => s + diceAt(p, q, t, EPS), 0) / ts.length;
  const avail = input.annotations.map((a, k) => (a ? k : -1)).filter((k) => k >= 0);
  const N = input.meanPrediction.length;
  if (avail.length === 0) {
    return evaluateCaseStructurePlain(input, { thresholds: ts, rule, eceBins: bins }); // all NaN
  }
  const mv = Array.from({ length: N }, (_, x) => avail.filter((k) => input.annotations[k]![x] !== 0).length / avail.length);
  const cross = input.annotatorPredictions.map((p) => input.annotations.map((a) => (a ? soft(p, Array.from(a, (v) => (v ? 1 : 0))) : NaN)));
  const perAnnotator = cross.map((r, k) => r[k]);
  const identified = cross.map((row, k) => {
    if (Number.isNaN(row[k])) return NaN;
    const others = row.filter((v, j) => j !== k && !Number.isNaN(v));
    return others.length === 0 ? NaN : row[k] > Math.max(...others) ? 1 : 0;
  });
  const sets = (m: ArrayLike<number>, f: (v: number) => boolean): Set<number> => new Set(Array.from(m, (v, x) => (f(v) ? x : -1)).filter((x) => x >= 0));
  const S = input.annotatorPredictions.map((p) => sets(p, (v) => on(v, 0.5)));
  const Y = avail.map((k) => sets(input.annotations[k]!, (v) => v !== 0));
  const d = (a: Set<number>, b: Set<number>): number => {
    const inter = [...a].filter((x) => b.has(x)).length;
    const union = new Set([...a, ...b]).size;
    return union === 0 ? 0 : 1 - inter / union;
  };
  const md = (A: Set<number>[], B: Set<number>[]): number => A.flatMap((a) => B.map((b) => d(a, b))).reduce((s, v) => s + v, 0) / (A.length * B.length);
  const nb = new Array<number>(bins).fill(0);
  const sp = new Array<number>(bins).fill(0);
  const sy = new Array<number>(bins).fill(0);
  let tot = 0;
  for (let x = 0; x < N; x++) {
    const p = input.meanPrediction[x];
    if (Number.isNaN(p)) continue;
    const b = Math.max(0, Math.min(bins - 1, Math.floor(p * bins)));
    nb[b]++;
    sp[b] += p;
    sy[b] += mv[x];
    tot++;
  }
  const ece = tot === 0 ? NaN : nb.reduce((s, n, b) => (n > 0 ? s + (n / tot) * Math.abs(sp[b] / n - sy[b] / n) : s), 0);
  return {
    mean_voting: soft(input.meanPrediction, mv),
    per_annotator: perAnnotator,
    average: nanMean(perAnnotator),
    cross,
    ged: 2 * md(S, Y) - md(S, S) - md(Y, Y),
    ece,
    identifiability_per_annotator: identified,
    hard_dice: diceAt(input.meanPrediction, mv, 0.5, 1),
    iou: diceAt(input.meanPrediction, mv, 0.5, 1, 'iou'),
  };
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Blob-like random masks (so annotations overlap like real ones) and probabilities. */
function randomCase(r: () => number, w: number, h: number, M: number, missing: number): CaseStructureInput {
  const cx = w / 2;
  const cy = h / 2;
  const blob = (rad: number, jitter: number): Uint8Array =>
    Uint8Array.from({ length: w * h }, (_, i) => {
      const x = i % w;
      const y = Math.floor(i / w);
      return Math.hypot(x - cx, y - cy) + (r() - 0.5) * jitter < rad ? 1 : 0;
    });
  const special = [0, 0.1, 0.3, 0.5, 0.7, 0.9, 1];
  const prob = (): Float32Array =>
    Float32Array.from({ length: w * h }, (_, i) => {
      const x = i % w;
      const y = Math.floor(i / w);
      const u = r();
      if (u < 0.15) return special[Math.floor(r() * special.length)];
      const base = 1 / (1 + Math.exp(Math.hypot(x - cx, y - cy) - (w / 4) * (0.6 + r() * 0.8)));
      return Math.round(base * 65535) / 65535;
    });
  const annotations: (Mask | null)[] = Array.from({ length: M }, () => (r() < missing ? null : blob((w / 4) * (0.5 + r()), 3)));
  return { meanPrediction: prob(), annotatorPredictions: Array.from({ length: M }, prob), annotations };
}

function assertSame(a: CaseStructureMetrics, b: CaseStructureMetrics, what: string): void {
  close(a.mean_voting, b.mean_voting, 1e-12, `${what} mean_voting`);
  close(a.average, b.average, 1e-12, `${what} average`);
  close(a.ged, b.ged, 1e-12, `${what} ged`);
  close(a.ece, b.ece, 1e-12, `${what} ece`);
  close(a.hard_dice, b.hard_dice, 1e-12, `${what} hard_dice`);
  close(a.iou, b.iou, 1e-12, `${what} iou`);
  a.per_annotator.forEach((v, k) => close(v, b.per_annotator[k], 1e-12, `${what} per_annotator[${k}]`));
  a.identifiability_per_annotator.forEach((v, k) => close(v, b.identifiability_per_annotator[k], 0, `${what} identifiability_per_annotator[${k}]`));
  a.cross.forEach((row, i) => row.forEach((v, j) => close(v, b.cross[i][j], 1e-12, `${what} cross[${i}][${j}]`)));
}

test('random data: fused evaluateCaseStructure = plain functions = independent implementation', () => {
  const r = rng(2024);
  for (let trial = 0; trial < 120; trial++) {
    const M = 1 + (trial % 7);
    const w = 1 + Math.floor(r() * 24);
    const h = 1 + Math.floor(r() * 24);
    const input = randomCase(r, w, h, M, trial % 4 === 0 ? 0.3 : 0);
    const rule: ThresholdRule = trial % 2 ? 'gt' : 'ge';
    const ts = trial % 3 === 0 ? [...PAPER_THRESHOLDS] : [0.5, 0.25, 0.75];
    const bins = trial % 5 === 0 ? 10 : 15;
    const opts = { thresholds: ts, rule, eceBins: bins };
    const fused = evaluateCaseStructure(input, opts);
    const plain = evaluateCaseStructurePlain(input, opts);
    const ref = naive(input, ts, rule, bins);
    assertSame(fused, ref, `trial ${trial} fused`);
    assertSame(plain, ref, `trial ${trial} plain`);
    close(meanVotingDice(input.meanPrediction, input.annotations, opts), ref.mean_voting, 1e-12, `trial ${trial} meanVotingDice`);
  }
});

test('random data: 16 annotators (beyond the fused path) and a 64×64 image', () => {
  const r = rng(7);
  const big = randomCase(r, 64, 64, 16, 0.2);
  assertSame(evaluateCaseStructure(big), naive(big, PAPER_THRESHOLDS, 'gt', 15), '16 annotators');
  const six = randomCase(r, 64, 64, 6, 0);
  assertSame(evaluateCaseStructure(six), naive(six, PAPER_THRESHOLDS, 'gt', 15), '6 annotators 64x64');
  const fifteen = randomCase(r, 20, 20, 15, 0.1);
  assertSame(evaluateCaseStructure(fifteen), naive(fifteen, PAPER_THRESHOLDS, 'gt', 15), '15 annotators');
});

test('evaluateCaseStructure rejects inconsistent shapes', () => {
  assert.throws(() => evaluateCaseStructure({ meanPrediction: f32([0, 0]), annotatorPredictions: [f32([0, 0])], annotations: [u8([0, 0]), u8([0, 0])] }), RangeError);
  assert.throws(() => evaluateCaseStructure({ meanPrediction: f32([0, 0]), annotatorPredictions: [f32([0])], annotations: [u8([0, 0])] }), RangeError);
});
