import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDataset, readAnnotations, selectCases } from '../src/data/dataset';
import { UserError } from '../src/errors';
import { smallNativeSpec, tmpDir, writeGrey, writeNative } from './data-fixtures';

test('native layout: annotators, structures with the nesting rule, cases, splits and a missing annotation', async () => {
  const dir = await writeNative(tmpDir('native'), smallNativeSpec());
  const ds = await openDataset(dir);
  assert.equal(ds.layout, 'native');
  assert.equal(ds.name, 'small');
  assert.deepEqual(ds.annotators, ['A1', 'A2']);
  // disc contains cup, so the disc is marked by its own value 1 and by the cup's 2.
  assert.deepEqual(ds.structures.map((s) => [s.name, s.values]), [['disc', [1, 2]], ['cup', [2]]]);
  assert.deepEqual(ds.labelValues, [0, 1, 2]);
  assert.equal(ds.channels, 3);
  // Numeric order: case2 before case10.
  assert.deepEqual(ds.cases.map((c) => c.id), ['case1', 'case2', 'case10']);
  const case2 = ds.cases[1];
  assert.equal(case2.image, path.join(dir, 'images', 'case2.png'));
  assert.deepEqual(case2.labels, [path.join(dir, 'labels', 'case2_A1.png'), null]);
  assert.deepEqual(ds.splits, { train: ['case1', 'case2'], test: ['case10'] });
});

test('readAnnotations splits a label map into per-structure binary masks, zeros for a missing annotator', async () => {
  const dir = await writeNative(tmpDir('native'), smallNativeSpec());
  const ds = await openDataset(dir);
  const a = await readAnnotations(ds, ds.cases[0]);
  assert.equal(a.width, 4);
  assert.equal(a.height, 4);
  assert.deepEqual(a.available, [true, true]);
  // A1's map: 1 1 / 1 2 in the centre; disc = {1,2}, cup = {2}.
  assert.deepEqual([...a.masks[0][0]], [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual([...a.masks[0][1]], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
  assert.deepEqual([...a.masks[1][1]], [0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0]);
  const b = await readAnnotations(ds, ds.cases[1]);
  assert.deepEqual(b.available, [true, false]);
  assert.ok(b.masks[1].every((mask) => mask.every((v) => v === 0)));
});

test('a QUBIQ-style dataset: 7 annotators, one structure, values 0/255 — M and structures come from dataset.json', async () => {
  const annotators = Array.from({ length: 7 }, (_, i) => `rater${i + 1}`);
  const labels: Record<string, { width: number; height: number; values: number[] }> = {};
  annotators.forEach((a, m) => (labels[`k1_${a}`] = { width: 2, height: 2, values: [255, m % 2 ? 255 : 0, 0, 0] }));
  const dir = await writeNative(tmpDir('qubiq'), {
    json: { name: 'qubiq-like', annotators, structures: [{ name: 'lesion', values: [255] }], channels: 1 },
    images: { k1: { width: 2, height: 2 } },
    labels,
  });
  const ds = await openDataset(dir);
  assert.equal(ds.annotators.length, 7);
  assert.deepEqual(ds.structures.map((s) => s.name), ['lesion']);
  assert.equal(ds.channels, 1);
  assert.deepEqual(ds.splits, {});
  const a = await readAnnotations(ds, ds.cases[0]);
  assert.deepEqual(a.masks.map((perStructure) => perStructure[0][1]), [0, 1, 0, 1, 0, 1, 0]);
});

test('selectCases: by split, by subset, both; unknown names list the known ones', async () => {
  const spec = smallNativeSpec();
  spec.json.subsets = { siteA: ['case1', 'case10'], siteB: ['case2'] };
  const ds = await openDataset(await writeNative(tmpDir('native'), spec));
  assert.deepEqual(selectCases(ds, { split: 'train' }).map((c) => c.id), ['case1', 'case2']);
  assert.deepEqual(selectCases(ds, { subsets: ['siteA'] }).map((c) => c.id), ['case1', 'case10']);
  assert.deepEqual(selectCases(ds, { subsets: ['siteA'], split: 'train' }).map((c) => c.id), ['case1']);
  assert.deepEqual(selectCases(ds, { split: 'siteB' }).map((c) => c.id), ['case2'], 'subsets are splits too');
  assert.deepEqual(selectCases(ds, {}).map((c) => c.id), ['case1', 'case2', 'case10']);
  assert.throws(() => selectCases(ds, { split: 'valid' }), (e: Error) => e instanceof UserError && /unknown split 'valid' \(known: train, test, siteA, siteB\)/.test(e.message));
  assert.throws(() => selectCases(ds, { subsets: ['siteC'] }), /unknown subset 'siteC' \(known: siteA, siteB\)/);
});

test('openDataset refuses a broken layout with one line naming the file', async () => {
  const table: { name: string; mutate: (dir: string) => void | Promise<void>; error: RegExp }[] = [
    { name: 'no labels folder', mutate: (d) => fs.rmSync(path.join(d, 'labels'), { recursive: true }), error: /labels: folder not found/ },
    { name: 'dataset.json is not JSON', mutate: (d) => fs.writeFileSync(path.join(d, 'dataset.json'), '{"name": '), error: /dataset\.json: invalid JSON/ },
    { name: 'dataset.json with a bad field', mutate: (d) => fs.writeFileSync(path.join(d, 'dataset.json'), JSON.stringify({ ...smallNativeSpec().json, channels: 2 })), error: /dataset\.json: channels: / },
    { name: 'split naming an unknown case', mutate: (d) => fs.writeFileSync(path.join(d, 'dataset.json'), JSON.stringify({ ...smallNativeSpec().json, splits: { test: ['case99'] } })), error: /splits\.test lists 1 case with no image in images\/: 'case99'/ },
    { name: 'duplicate case', mutate: (d) => fs.copyFileSync(path.join(d, 'images', 'case1.png'), path.join(d, 'images', 'case1.tif')), error: /duplicate case 'case1'/ },
  ];
  for (const row of table) {
    const dir = await writeNative(tmpDir('native-bad'), smallNativeSpec());
    await row.mutate(dir);
    await assert.rejects(openDataset(dir), (e: Error) => {
      assert.ok(e instanceof UserError, `${row.name}: ${e}`);
      assert.match(e.message, row.error, row.name);
      assert.ok(!e.message.includes('\n'), `${row.name}: one line`);
      return true;
    });
  }
});

test('readAnnotations fails clearly on a label of the wrong size or with undeclared values', async () => {
  const dir = await writeNative(tmpDir('native'), smallNativeSpec());
  await writeGrey(path.join(dir, 'labels', 'case1_A1.png'), 3, 3, [0, 0, 0, 0, 1, 0, 0, 0, 0]);
  await writeGrey(path.join(dir, 'labels', 'case2_A1.png'), 4, 4, [7, ...Array(15).fill(0)]);
  const ds = await openDataset(dir);
  await assert.rejects(readAnnotations(ds, ds.cases[0]), /case1_A1\.png: label map is 3x3 but its image .*case1\.png is 4x4/);
  await assert.rejects(readAnnotations(ds, ds.cases[1]), /case2_A1\.png: undeclared label value 7 in 1 pixel \(declared: 0 \(background\); disc: values 1, 2; contains cup; cup: value 2\)/);
});

test('native layout with NIfTI: images/<case>.nii.gz and labels as .nii.gz or .png; a CT modality gets the foreground rule', async () => {
  const { blankNiftiTemplate, encodeNifti } = await import('../src/io/nifti');
  const { computeIntensity } = await import('../src/data/intensityStats');
  const { prepareCase } = await import('../src/data/prepare');
  const dir = tmpDir('native-nifti');
  fs.mkdirSync(path.join(dir, 'images'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'labels'));
  fs.writeFileSync(path.join(dir, 'dataset.json'), JSON.stringify({ name: 'ct', annotators: ['A', 'B'], structures: [{ name: 'organ', values: [1] }], channels: 1, modality: ['CT'] }));
  const t = blankNiftiTemplate([1, 1, 1], [0, 0, 0]);
  // 2×2 CT images; A marks voxel 0 of c1, B voxels 0 and 3 of c1; c2 is annotated by A only, at voxel 1.
  fs.writeFileSync(path.join(dir, 'images', 'c1.nii.gz'), encodeNifti(t, [2, 2], Int16Array.from([-100, -1000, -1000, 300]), true));
  fs.writeFileSync(path.join(dir, 'images', 'c2.nii'), encodeNifti(t, [2, 2], Int16Array.from([-1000, 100, -1000, -1000]), false));
  fs.writeFileSync(path.join(dir, 'labels', 'c1_A.nii.gz'), encodeNifti(t, [2, 2], Uint8Array.from([1, 0, 0, 0]), true));
  fs.writeFileSync(path.join(dir, 'labels', 'c1_B.nii.gz'), encodeNifti(t, [2, 2, 1], Uint8Array.from([1, 0, 0, 1]), true));
  await writeGrey(path.join(dir, 'labels', 'c2_A.png'), 2, 2, [0, 1, 0, 0]);
  const ds = await openDataset(dir);
  assert.deepEqual(ds.cases.map((c) => [c.id, c.labels.map((l) => l && path.basename(l))]), [['c1', ['c1_A.nii.gz', 'c1_B.nii.gz']], ['c2', ['c2_A.png', null]]]);
  assert.deepEqual(ds.modalities, ['CT']);
  // Foreground values −100, 300, 100: percentiles by linear rank, mean 100, sd sqrt(80000/3).
  const rule = await computeIntensity(ds, ds.cases);
  assert.ok(rule && rule[0].modality === 'CT');
  if (rule[0].modality !== 'CT') return;
  assert.ok(Math.abs(rule[0].clip[0] - (-100 + 0.01 * 200)) < 1e-9 && Math.abs(rule[0].clip[1] - (300 - 0.01 * 200)) < 1e-9, String(rule[0].clip));
  assert.equal(rule[0].mean, 100);
  assert.ok(Math.abs(rule[0].sd - Math.sqrt(80000 / 3)) < 1e-9);
  const pc = await prepareCase(ds, ds.cases[0], 2);
  assert.deepEqual([...pc.labels], [1, 0, 0, 0, 1, 0, 0, 1]);
  // A label voxel that is no integer is one line naming the file.
  fs.writeFileSync(path.join(dir, 'labels', 'c1_B.nii.gz'), encodeNifti(t, [2, 2], Float32Array.from([0.5, 0, 0, 0]), true));
  await assert.rejects(prepareCase(ds, ds.cases[0], 2), (e: unknown) => e instanceof UserError && e.message.startsWith(`${path.join(dir, 'labels', 'c1_B.nii.gz')}: label values must be integers`));
});
