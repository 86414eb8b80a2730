/**
 * Fault injection, part 1: every bad input and hostile file we know of, as a table. Each case runs
 * the CLI (its main(), in this process for speed; some cases as a child process, to cover the real
 * binary's exit path) inside its own folder and asserts the exit status, one error line on
 * stderr naming the file or flag, no stack trace, that nothing in its folder changed (no output, no
 * escape into the parent of --out) and that no temp file remains. The shared fixtures (datasets, a
 * trained run, its predictions) must come out of the whole table unchanged.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import fsModule = require('node:fs');
import * as path from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../src/io/atomic';
import { describeFsError } from '../src/io/fsErrors';
import { reportFailure } from '../src/cli/main';
import { UserError } from '../src/errors';
import { loadSafetensors, saveSafetensors } from '../src/torch/safetensors';
import { rigaMask, writeGrey, writeRiga } from './data-fixtures';
import { CliResult, TINY, assertOneLineError, avap, avapInProcess, changes, fixturePaths, ok, snapshot, tempFiles, tinyFixtures } from './faults.helpers';

const { root, shared, data, data4, run, preds } = fixturePaths('inputs');
const data2 = path.join(shared, 'data-other-images');

test.before(() => tinyFixtures([[data], [data2, '--seed', '9'], [data4, '--annotators', '4']], run, preds));

// ---------------------------------------------------------------------------------------------
// Setup helpers: each builds hostile input inside the case folder `dir`.

const copy = (from: string, to: string) => fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true });

function copyRun(dir: string, edit?: (file: string) => void): string {
  const r = path.join(dir, 'run');
  copy(run, r);
  edit?.(path.join(r, 'model.safetensors'));
  return r;
}

function editJson(file: string, edit: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
}

function nanWeights(file: string): void {
  const { tensors, metadata } = loadSafetensors(file);
  const name = Object.keys(tensors).find((k) => k.endsWith('conv1.weight'))!;
  new Float32Array(tensors[name].data.buffer)[3] = NaN;
  saveSafetensors(file, tensors, metadata); // a valid file (checksum and all) holding a NaN
}

/** A dataset copy whose label map case001_A1 holds the undeclared value 77. */
async function badLabelData(dir: string): Promise<string> {
  const d = path.join(dir, 'data');
  copy(data, d);
  const values = new Uint8Array(32 * 32);
  values[40] = 77;
  await writeGrey(path.join(d, 'labels', 'case001_A1.png'), 32, 32, values);
  return d;
}

/** A RIGA folder at dir/riga whose CSV also lists an image (and masks) at `imgName`, e.g. outside it. */
async function rigaWith(dir: string, imgName: string): Promise<string> {
  const riga = path.join(dir, 'riga');
  const m = rigaMask(32, 10, 5);
  await writeRiga(riga, [
    { subset: 'BinRushed', imgName: 'BinRushed\\img1.png', width: 32, height: 32, masks: [m, m, m] },
    { subset: 'BinRushed', imgName, width: 32, height: 32, masks: [m, m, m] },
  ]);
  return riga;
}

/** A dataset copy (dir/data) where `which` (a file or folder of it) is replaced by a symbolic link to a copy elsewhere. */
function symlinked(dir: string, which: string, target: 'outside' | 'inside'): string {
  const d = path.join(dir, 'data');
  if (!fs.existsSync(d)) copy(data, d);
  const place = target === 'outside' ? path.join(dir, 'elsewhere') : path.join(d, 'spare');
  fs.mkdirSync(place, { recursive: true });
  const moved = path.join(place, path.basename(which));
  fs.renameSync(path.join(d, which), moved);
  fs.symlinkSync(path.relative(path.dirname(path.join(d, which)), moved), path.join(d, which));
  return d;
}

// ---------------------------------------------------------------------------------------------

interface FaultCase {
  name: string;
  /** Builds the case's inputs in `dir` and returns the CLI arguments. */
  args: (dir: string) => string[] | Promise<string[]>;
  /** The error line (or, with code 0, nothing is checked on stderr). */
  error?: RegExp;
  code?: number;
  stdout?: RegExp;
  /** A case that succeeds may write here (relative to its folder), and only here. */
  output?: string;
  /** Run as a child process (the real binary) rather than in this process. */
  subprocess?: boolean;
}

const out = (dir: string) => path.join(dir, 'out');
const train = (dir: string, ...args: string[]) => ['train', '--data', data, '--out', out(dir), ...TINY, ...args];
const resume = (...args: string[]) => ['train', '--data', data, '--out', run, '--resume', '--threads', '1', ...args];
const predict = (dir: string, model: string, ...args: string[]) => ['predict', '--model', model, '--input', data, '--out', out(dir), '--threads', '1', ...args];
const evaluate = (dir: string, predictions: string, ...args: string[]) => ['evaluate', '--data', data, '--predictions', predictions, '--out', out(dir), '--no-progress', ...args];

const CASES: FaultCase[] = [
  // train: impossible or conflicting flags
  { name: 'train: zero steps', args: (d) => train(d, '--steps', '0'), error: /--steps must be a positive integer, got '0'/ },
  { name: 'train: an untrained preference head', args: (d) => train(d, '--steps', '1', '--preference-steps', '0'), error: /--preference-steps 0 would leave the preference head \(APM\) untrained/ },
  { name: 'train: joint weights, wrong count', args: (d) => train(d, '--steps', '1', '--strategy', 'joint', '--joint-weights', '0.5,0.5'), error: /--joint-weights: expected 3 values \(one per structure: disc, cup; then the APM's\), got 2/ },
  { name: 'train: joint weights without the joint strategy', args: (d) => train(d, '--steps', '1', '--joint-weights', '0.2,0.2,0.6'), error: /--joint-weights only applies to --strategy joint/ },
  { name: 'train: --size not a multiple of 32', args: (d) => train(d, '--steps', '1', '--size', '48'), error: /--size must be a multiple of 32/ },
  { name: 'train: --threads 0', args: (d) => train(d, '--steps', '1', '--threads', '0'), error: /--threads must be in 1\.\.1024, got '0'/ },
  { name: 'train: an unknown --precision', args: (d) => train(d, '--steps', '1', '--precision', 'fp16'), error: /--precision must be one of auto, fp32, bf16, got 'fp16'/ },
  { name: 'train: an unknown flag', args: (d) => train(d, '--bogus'), error: /unknown option '--bogus'/, code: 2, subprocess: true },
  // train: bad files, found before or during the start; nothing may stay behind
  {
    name: 'train: --pretrained is not a safetensors file',
    args: (d) => {
      fs.writeFileSync(path.join(d, 'garbage.safetensors'), Buffer.from('this is not a model'));
      return train(d, '--steps', '1', '--pretrained', path.join(d, 'garbage.safetensors'));
    },
    error: /garbage\.safetensors: header length \d+ is beyond the end of the file/,
  },
  {
    name: 'train: --pretrained does not fit the encoder (failed start removed)',
    args: (d) => {
      saveSafetensors(path.join(d, 'wrong.safetensors'), { 'conv1.weight': { dtype: 'F32', shape: [1], data: new Uint8Array(4) } });
      return train(d, '--steps', '1', '--pretrained', path.join(d, 'wrong.safetensors'));
    },
    error: /wrong\.safetensors: cannot load state dict: missing keys .*shape mismatches \(1\): conv1\.weight/,
  },
  {
    name: 'train: an undeclared label value met in the first round (failed start removed)',
    args: async (d) => ['train', '--data', await badLabelData(d), '--out', out(d), ...TINY, '--steps', '1'],
    error: /case001_A1\.png: undeclared label value 77 in 1 pixel/,
    subprocess: true,
  },
  { name: 'train: --out is an existing file', args: (d) => (fs.writeFileSync(out(d), 'x'), train(d, '--steps', '1')), error: /--out: .*out is an existing file, not a folder/ },
  { name: 'train: --out below an existing file', args: (d) => (fs.writeFileSync(path.join(d, 'f'), 'x'), ['train', '--data', data, '--out', path.join(d, 'f', 'run'), ...TINY, '--steps', '1']), error: /--out: .*f\/run cannot be created: .*f is a file, not a folder/ },
  // train --resume: the run's data and settings only
  { name: 'resume: another --seed', args: () => resume('--seed', '4'), error: /--resume: --seed 4 \(the run's: --seed 3\): a resumed run keeps the settings it was started with/ },
  { name: 'resume: another --size', args: () => resume('--size', '64'), error: /--resume: --size 64 \(the run's: --size 32\)/ },
  { name: 'resume: another --encoder', args: () => resume('--encoder', 'resnet34'), error: /--resume: --encoder resnet34 \(the run's: --encoder resnet18\)/ },
  { name: 'resume: another --lr', args: () => resume('--lr', '0.01'), error: /--resume: --lr 0\.01 \(the run's: --lr 0\.001\)/ },
  { name: 'resume: another --method', args: () => resume('--method', 'mv-unet'), error: /--resume: --method mv-unet \(the run's: --method avap\)/ },
  { name: 'resume: another --precision', args: () => resume('--precision', 'bf16'), error: /--resume: --precision bf16 \(the run's: --precision auto\)/ },
  { name: 'resume: several other flags at once', args: () => resume('--seed', '4', '--no-augment'), error: /--seed 4 \(the run's: --seed 3\), --no-augment \(the run's: --augment\)/ },
  { name: 'resume: another dataset with the same M', args: () => ['train', '--data', data2, '--out', run, '--resume'], error: /--data: .*data-other-images is not the data .*run was trained on: it holds another image for case 'case000'/ },
  { name: 'resume: a dataset with another M', args: () => ['train', '--data', data4, '--out', run, '--resume'], error: /--data: .*has annotators A1, A2, A3, A4 \(M = 4\), but run .* was trained with A1, A2, A3 \(M = 3\)/, subprocess: true },
  {
    name: 'resume: config.json names an unknown encoder',
    args: (d) => {
      const r = copyRun(d);
      editJson(path.join(r, 'config.json'), (j) => ((j.model as { backbone: { encoder: string } }).backbone.encoder = 'vgg16'));
      return ['train', '--data', data, '--out', r, '--resume'];
    },
    error: /run\/config\.json: unknown encoder 'vgg16' at 'model\.backbone\.encoder' \(known: resnet18, resnet34, resnet50\)/,
  },
  { name: 'resume: a folder with no run', args: (d) => ['train', '--data', data, '--out', d, '--resume'], error: /--resume: .* holds no run to resume/ },
  // predict: case ids from file names, other models' folders, broken weights
  {
    name: "predict: an image named '...png' (case id '..') in the input folder",
    args: (d) => {
      fs.mkdirSync(path.join(d, 'in'));
      fs.copyFileSync(path.join(data, 'images', 'case000.png'), path.join(d, 'in', '...png'));
      return ['predict', '--model', run, '--input', path.join(d, 'in'), '--out', out(d)];
    },
    error: /--input: .*\/\.\.\.png: its name gives the case id '\.\.', which cannot name a prediction folder/,
    subprocess: true,
  },
  {
    name: "predict: a single image named '...png'",
    args: (d) => {
      fs.copyFileSync(path.join(data, 'images', 'case000.png'), path.join(d, '...png'));
      return ['predict', '--model', run, '--input', path.join(d, '...png'), '--out', out(d)];
    },
    error: /case id '\.\.'/,
  },
  { name: "predict: into another model's predictions", args: (d) => (copy(preds, out(d)), predict(d, copyRun(d))), error: /--out: .*out holds predictions of another model \(model .*shared\/run, annotators 1,2,3\)/ },
  { name: 'predict: the same model for other annotators over earlier predictions', args: (d) => (copy(preds, out(d)), predict(d, run, '--annotators', '1')), error: /holds predictions of the same model for other annotators/ },
  { name: 'predict: into a non-empty folder that holds no predictions', args: (d) => (fs.mkdirSync(out(d)), fs.writeFileSync(path.join(out(d), 'notes.txt'), 'mine'), predict(d, run)), error: /--out: .*out is not empty and holds no predictions\.json/ },
  { name: 'predict: an unknown --precision', args: (d) => predict(d, run, '--precision', 'half'), error: /--precision must be one of auto, fp32, bf16, got 'half'/ },
  { name: 'predict: bf16 on onnxruntime', args: (d) => predict(d, run, '--engine', 'onnx', '--precision', 'bf16'), error: /--precision bf16 applies to --engine torch; onnxruntime runs the exported float32 model/ },
  { name: 'predict: weights holding NaN', args: (d) => predict(d, copyRun(d, nanWeights)), error: /run\/model\.safetensors: the model holds non-finite weights \(1 NaN or infinite value in '.*conv1\.weight'\)/, subprocess: true },
  {
    name: 'predict: weights damaged in place (same length)',
    args: (d) => predict(d, copyRun(d, (f) => {
      const b = fs.readFileSync(f);
      b[b.length - 1000] ^= 0x10;
      fs.writeFileSync(f, b);
    })),
    error: /model\.safetensors: checksum mismatch: the tensor data are damaged/,
  },
  { name: 'predict: truncated weights', args: (d) => predict(d, copyRun(d, (f) => fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2)))), error: /model\.safetensors: truncated data: the header needs \d+ data bytes but the file has \d+/ },
  {
    name: 'predict: config.json names an unknown encoder',
    args: (d) => {
      const r = copyRun(d);
      editJson(path.join(r, 'config.json'), (j) => ((j.model as { backbone: { encoder: string } }).backbone.encoder = 'vgg16'));
      return predict(d, r);
    },
    error: /config\.json: unknown encoder 'vgg16'/,
  },
  { name: 'predict: --out is an existing file', args: (d) => (fs.writeFileSync(out(d), 'x'), predict(d, run)), error: /--out: .*out is an existing file, not a folder/ },
  { name: 'predict: --threads not a number', args: (d) => predict(d, run, '--threads', 'x'), error: /--threads must be a positive integer, got 'x'/ },
  // evaluate
  { name: 'evaluate: --out is an existing file', args: (d) => (fs.writeFileSync(out(d), 'x'), evaluate(d, preds)), error: /--out: .*out is an existing file, not a folder/ },
  {
    name: 'evaluate: predictions predict did not finish',
    args: (d) => {
      copy(preds, path.join(d, 'p'));
      editJson(path.join(d, 'p', 'predictions.json'), (j) => (j.complete = false));
      return evaluate(d, path.join(d, 'p'));
    },
    error: /--predictions: .*p holds unfinished predictions .*: predict was interrupted; run it again/,
  },
  {
    name: 'evaluate: predictions for one annotator of three',
    args: (d) => {
      copy(preds, path.join(d, 'p'));
      editJson(path.join(d, 'p', 'predictions.json'), (j) => (j.annotators = [1]));
      return evaluate(d, path.join(d, 'p'));
    },
    error: /--predictions: .*p holds predictions for annotators 1 of 3; evaluation needs all 3/,
  },
  { name: 'evaluate: --threads 0', args: (d) => evaluate(d, preds, '--threads', '0'), error: /--threads must be in 1\.\.1024/ },
  // data: paths that lead outside the dataset, symbolic links, dataset.json
  { name: 'data check: a RIGA CSV path leading outside the dataset', args: async (d) => ['data', 'check', await rigaWith(d, '..\\outside\\x.png')], error: /Glaucoma_multirater_BinRushed\.csv: lines \d+–\d+: path '\.\.\\outside\\x\.png' leads outside the dataset folder/ },
  { name: 'data convert: a RIGA CSV path leading outside the dataset', args: async (d) => ['data', 'convert', '--from', await rigaWith(d, '..\\outside\\x.png'), '--out', out(d)], error: /Glaucoma_multirater_BinRushed\.csv: lines \d+–\d+: path '\.\.\\outside\\x(-\d)?\.png' leads outside the dataset folder/ },
  { name: "data check: a RIGA image whose case id would be '..'", args: async (d) => ['data', 'check', await rigaWith(d, '...png')], error: /image \.\.\.png gives the case id '\.\.', which cannot name a file or folder/ },
  { name: 'data check: an image that is a symbolic link out of the dataset', args: (d) => ['data', 'check', symlinked(d, 'images/case000.png', 'outside')], error: /images\/case000\.png: is a symbolic link leading outside the dataset folder/, subprocess: true },
  { name: 'data check: a label map that is a symbolic link out of the dataset', args: (d) => ['data', 'check', symlinked(d, 'labels/case000_A1.png', 'outside')], error: /labels\/case000_A1\.png: is a symbolic link leading outside the dataset folder/ },
  { name: 'train: images/ is a symbolic link out of the dataset', args: (d) => ['train', '--data', symlinked(d, 'images', 'outside'), '--out', out(d), ...TINY, '--steps', '1'], error: /data\/images: is a symbolic link leading outside the dataset folder/ },
  { name: 'data check: symbolic links inside the dataset are followed (image and label alike)', args: (d) => { symlinked(d, 'images/case000.png', 'inside'); return ['data', 'check', symlinked(d, 'labels/case000_A1.png', 'inside')]; }, code: 0, stdout: /cases\s+6;[\s\S]*annotations 18 of 18[\s\S]*OK: / },
  { name: 'data check: dataset.json with a UTF-8 byte-order mark', args: (d) => { copy(data, path.join(d, 'data')); const f = path.join(d, 'data', 'dataset.json'); fs.writeFileSync(f, '\ufeff' + fs.readFileSync(f, 'utf8')); return ['data', 'check', path.join(d, 'data')]; }, code: 0, stdout: /OK: / },
  { name: 'data check: dataset.json channels 2', args: (d) => { copy(data, path.join(d, 'data')); editJson(path.join(d, 'data', 'dataset.json'), (j) => (j.channels = 2)); return ['data', 'check', path.join(d, 'data')]; }, error: /dataset\.json: channels: must be 1 \(greyscale\) or 3 \(RGB\)/ },
  { name: 'data check: dataset.json splits naming a path, not a case', args: (d) => { copy(data, path.join(d, 'data')); editJson(path.join(d, 'data', 'dataset.json'), (j) => (j.splits as Record<string, string[]>).train.push('../../etc/passwd')); return ['data', 'check', path.join(d, 'data')]; }, error: /splits\.train lists 1 case with no image in images\/: '\.\.\/\.\.\/etc\/passwd'/ },
  {
    name: 'data check: an RGBA image in a 3-channel dataset is reported as RGBA',
    args: async (d) => {
      copy(data, path.join(d, 'data'));
      const f = path.join(d, 'data', 'images', 'case000.png');
      const png = await sharp(fs.readFileSync(f)).ensureAlpha(0.5).png().toBuffer();
      fs.writeFileSync(f, png);
      return ['data', 'check', path.join(d, 'data')];
    },
    code: 0,
    stdout: /images\s+RGB 8-bit ×5, RGBA 8-bit ×1[\s\S]*case000\.png: image has an alpha channel, which is ignored/,
  },
  // synth and convert into places that cannot be a new folder
  { name: 'synth: --out is an existing file', args: (d) => (fs.writeFileSync(out(d), 'x'), ['synth', '--out', out(d), '--cases', '2', '--size', '32']), error: /--out: .*out is an existing file, not a folder/ },
  { name: 'synth: --out below an existing file', args: (d) => (fs.writeFileSync(out(d), 'x'), ['synth', '--out', path.join(out(d), 'sub'), '--cases', '2', '--size', '32']), error: /cannot be created: .*out is a file, not a folder/ },
  { name: 'data convert: --out is an existing file', args: async (d) => { const riga = await rigaWith(d, 'BinRushed\\img2.png'); fs.writeFileSync(out(d), 'x'); return ['data', 'convert', '--from', riga, '--out', out(d)]; }, error: /--out: .*out is an existing file, not a folder/ },
];

test(`fault table: ${CASES.length} bad inputs and hostile files, each one line, exit status, nothing changed`, async (t) => {
  const before = snapshot(shared);
  const failures: string[] = [];
  const casesDir = path.join(root, 'cases');
  for (const [i, c] of CASES.entries()) {
    const dir = path.join(casesDir, String(i).padStart(2, '0'));
    fs.mkdirSync(dir, { recursive: true });
    if (process.env.AVAP_FAULTS_VERBOSE) process.stderr.write(`case ${i}: ${c.name}\n`);
    let r: CliResult | undefined;
    try {
      const args = await c.args(dir);
      const setup = snapshot(dir);
      r = c.subprocess ? await avap(args) : await avapInProcess(args);
      if ((c.code ?? 1) !== 0) assertOneLineError(r, c.error!, c.code ?? 1, c.name);
      else assert.equal(r.code, 0, `exit ${r.code}: ${r.stderr}`);
      if (c.stdout) assert.match(r.stdout, c.stdout, `stdout: ${r.stdout}`);
      assert.deepEqual(changes(setup, snapshot(dir), c.output), [], 'the case folder changed (an output or a write outside --out)');
      assert.deepEqual(tempFiles(dir), [], 'temp files left behind');
    } catch (err) {
      failures.push(`${c.name}: ${(err as Error).message.split('\n').slice(0, 4).join(' | ')}`);
    }
  }
  assert.deepEqual(changes(before, snapshot(shared)), [], 'the shared fixtures changed');
  assert.deepEqual(fs.readdirSync(root).sort(), ['cases', 'shared'], 'something was written next to the sandbox folders');
  assert.deepEqual(failures, [], `${failures.length} of ${CASES.length} cases failed`);
  t.diagnostic(`fault table: ${CASES.length} cases (${CASES.filter((c) => c.subprocess).length} as child processes), ${CASES.length - failures.length} passed`);
});

test('a resume with the same flags says which settings come from the run, and the log records it', async () => {
  const dir = path.join(root, 'resumed');
  copy(run, dir);
  const r = await avapInProcess(['train', '--data', data, '--out', dir, '--resume', '--seed', '3', '--size', '32']);
  ok(r, 'resume');
  assert.match(r.stderr, /resuming with the run's settings: --method avap --encoder resnet18 --size 32 --seed 3 .*--steps 1/);
  const events = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).event);
  // Step 1, two cross-fitting folds of step 2, the final step 2 (the preference gate's choice), then the resume.
  assert.deepEqual(events, ['start', 'round', 'round', 'round', 'round', 'stageEnd', 'resume', 'done']);
});

test('predict rewrites its own predictions; evaluate --model replaces another model\'s in OUT/predictions', async () => {
  const dir = path.join(root, 'rewrite');
  copy(preds, dir);
  ok(await avapInProcess(['predict', '--model', run, '--input', data, '--out', dir, '--threads', '1']), 'predict again');
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'predictions.json'), 'utf8'));
  assert.equal(manifest.complete, true);
  assert.deepEqual(manifest.annotators, [1, 2, 3]);

  const evalDir = path.join(root, 'eval');
  fs.mkdirSync(evalDir);
  copy(preds, path.join(evalDir, 'predictions'));
  editJson(path.join(evalDir, 'predictions', 'predictions.json'), (j) => ((j.model = '/elsewhere/other-run'), (j.annotators = [1]), (j.cases = ['case000', 'stale'])));
  fs.mkdirSync(path.join(evalDir, 'predictions', 'stale'));
  fs.writeFileSync(path.join(evalDir, 'predictions', 'stale', 'disc_mean.png'), 'old');
  ok(await avapInProcess(['evaluate', '--model', run, '--data', data, '--split', 'test', '--out', evalDir, '--no-progress', '--threads', '1']), 'evaluate --model');
  assert.ok(!fs.existsSync(path.join(evalDir, 'predictions', 'stale')), "the other model's files are removed");
  assert.equal(JSON.parse(fs.readFileSync(path.join(evalDir, 'predictions', 'predictions.json'), 'utf8')).model, run);
});

test('an atomic write writes every byte across short writes, and on a failed write leaves nothing and names the file', () => {
  const dir = path.join(root, 'atomic');
  fs.mkdirSync(dir);
  const file = path.join(dir, 'model.bin');
  const bytes = Buffer.alloc(1 << 20, 7);
  const realWrite = fsModule.writeSync;
  const patched = fsModule as unknown as { writeSync: (...a: unknown[]) => number };
  let calls = 0;
  try {
    // At most 4 KiB per call, as write(2) does when the disk is nearly full.
    patched.writeSync = (fd: unknown, buf: unknown, off: unknown, len: unknown) => {
      calls++;
      return realWrite(fd as number, buf as Uint8Array, off as number, Math.min(len as number, 4096));
    };
    writeFileAtomic(file, bytes);
    assert.ok(calls >= 256, `short writes were retried (${calls} calls)`);
    assert.ok(fs.readFileSync(file).equals(bytes), 'all bytes written');

    // Half the bytes, then the disk is full: the previous file stays, no temp file, one line naming it.
    let written = 0;
    patched.writeSync = (fd: unknown, buf: unknown, off: unknown, len: unknown) => {
      if (written >= bytes.length / 2) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write', errno: -28 });
      const n = realWrite(fd as number, buf as Uint8Array, off as number, Math.min(len as number, 65536));
      written += n;
      return n;
    };
    assert.throws(() => writeFileAtomic(file, Buffer.alloc(bytes.length, 9)), (err: Error) => err instanceof UserError && err.message === `no space left on device writing ${file} (ENOSPC)`);
  } finally {
    patched.writeSync = realWrite as unknown as (...a: unknown[]) => number;
  }
  assert.ok(fs.readFileSync(file).equals(bytes), 'the previous content is intact');
  assert.deepEqual(fs.readdirSync(dir), ['model.bin'], 'no temp file left');
});

test('file-system errors become one line naming the path; a bug is one line unless AVAP_DEBUG=1', () => {
  const errno = (code: string, syscall: string, p: string) => Object.assign(new Error(`${code}: x, ${syscall} '${p}'`), { code, syscall, path: p });
  const table: [NodeJS.ErrnoException, string][] = [
    [errno('EACCES', 'mkdir', '/ro/run'), 'permission denied creating folder /ro/run (EACCES)'],
    [errno('ENOSPC', 'write', '/d/x'), 'no space left on device writing /d/x (ENOSPC)'],
    [errno('EEXIST', 'mkdir', '/d/f'), 'a file or folder of that name already exists creating folder /d/f (EEXIST)'],
    [errno('ENOTDIR', 'open', '/d/f/x'), 'a part of the path is a file, not a folder opening /d/f/x (ENOTDIR)'],
    [errno('EROFS', 'open', '/ro/x'), 'read-only file system opening /ro/x (EROFS)'],
    [errno('EISDIR', 'open', '/d'), 'is a folder, not a file opening /d (EISDIR)'],
    [errno('ENOENT', 'scandir', '/nope'), 'no such file or folder listing /nope (ENOENT)'],
  ];
  for (const [err, line] of table) assert.equal(describeFsError(err), line);

  const captured: string[] = [];
  const write = process.stderr.write;
  const debug = process.env.AVAP_DEBUG;
  try {
    (process.stderr as unknown as { write: (s: string) => boolean }).write = (s: string) => (captured.push(s), true);
    delete process.env.AVAP_DEBUG;
    assert.equal(reportFailure(errno('EACCES', 'open', '/ro/x')), 1);
    assert.equal(reportFailure(new Error('something broke\ninside')), 70);
    process.env.AVAP_DEBUG = '1';
    assert.equal(reportFailure(new Error('traced')), 70);
  } finally {
    (process.stderr as unknown as { write: typeof write }).write = write;
    if (debug === undefined) delete process.env.AVAP_DEBUG;
    else process.env.AVAP_DEBUG = debug;
  }
  assert.equal(captured[0], 'avap: permission denied opening /ro/x (EACCES)\n');
  assert.equal(captured[1], 'avap: internal error: something broke inside (run again with AVAP_DEBUG=1 for the stack trace)\n');
  assert.match(captured[2], /^Error: traced\n\s+at /);
});
