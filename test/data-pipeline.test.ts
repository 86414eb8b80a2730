import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDataset } from '../src/data/dataset';
import { computeNormalization, MIN_STD, Normalization } from '../src/data/normalization';
import { Batch, DataLoader, LoaderOptions, loadImageForModel } from '../src/data/pipeline';
import { writeSynthDataset } from '../src/data/synth';
import { UserError } from '../src/errors';
import { encodePng } from '../src/io/image';
import { smallNativeSpec, tmpDir, writeGrey, writeNative, writeRgb } from './data-fixtures';

/** The small native dataset with images whose pixel i of case k (1, 2, 3) is (10k + i, 100, 200 - i). */
async function gradientDataset(): Promise<string> {
  const spec = smallNativeSpec();
  const k = { case1: 1, case2: 2, case10: 3 } as Record<string, number>;
  for (const id of Object.keys(spec.images)) spec.images[id].pixel = (i) => [10 * k[id] + i, 100, 200 - i];
  return writeNative(tmpDir('pipe'), spec);
}

async function collect(loader: DataLoader, epoch: number): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

const base: Omit<LoaderOptions, 'normalization'> = { size: 4, batchSize: 2, shuffle: false, augment: false, seed: 0, dropLast: false, worker: false };

test('per-pixel normalization: a mean and std per channel and position over the training cases', async () => {
  const ds = await openDataset(await gradientDataset());
  const n = await computeNormalization(ds, ds.cases, 4);
  assert.equal(n.kind, 'per-pixel');
  if (n.kind !== 'per-pixel') return;
  assert.equal(n.mean.length, 3 * 16);
  // R at position i over the cases: 10+i, 20+i, 30+i → mean (20+i)/255, std sqrt(200/3)/255.
  for (const i of [0, 7, 15]) {
    assert.ok(Math.abs(n.mean[i] - (20 + i) / 255) < 1e-6);
    assert.ok(Math.abs(n.std[i] - Math.sqrt(200 / 3) / 255) < 1e-6);
  }
  // G is 100 everywhere: std 0 is floored so nothing divides by zero.
  assert.ok(Math.abs(n.mean[16] - 100 / 255) < 1e-6);
  assert.equal(n.std[16], Math.round(MIN_STD * 1e6) / 1e6);
  // Per-channel pools positions: R mean (20 + 7.5)/255; variance 200/3 (cases) + 21.25 (positions 0..15).
  const c = await computeNormalization(ds, ds.cases, 4, { kind: 'per-channel' });
  assert.equal(c.kind, 'per-channel');
  if (c.kind !== 'per-channel') return;
  assert.ok(Math.abs(c.mean[0] - 27.5 / 255) < 1e-6);
  assert.ok(Math.abs(c.std[0] - Math.sqrt(200 / 3 + 21.25) / 255) < 1e-6);
  assert.deepEqual(await computeNormalization(ds, ds.cases, 4, { kind: 'imagenet' }), { kind: 'imagenet' });
  // JSON round trip: what a checkpoint stores.
  assert.deepEqual(JSON.parse(JSON.stringify(n)), n);
});

test('a batch without augmentation: normalised images, agreement counts, mean votes, masks and availability by hand', async () => {
  const ds = await openDataset(await gradientDataset());
  const normalization: Normalization = { kind: 'per-channel', mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };
  const loader = new DataLoader(ds, ds.cases, { ...base, normalization });
  const [b1, b2] = await collect(loader, 0);
  assert.equal(loader.batchesPerEpoch, 2);
  assert.deepEqual(b1.caseIds, ['case1', 'case2']);
  assert.equal(b2.size, 1, 'the last, smaller batch is kept without dropLast');
  const SS = 16;
  // Image [B,C,S,S]: case1 R at pixel 5 = (15/255 - 0.5) / 0.25.
  assert.ok(Math.abs(b1.images[5] - (15 / 255 - 0.5) / 0.25) < 1e-6);
  // case2 B at pixel 3 = (197/255 - 0.5) / 0.25.
  assert.ok(Math.abs(b1.images[3 * SS + 2 * SS + 3] - (197 / 255 - 0.5) / 0.25) < 1e-6);

  const plane = (a: ArrayLike<number>, index: number) => [...Array.prototype.slice.call(a, index * SS, (index + 1) * SS)];
  // case1: both annotators. Disc counts = A1's disc + A2's disc; cup likewise (see smallNativeSpec).
  assert.deepEqual(plane(b1.agreementCounts, 0), [0, 1, 1, 0, 1, 2, 2, 1, 1, 2, 2, 1, 0, 1, 1, 0]);
  assert.deepEqual(plane(b1.agreementCounts, 1), [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 2, 0, 0, 0, 0, 0]);
  assert.deepEqual(plane(b1.meanVotes, 1), [0, 0, 0, 0, 0, 0.5, 0.5, 0, 0, 0.5, 1, 0, 0, 0, 0, 0]);
  // annotatorMasks [B,M,K,S,S]: case1, A1, cup.
  assert.deepEqual(plane(b1.annotatorMasks, 1), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
  // case2: A2 is missing — not counted, its masks are zero, mean vote divides by 1.
  assert.deepEqual([...b1.available], [1, 1, 1, 0]);
  assert.deepEqual([...b1.annotatorCount], [2, 1]);
  assert.deepEqual(plane(b1.agreementCounts, 2), [0, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0]);
  assert.deepEqual(plane(b1.meanVotes, 2), plane(b1.agreementCounts, 2));
  assert.ok(plane(b1.annotatorMasks, 2 * 2 + 1 * 2 + 0).every((v) => v === 0) && plane(b1.annotatorMasks, 2 * 2 + 1 * 2 + 1).every((v) => v === 0));
  await loader.close();
});

test('resizing: masks by nearest (pixels 5, 7, 13, 15 of 4x4 at size 2), images by area-weighted bilinear', async () => {
  const ds = await openDataset(await gradientDataset());
  const loader = new DataLoader(ds, ds.cases.slice(0, 1), { ...base, size: 2, batchSize: 1, normalization: { kind: 'per-channel', mean: [0, 0, 0], std: [1, 1, 1] } });
  const [b] = await collect(loader, 0);
  assert.deepEqual([...b.agreementCounts.slice(0, 4)], [2, 1, 1, 0]);
  // R of output pixel 0 averages the top-left 2x2 block symmetrically around 10 + 5 - 2.5 … exactly:
  // weights over x = 0,1,2 and y = 0,1,2 are 3/7, 3/7, 1/7 → R = 10 + (0·3 + 1·3 + 2·1)/7 + 4·(0·3 + 1·3 + 2·1)/7.
  assert.equal(b.images[0], Math.fround(Math.round(10 + 5 / 7 + (4 * 5) / 7) / 255)); // = 14/255
});

test('loadImageForModel prepares an image exactly like the training batches', async () => {
  const dir = await gradientDataset();
  const ds = await openDataset(dir);
  const normalization = await computeNormalization(ds, ds.cases, 4);
  const loader = new DataLoader(ds, ds.cases, { ...base, batchSize: 1, normalization });
  const [b] = await collect(loader, 0);
  const m = await loadImageForModel(path.join(dir, 'images', 'case1.png'), 4, normalization, 3);
  assert.equal(m.originalWidth, 4);
  assert.equal(m.originalHeight, 4);
  assert.deepEqual(m.input, b.images);
  // A greyscale image is replicated to the model's 3 channels.
  const grey = path.join(tmpDir('pipe-grey'), 'g.png');
  await writeGrey(grey, 2, 2, [0, 255, 255, 0]);
  const g = await loadImageForModel(grey, 2, { kind: 'per-channel', mean: [0, 0, 0], std: [1, 1, 1] }, 3);
  assert.deepEqual([...g.input], [0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0]);
  // A 16-bit image is scaled by 1/65535; an RGB image becomes luma for a 1-channel model.
  const deep = path.join(tmpDir('pipe-16'), 'd.png');
  fs.writeFileSync(deep, await encodePng({ width: 2, height: 1, channels: 1, bitDepth: 16, data: Uint16Array.from([0, 65535]) }));
  assert.deepEqual([...(await loadImageForModel(deep, 2, { kind: 'per-channel', mean: [0.5], std: [0.5] }, 1)).input.slice(0, 2)], [-1, 1]);
  const rgb = path.join(tmpDir('pipe-rgb'), 'c.png');
  await writeRgb(rgb, 1, 1, () => [255, 0, 0]);
  assert.equal((await loadImageForModel(rgb, 1, { kind: 'per-channel', mean: [0], std: [1] }, 1)).input[0], Math.fround(76 / 255)); // round(0.299·255)
  await assert.rejects(loadImageForModel(grey, 8, normalization, 3), /per-pixel normalization was computed for 3x4x4 inputs, not 3x8x8/);
  await assert.rejects(loadImageForModel(path.join(dir, 'nope.png'), 4, normalization, 3), /nope\.png: file not found/);
});

async function synthDataset(): Promise<string> {
  const out = path.join(tmpDir('pipe-synth'), 'd');
  await writeSynthDataset({ out, cases: 10, annotators: 3, size: 32, seed: 1 });
  return out;
}

test('augmented batches: deterministic under the seed, same in the worker thread, different for another seed', async () => {
  const ds = await openDataset(await synthDataset());
  const opts: LoaderOptions = { size: 32, batchSize: 4, shuffle: true, augment: true, seed: 7, normalization: { kind: 'imagenet' }, dropLast: true };
  const inline = new DataLoader(ds, ds.cases, { ...opts, worker: false });
  const worker = new DataLoader(ds, ds.cases, { ...opts, worker: true });
  const other = new DataLoader(ds, ds.cases, { ...opts, seed: 8, worker: false });
  try {
    for (const epoch of [0, 1]) {
      const a = await collect(inline, epoch);
      const w = await collect(worker, epoch);
      assert.equal(a.length, 2, '10 cases, batches of 4, dropLast');
      assert.deepEqual(w, a, `epoch ${epoch}: worker and main thread agree`);
      const o = await collect(other, epoch);
      assert.notDeepEqual(o.map((b) => b.images), a.map((b) => b.images));
    }
    const e0 = (await collect(inline, 0)).flatMap((b) => b.caseIds);
    const e1 = (await collect(inline, 1)).flatMap((b) => b.caseIds);
    assert.notDeepEqual(e0, e1, 'each epoch has its own order');
  } finally {
    await Promise.all([inline.close(), worker.close(), other.close()]);
  }
});

test('augmented batches keep the targets consistent: counts = Σ available masks, masks binary, cup ⊂ disc', async () => {
  const ds = await openDataset(await synthDataset());
  const loader = new DataLoader(ds, ds.cases, { size: 24, batchSize: 5, shuffle: true, augment: true, seed: 3, normalization: { kind: 'imagenet' }, dropLast: false });
  const SS = 24 * 24;
  const M = 3;
  const K = 2;
  let seen = 0;
  for await (const b of loader.epoch(0)) {
    for (let j = 0; j < b.size; j++) {
      for (let k = 0; k < K; k++) {
        for (let i = 0; i < SS; i++) {
          let sum = 0;
          for (let m = 0; m < M; m++) {
            const v = b.annotatorMasks[((j * M + m) * K + k) * SS + i];
            assert.ok(v === 0 || v === 1);
            sum += v;
            if (k === 1 && v === 1) assert.equal(b.annotatorMasks[((j * M + m) * K + 0) * SS + i], 1, 'cup pixel outside the disc');
          }
          assert.equal(b.agreementCounts[(j * K + k) * SS + i], sum);
          assert.equal(b.meanVotes[(j * K + k) * SS + i], Math.fround(sum / 3));
        }
      }
      seen++;
    }
  }
  assert.equal(seen, 10);
  await loader.close();
});

test('the worker loader: shuffled epochs are permutations, an early break can be followed by another epoch', async () => {
  const ds = await openDataset(await synthDataset());
  const loader = new DataLoader(ds, ds.cases, { size: 16, batchSize: 3, shuffle: true, augment: false, seed: 1, normalization: { kind: 'imagenet' }, dropLast: false, prefetch: 1 });
  try {
    for await (const b of loader.epoch(0)) {
      assert.equal(b.size, 3);
      break;
    }
    const ids = (await collect(loader, 1)).flatMap((b) => b.caseIds);
    assert.deepEqual([...ids].sort(), ds.cases.map((c) => c.id).sort());
    assert.equal(loader.batchesPerEpoch, 4);
    // Starting a second epoch while one is being iterated is a programming error.
    const it = loader.epoch(2)[Symbol.asyncIterator]();
    await it.next();
    assert.throws(() => loader.epoch(3), /previous epoch is still being iterated/);
    await it.return?.();
  } finally {
    await loader.close();
  }
});

test('a bad file met while loading is a UserError naming it, from the worker thread too', async () => {
  const dir = await gradientDataset();
  await writeGrey(path.join(dir, 'labels', 'case10_A1.png'), 2, 2, [0, 0, 0, 0]);
  const ds = await openDataset(dir);
  for (const worker of [false, true]) {
    const loader = new DataLoader(ds, ds.cases, { ...base, worker, normalization: { kind: 'imagenet' } });
    await assert.rejects(collect(loader, 0), (e: Error) => {
      assert.ok(e instanceof UserError, `worker=${worker}: ${e}`);
      assert.match(e.message, /case10_A1\.png: label map is 2x2 but its image .*case10\.png is 4x4/);
      return true;
    });
    await loader.close();
  }
  assert.throws(() => new DataLoader(ds, [], { ...base, normalization: { kind: 'imagenet' } }), /no cases to load/);
  assert.throws(() => new DataLoader(ds, ds.cases, { ...base, batchSize: 0, normalization: { kind: 'imagenet' } }), /batch size must be a positive integer, got 0/);
});
