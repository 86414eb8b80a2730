/**
 * Fault injection, part 2: the file system fails under the CLI. A full disk (small tmpfs mounts), a
 * read-only one, and a folder the user may not write (the CLI run as 'nobody'). Every command must
 * fail with one line naming the path and the cause, leave nothing half-written, and a run that hit
 * the full disk mid-training must resume, once there is space, to the same weights as an
 * uninterrupted run. Mounting and changing user need root: without it these tests are skipped and
 * say why.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadSafetensors } from '../src/torch/safetensors';
import { rigaMask, writeRiga } from './data-fixtures';
import { assertOneLineError, avap, avapInProcess, canMountTmpfs, changes, mountTmpfs, ok, sandbox, snapshot, tempFiles, unprivilegedPrefix } from './faults.helpers';

const root = sandbox('disk');
const data = path.join(root, 'data');
const run = path.join(root, 'run');
const preds = path.join(root, 'preds');
const riga = path.join(root, 'riga');
const TINY = ['--size', '32', '--encoder', 'resnet18', '--batch-size', '4', '--seed', '3', '--lr', '1e-3', '--threads', '1'];
const tmpfsProblem = canMountTmpfs();
// Root writes anywhere: it runs the CLI as 'nobody'. Anyone else meets a folder without write permission as it is.
const asRoot = process.getuid?.() === 0;
const unprivileged = asRoot ? unprivilegedPrefix() : { prefix: [] as string[] };

test.before(async () => {
  if (tmpfsProblem && 'reason' in unprivileged) return;
  ok(await avapInProcess(['synth', '--out', data, '--cases', '6', '--size', '32', '--annotators', '3', '--seed', '5']), 'synth');
  ok(await avapInProcess(['train', '--data', data, '--out', run, ...TINY, '--steps', '1']), 'train');
  ok(await avapInProcess(['predict', '--model', run, '--input', data, '--out', preds, '--threads', '1']), 'predict');
  const m = rigaMask(32, 10, 5);
  await writeRiga(riga, [1, 2, 3].map((i) => ({ subset: 'BinRushed', imgName: `BinRushed\\img${i}.png`, width: 32, height: 32, masks: [m, m, m] })));
});

/** Each command that writes, with its output folder `out`. */
const WRITERS: { name: string; args: (out: string) => string[] }[] = [
  { name: 'train', args: (out) => ['train', '--data', data, '--out', out, ...TINY, '--steps', '1'] },
  { name: 'predict', args: (out) => ['predict', '--model', run, '--input', data, '--out', out, '--threads', '1'] },
  { name: 'evaluate', args: (out) => ['evaluate', '--data', data, '--predictions', preds, '--out', out, '--no-progress'] },
  { name: 'synth', args: (out) => ['synth', '--out', out, '--cases', '6', '--size', '32'] },
  { name: 'data convert', args: (out) => ['data', 'convert', '--from', riga, '--out', out] },
];

test('a full disk: every command fails in one line naming the file, and leaves the disk as it found it', { skip: tmpfsProblem ?? false }, async () => {
  // Sizes that fail part-way: the 48 MB weights on 30 MB; a few pages for the small outputs.
  const sizes: Record<string, string> = { train: '30m', predict: '24k', evaluate: '8k', synth: '40k', 'data convert': '16k' };
  for (const w of WRITERS) {
    const disk = mountTmpfs(root, 'full', sizes[w.name]);
    try {
      // The binary itself for train, main() in a worker for the others (the same code, one engine load).
      const r = await (w.name === 'train' ? avap : avapInProcess)(w.args(path.join(disk.dir, 'out')));
      assertOneLineError(r, new RegExp(`^avap: no space left on device writing ${disk.dir}/out/\\S+ \\(ENOSPC\\)$`), 1, w.name);
      assert.deepEqual(fs.readdirSync(disk.dir), [], `${w.name}: nothing left on the full disk`);
    } finally {
      disk.unmount();
    }
  }
});

test('a disk that fills up mid-training: the last checkpoint stays intact and --resume, with space, ends bit-identical', { skip: tmpfsProblem ?? false }, async () => {
  const args = (out: string) => ['train', '--data', data, '--out', out, ...TINY, '--steps', '3', '--preference-steps', '1'];
  const reference = path.join(root, 'reference');
  ok(await avapInProcess(args(reference)), 'uninterrupted run');
  // One round's files (weights 48 MB, checkpoint weights 48 MB, optimiser state 96 MB) fit; the second round's do not.
  const disk = mountTmpfs(root, 'filling', '250m');
  try {
    const runDir = path.join(disk.dir, 'run');
    const r = await avapInProcess(args(runDir));
    assertOneLineError(r, new RegExp(`^avap: no space left on device writing ${runDir}/\\S+ \\(ENOSPC\\)$`));
    const state = JSON.parse(fs.readFileSync(path.join(runDir, 'checkpoint', 'state.json'), 'utf8'));
    assert.ok(state.step >= 1, 'a completed round was kept');
    assert.deepEqual(tempFiles(runDir), [], 'no temp file left');
    for (const f of [...snapshot(runDir).keys()].filter((k) => k.endsWith('.safetensors'))) loadSafetensors(path.join(runDir, f)); // complete, checksums hold
    disk.remount('700m');
    ok(await avapInProcess([...args(runDir), '--resume']), 'resume');
    assert.ok(fs.readFileSync(path.join(runDir, 'model.safetensors')).equals(fs.readFileSync(path.join(reference, 'model.safetensors'))), 'same weights as the uninterrupted run');
    assert.deepEqual(tempFiles(runDir), []);
  } finally {
    disk.unmount();
  }
});

test('a read-only file system: one line, nothing written', { skip: tmpfsProblem ?? false }, async () => {
  const disk = mountTmpfs(root, 'readonly', '1m', true);
  try {
    for (const w of WRITERS) {
      const r = await avapInProcess(w.args(path.join(disk.dir, 'out')));
      assertOneLineError(r, new RegExp(`^avap: read-only file system creating folder ${disk.dir}/out \\(EROFS\\)$`), 1, w.name);
    }
  } finally {
    disk.unmount();
  }
});

test('a folder the user may not write: one line naming it, nothing changed', { skip: 'reason' in unprivileged ? unprivileged.reason : false }, async () => {
  const prefix = (unprivileged as { prefix: string[] }).prefix;
  const locked = path.join(root, 'locked');
  fs.mkdirSync(locked);
  fs.chmodSync(locked, asRoot ? 0o755 : 0o555); // the owner (root) may write, 'nobody' may not; or nobody may
  const before = snapshot(root);
  for (const w of WRITERS) {
    const r = await avap(w.args(path.join(locked, 'out')), { prefix });
    assertOneLineError(r, new RegExp(`^avap: permission denied creating folder ${locked}/out \\(EACCES\\)$`), 1, w.name);
  }
  assert.deepEqual(changes(before, snapshot(root)), []);
  fs.chmodSync(locked, 0o755);
});
