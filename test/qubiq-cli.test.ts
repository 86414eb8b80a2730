import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { readNifti } from '../src/io/nifti';
import { tmpDir } from './data-fixtures';
import { avap, ok } from './cli-run';

/** The header bytes that carry the geometry: pixdim (76–107), and qform/sform codes, quaternion and srows (252–343). */
function geometry(header: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(header.subarray(80, 92)), Buffer.from(header.subarray(252, 344))]);
}

test('synth qubiq (4 channels) → train AVAP and MV-UNet a few steps → predict --format qubiq → evaluate --format qubiq', () => {
  const root = tmpDir('qubiq-cli');
  ok(avap('synth', '--layout', 'qubiq', '--variant', 'multichannel', '--out', path.join(root, 'qubiq'), '--cases', '8', '--train', '6', '--annotators', '3', '--size', '32', '--seed', '2'));
  const data = path.join(root, 'qubiq', 'synthetic-multichannel');
  assert.match(ok(avap('data', 'check', path.join(root, 'qubiq'))), /synthetic-multichannel \(qubiq layout\)[\s\S]*images      4-channel NIfTI float32 ×8; sizes 32x32 ×8; models get 4 channels[\s\S]*OK:/);
  const scores: Record<string, number> = {};
  for (const method of ['avap', 'mv-unet']) {
    const run = path.join(root, `run-${method}`);
    const steps = method === 'avap' ? ['--steps', '2', '--preference-steps', '1'] : ['--steps', '2'];
    ok(avap('train', '--data', data, '--split', 'Training', '--method', method, '--out', run, '--size', '32', '--batch-size', '4', '--encoder', 'resnet18', '--seed', '3', '--threads', '1', ...steps));
    const sub = path.join(root, `sub-${method}`);
    assert.match(ok(avap('predict', '--model', run, '--input', data, '--split', 'Validation', '--format', 'qubiq', '--out', sub, '--threads', '1')), /QUBIQ submission for 2 cases/);
    for (const c of ['case01', 'case02']) {
      assert.deepEqual(fs.readdirSync(path.join(sub, 'synthetic-multichannel', c)).sort(), ['task01.nii.gz', 'task02.nii.gz']);
    }
    const ev = path.join(root, `eval-${method}`);
    const out = ok(avap('evaluate', '--data', data, '--split', 'Validation', '--format', 'qubiq', '--predictions', sub, '--out', ev));
    assert.match(out, /^QUBIQ score \d+\.\d\d \(task01 \d+\.\d\d, task02 \d+\.\d\d\) over 2 cases of synthetic-multichannel/);
    const summary = JSON.parse(fs.readFileSync(path.join(ev, 'qubiq.json'), 'utf8'));
    assert.equal(summary.cases, 2);
    for (const v of [summary.qubiq.overall, ...Object.values(summary.qubiq.per_task), ...Object.values(summary.soft_dice)] as number[]) assert.ok(v >= 0 && v <= 1, String(v));
    assert.equal(fs.readFileSync(path.join(ev, 'qubiq_per_case.csv'), 'utf8').trim().split('\n').length, 1 + 2 * 2);
    scores[method] = summary.qubiq.overall;
  }
  // The plain evaluation of a run on QUBIQ data gives the paper's tables and QUBIQ's score, which on its
  // 16-bit maps agrees with the submission's float32 maps up to the rounding of values near a threshold.
  const plain = ok(avap('evaluate', '--data', data, '--split', 'Validation', '--model', path.join(root, 'run-avap'), '--out', path.join(root, 'eval-plain'), '--threads', '1'));
  assert.match(plain, /Mean Voting[\s\S]*QUBIQ score \d+\.\d\d/);
  assert.ok(fs.existsSync(path.join(root, 'eval-plain', 'summary.json')));
  const plainScore = JSON.parse(fs.readFileSync(path.join(root, 'eval-plain', 'qubiq.json'), 'utf8')).qubiq.overall;
  assert.ok(Math.abs(plainScore - scores.avap) < 0.01, `${plainScore} vs ${scores.avap}`);
  // Geometry: each map carries its image's voxel sizes, qform and sform, over the image's x-y plane.
  return (async () => {
    const image = await readNifti(path.join(data, 'Validation', 'case02', 'image.nii.gz'));
    const map = await readNifti(path.join(root, 'sub-avap', 'synthetic-multichannel', 'case02', 'task02.nii.gz'));
    assert.deepEqual(image.shape, [32, 32, 4]);
    assert.deepEqual(map.shape, [32, 32]);
    assert.equal(map.datatype, 'float32');
    assert.ok(Buffer.compare(geometry(map.header), geometry(image.header)) === 0);
    assert.ok(map.data.every((v) => v >= 0 && v <= 1));
    // Scoring a tree with a missing map names the file.
    fs.rmSync(path.join(root, 'sub-avap', 'synthetic-multichannel', 'case01', 'task02.nii.gz'));
    const bad = avap('evaluate', '--data', data, '--split', 'Validation', '--format', 'qubiq', '--predictions', path.join(root, 'sub-avap'), '--out', path.join(root, 'eval-bad'));
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr.trim(), /case01\/task02\.nii\.gz: file not found/);
    assert.equal(bad.stderr.trim().split('\n').length, 1);
  })();
});

/** The command block under docs/data.md's "Commands a QUBIQ participant runs", one command a line. */
function participantCommands(): string[][] {
  const doc = fs.readFileSync(path.join(__dirname, '..', '..', 'docs', 'data.md'), 'utf8');
  const section = doc.split('**Commands a QUBIQ participant runs**')[1];
  assert.ok(section, 'docs/data.md lists the commands a QUBIQ participant runs');
  const block = /```\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block);
  return block.trim().split('\n').map((l) => l.trim().split(/\s+/));
}

test('the QUBIQ participant\'s commands in docs/data.md run as written on a synthetic QUBIQ folder (shorter training)', () => {
  const root = tmpDir('qubiq-docs');
  ok(avap('synth', '--layout', 'qubiq', '--variant', 'ct', '--out', path.join(root, 'download'), '--cases', '6', '--train', '4', '--annotators', '2', '--size', '32'));
  // As downloaded: QUBIQ's Testing folder holds images without masks.
  const data = path.join(root, 'qubiq', 'brain-tumor');
  fs.mkdirSync(path.join(root, 'qubiq'));
  fs.renameSync(path.join(root, 'download', 'synthetic-ct'), data);
  fs.mkdirSync(path.join(data, 'Testing', 'case01'), { recursive: true });
  fs.copyFileSync(path.join(data, 'Validation', 'case01', 'image.nii.gz'), path.join(data, 'Testing', 'case01', 'image.nii.gz'));
  const commands = participantCommands();
  assert.deepEqual(commands.map((c) => c[1]), ['data', 'train', 'evaluate', 'predict']);
  for (const argv of commands) {
    assert.equal(argv[0], 'avap');
    const args = argv.slice(1).map((a) => (/^(qubiq|runs|eval)\/|^submission$/.test(a) ? path.join(root, a) : a));
    if (args[0] === 'train') args.push('--steps', '2', '--preference-steps', '1', '--size', '32', '--batch-size', '4', '--encoder', 'resnet18', '--threads', '1');
    ok(avap(...args));
  }
  const summary = JSON.parse(fs.readFileSync(path.join(root, 'eval', 'brain-tumor', 'qubiq.json'), 'utf8'));
  assert.equal(summary.dataset, 'brain-tumor');
  assert.ok(summary.qubiq.overall >= 0 && summary.qubiq.overall <= 1);
  assert.deepEqual(fs.readdirSync(path.join(root, 'submission', 'brain-tumor', 'case01')).sort(), ['task01.nii.gz', 'task02.nii.gz']);
});

test('a hostile NIfTI in a QUBIQ set: data check names it, train stops in one line naming it', () => {
  const root = tmpDir('qubiq-hostile');
  ok(avap('synth', '--layout', 'qubiq', '--out', root, '--cases', '4', '--train', '3', '--annotators', '2', '--size', '32'));
  const data = path.join(root, 'synthetic-mr');
  const image = path.join(data, 'Training', 'case02', 'image.nii.gz');
  // The header now declares 1000×1000×1000 voxels; the file still holds 32×32.
  const bytes = zlib.gunzipSync(fs.readFileSync(image));
  bytes.writeInt16LE(3, 40);
  for (const at of [42, 44, 46]) bytes.writeInt16LE(1000, at);
  fs.writeFileSync(image, zlib.gzipSync(bytes));
  const check = avap('data', 'check', data);
  assert.notEqual(check.code, 0);
  assert.match(check.stdout, new RegExp(`${image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: the header declares 1000×1000×1000 = 1000000000 voxels, more than`));
  const train = avap('train', '--data', data, '--split', 'Training', '--out', path.join(root, 'run'), '--size', '32', '--batch-size', '2', '--encoder', 'resnet18', '--steps', '1', '--preference-steps', '1', '--threads', '1');
  assert.notEqual(train.code, 0);
  const lines = train.stderr.trim().split('\n').filter((l) => l.startsWith('avap:'));
  assert.equal(lines.length, 1, train.stderr);
  assert.ok(lines[0].includes(image) && lines[0].includes('1000000000 voxels'), lines[0]);
  assert.ok(!train.stderr.includes('    at '), 'no stack trace');
});
