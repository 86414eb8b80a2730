import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_AUGMENT, IDENTITY_AUGMENT, jitterColour, sampleAugment, sourceMap, warpBilinear, warpNearest } from '../src/data/augment';
import { Rng } from '../src/util/random';

const P = (over: Partial<typeof IDENTITY_AUGMENT>) => ({ ...IDENTITY_AUGMENT, ...over });

function nearest(src: number[], size: number, params: typeof IDENTITY_AUGMENT): number[] {
  const out = new Uint8Array(size * size);
  warpNearest(Uint8Array.from(src), 1, size, sourceMap(params, size), out);
  return [...out];
}
function bilinear(src: number[], size: number, params: typeof IDENTITY_AUGMENT): number[] {
  const out = new Float32Array(size * size);
  warpBilinear(Uint8Array.from(src), 1, size, sourceMap(params, size), 1, out);
  return [...out].map((v) => Math.round(v * 1000) / 1000);
}

const grid3 = [1, 2, 3, 4, 5, 6, 7, 8, 9];

// Geometric warps checked by hand on a 3x3 grid (row-major).
const warps: { name: string; params: typeof IDENTITY_AUGMENT; expected: number[] }[] = [
  { name: 'identity', params: IDENTITY_AUGMENT, expected: grid3 },
  { name: 'horizontal flip', params: P({ hflip: true }), expected: [3, 2, 1, 6, 5, 4, 9, 8, 7] },
  { name: 'vertical flip', params: P({ vflip: true }), expected: [7, 8, 9, 4, 5, 6, 1, 2, 3] },
  // +90°: the image turns clockwise on screen (y points down): the left column 1,4,7 becomes the top row 7,4,1.
  { name: 'rotation by +90°', params: P({ angle: Math.PI / 2 }), expected: [7, 4, 1, 8, 5, 2, 9, 6, 3] },
  { name: 'both flips = 180°', params: P({ hflip: true, vflip: true }), expected: [9, 8, 7, 6, 5, 4, 3, 2, 1] },
];
for (const w of warps) {
  test(`warpNearest: ${w.name}`, () => assert.deepEqual(nearest(grid3, 3, w.params), w.expected));
}

test('warpBilinear: zooming in by 2 samples between pixels', () => {
  // Row [0,10,20,30]: output centres map to source 0.75, 1.25, 1.75, 2.25 → 7.5, 12.5, 17.5, 22.5.
  const row = [0, 10, 20, 30];
  const out = bilinear([...row, ...row, ...row, ...row], 4, P({ scale: 2 }));
  assert.deepEqual(out.slice(0, 4), [7.5, 12.5, 17.5, 22.5]);
  // Nearest on the same map: round(0.75)=1, round(1.25)=1, round(1.75)=2, round(2.25)=2.
  assert.deepEqual(nearest([...row, ...row, ...row, ...row], 4, P({ scale: 2 })).slice(0, 4), [10, 10, 20, 20]);
});

test('warpBilinear: zooming out fills the border by mirror reflection', () => {
  // Scale 0.5: centres map to -1.5, 0.5, 2.5, 4.5; mirrored, -2,-1 → 1,0 and 4,5 → 3,2: 5, 5, 25, 25.
  const row = [0, 10, 20, 30];
  assert.deepEqual(bilinear([...row, ...row, ...row, ...row], 4, P({ scale: 0.5 })).slice(0, 4), [5, 5, 25, 25]);
});

test('warpBilinear multiplies by the scale given (integer pixels to [0, 1])', () => {
  const out = new Float32Array(4);
  warpBilinear(Uint16Array.from([0, 65535, 65535, 0]), 1, 2, sourceMap(IDENTITY_AUGMENT, 2), 1 / 65535, out);
  assert.deepEqual([...out], [0, 1, 1, 0]);
});

const jitters: { name: string; channels: number; img: number[]; params: typeof IDENTITY_AUGMENT; expected: number[] }[] = [
  { name: 'brightness ×1.2, clamped at 1', channels: 1, img: [0.5, 0.9, 0, 0.25], params: P({ brightness: 1.2 }), expected: [0.6, 1, 0, 0.3] },
  { name: 'contrast ×2 about the mean 0.5', channels: 1, img: [0.25, 0.75, 0.5, 0.5], params: P({ contrast: 2 }), expected: [0, 1, 0.5, 0.5] },
  // Saturation 0: every pixel becomes its luma 0.299 R + 0.587 G + 0.114 B (planar RGB, 1 pixel).
  { name: 'saturation 0 gives grey', channels: 3, img: [1, 0, 0], params: P({ saturation: 0 }), expected: [0.299, 0.299, 0.299] },
];
for (const j of jitters) {
  test(`jitterColour: ${j.name}`, () => {
    const img = Float32Array.from(j.img);
    jitterColour(img, j.channels, Math.sqrt(j.img.length / j.channels), j.params);
    assert.deepEqual([...img].map((v) => Math.round(v * 1e5) / 1e5), j.expected);
  });
}

test('sampleAugment is deterministic per stream and stays in the configured ranges', () => {
  const a = sampleAugment(Rng.from(1, 'augment', 0, 3));
  assert.deepEqual(a, sampleAugment(Rng.from(1, 'augment', 0, 3)));
  const rng = new Rng(9);
  let flips = 0;
  for (let i = 0; i < 2000; i++) {
    const p = sampleAugment(rng);
    assert.ok(Math.abs(p.angle) <= (DEFAULT_AUGMENT.maxRotationDeg * Math.PI) / 180);
    assert.ok(p.scale >= 0.9 && p.scale <= 1.1 && p.brightness >= 0.9 && p.brightness <= 1.1);
    if (p.hflip) flips++;
  }
  assert.ok(flips > 900 && flips < 1100, `${flips} flips of 2000`);
});
