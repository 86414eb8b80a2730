import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nearestIndices, resizeBilinear, resizeNearest } from '../src/data/resize';

const close = (actual: ArrayLike<number>, expected: number[], eps = 1e-4) => {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) < eps, `index ${i}: ${actual[i]} vs ${expected[i]}`);
};

// 1-D resizes as 1-row images, hand-computed with the pixel-centre convention.
const bilinear: { name: string; src: number[]; out: number; expected: number[] }[] = [
  // Enlarging is plain bilinear: centres at 0.25, 0.75, 1.25, 1.75 in source pixel units; edges clamp.
  { name: 'enlarge 2 → 4', src: [0, 100], out: 4, expected: [0, 25, 75, 100] },
  // Shrinking by 2 widens the triangle to ±2 source pixels: output 0 centred at 1.0 weighs
  // x=0,1,2 by 0.75, 0.75, 0.25 (normalised /1.75); output 1 centred at 3.0 weighs x=1,2,3 by 0.25, 0.75, 0.75.
  { name: 'shrink 4 → 2 averages (antialiased)', src: [0, 100, 200, 40], out: 2, expected: [(0.75 * 0 + 0.75 * 100 + 0.25 * 200) / 1.75, (0.25 * 100 + 0.75 * 200 + 0.75 * 40) / 1.75] },
  { name: 'same size is the identity', src: [3, 1, 4, 1, 5], out: 5, expected: [3, 1, 4, 1, 5] },
  { name: 'constant stays constant', src: [7, 7, 7, 7, 7, 7, 7], out: 3, expected: [7, 7, 7] },
];

for (const c of bilinear) {
  test(`resizeBilinear: ${c.name}`, () => {
    close(resizeBilinear(Float32Array.from(c.src), c.src.length, 1, 1, c.out, 1), c.expected);
    // The same along the other axis.
    close(resizeBilinear(Float32Array.from(c.src), 1, c.src.length, 1, 1, c.out), c.expected);
  });
}

test('resizeBilinear: interleaved input becomes planar output', () => {
  // 2x1 RGB: pixel 0 = (1,2,3), pixel 1 = (4,5,6) → planes R=[1,4], G=[2,5], B=[3,6].
  assert.deepEqual([...resizeBilinear(Uint8Array.from([1, 2, 3, 4, 5, 6]), 2, 1, 3, 2, 1)], [1, 4, 2, 5, 3, 6]);
});

test('resizeBilinear: 2-D enlarge 2x2 → 4x4 is separable bilinear', () => {
  const out = resizeBilinear(Float32Array.from([0, 100, 100, 200]), 2, 2, 1, 4, 4);
  // Row profiles [0,25,75,100] and [100,125,175,200], then blended with weights 1, .75/.25, .25/.75, 1.
  close(out, [0, 25, 75, 100, 25, 50, 100, 125, 75, 100, 150, 175, 100, 125, 175, 200]);
});

const nearest: { name: string; inSize: number; out: number; expected: number[] }[] = [
  { name: 'shrink 4 → 2 takes the pixel under each centre', inSize: 4, out: 2, expected: [1, 3] },
  { name: 'enlarge 2 → 4 repeats', inSize: 2, out: 4, expected: [0, 0, 1, 1] },
  { name: 'shrink 3 → 2', inSize: 3, out: 2, expected: [0, 2] },
];
for (const c of nearest) {
  test(`nearestIndices: ${c.name}`, () => assert.deepEqual([...nearestIndices(c.inSize, c.out)], c.expected));
}

test('resizeNearest never invents label values', () => {
  const src = Uint8Array.from([0, 128, 255, 0, 128, 255, 0, 128, 255]);
  const out = resizeNearest(src, 3, 3, 7, 5);
  assert.ok([...out].every((v) => v === 0 || v === 128 || v === 255));
  assert.deepEqual([...resizeNearest(Uint16Array.from([1, 2, 3, 4]), 2, 2, 1, 1)], [4]);
});
