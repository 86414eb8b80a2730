// End to end on a tiny trained run: `avap export`, then `avap predict --engine onnx` writes the layout
// `avap predict` writes, with the same maps, and `avap evaluate` scores both folders the same.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { main } from '../src/cli/main';
import { writeSynthDataset } from '../src/data/synth';
import { readImage } from '../src/io/image';
import { TRAIN_DEFAULTS, train } from '../src/train/trainer';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-export-'));
const data = path.join(root, 'data');
const run = path.join(root, 'run');
const onnxFile = path.join(root, 'model.onnx');

/** Runs the CLI in this process (no second libtorch start-up); returns its exit code and what it printed on stderr. */
async function avap(...args: string[]): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write.bind(process.stderr);
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(['node', 'avap', ...args]), stderr };
  } finally {
    process.stderr.write = write;
  }
}

async function ok(...args: string[]): Promise<void> {
  const r = await avap(...args);
  assert.equal(r.code, 0, `avap ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
}

function listing(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

test.before(async () => {
  await writeSynthDataset({ out: data, cases: 8, annotators: 3, size: 32, seed: 2 });
  await train({
    ...TRAIN_DEFAULTS, data, out: run, size: 32, batchSize: 4, lr: 1e-3, encoder: 'resnet18', featureChannels: 8,
    steps: 1, methodOptions: { preferenceSteps: 1 }, augment: false, resume: false, progress: false, print: () => undefined,
  });
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));

test('avap export writes one ONNX file; predict --engine onnx writes the same maps; evaluate scores both alike', async (t) => {
  await ok('export', '--model', run, '--out', onnxFile);
  assert.ok(fs.statSync(onnxFile).size > 1e6);
  assert.deepEqual(fs.readdirSync(root).filter((f) => f.includes('.tmp')), [], 'no temporary file left');

  const viaTorch = path.join(root, 'pred-torch');
  const viaOnnx = path.join(root, 'pred-onnx');
  const viaRun = path.join(root, 'pred-onnx-run');
  await ok('predict', '--model', run, '--input', data, '--out', viaTorch);
  await ok('predict', '--engine', 'onnx', '--model', onnxFile, '--input', data, '--out', viaOnnx);
  await ok('predict', '--engine', 'onnx', '--model', run, '--input', data, '--out', viaRun, '--no-overlay');
  assert.deepEqual(listing(viaOnnx), listing(viaTorch));

  // 16-bit maps: libtorch and onnxruntime agree to ≤ 1e-4, i.e. within 7 of 65535.
  let worst = 0;
  for (const f of listing(viaTorch).filter((x) => x.endsWith('.png') && !x.endsWith('overlay.png'))) {
    const [a, b, c] = await Promise.all([viaTorch, viaOnnx, viaRun].map((d) => readImage(path.join(d, f))));
    assert.equal(a.bitDepth, 16);
    for (let i = 0; i < a.data.length; i++) worst = Math.max(worst, Math.abs(a.data[i] - b.data[i]));
    assert.deepEqual(c.data, b.data, `${f}: a run exported in memory predicts what its exported file predicts`);
  }
  t.diagnostic(`largest difference between the engines' 16-bit maps: ${worst} / 65535`);
  assert.ok(worst <= 7, `largest difference ${worst} / 65535`);

  const scores: Record<string, unknown>[] = [];
  for (const predictions of [viaTorch, viaOnnx]) {
    const out = `${predictions}-eval`;
    await ok('evaluate', '--data', data, '--predictions', predictions, '--out', out, '--no-progress');
    scores.push(JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8')));
  }
  for (const key of ['mean_voting', 'average']) {
    const [t, o] = scores.map((s) => s[key] as Record<string, number>);
    for (const structure of ['disc', 'cup']) assert.ok(Math.abs(t[structure] - o[structure]) < 1e-3, `${key} ${structure}: torch ${t[structure]}, onnx ${o[structure]}`);
  }
});

test('an annotator subset exports only those outputs, and predict refuses the others', async () => {
  const subset = path.join(root, 'subset.onnx');
  await ok('export', '--model', run, '--out', subset, '--annotators', '3,1', '--opset', '18');
  const out = path.join(root, 'pred-subset');
  await ok('predict', '--engine', 'onnx', '--model', subset, '--input', data, '--out', out, '--no-overlay');
  assert.deepEqual(fs.readdirSync(path.join(out, 'case000')).sort(),
    ['cup_annotator1.png', 'cup_annotator3.png', 'cup_mean.png', 'disc_annotator1.png', 'disc_annotator3.png', 'disc_mean.png']);
  const r = await avap('predict', '--engine', 'onnx', '--model', subset, '--input', data, '--out', path.join(root, 'p2'), '--annotators', '2');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^avap: --annotators: 2 is not an annotator of this model \(1, 3\)\n$/);
});

test('bad export and predict flags are one-line errors that write nothing', async () => {
  const target = path.join(root, 'never.onnx');
  const cases: [string[], RegExp][] = [
    [['export', '--model', run, '--out', target, '--opset', '9'], /--opset must be in 13\.\.21, got '9'/],
    [['export', '--model', run, '--out', target, '--annotators', '1,1'], /--annotators lists an annotator twice: '1,1'/],
    [['export', '--model', run, '--out', target, '--annotators', '7'], /--annotators: 7 is not an annotator of this model \(1\.\.3\)/],
    [['export', '--model', path.join(root, 'nope'), '--out', target], /--model: .*nope: folder not found/],
    [['export', '--model', run, '--out', root], /--out: .* is a folder; give a file name/],
    [['predict', '--engine', 'tensorrt', '--model', run, '--input', data, '--out', path.join(root, 'p3')], /--engine must be one of torch, onnx, got 'tensorrt'/],
    [['predict', '--engine', 'onnx', '--model', path.join(data, 'dataset.json'), '--input', data, '--out', path.join(root, 'p4')], /dataset\.json: not an ONNX model/],
    [['predict', '--engine', 'onnx', '--model', path.join(root, 'missing.onnx'), '--input', data, '--out', path.join(root, 'p5')], /--model: .*missing\.onnx: no such file or folder/],
  ];
  for (const [args, pattern] of cases) {
    const r = await avap(...args);
    assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
  assert.ok(!fs.existsSync(target));
  for (const p of ['p3', 'p4', 'p5']) assert.ok(!fs.existsSync(path.join(root, p)), `${p} not created`);
});
