import { test } from 'node:test';
import assert from 'node:assert/strict';
import { agreementCounts, caseTargets, meanVote } from '../src/data/targets';

const u8 = (xs: number[]) => Uint8Array.from(xs);

// Hand-computed agreement counts (Eq. 2) on 2x2 masks, row-major.
const cases: { name: string; masks: number[][]; available: boolean[]; counts: number[] }[] = [
  { name: 'three annotators, all available', masks: [[1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 0]], available: [true, true, true], counts: [2, 1, 2, 1] },
  { name: 'a missing annotator is not counted', masks: [[1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 0]], available: [true, false, true], counts: [1, 0, 2, 1] },
  { name: 'unanimous yes and no', masks: [[1, 0, 0, 1], [1, 0, 0, 1]], available: [true, true], counts: [2, 0, 0, 2] },
  { name: 'any non-zero value marks (255 masks)', masks: [[255, 0, 0, 0], [1, 0, 255, 0]], available: [true, true], counts: [2, 0, 1, 0] },
  { name: 'nobody available', masks: [[1, 1, 1, 1]], available: [false], counts: [0, 0, 0, 0] },
  { name: 'six annotators reach M = 6', masks: Array.from({ length: 6 }, (_, m) => [1, m < 3 ? 1 : 0, 0, m === 5 ? 1 : 0]), available: Array(6).fill(true), counts: [6, 3, 0, 1] },
];

for (const c of cases) {
  test(`agreementCounts: ${c.name}`, () => {
    assert.deepEqual([...agreementCounts(c.masks.map(u8), c.available)], c.counts);
  });
}

test('meanVote divides by the number of available annotators; no annotators → zeros', () => {
  assert.deepEqual([...meanVote(u8([1, 0, 2, 1]), 2)], [0.5, 0, 1, 0.5]);
  assert.deepEqual([...meanVote(u8([3, 0]), 0)], [0, 0]);
});

test('agreementCounts rejects inconsistent input', () => {
  assert.throws(() => agreementCounts([u8([1, 0])], [true, true]), /1 masks but 2 availability flags/);
  assert.throws(() => agreementCounts([u8([1, 0]), u8([1])], [true, true]), /mask 1 has 1 pixels/);
});

test('caseTargets: counts, mean votes and masks per structure with a missing annotator', () => {
  // 1x3 image, 3 annotators, annotator 2 missing; structure 0 = disc, 1 = cup.
  const t = caseTargets({
    width: 3,
    height: 1,
    available: [true, false, true],
    masks: [
      [u8([1, 1, 0]), u8([0, 1, 0])],
      [u8([0, 0, 0]), u8([0, 0, 0])],
      [u8([1, 1, 1]), u8([0, 1, 1])],
    ],
  });
  assert.equal(t.annotatorCount, 2);
  assert.deepEqual(t.agreementCounts.map((c) => [...c]), [[2, 2, 1], [0, 2, 1]]);
  assert.deepEqual(t.meanVotes.map((m) => [...m]), [[1, 1, 0.5], [0, 1, 0.5]]);
  assert.deepEqual(t.available, [true, false, true]);
});
