import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadSafetensors } from '../src/torch/safetensors';
import { readImage } from '../src/io/image';
import { avap, ok } from './cli-run';

const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-cli-'));
const data = path.join(root, 'data');
// Tiny and fast: 14 cases of 32×32, a ResNet18 encoder, one thread so runs are comparable bit for bit.
const TRAIN = ['--data', data, '--size', '32', '--batch-size', '4', '--encoder', 'resnet18', '--lr', '1e-3', '--seed', '3', '--threads', '1'];

function weights(run: string): Record<string, Uint8Array> {
  const { tensors } = loadSafetensors(path.join(run, 'model.safetensors'));
  return Object.fromEntries(Object.entries(tensors).map(([k, v]) => [k, v.data]));
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

test.before(() => {
  ok(avap('synth', '--out', data, '--cases', '14', '--annotators', '3', '--size', '32', '--seed', '5'));
});

test('train, predict and evaluate from the command line', () => {
  const run = path.join(root, 'run');
  const summary = JSON.parse(ok(avap('train', ...TRAIN, '--out', run, '--steps', '1', '--preference-steps', '1', '--val-fraction', '0.25')).trim().split('\n').pop()!);
  assert.deepEqual(summary.stages.map((s: { name: string }) => s.name), ['variation', 'preference-fold1', 'preference-fold2', 'preference']);
  for (const f of ['config.json', 'normalization.json', 'model.safetensors', 'log.jsonl', 'summary.json', 'checkpoint/state.json']) {
    assert.ok(fs.existsSync(path.join(run, f)), `${f} written`);
  }
  const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
  assert.deepEqual(config.model.annotators, ['A1', 'A2', 'A3']);
  assert.ok(config.data.valCases.length >= 1 && !config.data.valCases.some((id: string) => config.data.trainCases.includes(id)), 'validation cases are held out');
  const log = fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(log.map((e) => e.event), ['start', 'round', 'round', 'round', 'round', 'stageEnd', 'done']);

  const pred = path.join(root, 'pred');
  ok(avap('predict', '--model', run, '--input', data, '--out', pred, '--annotators', '1,3'));
  const files = fs.readdirSync(path.join(pred, 'case000')).sort();
  assert.deepEqual(files, ['cup_annotator1.png', 'cup_annotator3.png', 'cup_mean.png', 'disc_annotator1.png', 'disc_annotator3.png', 'disc_mean.png', 'overlay.png']);

  const evalDir = path.join(root, 'eval');
  ok(avap('evaluate', '--model', run, '--data', data, '--split', 'test', '--out', evalDir));
  const s = JSON.parse(fs.readFileSync(path.join(evalDir, 'summary.json'), 'utf8'));
  assert.equal(s.cases, JSON.parse(fs.readFileSync(path.join(data, 'dataset.json'), 'utf8')).splits.test.length);
  for (const k of ['mean_voting', 'average']) for (const st of ['disc', 'cup']) assert.ok(s[k][st] >= 0 && s[k][st] <= 1);
  assert.ok(fs.existsSync(path.join(evalDir, 'predictions', s.per_case[0].id ?? fs.readdirSync(path.join(evalDir, 'predictions'))[0])));
});

test('predict writes 16-bit maps at the original image size', async () => {
  const pred = path.join(root, 'pred');
  const mean = await readImage(path.join(pred, 'case000', 'cup_mean.png'));
  assert.equal(mean.bitDepth, 16);
  assert.deepEqual([mean.width, mean.height, mean.channels], [32, 32, 1]);
});

test('step 2 leaves the backbone and AVM bit-identical, and training is deterministic under a seed', () => {
  const stepOne = path.join(root, 'step-one');
  const both = path.join(root, 'both');
  // The same step 1 in both runs, then 1 or 2 steps of step 2: only the APM may differ.
  ok(avap('train', ...TRAIN, '--out', stepOne, '--steps', '2', '--preference-steps', '1'));
  ok(avap('train', ...TRAIN, '--out', both, '--steps', '2', '--preference-steps', '2'));
  const a = weights(stepOne);
  const b = weights(both);
  const frozen = Object.keys(a).filter((k) => k.startsWith('backbone.') || k.startsWith('avm.'));
  assert.ok(frozen.length > 100);
  for (const k of frozen) assert.ok(sameBytes(a[k], b[k]), `${k} changed in step 2`);
  const apm = Object.keys(a).filter((k) => k.startsWith('apm.') && k.endsWith('weight'));
  assert.ok(apm.some((k) => !sameBytes(a[k], b[k])), 'step 2 trained the APM');
});

test('a run killed with SIGKILL resumes from its last completed round and ends where an uninterrupted run ends', async () => {
  const killed = path.join(root, 'killed');
  const args = [CLI, 'train', ...TRAIN, '--out', killed, '--steps', '2', '--preference-steps', '2'];
  const child = spawn(process.execPath, args, { stdio: 'ignore', env: { ...process.env, AVAP_NUM_THREADS: '1', AVAP_CHECKPOINT_SECONDS: '0' } });
  const state = path.join(killed, 'checkpoint', 'state.json');
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (fs.existsSync(state) && JSON.parse(fs.readFileSync(state, 'utf8')).step >= 1) {
        clearInterval(timer);
        child.kill('SIGKILL');
        resolve();
      }
    }, 20);
    child.on('exit', () => {
      clearInterval(timer);
      reject(new Error('training finished before it could be killed'));
    });
  });
  await new Promise((r) => child.once('exit', r));
  const before = JSON.parse(fs.readFileSync(state, 'utf8'));
  const again = avap('train', ...TRAIN, '--out', killed, '--resume');
  ok(again);
  assert.match(again.stderr, new RegExp(`resuming .*stage ${before.stage + 1}/4 \\([\\w-]+\\), ${before.step}/2 steps done`));
  const log = fs.readFileSync(path.join(killed, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  // Rounds after the last checkpoint may be logged twice (run, killed, run again); none is skipped.
  const rounds = log.filter((e) => e.event === 'round').map((e) => `${e.stage}${e.step}`);
  assert.deepEqual([...new Set(rounds)], ['variation1', 'variation2', ...['preference-fold1', 'preference-fold2', 'preference'].flatMap((s) => [`${s}1`, `${s}2`])]);
  const reference = weights(path.join(root, 'both'));
  const resumed = weights(killed);
  for (const k of Object.keys(reference)) assert.ok(sameBytes(reference[k], resumed[k]), `${k} differs from the uninterrupted run`);
});

test('bad input: a clear one-line error and a non-zero exit', () => {
  const cases: [string[], RegExp][] = [
    [['train', '--data', path.join(root, 'nope'), '--out', path.join(root, 'x')], /nope/],
    [['train', ...TRAIN, '--out', path.join(root, 'y'), '--size', '48'], /--size must be a multiple of 32/],
    [['train', ...TRAIN, '--out', path.join(root, 'run')], /already holds a run; pass --resume/],
    [['train', ...TRAIN, '--out', path.join(root, 'z'), '--lr', 'fast'], /--lr must be a number, got 'fast'/],
    [['train', ...TRAIN, '--out', path.join(root, 'z'), '--method', 'magic'], /--method: unknown method 'magic'/],
    [['predict', '--model', path.join(root, 'nope'), '--input', data, '--out', path.join(root, 'p')], /--model: .*not found|not a run folder/],
    [['predict', '--model', path.join(root, 'run'), '--input', data, '--out', path.join(root, 'p'), '--annotators', '4'], /--annotators: 4 is not an annotator of this model \(1\.\.3\)/],
    [['predict', '--model', path.join(root, 'run'), '--input', path.join(root, 'missing.png'), '--out', path.join(root, 'p')], /--input: .*missing\.png: no such file/],
  ];
  for (const [args, pattern] of cases) {
    const r = avap(...args);
    assert.notEqual(r.code, 0, `${args.join(' ')} should fail`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});
