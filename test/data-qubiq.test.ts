import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkDataset } from '../src/data/check';
import { openDataset, readAnnotations, scanDataset } from '../src/data/dataset';
import { readNiftiImage } from '../src/data/niftiImage';
import { prepareCase } from '../src/data/prepare';
import { writeQubiqSynth } from '../src/data/synthQubiq';
import { UserError } from '../src/errors';
import { blankNiftiTemplate, encodeNifti, readNifti } from '../src/io/nifti';
import { tmpDir } from './data-fixtures';

async function synth(variant: 'mr' | 'ct' | 'multichannel', cases = 4): Promise<string> {
  const out = tmpDir(`qubiq-${variant}`);
  const r = await writeQubiqSynth({ out, variant, cases, train: cases - 1, annotators: 3, size: 24, seed: 4 });
  return path.join(out, r.dataset);
}

function write(file: string, shape: number[], data: Uint8Array | Float32Array | Int16Array): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, encodeNifti(blankNiftiTemplate(), shape, data, file.endsWith('.gz')));
}

test('the QUBIQ layout: tasks become structures, raters annotators, split folders splits; each variant\'s quirk is read', async () => {
  for (const [variant, channels] of [['mr', 1], ['ct', 1], ['multichannel', 4]] as const) {
    const dir = await synth(variant);
    const ds = await openDataset(dir);
    assert.equal(ds.layout, 'qubiq');
    assert.equal(ds.name, `synthetic-${variant}`);
    assert.deepEqual(ds.annotators, ['seg01', 'seg02', 'seg03']);
    assert.deepEqual(ds.structures.map((s) => s.name), ['task01', 'task02']);
    assert.equal(ds.channels, channels);
    assert.deepEqual(ds.splits, { Training: ['Training-case01', 'Training-case02', 'Training-case03'], Validation: ['Validation-case01'] });
    assert.equal(ds.cases[3].name, 'case01');
    // Each rater's masks, read through the dataset, are the files binarised with > 0.5, task by task.
    const c = ds.cases[1];
    const a = await readAnnotations(ds, c);
    assert.equal(a.width, 24);
    for (let k = 0; k < 2; k++) {
      for (let r = 0; r < 3; r++) {
        const file = c.parts![r][k]!;
        assert.match(path.basename(file), new RegExp(`^task0${k + 1}_seg0${r + 1}\\.nii\\.gz$`));
        const vol = await readNifti(file);
        const want = Array.from(vol.data, (v) => (v > 0.5 ? 1 : 0));
        assert.deepEqual([...a.masks[r][k]], want, `${variant} ${file}`);
        assert.ok(want.some((v) => v === 1));
      }
    }
    // The input pipeline gets the same masks (bit k = task k) and an image with the dataset's channels.
    const p = await prepareCase(ds, c, 24);
    assert.equal(p.image.channels, channels);
    for (let i = 0; i < 24 * 24; i++) assert.equal(p.labels[i] & 1, a.masks[0][0][i]);
    const report = await checkDataset(dir);
    assert.ok(report.ok, report.problems.map((x) => x.message).join('; '));
  }
});

test('CT intensities stay as stored (negative Hounsfield units) and are z-scored per image', async () => {
  const dir = await synth('ct', 2);
  const ds = await openDataset(dir);
  const raw = await readNifti(ds.cases[0].image);
  assert.equal(raw.datatype, 'int16');
  assert.deepEqual(raw.shape, [24, 24, 1]);
  assert.ok(Math.min(...raw.data) < -500, 'air-like voxels are strongly negative');
  const img = await readNiftiImage(ds.cases[0].image);
  // Back from 16-bit storage to z-scores: mean ≈ 0, sd ≈ 1.
  const z = Array.from(img.data, (v) => (v / 65535) * 16 - 8);
  const mean = z.reduce((s, v) => s + v, 0) / z.length;
  const sd = Math.sqrt(z.reduce((s, v) => s + (v - mean) ** 2, 0) / z.length);
  assert.ok(Math.abs(mean) < 1e-3, String(mean));
  assert.ok(Math.abs(sd - 1) < 1e-3, String(sd));
});

test('modality: QUBIQ\'s CT sets by name, a modality.json over the table, a bad one named in one line', async () => {
  const dir = await synth('ct', 2);
  assert.deepEqual((await openDataset(dir)).modalities, ['CT']); // synth declares it in modality.json
  fs.writeFileSync(path.join(dir, 'modality.json'), '["MR"]');
  assert.deepEqual((await openDataset(dir)).modalities, ['MR']);
  fs.rmSync(path.join(dir, 'modality.json'));
  assert.equal((await openDataset(dir)).modalities, undefined); // 'synthetic-ct' is no QUBIQ CT set
  const kidney = path.join(path.dirname(dir), 'kidney');
  fs.renameSync(dir, kidney);
  assert.deepEqual((await openDataset(kidney)).modalities, ['CT']);
  fs.writeFileSync(path.join(kidney, 'modality.json'), '["CT", "CT"]');
  await assert.rejects(openDataset(kidney), (e: unknown) => e instanceof UserError && e.message.includes(`${path.join(kidney, 'modality.json')}: lists 2 modalities, the images have 1 channel(s)`));
});

test('a challenge folder with one dataset opens it; with several the error names them; a set without split folders is Training', async () => {
  const root = tmpDir('qubiq-root');
  const one = await writeQubiqSynth({ out: path.join(root, 'a'), variant: 'mr', cases: 2, train: 1, annotators: 2, size: 24 });
  assert.equal((await openDataset(path.join(root, 'a'))).name, one.dataset);
  fs.renameSync(path.join(root, 'a', one.dataset), path.join(root, 'prostate'));
  fs.rmSync(path.join(root, 'a'), { recursive: true });
  await writeQubiqSynth({ out: path.join(root, 'b'), variant: 'ct', cases: 2, train: 1, annotators: 2, size: 24 });
  fs.renameSync(path.join(root, 'b', 'synthetic-ct'), path.join(root, 'kidney'));
  fs.rmSync(path.join(root, 'b'), { recursive: true });
  await assert.rejects(openDataset(root), (err: unknown) => err instanceof UserError && /holds 2 QUBIQ datasets \(kidney, prostate\); point at one of them/.test(err.message));
  assert.equal((await openDataset(path.join(root, 'kidney'))).name, 'kidney');
  // No Training level (some 2021 sets): the case folders sit in the dataset folder.
  const flat = tmpDir('qubiq-flat');
  write(path.join(flat, 'pancreas', 'case1-1', 'image.nii.gz'), [6, 5], new Float32Array(30).fill(-80));
  write(path.join(flat, 'pancreas', 'case1-1', 'task01_seg01.nii.gz'), [6, 5], new Uint8Array(30).fill(1));
  write(path.join(flat, 'pancreas', 'case1-1', 'task01_seg02.nii.gz'), [6, 5], new Uint8Array(30));
  const ds = await openDataset(flat);
  assert.equal(ds.name, 'pancreas');
  assert.deepEqual(ds.splits, { Training: ['Training-case1-1'] });
  assert.deepEqual(ds.annotators, ['seg01', 'seg02']);
});

test('QUBIQ faults: each is one line naming the file', async () => {
  const dir = await synth('mr', 3);
  const case1 = path.join(dir, 'Training', 'case01');
  // A mask of another size than its image.
  write(path.join(case1, 'task02_seg03.nii.gz'), [20, 24], new Uint8Array(480));
  // A "2D" image that is a volume with channels and slices.
  write(path.join(dir, 'Training', 'case02', 'image.nii.gz'), [24, 24, 3, 2], new Float32Array(24 * 24 * 6));
  // A stray file, and a case folder without an image.
  fs.writeFileSync(path.join(case1, 'notes.txt'), 'hello');
  fs.mkdirSync(path.join(dir, 'Training', 'case09'));
  const scan = await scanDataset(dir);
  const blocking = scan.problems.filter((p) => p.blocking).map((p) => `${p.file}: ${p.message}`);
  assert.deepEqual(blocking, [`${path.join(dir, 'Training', 'case09')}: case folder without image.nii.gz`]);
  assert.ok(scan.problems.some((p) => !p.blocking && p.file === path.join(case1, 'notes.txt')));
  fs.rmdirSync(path.join(dir, 'Training', 'case09'));
  const report = await checkDataset(dir);
  assert.equal(report.ok, false);
  const lines = report.problems.map((p) => `${p.file}: ${p.message}`);
  assert.ok(lines.some((l) => l.startsWith(`${path.join(case1, 'task02_seg03.nii.gz')}: mask is 20x24 but its image ${path.join(case1, 'image.nii.gz')} is 24x24`)), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith(`${path.join(dir, 'Training', 'case02', 'image.nii.gz')}: a 24×24×3×2 volume is not a 2D image`)), lines.join('\n'));
  assert.ok(lines.every((l) => !l.includes('\n')));
  // Training reads the same faults as errors naming the file.
  const ds = await openDataset(dir);
  await assert.rejects(prepareCase(ds, ds.cases[0], 24), (err: unknown) => err instanceof UserError && err.message.startsWith(path.join(case1, 'task02_seg03.nii.gz')));
});

test('a 3D QUBIQ set (masks with slices) is read as volumes sliced across z, not misread as channels', async () => {
  const root = tmpDir('qubiq-3d');
  write(path.join(root, 'pancreas', 'Training', 'case01', 'image.nii.gz'), [6, 5, 4], new Int16Array(120).fill(-900));
  write(path.join(root, 'pancreas', 'Training', 'case01', 'task01_seg01.nii.gz'), [6, 5, 4], new Uint8Array(120));
  const ds = await openDataset(root);
  assert.equal(ds.channels, 1);
  assert.deepEqual(ds.modalities, ['CT']);
  assert.deepEqual(ds.volumes!.map((v) => [v.id, v.volume]), [['Training-case01', { shape: [6, 5, 4], channels: 1 }]]);
  assert.deepEqual(ds.cases.map((c) => c.id), ['Training-case01-z0', 'Training-case01-z1', 'Training-case01-z2', 'Training-case01-z3']);
  assert.deepEqual(ds.splits.Training, ds.cases.map((c) => c.id));
});
