// 3D volumes slice by slice: the synthetic QUBIQ volume variant through train → predict --format qubiq
// → evaluate, the submitted volume's geometry against its image's header (and nibabel's reading), the
// share of unmarked slices training keeps, and hostile volumes refused in one line naming the file.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openDataset, selectCases } from '../src/data/dataset';
import { resizeBilinear } from '../src/data/resize';
import { writeQubiqSynth } from '../src/data/synthQubiq';
import { parseSliceAxis, sampleEmptySlices, sliceOfVolume, volumeCasesOf } from '../src/data/volumes';
import { UserError } from '../src/errors';
import { blankNiftiTemplate, readNifti, writeNifti } from '../src/io/nifti';
import { torchEngine } from '../src/predict/engine';
import { loadRun } from '../src/train/loadRun';
import { holdOut } from '../src/train/setup';
import { avap, ok } from './cli-run';
import { tmpDir } from './data-fixtures';

const PYTHON = '/usr/bin/python3';
const nibabelMissing = (() => {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} not found`;
  return spawnSync(PYTHON, ['-c', 'import nibabel'], { encoding: 'utf8' }).status === 0 ? undefined : 'nibabel is not installed (apt-get install -y python3-nibabel)';
})();

/** The header bytes that carry the geometry: pixdim (80–107) and qform/sform codes, quaternion and srows (252–343). */
function geometry(header: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(header.subarray(80, 108)), Buffer.from(header.subarray(252, 344))]);
}

/** One line naming `file`, from a UserError. */
function namesFile(file: string, pattern: RegExp): (e: Error) => boolean {
  return (e) => e instanceof UserError && e.message.startsWith(`${file}: `) && pattern.test(e.message) && !e.message.includes('\n');
}

async function synthVolumes(tag: string, cases = 3, train = 2): Promise<string> {
  const root = tmpDir(tag);
  await writeQubiqSynth({ out: path.join(root, 'q'), variant: 'volume', cases, train, annotators: 2, size: 32, slices: 8, seed: 4 });
  return path.join(root, 'q', 'synthetic-volume');
}

test('a QUBIQ volume set opens as the slices across z (default) or the named axis; volumes stay whole in a hold-out', async () => {
  const data = await synthVolumes('vol-open', 4, 4);
  const ds = await openDataset(data);
  assert.equal(ds.sliceAxis, 2);
  assert.equal(ds.volumes!.length, 4);
  assert.equal(ds.cases.length, 4 * 8);
  assert.deepEqual(ds.cases.slice(0, 2).map((c) => c.id), ['Training-case01-z0', 'Training-case01-z1']);
  assert.deepEqual(ds.cases[0].volume, { shape: [32, 32, 8], channels: 1 });
  const byX = await openDataset(data, { sliceAxis: 0 });
  assert.equal(byX.cases.length, 4 * 32);
  assert.equal(byX.cases[5].id, 'Training-case01-x05');
  const slice = await sliceOfVolume(byX.cases[5], 0, 5);
  assert.deepEqual([slice.width, slice.height], [32, 8]);
  assert.deepEqual(volumeCasesOf(ds, ds.cases.slice(8, 10)).map((c) => c.id), ['Training-case02']);
  const { train, val } = holdOut(ds.cases, 0.5, 1);
  const volumesOf = (cs: typeof train) => new Set(cs.map((c) => c.slice!.volume));
  assert.equal(volumesOf(val).size, 2);
  assert.equal(val.length, 16);
  for (const v of volumesOf(val)) assert.ok(!volumesOf(train).has(v));
});

test('training keeps every marked slice and round(rate × the unmarked ones), the same ones under the same seed', async () => {
  const data = await synthVolumes('vol-rate', 4, 4);
  const ds = await openDataset(data);
  const cases = selectCases(ds, { split: 'Training' });
  // The synthetic structure spans slices 2–5 of 8: 4 marked and 4 unmarked slices per volume.
  const marked = cases.filter((c) => c.slice!.index >= 2 && c.slice!.index <= 5).map((c) => c.id);
  for (const [rate, kept] of [[0, 0], [0.25, 4], [0.5, 8], [1, 16]] as const) {
    const r = await sampleEmptySlices(cases, rate, 7);
    assert.equal(r.empty, 16);
    assert.equal(r.kept, kept);
    assert.equal(r.cases.length, 16 + kept);
    for (const id of marked) assert.ok(r.cases.some((c) => c.id === id), `${id} (marked) is kept at rate ${rate}`);
  }
  const ids = async (seed: number) => (await sampleEmptySlices(cases, 0.25, seed)).cases.map((c) => c.id).join();
  assert.equal(await ids(7), await ids(7));
  const others = await Promise.all([1, 2, 3, 4, 5].map(ids));
  assert.ok(others.some((s) => s !== others[0]), 'another seed draws other unmarked slices');
  await assert.rejects(sampleEmptySlices(cases, 1.5, 0), /--empty-slice-rate: must be in \[0, 1\]/);
});

test('hostile volumes: a mask volume of another shape, a slice axis out of range, a volume over the memory budget → one line naming the file or flag', async () => {
  const data = await synthVolumes('vol-hostile', 2, 2);
  const mask = path.join(data, 'Training', 'case02', 'task01_seg02.nii.gz');
  writeNifti(mask, blankNiftiTemplate(), [32, 32, 7], new Uint8Array(32 * 32 * 7));
  await assert.rejects(openDataset(data), namesFile(mask, /the mask volume is 32×32×7 but its image .*case02\/image\.nii\.gz is 32×32×8/));
  fs.rmSync(mask);
  assert.throws(() => parseSliceAxis('--slice-axis', '3'), (e: Error) => e instanceof UserError && /^--slice-axis must be a voxel axis of a 3D volume \(x, y, z or 0, 1, 2\), got '3'$/.test(e.message));
  const bad = avap('train', '--data', data, '--out', path.join(path.dirname(data), 'run'), '--slice-axis', 'w');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr.trim(), /^avap: --slice-axis must be a voxel axis of a 3D volume \(x, y, z or 0, 1, 2\), got 'w'$/);
  const image = path.join(data, 'Training', 'case01', 'image.nii.gz');
  const before = process.env.AVAP_IMAGE_MEMORY_MB;
  process.env.AVAP_IMAGE_MEMORY_MB = '0.015625';
  try {
    await assert.rejects(openDataset(data), namesFile(image, /a 32×32×8 volume takes 32 KiB to read, over the 16 KiB memory budget for one image \(set AVAP_IMAGE_MEMORY_MB/));
  } finally {
    if (before === undefined) delete process.env.AVAP_IMAGE_MEMORY_MB;
    else process.env.AVAP_IMAGE_MEMORY_MB = before;
  }
});

test('a volume through train (tiny) → predict --format qubiq → evaluate: each slice predicted in its place, the image\'s geometry kept', async () => {
  const data = await synthVolumes('vol-cli', 3, 2);
  const root = path.dirname(path.dirname(data));
  const run = path.join(root, 'run');
  const training = avap('train', '--data', data, '--split', 'Training', '--method', 'mv-unet', '--out', run, '--size', '32', '--batch-size', '4',
    '--encoder', 'resnet18', '--steps', '2', '--seed', '1', '--slice-axis', 'y', '--empty-slice-rate', '0.5', '--no-augment');
  ok(training);
  assert.match(training.stderr, /3D volumes sliced across y: training on \d+ slices, \d+ of the \d+ that no rater marks \(--empty-slice-rate 0\.5\)/);
  const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
  assert.equal(config.data.sliceAxis, 1);
  assert.ok(config.data.trainCases.every((id: string) => /^Training-case0[12]-y\d\d$/.test(id)));

  const sub = path.join(root, 'sub');
  assert.match(ok(avap('predict', '--model', run, '--input', data, '--split', 'Validation', '--format', 'qubiq', '--out', sub)), /QUBIQ submission for 1 case of synthetic-volume/);
  const imageFile = path.join(data, 'Validation', 'case01', 'image.nii.gz');
  const mapFile = path.join(sub, 'synthetic-volume', 'case01', 'task01.nii.gz');
  const image = await readNifti(imageFile);
  const map = await readNifti(mapFile);
  assert.deepEqual(map.shape, [32, 32, 8]);
  assert.equal(map.datatype, 'float32');
  assert.ok(Buffer.compare(geometry(map.header), geometry(image.header)) === 0, 'pixdim, qform and sform copied');
  assert.deepEqual(map.pixdim, image.pixdim);

  // Slice y = 20 of the written map is the model's map of that slice, resized back to x × z.
  const ds = await openDataset(data, { sliceAxis: 1 });
  const volume = ds.volumes!.find((v) => v.id === 'Validation-case01')!;
  const loaded = loadRun(run);
  try {
    const engine = torchEngine(loaded);
    const input = engine.prepareDecoded(await sliceOfVolume(volume, 1, 20, engine.intensity));
    const expected = resizeBilinear((await engine.predict(input.input, 1)).calibrated(0, 0), 32, 32, 1, 32, 8);
    let worst = 0;
    for (let z = 0; z < 8; z++) for (let x = 0; x < 32; x++) worst = Math.max(worst, Math.abs(map.data[x + 32 * (20 + 32 * z)] - Math.min(1, Math.max(0, expected[z * 32 + x]))));
    assert.ok(worst < 1e-6, `slice y=20 differs by ${worst}`);
  } finally {
    loaded.method.model.dispose();
  }

  const ev = ok(avap('evaluate', '--data', data, '--split', 'Validation', '--format', 'qubiq', '--predictions', sub, '--out', path.join(root, 'ev')));
  assert.match(ev, /^QUBIQ score \d+\.\d\d \(task01 \d+\.\d\d\) over 1 cases of synthetic-volume/);
  assert.equal(fs.readFileSync(path.join(root, 'ev', 'qubiq_per_case.csv'), 'utf8').trim().split('\n')[1].split(',')[0], 'Validation-case01');
  const plain = avap('evaluate', '--data', data, '--split', 'Validation', '--model', run, '--out', path.join(root, 'ev-plain'));
  assert.notEqual(plain.code, 0);
  assert.match(plain.stderr.trim(), /^avap: --data: .* holds 3D volumes, which are scored per volume: use avap evaluate --format qubiq/);

  if (nibabelMissing) return;
  const r = spawnSync(PYTHON, ['-c', `
import sys, json, numpy as np, nibabel as nib
a, b = nib.load(sys.argv[1]), nib.load(sys.argv[2])
print(json.dumps({"shape": list(b.shape), "affine": bool(np.allclose(a.affine, b.affine)), "sform": bool(np.allclose(a.get_sform(), b.get_sform())),
  "qform": bool(np.allclose(a.get_qform(), b.get_qform())), "zooms": [float(z) for z in b.header.get_zooms()], "codes": [int(a.header["qform_code"]), int(b.header["qform_code"]), int(a.header["sform_code"]), int(b.header["sform_code"])],
  "max": float(np.abs(b.get_fdata() - np.asarray(json.loads(sys.stdin.read())).reshape(b.shape, order="F")).max())}))
`, imageFile, mapFile], { encoding: 'utf8', input: JSON.stringify(Array.from(map.data)) });
  assert.equal(r.status, 0, r.stderr);
  const nib = JSON.parse(r.stdout);
  assert.deepEqual(nib.shape, [32, 32, 8]);
  assert.ok(nib.affine && nib.sform && nib.qform);
  assert.deepEqual(nib.zooms, [0.5, 0.5, 2]);
  assert.deepEqual(nib.codes, [1, 1, 1, 1]);
  assert.ok(nib.max < 1e-6, `nibabel reads the voxels written (x fastest): ${nib.max}`);
});
