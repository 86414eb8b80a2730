/**
 * Fault injection, part 4: what the program reads. Every file a user can hand over (weights,
 * checkpoints, ONNX models, images, JSON, CSV, prediction manifests) is read as a regular file within
 * a bound that fits what it claims to be, and every flag value is honoured or refused in one line.
 * The first test runs each reader on /dev/zero, a named pipe and a symbolic link loop as a child
 * process with its memory capped and a time limit: a reader that read without end, blocked on the
 * pipe or allocated what a header claimed would fail it.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { deflateSync } from 'node:zlib';
import { onnx } from 'onnx-proto';
import { rigaMask, writeRiga } from './data-fixtures';
import { CliResult, LimitedResult, TINY, assertOneLineError, avapInProcess, avapLimited, changes, fixturePaths, hasPrlimit, ok, pool, snapshot, tinyFixtures } from './faults.helpers';

const { root, shared, data, data4, run, preds } = fixturePaths('reads');
const model = path.join(shared, 'model.onnx');
const riga = path.join(shared, 'riga');

test.before(async () => {
  await tinyFixtures([[data], [data4, '--annotators', '4']], run, preds);
  ok(await avapInProcess(['export', '--model', run, '--out', model]), 'export');
  const m = rigaMask(32, 10, 5);
  await writeRiga(riga, [{ subset: 'BinRushed', imgName: 'BinRushed\\img1.png', width: 32, height: 32, masks: [m, m, m] }]);
});

const copy = (from: string, to: string) => fs.cpSync(from, to, { recursive: true, verbatimSymlinks: true });

function editJson(file: string, edit: (json: Record<string, unknown>) => void): void {
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(json);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
}

// ---------------------------------------------------------------------------------------------
// Each reader on each hostile file, under a memory limit.

type Hostile = 'dev-zero' | 'fifo' | 'link-loop';
const HOSTILES: Hostile[] = ['dev-zero', 'fifo', 'link-loop'];

/** Replaces `file` (or creates it) with the hostile kind of file. */
function plant(file: string, kind: Hostile): void {
  fs.rmSync(file, { force: true });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (kind === 'dev-zero') fs.symlinkSync('/dev/zero', file);
  else if (kind === 'link-loop') fs.symlinkSync(path.basename(file), file); // a link to itself
  else {
    const r = spawnSync('mkfifo', [file]);
    if (r.status !== 0) throw new Error(`mkfifo ${file}: ${r.stderr}`);
  }
}

interface Reader {
  name: string;
  /** Sets up the case in `dir` with the hostile file planted where this reader reads; returns the CLI arguments and the file planted. */
  make: (dir: string, kind: Hostile) => { args: string[]; file: string };
}

const planted = (dir: string, rel: string, kind: Hostile) => {
  const file = path.join(dir, rel);
  plant(file, kind);
  return file;
};
const withCopy = (from: string, dir: string, rel: string, kind: Hostile) => {
  const to = path.join(dir, path.basename(from));
  copy(from, to);
  return { to, file: planted(to, rel, kind) };
};

const READERS: Reader[] = [
  { name: 'train --pretrained', make: (d, k) => { const file = planted(d, 'weights.safetensors', k); return { file, args: ['train', '--data', data, '--out', path.join(d, 'out'), ...TINY, '--steps', '1', '--pretrained', file] }; } },
  { name: 'train --resume: checkpoint/state.json', make: (d, k) => { const { to, file } = withCopy(run, d, 'checkpoint/state.json', k); return { file, args: ['train', '--data', data, '--out', to, '--resume', '--threads', '1'] }; } },
  { name: 'predict: the run\'s model.safetensors', make: (d, k) => { const { to, file } = withCopy(run, d, 'model.safetensors', k); return { file, args: ['predict', '--model', to, '--input', data, '--out', path.join(d, 'out'), '--threads', '1'] }; } },
  { name: 'predict: the run\'s config.json', make: (d, k) => { const { to, file } = withCopy(run, d, 'config.json', k); return { file, args: ['predict', '--model', to, '--input', data, '--out', path.join(d, 'out'), '--threads', '1'] }; } },
  { name: 'export: the run\'s normalization.json', make: (d, k) => { const { to, file } = withCopy(run, d, 'normalization.json', k); return { file, args: ['export', '--model', to, '--out', path.join(d, 'm.onnx')] }; } },
  { name: 'predict --input (an image)', make: (d, k) => { const file = planted(d, 'image.png', k); return { file, args: ['predict', '--model', run, '--input', file, '--out', path.join(d, 'out'), '--threads', '1'] }; } },
  { name: 'predict --engine onnx --model', make: (d, k) => { const file = planted(d, 'model.onnx', k); return { file, args: ['predict', '--engine', 'onnx', '--model', file, '--input', data, '--out', path.join(d, 'out')] }; } },
  { name: 'view --model', make: (d, k) => { const file = planted(d, 'model.onnx', k); return { file, args: ['view', '--model', file, '--port', '0'] }; } },
  { name: 'data check: dataset.json', make: (d, k) => { const { to, file } = withCopy(data, d, 'dataset.json', k); return { file, args: ['data', 'check', to] }; } },
  { name: 'data check: a RIGA CSV', make: (d, k) => { const { to, file } = withCopy(riga, d, 'Glaucoma_multirater_BinRushed.csv', k); return { file, args: ['data', 'check', to] }; } },
  { name: 'evaluate: predictions.json', make: (d, k) => { const { to, file } = withCopy(preds, d, 'predictions.json', k); return { file, args: ['evaluate', '--data', data, '--predictions', to, '--out', path.join(d, 'out'), '--no-progress'] }; } },
  { name: 'evaluate: a prediction map', make: (d, k) => { const { to, file } = withCopy(preds, d, 'case000/disc_mean.png', k); return { file, args: ['evaluate', '--data', data, '--predictions', to, '--out', path.join(d, 'out'), '--no-progress'] }; } },
];

/** Time a refused read may take: the process starts, loads the engine where the command needs it, and reads nothing. */
const QUICK_MS = 30_000;

test(`every reader on /dev/zero, a FIFO and a symbolic link loop (${READERS.length} readers × ${HOSTILES.length}), memory-limited: one line naming the file, quickly`, async (t) => {
  if (!hasPrlimit) t.diagnostic('prlimit not found: only V8\'s heap is capped');
  const before = snapshot(shared);
  const jobs = READERS.flatMap((reader) => HOSTILES.map((kind) => ({ reader, kind })));
  const failures: string[] = [];
  await pool(jobs, 2, async ({ reader, kind }) => {
    const dir = path.join(root, 'hostile', `${reader.name.replace(/[^a-z0-9]+/gi, '-')}-${kind}`);
    fs.mkdirSync(dir, { recursive: true });
    const { args, file } = reader.make(dir, kind);
    const r: LimitedResult = await avapLimited(args, { memoryMiB: 4096, heapMiB: 512, timeoutMs: 2 * QUICK_MS });
    try {
      assert.ok(!r.timedOut, `still running after ${2 * QUICK_MS} ms (blocked or reading without end)`);
      assert.ok(r.ms < QUICK_MS, `took ${r.ms} ms`);
      assert.notEqual(r.code, 0, 'exit 0');
      assertOneLineError(r, new RegExp(`${path.basename(file).replace(/\./g, '\\.')}: .*(named pipe|device|symbolic link)`), 1);
      assert.doesNotMatch(r.stderr + r.stdout, /internal error|bad_alloc|heap out of memory/);
    } catch (err) {
      failures.push(`${reader.name} on ${kind}: ${(err as Error).message.split('\n')[0]} | stderr: ${r.stderr.trim().slice(0, 300)}`);
    }
  });
  assert.deepEqual(changes(before, snapshot(shared)), [], 'the shared fixtures changed');
  assert.deepEqual(failures, [], `${failures.length} of ${jobs.length} failed`);
  t.diagnostic(`${jobs.length} hostile reads, each refused in one line`);
});

// ---------------------------------------------------------------------------------------------
// Hostile files and flag values, in process.

/** A PNG whose header declares `width`×`height` 16-bit RGB, with hardly any pixel data behind it. */
function pngHeaderOnly(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, body: Buffer) => {
    const typed = Buffer.concat([Buffer.from(type, 'ascii'), body]);
    const out = Buffer.alloc(8 + body.length + 4);
    out.writeUInt32BE(body.length, 0);
    typed.copy(out, 4);
    out.writeUInt32BE(crc(typed), 8 + body.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([16, 2, 0, 0, 0], 8); // 16 bits, RGB, deflate, no filter, no interlace
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(1024))), chunk('IEND', Buffer.alloc(0))]);
}

/** A copy of the exported model with metadata avap.`key` edited. */
function editOnnx(dir: string, key: string, edit: (value: Record<string, unknown> | Record<string, unknown>[]) => void): string {
  const m = onnx.ModelProto.decode(fs.readFileSync(model));
  const prop = m.metadataProps.find((p) => p.key === `avap.${key}`)!;
  const value = JSON.parse(prop.value!);
  edit(value);
  prop.value = JSON.stringify(value);
  const file = path.join(dir, 'edited.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(m).finish());
  return file;
}

/** A copy of the run whose checkpoint/state.json is edited. */
function editState(dir: string, edit: (state: Record<string, unknown>) => void): string {
  const r = path.join(dir, 'run');
  copy(run, r);
  editJson(path.join(r, 'checkpoint', 'state.json'), edit);
  return r;
}

/** A sparse file of `bytes` (nothing written to disk): its size alone is over a bound. */
function sparse(file: string, bytes: number): string {
  fs.writeFileSync(file, '');
  fs.truncateSync(file, bytes);
  return file;
}

interface ReadCase {
  name: string;
  args: (dir: string) => string[] | Promise<string[]>;
  error: RegExp;
}

const out = (d: string) => path.join(d, 'out');
const train = (d: string, ...args: string[]) => ['train', '--data', data, '--out', out(d), ...TINY, '--steps', '1', ...args];
const resume = (r: string) => ['train', '--data', data, '--out', r, '--resume', '--threads', '1'];
const onnxPredict = (d: string, file: string) => ['predict', '--engine', 'onnx', '--model', file, '--input', data, '--out', out(d)];
const cores = os.availableParallelism();

const CASES: ReadCase[] = [
  // flags: every accepted value works or is refused in one line
  { name: 'train: --batch-size above the training cases', args: (d) => train(d, '--batch-size', '100'), error: /--batch-size 100 is more than the (\d+) training cases; use --batch-size \1 or less/ },
  { name: 'train: a batch of one at --size 32 (batch norm)', args: (d) => train(d, '--batch-size', '1'), error: /--batch-size 1 at --size 32: batch norm needs at least 2 values per channel/ },
  { name: 'train: --val-fraction leaving one training case at --size 32', args: (d) => train(d, '--val-fraction', '0.9'), error: /--val-fraction: 1 training case is left after --val-fraction 0\.9 holds out \d+; batch norm needs batches of at least 2 images at --size 32; hold out fewer cases/ },
  { name: 'train: --size whose per-pixel normalisation cannot be written', args: (d) => train(d, '--size', '4096'), error: /--size 4096 with --normalization per-pixel: 100663296 mean and std values are too many to write to normalization\.json .*use --size \d+ or less/ },
  { name: 'train: --threads above the cores', args: (d) => train(d, '--threads', String(cores + 1)), error: new RegExp(`--threads ${cores + 1} is more than the ${cores} cores? this process may use`) },
  { name: 'predict: --threads above the cores', args: (d) => ['predict', '--model', run, '--input', data, '--out', out(d), '--threads', '999'], error: /--threads 999 is more than the \d+ cores? this process may use/ },
  // checkpoint state, field by field
  { name: 'resume: state.json weights in another run', args: (d) => resume(editState(d, (s) => (s.weights = '../../other-run/model.safetensors'))), error: /state\.json: weights must name a file in .*checkpoint, got "\.\.\/\.\.\/other-run\/model\.safetensors"/ },
  { name: 'resume: state.json weights an absolute path', args: (d) => resume(editState(d, (s) => (s.weights = path.join(run, 'model.safetensors')))), error: /state\.json: weights must name a file in .*checkpoint, got "\/.*model\.safetensors"/ },
  { name: 'resume: state.json stage 5', args: (d) => resume(editState(d, (s) => ((s.stage = 5), (s.step = 0)))), error: /state\.json: stage 5 is not in this run's plan: its stages are 0 \(variation, 1 steps\)/ },
  { name: 'resume: state.json step 999', args: (d) => resume(editState(d, (s) => ((s.stage = 0), (s.step = 999), (s.best = [])))), error: /state\.json: step 999 is beyond stage 0 \(variation\), which has 1 steps/ },
  { name: 'resume: state.json step negative', args: (d) => resume(editState(d, (s) => (s.step = -1))), error: /state\.json: invalid checkpoint state at 'step': Number must be greater than or equal to 0/ },
  { name: 'resume: state.json stage a string', args: (d) => resume(editState(d, (s) => (s.stage = 'one'))), error: /state\.json: invalid checkpoint state at 'stage': Expected number, received string/ },
  { name: 'resume: state.json best beyond the plan', args: (d) => resume(editState(d, (s) => (s.best = [{ stage: 9, score: null, step: 1 }]))), error: /state\.json: best names stage 9 step 1, which is not a completed point of this run's plan/ },
  { name: 'resume: state.json not JSON', args: (d) => { const r = editState(d, () => undefined); fs.writeFileSync(path.join(r, 'checkpoint', 'state.json'), '{"stage": '); return resume(r); }, error: /state\.json: invalid JSON/ },
  // ONNX metadata that does not describe its graph
  { name: 'onnx: metadata input size 100000', args: (d) => onnxPredict(d, editOnnx(d, 'input', (i) => ((i as Record<string, unknown>).size = 100000))), error: /--model: .*edited\.onnx: metadata avap\.input says size 100000, the graph's input is 32×32/ },
  { name: 'onnx: metadata input channels', args: (d) => onnxPredict(d, editOnnx(d, 'input', (i) => ((i as Record<string, unknown>).channels = 1))), error: /edited\.onnx: metadata avap\.input says 1 channels, the graph's input has 3/ },
  { name: 'onnx: metadata input name', args: (d) => onnxPredict(d, editOnnx(d, 'input', (i) => ((i as Record<string, unknown>).name = 'pixels'))), error: /edited\.onnx: metadata avap\.input names 'pixels', which is not an input of the graph/ },
  { name: 'onnx: metadata output name', args: (d) => onnxPredict(d, editOnnx(d, 'outputs', (o) => (((o as Record<string, unknown>[])[0]).name = 'nope'))), error: /edited\.onnx: metadata avap\.outputs names 'nope', which is not an output of the graph/ },
  { name: 'view: metadata input size 100000', args: (d) => ['view', '--model', editOnnx(d, 'input', (i) => ((i as Record<string, unknown>).size = 100000)), '--port', '0'], error: /metadata avap\.input says size 100000/ },
  // sizes over their bounds, refused before reading
  { name: 'onnx: a file over the 2 GiB an ONNX model can hold', args: (d) => onnxPredict(d, sparse(path.join(d, 'huge.onnx'), 3 * 1024 ** 3)), error: /huge\.onnx: 3 GiB is over the 2 GiB limit for an ONNX model/ },
  {
    name: 'train --pretrained: a header declaring a terabyte of tensors',
    args: (d) => {
      const header = Buffer.from('{"w":{"dtype":"F32","shape":[262144000000],"data_offsets":[0,1048576000000]}}'.padEnd(88, ' '));
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(header.length));
      const file = path.join(d, 'claims.safetensors');
      fs.writeFileSync(file, Buffer.concat([length, header, Buffer.alloc(4)]));
      return train(d, '--pretrained', file);
    },
    error: /--pretrained: .*claims\.safetensors: truncated data: the header needs 1048576000000 data bytes but the file has 4/,
  },
  {
    name: 'data check: dataset.json over the text limit',
    args: (d) => {
      copy(data, path.join(d, 'data'));
      sparse(path.join(d, 'data', 'dataset.json'), 300 * 1024 * 1024);
      return ['data', 'check', path.join(d, 'data')];
    },
    error: /dataset\.json: 300 MiB is over the 256 MiB limit for a dataset description/,
  },
  { name: 'predict: an image declaring 16000×16000 16-bit RGB', args: (d) => (fs.writeFileSync(path.join(d, 'big.png'), pngHeaderOnly(16000, 16000)), ['predict', '--model', run, '--input', path.join(d, 'big.png'), '--out', out(d), '--threads', '1']), error: /big\.png: a 16000×16000 image of 3 channels at ushort decodes to 1\.4 GiB, over the 256 MiB memory budget for one image \(set AVAP_IMAGE_MEMORY_MB to raise it\)/ },
  { name: 'predict: an image file over the budget by its size alone', args: (d) => ['predict', '--model', run, '--input', sparse(path.join(d, 'huge.png'), 300 * 1024 * 1024), '--out', out(d), '--threads', '1'], error: /huge\.png: 300 MiB is over the 256 MiB limit for one image \(set AVAP_IMAGE_MEMORY_MB to raise it\)/ },
  { name: 'data convert: a RIGA image declaring 16000×16000', args: (d) => { const r = path.join(d, 'riga'); copy(riga, r); fs.writeFileSync(path.join(r, 'BinRushed', 'img1.png'), pngHeaderOnly(16000, 16000)); return ['data', 'convert', '--from', r, '--out', out(d)]; }, error: /img1\.png: a 16000×16000 image .* over the 256 MiB memory budget/ },
  // text that is not what it claims
  {
    name: 'data check: invalid UTF-8 in dataset.json',
    args: (d) => {
      copy(data, path.join(d, 'data'));
      const f = path.join(d, 'data', 'dataset.json');
      const text = fs.readFileSync(f);
      const at = text.indexOf('"name"') + 9;
      fs.writeFileSync(f, Buffer.concat([text.subarray(0, at), Buffer.from([0xff, 0xfe]), text.subarray(at)]));
      return ['data', 'check', path.join(d, 'data')];
    },
    error: /dataset\.json: not valid UTF-8 text \(byte \d+ is not part of a UTF-8 character\)/,
  },
  // annotator counts that do not match
  { name: 'evaluate --model: a 3-annotator model on 4-annotator data', args: (d) => ['evaluate', '--model', run, '--data', data4, '--out', out(d), '--no-progress', '--threads', '1'], error: /--model: .*run was trained with 3 annotators \(A1, A2, A3\), but --data has 4 \(A1, A2, A3, A4\)/ },
  {
    name: 'evaluate: predictions.json claiming 6 annotators against 3',
    args: (d) => {
      copy(preds, path.join(d, 'p'));
      editJson(path.join(d, 'p', 'predictions.json'), (j) => ((j.annotatorCount = 6), (j.annotators = [1, 2, 3, 4, 5, 6])));
      return ['evaluate', '--data', data, '--predictions', path.join(d, 'p'), '--out', out(d), '--no-progress'];
    },
    error: /--predictions: .*p holds predictions of a model with 6 annotators, but --data has 3/,
  },
];

test(`read and flag table: ${CASES.length} hostile files and flag values, each one line, nothing written`, async (t) => {
  const before = snapshot(shared);
  const failures: string[] = [];
  for (const [i, c] of CASES.entries()) {
    const dir = path.join(root, 'cases', String(i).padStart(2, '0'));
    fs.mkdirSync(dir, { recursive: true });
    let r: CliResult | undefined;
    try {
      const args = await c.args(dir);
      const setup = snapshot(dir);
      r = await avapInProcess(args);
      assertOneLineError(r, c.error, 1, c.name);
      assert.deepEqual(changes(setup, snapshot(dir)), [], 'the case folder changed');
    } catch (err) {
      failures.push(`${c.name}: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
    }
  }
  assert.deepEqual(changes(before, snapshot(shared)), [], 'the shared fixtures changed');
  assert.deepEqual(failures, [], `${failures.length} of ${CASES.length} cases failed`);
  t.diagnostic(`read and flag table: ${CASES.length} cases passed`);
});

test('AVAP_IMAGE_MEMORY_MB lowers and raises the image budget', async () => {
  const dir = path.join(root, 'budget');
  fs.mkdirSync(dir);
  const image = path.join(data, 'images', 'case000.png');
  const low = await avapLimited(['predict', '--model', run, '--input', image, '--out', path.join(dir, 'low'), '--threads', '1'], { env: { AVAP_IMAGE_MEMORY_MB: '0.001' } });
  assertOneLineError(low, /case000\.png: .*over the 1 KiB (memory budget|limit) for one image \(set AVAP_IMAGE_MEMORY_MB to raise it\)/);
  const raised = await avapLimited(['predict', '--model', run, '--input', image, '--out', path.join(dir, 'raised'), '--threads', '1'], { env: { AVAP_IMAGE_MEMORY_MB: '1024' } });
  ok(raised, 'predict with a raised budget');
  const bad = await avapLimited(['predict', '--model', run, '--input', image, '--out', path.join(dir, 'bad'), '--threads', '1'], { env: { AVAP_IMAGE_MEMORY_MB: 'lots' } });
  assertOneLineError(bad, /AVAP_IMAGE_MEMORY_MB must be a positive number of MiB, got 'lots'/);
});

test('a batch size above the cases is a default only: it shrinks to the cases and config.json says so', async () => {
  const dir = path.join(root, 'default-batch');
  const r = await avapInProcess(['train', '--data', data, '--out', dir, '--size', '32', '--encoder', 'resnet18', '--seed', '3', '--threads', '1', '--steps', '1', '--val-fraction', '0.5']);
  ok(r, 'train with the default batch size');
  const shrunk = /batch size (\d+): the default 8 is more than the \1 training cases/.exec(r.stderr);
  assert.ok(shrunk, r.stderr);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')).optimizer.batchSize, Number(shrunk[1]));
});

test('data check finds a repeated id among 300,000 in linear time', async () => {
  const dir = path.join(root, 'many-ids');
  copy(data, dir);
  const ids = Array.from({ length: 300_000 }, (_, i) => `case${String(i).padStart(6, '0')}`);
  ids.push(ids[123_456]);
  editJson(path.join(dir, 'dataset.json'), (j) => (j.splits = { train: ids }));
  const started = Date.now();
  const r = await avapInProcess(['data', 'check', dir]);
  const ms = Date.now() - started;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stdout, /splits\.train lists case 'case123456' more than once/);
  // The quadratic check took about 35 s for this many ids.
  assert.ok(ms < 10_000, `data check took ${ms} ms`);
});
