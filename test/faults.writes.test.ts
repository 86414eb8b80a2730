/**
 * Fault injection, part 4: nothing is written outside the folder a command was given. Hostile names
 * (structure, annotator, case and file names) are planted in every file a name is read from —
 * dataset.json, a run's config.json, checkpoint/state.json, an exported model's metadata, a prediction
 * folder's predictions.json — and predict, evaluate, export and train are run on them: each must refuse
 * in one line naming the file, and a snapshot of the whole sandbox before and after proves that
 * nothing appeared, changed or vanished outside the named output folder. Then the other ways out:
 * symbolic links inside output folders, a run's own files as an output, a run folder shared by two
 * trainings (the lock), the viewer's server, and what an exported model tells about its machine.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { onnx } from 'onnx-proto';
import { csvField } from '../src/eval/report';
import { portableConfig } from '../src/export/export';
import { combinationDir } from '../src/experiment/settings';
import { RunDir } from '../src/train/run';
import { serveSite } from '../src/viewer/server';
import { CLI, CliResult, TINY, assertOneLineError, avap, avapInProcess, changes, fixturePaths, ok, snapshot, tempFiles, tinyFixtures } from './faults.helpers';

const { root, shared, data, run, preds } = fixturePaths('writes');
const model = path.join(shared, 'model.onnx');

test.before(async () => {
  await tinyFixtures([[data]], run, preds, ['--no-overlay']);
  ok(await avapInProcess(['export', '--model', run, '--out', model]), 'export');
});

// ---------------------------------------------------------------------------------------------
// Copies of the fixtures to plant names in. Weights are hard links (a run is ~90 MB); every other
// file is a real copy, and a planted file is removed before it is rewritten, so no edit can reach
// the shared fixture through a shared inode.

function copyTree(from: string, to: string): void {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const [src, dst] = [path.join(from, e.name), path.join(to, e.name)];
    if (e.isDirectory()) copyTree(src, dst);
    else if (e.name.endsWith('.safetensors') || e.name.endsWith('.bin')) fs.linkSync(src, dst);
    else fs.copyFileSync(src, dst);
  }
}

function editJson(file: string, edit: (json: any) => void): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  const json = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(json);
  fs.rmSync(file);
  fs.writeFileSync(file, JSON.stringify(json, null, 2));
}

function runWith(dir: string, edit: (config: any) => void): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = path.join(dir, 'run');
  copyTree(run, r);
  editJson(path.join(r, 'config.json'), edit);
  return r;
}

function onnxWith(dir: string, key: string, edit: (value: any) => unknown): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  const m = onnx.ModelProto.decode(fs.readFileSync(model));
  const prop = m.metadataProps.find((p) => p.key === key)!;
  prop.value = JSON.stringify(edit(JSON.parse(prop.value ?? 'null')));
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, onnx.ModelProto.encode(m).finish());
  return file;
}

function dataWith(dir: string, edit: (json: any) => void): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  const d = path.join(dir, 'data');
  copyTree(data, d);
  editJson(path.join(d, 'dataset.json'), edit);
  return d;
}

/** OUT with OUT/predictions holding another model's predictions whose manifest was edited. */
function outWithPredictions(out: string, edit: (manifest: any) => void): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  const p = path.join(out, 'predictions');
  copyTree(preds, p);
  editJson(path.join(p, 'predictions.json'), (m) => {
    m.model = '/elsewhere/another-run';
    edit(m);
  });
}

// ---------------------------------------------------------------------------------------------
// The table: every hostile name through every place a name is read from, into every command that
// builds paths from it.

const HOSTILE: [string, string][] = [
  ['two up', '../../x'],
  ['three up', '../../../escaped'],
  ['nested', 'a/b'],
  ['absolute', path.join(root, 'absolute-escape')],
  ['dot-dot', '..'],
  ['dot', '.'],
  ['NUL', 'disc\0../../x'],
  ['300 characters', 'n'.repeat(300)],
  ['backslash', '..\\..\\x'],
  ['empty', ''],
];

interface Injection {
  name: string;
  /** The file the error line must name. */
  file: RegExp;
  /** Plants `bad` in the case folder `dir` and returns the command, writing to `out`. */
  args: (dir: string, out: string, bad: string) => string[];
}

const replaceAt = <T>(xs: T[], i: number, v: T): T[] => xs.map((x, k) => (k === i ? v : x));
const predictArgs = (m: string, out: string, ...extra: string[]) => ['predict', '--model', m, '--input', data, '--out', out, '--threads', '1', ...extra];
const evaluateArgs = (d: string, m: string, out: string) => ['evaluate', '--data', d, '--model', m, '--out', out, '--no-progress', '--threads', '1'];

const INJECTIONS: Injection[] = [
  { name: 'config.json structure → predict', file: /config\.json/, args: (d, out, bad) => predictArgs(runWith(d, (c) => (c.model.structures = replaceAt(c.model.structures, 1, bad))), out) },
  { name: 'config.json structure → evaluate --model', file: /config\.json/, args: (d, out, bad) => evaluateArgs(data, runWith(d, (c) => (c.model.structures = replaceAt(c.model.structures, 1, bad))), out) },
  { name: 'config.json structure → export', file: /config\.json/, args: (d, out, bad) => ['export', '--model', runWith(d, (c) => (c.model.structures = replaceAt(c.model.structures, 1, bad))), '--out', path.join(out, 'm.onnx')] },
  { name: 'config.json annotator → predict', file: /config\.json/, args: (d, out, bad) => predictArgs(runWith(d, (c) => (c.model.annotators = replaceAt(c.model.annotators, 0, bad))), out) },
  { name: 'config.json annotator → export', file: /config\.json/, args: (d, out, bad) => ['export', '--model', runWith(d, (c) => (c.model.annotators = replaceAt(c.model.annotators, 0, bad))), '--out', path.join(out, 'm.onnx')] },
  { name: 'config.json case id → predict', file: /config\.json/, args: (d, out, bad) => predictArgs(runWith(d, (c) => (c.data.trainCases = replaceAt(c.data.trainCases, 0, bad))), out) },
  {
    name: 'checkpoint/state.json weights → train --resume', file: /state\.json/,
    // The run folder is the named output here: the resumed run may write only inside it.
    args: (d, _out, bad) => {
      const r = path.join(path.dirname(_out), 'run');
      copyTree(run, r);
      editJson(path.join(r, 'checkpoint', 'state.json'), (s) => (s.weights = bad));
      return ['train', '--data', data, '--out', r, '--resume', '--threads', '1'];
    },
  },
  { name: 'ONNX metadata structure → predict --engine onnx', file: /model\.onnx/, args: (d, out, bad) => predictArgs(onnxWith(d, 'avap.structures', (s) => replaceAt(s, 1, bad)), out, '--engine', 'onnx') },
  { name: 'ONNX metadata annotator → predict --engine onnx', file: /model\.onnx/, args: (d, out, bad) => predictArgs(onnxWith(d, 'avap.annotators', (a) => replaceAt(a, 0, bad)), out, '--engine', 'onnx') },
  {
    name: 'dataset.json structure → evaluate --model', file: /dataset\.json/,
    args: (d, out, bad) => evaluateArgs(dataWith(d, (j) => {
      const old = j.structures[1].name;
      j.structures[1].name = bad;
      for (const s of j.structures) s.contains = s.contains?.map((c: string) => (c === old ? bad : c));
    }), run, out),
  },
  { name: 'dataset.json annotator → evaluate --model', file: /dataset\.json/, args: (d, out, bad) => evaluateArgs(dataWith(d, (j) => (j.annotators = replaceAt(j.annotators, 0, bad))), run, out) },
  { name: 'predictions.json structure → evaluate --model', file: /predictions\.json/, args: (_d, out, bad) => (outWithPredictions(out, (m) => (m.structures = replaceAt(m.structures, 1, bad))), evaluateArgs(data, run, out)) },
  { name: 'predictions.json case → evaluate --model', file: /predictions\.json/, args: (_d, out, bad) => (outWithPredictions(out, (m) => (m.cases = replaceAt(m.cases, 0, bad))), evaluateArgs(data, run, out)) },
];

test(`hostile names: ${HOSTILE.length} names × ${INJECTIONS.length} ways in, each refused in one line, nothing written outside the named folder`, async (t) => {
  const fixtures = snapshot(shared);
  const failures: string[] = [];
  let n = 0;
  for (const inj of INJECTIONS) {
    for (const [label, bad] of HOSTILE) {
      // Deep enough that '../../../' from the output folder still lands inside the snapshot.
      const dir = path.join(root, 'cases', String(n++).padStart(3, '0'));
      const out = path.join(dir, 'deep', 'er', 'out');
      fs.mkdirSync(path.dirname(out), { recursive: true });
      const what = `${inj.name}, ${label}`;
      try {
        const args = inj.args(dir, out, bad);
        const named = args[args.indexOf('--out') + 1];
        const before = snapshot(root);
        const r = await avapInProcess(args);
        const escaped = changes(before, snapshot(root), path.relative(root, named));
        assert.deepEqual(escaped, [], 'written outside the named folder');
        assertOneLineError(r, inj.file, 1, what);
        assert.deepEqual(tempFiles(dir), [], 'temp files left behind');
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`);
      }
    }
  }
  assert.deepEqual(changes(fixtures, snapshot(shared)), [], 'the shared fixtures changed');
  assert.deepEqual(fs.readdirSync(root).sort(), ['cases', 'shared'], 'something was written next to the sandbox folders');
  assert.deepEqual(failures, [], `${failures.length} of ${n} hostile cases failed`);
  t.diagnostic(`hostile names: ${n} cases, all refused with nothing written outside the named folder`);
});

// ---------------------------------------------------------------------------------------------
// Other ways out of the named folder.

let caseNo = 0;
function caseDir(tag: string): string {
  const dir = path.join(root, 'other', `${String(caseNo++).padStart(2, '0')}-${tag}`);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Runs `args` and asserts one error line matching `error`, with nothing changed anywhere in the sandbox. */
async function refused(args: string[], error: RegExp, child = false): Promise<void> {
  const before = snapshot(root);
  const r: CliResult = child ? await avap(args) : await avapInProcess(args);
  assertOneLineError(r, error);
  assert.deepEqual(changes(before, snapshot(root)), [], 'the sandbox changed');
}

test('a symbolic link inside an output folder that leads out of it is refused before anything is written', async () => {
  const dir = caseDir('links');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(outside);
  const viewer = path.join(dir, 'viewer');
  fs.mkdirSync(viewer);
  fs.symlinkSync(outside, path.join(viewer, 'ort'));
  await refused(['export', '--model', run, '--out', path.join(dir, 'm.onnx'), '--viewer', viewer], /--viewer: .*viewer\/ort\/.* leads outside .*viewer/);
  const evalOut = path.join(dir, 'eval');
  fs.mkdirSync(evalOut);
  fs.symlinkSync(outside, path.join(evalOut, 'predictions'));
  await refused(evaluateArgs(data, run, evalOut), /--out: .*eval\/predictions leads outside .*eval/);
  const predOut = path.join(dir, 'pred');
  fs.mkdirSync(predOut);
  fs.symlinkSync(outside, path.join(predOut, 'case000'));
  await refused(predictArgs(run, predOut), /--out: .*pred\/case000 leads outside .*pred/);
  const r = path.join(dir, 'run');
  copyTree(run, r);
  fs.renameSync(path.join(r, 'log.jsonl'), path.join(outside, 'log.jsonl'));
  fs.symlinkSync(path.join(outside, 'log.jsonl'), path.join(r, 'log.jsonl'));
  const log = fs.readFileSync(path.join(outside, 'log.jsonl'));
  await refused(['train', '--data', data, '--out', r, '--resume', '--threads', '1'], /--out: .*run\/log\.jsonl leads outside .*run/);
  assert.ok(fs.readFileSync(path.join(outside, 'log.jsonl')).equals(log));
  fs.rmSync(path.join(outside, 'log.jsonl'));
  assert.deepEqual(fs.readdirSync(outside), []);
});

test("an experiment's folders, read back from its experiment.json, stay inside --out", () => {
  const dir = caseDir('experiment');
  const at = (folder: string) => combinationDir(dir, { steps: 1, seed: 0, folder, stageOptions: {} }, 'runs', 'avap');
  assert.equal(at('.'), path.join(dir, 'runs', 'avap'));
  assert.equal(at('steps-1/seed-0'), path.join(dir, 'steps-1', 'seed-0', 'runs', 'avap'));
  for (const bad of ['../../x', '../../../escaped', '..', 'steps-1/../../x']) assert.throws(() => at(bad), /--out: .* leads outside /, bad);
  fs.mkdirSync(path.join(dir, 'elsewhere'));
  fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'linked'));
  const inner = path.join(dir, 'inner');
  fs.mkdirSync(inner);
  fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(inner, 'runs'));
  assert.throws(() => combinationDir(inner, { steps: 1, seed: 0, folder: '.', stageOptions: {} }, 'runs', 'avap'), /--out: .*inner\/runs\/avap leads outside /);
});

test("a run's own files are never another command's output; a run folder is never the dataset's", async () => {
  const dir = caseDir('run-files');
  const r = path.join(dir, 'run');
  copyTree(run, r);
  await refused(['export', '--model', r, '--out', path.join(r, 'model.safetensors')], /--out: .*model\.safetensors is one of the files of run /);
  await refused(['export', '--model', r, '--out', path.join(r, 'checkpoint', 'm.onnx')], /--out: .*checkpoint\/m\.onnx is one of the files of run /);
  await refused(['export', '--model', r, '--out', path.join(dir, 'm.onnx'), '--viewer', r], /--viewer: .*run is a run folder/);
  await refused(['evaluate', '--data', data, '--predictions', preds, '--out', r, '--no-progress'], /--out: .*run is a run folder/);
  await refused(predictArgs(r, r), /--out: .*run is a run folder/);
  const d = path.join(dir, 'data');
  copyTree(data, d);
  await refused(['train', '--data', d, '--out', d, ...TINY], /--out: .*data is the dataset folder/);
  await refused(['train', '--data', d, '--out', path.join(d, 'runs', 'a'), ...TINY], /--out: .*data\/runs\/a is inside the dataset folder/);
  await refused(['train', '--data', d, '--out', dir, ...TINY], /--out: .* contains the dataset folder/);
});

test('export checks --out and --viewer before writing: no .onnx is left by a bad --viewer', async () => {
  const dir = caseDir('export-flags');
  fs.writeFileSync(path.join(dir, 'a-file'), 'x');
  await refused(['export', '--model', run, '--out', path.join(dir, 'm.onnx'), '--viewer', path.join(dir, 'a-file')], /--viewer: .*a-file is an existing file, not a folder/);
  await refused(['export', '--model', run, '--out', path.join(dir, 'm.onnx'), '--viewer', path.join(dir, 'a-file', 'sub')], /--viewer: .*cannot be created: .*a-file is a file/);
  await refused(['export', '--model', run, '--out', ''], /--out: the path is empty/);
  await refused(['export', '--model', run, '--out', path.join(dir, 'm.onnx'), '--viewer', ''], /--viewer: the path is empty/);
  await refused(['export', '--model', run, '--out', path.join(dir, 'a-file', 'm.onnx')], /--out: .*cannot be created: .*a-file is a file/);
});

test('an exported model carries no absolute path of the machine that made it', () => {
  const bytes = fs.readFileSync(model);
  const text = bytes.toString('latin1');
  for (const p of [root, fs.realpathSync(root), data, os.tmpdir()]) assert.ok(!text.includes(p), `the .onnx file holds ${p}`);
  const props = new Map(onnx.ModelProto.decode(bytes).metadataProps.map((p) => [p.key, p.value ?? '']));
  const config = JSON.parse(props.get('avap.config')!);
  assert.equal(config.data.root, 'data');
  assert.equal(config.pretrained, null);
  const trained = new RunDir(run).readConfig();
  const withPretrained = portableConfig({ ...trained, pretrained: path.join(root, 'weights', 'resnet18-imagenet.safetensors') });
  assert.equal(withPretrained.pretrained, 'resnet18-imagenet.safetensors');
  assert.equal(withPretrained.data.root, 'data');
  assert.deepEqual(withPretrained.data.trainCases, trained.data.trainCases);
});

test('per_case.csv keeps a case id that a spreadsheet would run as a formula as text', async () => {
  assert.equal(csvField('=1+2'), "'=1+2");
  assert.equal(csvField('+1'), "'+1");
  assert.equal(csvField('-2'), "'-2");
  assert.equal(csvField('@SUM(A1)'), "'@SUM(A1)");
  assert.equal(csvField('\tx'), "'\tx");
  assert.equal(csvField('\rx'), `"'\rx"`);
  assert.equal(csvField('=HYPERLINK("http://x","y")'), `"'=HYPERLINK(""http://x"",""y"")"`);
  assert.equal(csvField('case001'), 'case001');
  assert.equal(csvField('a,b'), '"a,b"');

  const dir = caseDir('csv');
  const d = path.join(dir, 'data');
  copyTree(data, d);
  const rename = (sub: string, from: string, to: string) => fs.renameSync(path.join(d, sub, from), path.join(d, sub, to));
  rename('images', 'case000.png', '=1+2.png');
  for (const a of JSON.parse(fs.readFileSync(path.join(d, 'dataset.json'), 'utf8')).annotators) {
    if (fs.existsSync(path.join(d, 'labels', `case000_${a}.png`))) rename('labels', `case000_${a}.png`, `=1+2_${a}.png`);
  }
  editJson(path.join(d, 'dataset.json'), (j) => {
    for (const group of [j.splits, j.subsets]) for (const ids of Object.values(group ?? {}) as string[][]) ids.forEach((id, i) => id === 'case000' && (ids[i] = '=1+2'));
  });
  const out = path.join(dir, 'eval');
  ok(await avapInProcess(evaluateArgs(d, run, out)), 'evaluate');
  const rows = fs.readFileSync(path.join(out, 'per_case.csv'), 'utf8').split('\n');
  assert.ok(rows.some((row) => row.startsWith("'=1+2,")), `no neutralised row: ${rows.slice(0, 3).join(' | ')}`);
  assert.ok(!rows.some((row) => /^[=+\-@]/.test(row)), 'a row starts with a formula character');
});

// ---------------------------------------------------------------------------------------------
// The run-folder lock.

function spawnAvap(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, AVAP_NUM_THREADS: '1', OMP_WAIT_POLICY: 'PASSIVE', AVAP_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('two trainings started 0.1 s apart (or at once) in one new folder: exactly one trains, the other exits with one line', async () => {
  for (const delayMs of [100, 0]) {
    const dir = caseDir(`lock-${delayMs}ms`);
    const out = path.join(dir, 'new', 'run');
    const args = ['train', '--data', data, '--out', out, ...TINY, '--steps', '1'];
    const first = spawnAvap(args);
    await new Promise((r) => setTimeout(r, delayMs));
    const second = spawnAvap(args);
    const results = await Promise.all([first, second]);
    const winners = results.filter((r) => r.code === 0);
    assert.equal(winners.length, 1, `${delayMs} ms: exits ${results.map((r) => r.code).join(', ')}: ${results.map((r) => r.stderr.split('\n').slice(-2).join(' ')).join(' || ')}`);
    assertOneLineError(results.find((r) => r.code !== 0)!, /--out: .*run is in use: avap train process \d+ on this host .* trains there/);
    const starts = fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"event":"start"'));
    assert.equal(starts.length, 1, 'the log holds one start');
    assert.ok(!fs.existsSync(path.join(out, 'train.lock')), 'the lock is removed when training ends');
    assert.deepEqual(tempFiles(dir), []);
  }
});

test('a stale lock of this host is replaced and said; one from another host is refused and explained', async () => {
  const dir = caseDir('stale-lock');
  const r = path.join(dir, 'run');
  copyTree(run, r);
  const gone = spawnSync(process.execPath, ['-e', '0']).pid!; // a process that no longer runs
  fs.writeFileSync(path.join(r, 'train.lock'), JSON.stringify({ pid: gone, host: os.hostname(), since: '2026-01-01T00:00:00Z' }));
  const resumed = await avapInProcess(['train', '--data', data, '--out', r, '--resume', '--threads', '1']);
  ok(resumed, 'resume over a stale lock');
  assert.match(resumed.stderr, new RegExp(`removed a stale lock: .*train\\.lock was left by process ${gone} on this host`));
  assert.ok(!fs.existsSync(path.join(r, 'train.lock')));

  fs.writeFileSync(path.join(r, 'train.lock'), JSON.stringify({ pid: 1, host: 'another-host.example', since: '2026-01-01T00:00:00Z' }));
  await refused(['train', '--data', data, '--out', r, '--resume', '--threads', '1'], /--out: .*run is locked by process 1 on host another-host\.example .* remove .*train\.lock/);
  fs.writeFileSync(path.join(r, 'train.lock'), 'garbage');
  await refused(['train', '--data', data, '--out', r, '--resume', '--threads', '1'], /--out: .*run is locked by .*train\.lock, which does not say who holds it/);
  fs.rmSync(path.join(r, 'train.lock'));
  // A refused start in a new folder leaves no folder and no lock behind.
  await refused(['train', '--data', data, '--out', path.join(dir, 'new', 'run'), '--resume', '--threads', '1'], /--resume: .*holds no run to resume/);
});

// ---------------------------------------------------------------------------------------------
// The viewer's server.

function get(port: number, urlPath: string, host: string | null): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, setHost: host !== null, headers: host === null ? headers : { Host: host } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the viewer answers a malformed URL with 400 and any other Host with 421, and keeps serving', async () => {
  const viewer = await serveSite([{ path: 'index.html', type: 'text/html', source: Buffer.from('<p>viewer</p>') }, { path: 'model.onnx', type: 'application/octet-stream', source: Buffer.from('m') }], 0);
  const port = Number(new URL(viewer.url).port);
  try {
    assert.equal(await get(port, '/%', `127.0.0.1:${port}`), 400);
    assert.equal(await get(port, '/%E0%A4%A', `127.0.0.1:${port}`), 400);
    assert.equal(await get(port, '/model.onnx', `127.0.0.1:${port}`), 200);
    assert.equal(await get(port, '/model.onnx', `localhost:${port}`), 200);
    for (const host of [`attacker.example:${port}`, 'attacker.example', `127.0.0.1:${port + 1}`, `localhost.attacker.example:${port}`]) {
      assert.equal(await get(port, '/model.onnx', host), 421, `Host: ${host}`);
    }
    // Node itself answers HTTP/1.1 without Host with 400 before the handler sees it; either way, no model.
    assert.ok([400, 421].includes(await get(port, '/model.onnx', null)), 'no Host');
    assert.equal(await get(port, '/', `127.0.0.1:${port}`), 200, 'still serving');
  } finally {
    await viewer.close();
  }
});

test('view: --host other than loopback needs --allow-remote; a --host not on this machine is one line naming --host', async () => {
  await refused(['view', '--model', model, '--host', '0.0.0.0', '--port', '0'], /--host: 0\.0\.0\.0 is not a loopback address; .* add --allow-remote/, true);
  await refused(['view', '--model', model, '--host', '', '--port', '0'], /--host: the address is empty/, true);
  await refused(['view', '--model', model, '--host', '192.0.2.77', '--allow-remote', '--port', '0'], /--host: 192\.0\.2\.77 is not an address of this machine/, true);
  await refused(['view', '--model', model, '--host', 'no-such-host.invalid', '--allow-remote', '--port', '0'], /--host: cannot resolve 'no-such-host\.invalid'/, true);
  const help = spawnSync(process.execPath, [CLI, 'view', '--help'], { encoding: 'utf8' }).stdout;
  assert.match(help, /--allow-remote/);
});

test('predict --engine onnx leaves nothing in the temp folder (no onnxruntime telemetry log)', () => {
  const dir = caseDir('ort-temp');
  const tmp = path.join(dir, 'tmp');
  fs.mkdirSync(tmp);
  const out = path.join(dir, 'pred');
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, AVAP_NUM_THREADS: '1', OMP_WAIT_POLICY: 'PASSIVE' };
  delete env.ORT_DISABLE_TELEMETRY; // avap must turn it off itself
  const r = spawnSync(process.execPath, [CLI, ...predictArgs(model, out, '--engine', 'onnx', '--no-overlay')], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(tmp), [], 'onnxruntime wrote into the temp folder');
  assert.ok(!fs.existsSync(path.join(os.tmpdir(), `mat-debug-${r.pid}.log`)), `/tmp/mat-debug-${r.pid}.log`);
});
