import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hashSeed, Rng } from '../src/util/random';

const draw = (rng: Rng, n: number) => Array.from({ length: n }, () => rng.nextU32());

test('same seed gives the same stream; another seed a different one', () => {
  assert.deepEqual(draw(new Rng(42), 20), draw(new Rng(42), 20));
  assert.notDeepEqual(draw(new Rng(42), 20), draw(new Rng(43), 20));
});

test('derived streams depend on every part and their order, not on what was drawn before', () => {
  assert.notEqual(hashSeed(1, 2), hashSeed(2, 1));
  assert.notEqual(hashSeed(1), hashSeed('1'));
  assert.notEqual(hashSeed(2 ** 40), hashSeed(0));
  assert.equal(hashSeed(7, 'augment', 3), hashSeed(7, 'augment', 3));
  const a = Rng.from(7, 'augment', 3);
  new Rng(123).next(); // unrelated draws elsewhere do not matter
  assert.deepEqual(draw(a, 5), draw(Rng.from(7, 'augment', 3), 5));
});

test('next() is in [0, 1) with mean 1/2; int(n) is unbiased over its range', () => {
  const rng = new Rng(1);
  let sum = 0;
  const counts = new Array(6).fill(0);
  const N = 60000;
  for (let i = 0; i < N; i++) {
    const u = rng.next();
    assert.ok(u >= 0 && u < 1);
    sum += u;
    counts[rng.int(6)]++;
  }
  assert.ok(Math.abs(sum / N - 0.5) < 0.01, `mean ${sum / N}`);
  // Each face expects 10000 draws; 4 sigma is ±365.
  for (const c of counts) assert.ok(Math.abs(c - N / 6) < 400, `counts ${counts}`);
  assert.throws(() => rng.int(0), RangeError);
});

test('normal(mean, std) has that mean and std', () => {
  const rng = new Rng(2);
  const N = 40000;
  const xs = Array.from({ length: N }, () => rng.normal(3, 2));
  const mean = xs.reduce((a, b) => a + b, 0) / N;
  const sd = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / N);
  assert.ok(Math.abs(mean - 3) < 0.05, `mean ${mean}`);
  assert.ok(Math.abs(sd - 2) < 0.05, `std ${sd}`);
});

test('permutation(n) is a deterministic permutation of 0..n-1', () => {
  const p = Rng.from(5, 'shuffle', 0).permutation(50);
  assert.deepEqual([...p].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(p, Rng.from(5, 'shuffle', 0).permutation(50));
  assert.notDeepEqual(p, Rng.from(5, 'shuffle', 1).permutation(50));
});
