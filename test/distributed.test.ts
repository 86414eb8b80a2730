/**
 * Data-parallel training over c10d/Gloo on loopback: the worker environment's checks; the averaged
 * gradients of 2 ranks with SyncBatchNorm against one process's; 2 ranks started by `avap launch`
 * against a one-process run of the same global batch; the same under torchrun, and torchrun's restart
 * after a killed rank; a rank killed mid-training; a rendezvous that never completes.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readWorkerEnv } from '../src/distributed/env';
import { loadStateDict, torchVersion } from '../src/torch';
import { defaultThreadCount } from '../src/torch/native';
import { CLI, CliResult, assertOneLineError, avap, ok, sandbox } from './faults.helpers';

const root = sandbox('distributed');
const data = path.join(root, 'data');
const ENV = { ...process.env, AVAP_NUM_THREADS: '1', AVAP_DEBUG: '', AVAP_CHECKPOINT_SECONDS: '0', OMP_WAIT_POLICY: 'PASSIVE' };
// Ports of their own per test (and away from torchrun's 29500), so that a slow previous run cannot collide.
let nextPort = 29700 + (process.pid % 200) * 5;
const port = () => nextPort++;

/** The variables avap launch or torchrun give rank `rank` of a job on one machine. */
function rankEnv(rank: number, masterPort: number | string, worldSize = 2, masterAddr = '127.0.0.1'): NodeJS.ProcessEnv {
  return { ...ENV, WORLD_SIZE: String(worldSize), RANK: String(rank), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: '2', MASTER_ADDR: masterAddr, MASTER_PORT: String(masterPort) };
}

function run(argv: string[], env: NodeJS.ProcessEnv = ENV, program = process.execPath): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(program, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const trainArgs = (method: string, out: string, extra: string[] = []) => ['train', '--data', data, '--out', out, '--method', method, '--size', '32',
  '--encoder', 'resnet18', '--batch-size', '4', '--seed', '3', '--lr', '1e-3', '--precision', 'fp32', '--val-fraction', '0', '--no-augment', ...extra];

test('setup: a small synthetic dataset', async () => {
  ok(await avap(['synth', '--out', data, '--cases', '10', '--size', '32', '--annotators', '3', '--seed', '5']), 'synth');
});

test('worker environment: unset or WORLD_SIZE 1 is one process; bad values are one-line errors naming the variable', () => {
  assert.equal(readWorkerEnv({}), null);
  assert.equal(readWorkerEnv({ WORLD_SIZE: '1', RANK: '0' }), null);
  const base = { WORLD_SIZE: '2', RANK: '1', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.1' };
  const env = readWorkerEnv(base)!;
  assert.deepEqual(env, { rank: 1, worldSize: 2, localRank: 1, localWorldSize: 2, masterAddr: '10.0.0.1', masterPort: 29500, useAgentStore: false, restartCount: 0 });
  assert.equal(readWorkerEnv({ ...base, TORCHELASTIC_USE_AGENT_STORE: 'True', TORCHELASTIC_RESTART_COUNT: '2' })!.restartCount, 2);
  assert.throws(() => readWorkerEnv({ ...base, RANK: '2' }), /RANK 2 is not below WORLD_SIZE 2/);
  assert.throws(() => readWorkerEnv({ ...base, MASTER_ADDR: '' }), /MASTER_ADDR is not set/);
  assert.throws(() => readWorkerEnv({ ...base, MASTER_PORT: 'x' }), /MASTER_PORT must be an integer/);
  assert.throws(() => readWorkerEnv({ ...base, WORLD_SIZE: 'two' }), /WORLD_SIZE must be an integer/);
  assert.throws(() => readWorkerEnv({ RANK: '1' }), /WORLD_SIZE is not set/);
});

test("threads per worker: the machine's cores divided among LOCAL_WORLD_SIZE workers, unless AVAP_NUM_THREADS says (at most the cores)", () => {
  const saved = { threads: process.env.AVAP_NUM_THREADS, local: process.env.LOCAL_WORLD_SIZE };
  try {
    delete process.env.AVAP_NUM_THREADS;
    process.env.LOCAL_WORLD_SIZE = '2';
    assert.equal(defaultThreadCount(), Math.max(1, Math.floor(os.availableParallelism() / 2)));
    process.env.LOCAL_WORLD_SIZE = String(4 * os.availableParallelism());
    assert.equal(defaultThreadCount(), 1);
    delete process.env.LOCAL_WORLD_SIZE;
    assert.equal(defaultThreadCount(), os.availableParallelism());
    process.env.AVAP_NUM_THREADS = '3';
    process.env.LOCAL_WORLD_SIZE = '2';
    assert.equal(defaultThreadCount(), Math.min(3, os.availableParallelism()), 'AVAP_NUM_THREADS wins, capped at the cores');
  } finally {
    for (const [k, v] of [['AVAP_NUM_THREADS', saved.threads], ['LOCAL_WORLD_SIZE', saved.local]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

test('2 ranks with SyncBatchNorm: averaged half-batch gradients equal the full batch gradient; an unused parameter keeps no gradient', async () => {
  const worker = path.join(__dirname, 'distributed.worker.js');
  const one = path.join(root, 'grads-1.json');
  const two = path.join(root, 'grads-2.json');
  ok(await run([worker, one]), 'one process');
  const p = String(port());
  const rank = (r: number) => run([worker, two], rankEnv(r, p));
  const results = await Promise.all([rank(0), rank(1)]);
  results.forEach((r, i) => ok(r, `rank ${i}`));
  const a = JSON.parse(fs.readFileSync(one, 'utf8')) as { grads: (number[] | null)[]; stats: number[][] };
  const b = JSON.parse(fs.readFileSync(two, 'utf8')) as typeof a;
  assert.equal(a.grads.length, b.grads.length);
  a.grads.forEach((g, i) => {
    if (g === null) return assert.equal(b.grads[i], null, `parameter ${i} has no gradient in one process`);
    const scale = Math.max(...g.map(Math.abs));
    const diff = Math.max(...g.map((v, j) => Math.abs(v - b.grads[i]![j])));
    // fp32 sums in another order (two half-batch sums, then the allreduce): rounding at ~1e-7 of the
    // tensor's largest gradient. A gradient that is zero in exact arithmetic (a conv bias before batch
    // norm, scale ~1e-8) is pure rounding on both sides, hence the absolute floor.
    assert.ok(diff <= 1e-5 * scale + 1e-7, `parameter ${i}: gradients differ by ${diff} (largest ${scale})`);
  });
  assert.ok(a.grads.includes(null), 'the unused layer must be there to test');
  a.stats.forEach((s, i) => s.forEach((v, j) => assert.ok(Math.abs(v - b.stats[i][j]) < 1e-6, `running statistics ${i}[${j}]: ${v} against ${b.stats[i][j]}`)));
});

/** Largest difference of the buffers, and the share of parameter elements that differ by more than `tol`. */
function compareWeights(fileA: string, fileB: string, tol: number): { buffers: number; paramsBeyond: number; params: number; worst: number } {
  const a = loadStateDict(fileA).state;
  const b = loadStateDict(fileB).state;
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  let buffers = 0;
  let beyond = 0;
  let params = 0;
  let worst = 0;
  for (const k of Object.keys(a)) {
    const d = a[k].to('float64').sub(b[k].to('float64')).abs().data() as Float64Array;
    if (/running_|num_batches/.test(k)) {
      for (const x of d) buffers = Math.max(buffers, x);
      continue;
    }
    for (const x of d) {
      params++;
      worst = Math.max(worst, x);
      if (x > tol) beyond++;
    }
  }
  return { buffers, paramsBeyond: beyond / params, params, worst };
}

function logRounds(run: string): { step: number; loss: number }[] {
  return fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((e) => e.event === 'round');
}

for (const [method, extra] of [['avap', ['--steps', '2', '--preference-steps', '1']], ['mv-unet', ['--steps', '2']]] as const) {
  test(`avap launch, 2 ranks × 2 images: ${method} equals one process with the batch of 4, and only rank 0 writes`, async () => {
    const single = path.join(root, `${method}-1`);
    const double = path.join(root, `${method}-2`);
    const one = await run([CLI, ...trainArgs(method, single, [...extra])]);
    ok(one, 'one process');
    const r = await run([CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(port()), '--', ...trainArgs(method, double, [...extra])]);
    ok(r, 'avap launch');
    assert.match(r.stderr, /\[rank 1\] data-parallel over 2 ranks/);
    // Rank 1's reports stay quiet and its stdout is empty; rank 0's stdout is one process's summary line.
    assert.doesNotMatch(r.stderr, /\[rank 1\] .*step \d/);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 1, r.stdout);
    assert.match(lines[0], /^\[rank 0\] \{/);
    const summaryKeys = (line: string) => Object.keys(JSON.parse(line)).sort();
    assert.deepEqual(summaryKeys(lines[0].slice('[rank 0] '.length)), summaryKeys(one.stdout.trim()));
    // Same files, and each round logged once: rank 1 wrote nothing.
    const files = (dir: string) => fs.readdirSync(dir, { recursive: true }).map(String).sort();
    assert.deepEqual(files(double), files(single));
    const [la, lb] = [logRounds(single), logRounds(double)];
    assert.equal(lb.length, la.length);
    // The first step sees identical weights: its loss agrees to fp32 rounding of the sums. Later steps
    // inherit Adam's amplification of rounding (below): one process on 1 and on 2 threads differs by
    // ~2e-4 relative at step 2 of this AVAP run, the same order as 2 ranks against one process.
    la.forEach((x, i) => {
      const tol = (i === 0 ? 1e-5 : 3e-3) * Math.abs(x.loss);
      assert.ok(Math.abs(x.loss - lb[i].loss) <= tol, `round ${i + 1}: loss ${x.loss} against ${lb[i].loss}`);
    });
    // Gradients agree to ~1e-7 of their scale (previous test), but Adam divides each by its own root
    // mean square: an element whose gradient is at rounding level (a zero-padded tap, a bias before
    // batch norm) moves by ±lr on a rounding error, and the next step's forward carries that on. Any
    // change of summation order does the same, so the yardstick is one process on 2 threads against
    // one process on 1: 2 ranks must be no further from one process than that (with a small floor).
    const threads = path.join(root, `${method}-1-2threads`);
    ok(await run([CLI, ...trainArgs(method, threads, [...extra])], { ...ENV, AVAP_NUM_THREADS: '2' }), 'one process on 2 threads');
    const c = compareWeights(path.join(single, 'model.safetensors'), path.join(double, 'model.safetensors'), 1e-5);
    const y = compareWeights(path.join(single, 'model.safetensors'), path.join(threads, 'model.safetensors'), 1e-5);
    process.stderr.write(`# ${method}: 2 ranks: ${(c.paramsBeyond * 100).toFixed(3)}% of elements beyond 1e-5, largest ${c.worst.toExponential(2)}, buffers ${c.buffers.toExponential(2)}; `
      + `2 threads: ${(y.paramsBeyond * 100).toFixed(3)}%, largest ${y.worst.toExponential(2)}, buffers ${y.buffers.toExponential(2)}\n`);
    assert.ok(c.paramsBeyond <= 3 * y.paramsBeyond + 1e-3, `2 ranks: ${(c.paramsBeyond * 100).toFixed(3)}% of elements beyond 1e-5; 2 threads: ${(y.paramsBeyond * 100).toFixed(3)}%`);
    // Running statistics average the batch statistics of every step, so they carry every earlier
    // difference; the largest of some thousand channels scatters more than the share above.
    assert.ok(c.buffers <= 5 * y.buffers + 1e-4, `running statistics: 2 ranks ${c.buffers}, 2 threads ${y.buffers}`);
    assert.ok(c.worst <= 2 * y.worst + 1e-4, `largest parameter difference: 2 ranks ${c.worst}, 2 threads ${y.worst}`);
  });
}

/**
 * torchrun's command line for `args`, or why it cannot run here. Debian bookworm's torchrun (PyTorch
 * 1.13 on Python 3.11) fails on its own default `--redirects 0 --tee 0` (Python 3.11 no longer lists an
 * IntFlag's zero member); `--redirects 1 --tee 1` sends stdout to the console and a log file, stderr
 * to the console.
 */
function torchrun(logs: string, masterPort: number, args: string[], extra: string[] = []): string[] {
  return ['--redirects', '1', '--tee', '1', '--log_dir', logs, ...extra, '--no_python', '--nproc_per_node', '2', '--master_port', String(masterPort),
    process.execPath, CLI, ...args];
}

function torchrunUnavailable(): string | null {
  const r = spawnSync('torchrun', ['--help'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `torchrun is not installed (Debian's python3-torch provides it): ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`;
  // The agent hosts the store its workers join, and c10d's store protocol changed between PyTorch 1.x
  // and 2.x: torchrun must come from the libtorch version the addon was built against.
  const script = spawnSync('sh', ['-c', 'head -1 "$(command -v torchrun)"'], { encoding: 'utf8' }).stdout.replace(/^#!/, '').trim().split(/\s+/);
  const agent = spawnSync(script[0], [...script.slice(1), '-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout.trim();
  const minor = (v: string) => v.split('.').slice(0, 2).join('.');
  if (minor(agent) !== minor(torchVersion())) return `torchrun runs PyTorch ${agent || '(unknown)'} and this avap's libtorch is ${torchVersion()}: their stores do not talk to each other`;
  return null;
}

test('torchrun --no_python --nproc_per_node 2 avap train: every rank a client of the agent\'s store, weights bit for bit those of avap launch', async (t) => {
  const reason = torchrunUnavailable();
  if (reason) return t.skip(reason);
  const launched = path.join(root, 'mv-unet-2', 'model.safetensors');
  if (!fs.existsSync(launched)) return t.skip('the avap launch 2-rank MV-UNet run (an earlier test) did not run');
  const out = path.join(root, 'torchrun');
  const r = await run(torchrun(path.join(root, 'torchrun-logs'), port(), trainArgs('mv-unet', out, ['--steps', '2'])), ENV, 'torchrun');
  ok(r, 'torchrun');
  // Rank 0's summary line only (torchrun prefixes a worker's teed stdout with its local rank).
  assert.match(r.stdout.trim(), /^\[default0\]:\{"run":/);
  // The same two ranks compute the same sums in the same order whichever launcher started them, and
  // the launch run equals one process to the tolerance of the test above.
  const c = compareWeights(launched, path.join(out, 'model.safetensors'), 0);
  assert.equal(c.worst, 0, 'weights differ from the avap launch run');
  assert.equal(c.buffers, 0, 'running statistics differ from the avap launch run');
});

test('torchrun --max_restarts 1 with rank 1 killed: the restarted workers continue the run from its last checkpoint', async (t) => {
  const reason = torchrunUnavailable();
  if (reason) return t.skip(reason);
  const out = path.join(root, 'torchrun-restarted');
  const p = port();
  const killer = killAfterCheckpoint(out, 1, p);
  const r = await run(torchrun(path.join(root, 'torchrun-restart-logs'), p, trainArgs('mv-unet', out, ['--steps', '6', '--dist-timeout', '30']), ['--max_restarts', '1', '--monitor_interval', '1']), ENV, 'torchrun');
  assert.ok(killer.stop(), `rank 1 was never killed: ${r.stderr.slice(-500)}`);
  ok(r, 'torchrun after a restart');
  assert.match(r.stderr, /resuming .*torchrun-restarted: stage 1\/1 \(train\), \d+\/6 steps done/);
  const events = fs.readFileSync(path.join(out, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const resumed = events.filter((e) => e.event === 'resume');
  assert.equal(resumed.length, 1);
  assert.ok(resumed[0].step > 0, 'resumed from a checkpoint, not from the start');
  assert.ok(fs.existsSync(path.join(out, 'summary.json')));
  // A folder this job did not create is refused on every attempt, never taken over by a restart.
  const again = await run(torchrun(path.join(root, 'torchrun-refused-logs'), port(), trainArgs('mv-unet', out, ['--steps', '6', '--dist-timeout', '30']), ['--max_restarts', '1', '--monitor_interval', '1']), ENV, 'torchrun');
  assert.notEqual(again.code, 0);
  assert.equal((again.stderr.match(/^avap: --out: .* already holds a run/gm) ?? []).length, 2, again.stderr.slice(-1500));
});

/** Pids of this test's workers of rank `rank` (found by the port in their environment). */
function workerPids(rank: number, masterPort: number): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const env = fs.readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (env.includes(`RANK=${rank}`) && env.includes(`MASTER_PORT=${masterPort}`)) out.push(Number(entry));
    } catch { /* gone, or not ours */ }
  }
  return out;
}

/** Kills rank `rank`'s worker with SIGKILL once the run in `out` has a checkpoint; stop() says whether it did. */
function killAfterCheckpoint(out: string, rank: number, masterPort: number): { stop(): boolean } {
  const state = path.join(out, 'checkpoint', 'state.json');
  let killed = false;
  const watcher = setInterval(() => {
    if (killed || !fs.existsSync(state)) return;
    for (const pid of workerPids(rank, masterPort)) process.kill(pid, 'SIGKILL');
    killed = workerPids(rank, masterPort).length === 0;
  }, 50);
  return { stop: () => { clearInterval(watcher); return killed; } };
}

test('kill -9 of rank 1 mid-training: the launch stops with one line naming the rank; --resume with 2 ranks and with 1 rank finishes', async () => {
  const out = path.join(root, 'killed');
  const p = port();
  const killer = killAfterCheckpoint(out, 1, p);
  const r = await run([CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(p), '--', ...trainArgs('mv-unet', out, ['--steps', '60', '--dist-timeout', '30'])]);
  assert.ok(killer.stop(), `rank 1 was never killed: ${r.stderr.slice(-500)}`);
  assert.notEqual(r.code, 0);
  const launchLines = r.stderr.split('\n').filter((l) => l.startsWith('avap launch:'));
  assert.deepEqual(launchLines.length, 1, r.stderr);
  assert.match(launchLines[0], /rank 1 was killed by SIGKILL/);
  assert.doesNotMatch(r.stderr, /^\s+at /m);
  // The folder is a consistent checkpoint: 2 ranks and one process each continue it to the end.
  const copy = path.join(root, 'killed-copy');
  fs.cpSync(out, copy, { recursive: true });
  const again = await run([CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(port()), '--', ...trainArgs('mv-unet', out, ['--steps', '60', '--resume'])]);
  ok(again, 'resume with 2 ranks');
  assert.ok(fs.existsSync(path.join(out, 'summary.json')));
  ok(await run([CLI, ...trainArgs('mv-unet', copy, ['--steps', '60', '--resume'])]), 'resume with 1 rank');
  assert.ok(fs.existsSync(path.join(copy, 'summary.json')));
});

test('kill -9 of rank 2 of 3 started without the launcher: ranks 0 and 1 each say in one line that rank 2 stopped', async () => {
  const out = path.join(root, 'killed-3');
  const p = port();
  const killer = killAfterCheckpoint(out, 2, p);
  const args = [CLI, ...trainArgs('mv-unet', out, ['--steps', '60', '--batch-size', '6', '--dist-timeout', '30'])];
  const ranks = await Promise.all([0, 1, 2].map((r) => run(args, { ...rankEnv(r, p, 3), LOCAL_WORLD_SIZE: '3' })));
  assert.ok(killer.stop(), `rank 2 was never killed: ${ranks[0].stderr.slice(-500)}`);
  for (const r of [0, 1]) {
    assert.equal(ranks[r].code, 1, ranks[r].stderr.slice(-800));
    const errors = ranks[r].stderr.split('\n').filter((l) => l.startsWith('avap:'));
    assert.equal(errors.length, 1, ranks[r].stderr.slice(-800));
    assert.match(errors[0], new RegExp(`^avap: rank ${r}: .* failed: rank 2 stopped`));
    assert.doesNotMatch(ranks[r].stderr, /^\s+at /m);
  }
});

test('a hung rank (SIGSTOP) ends the run after --dist-timeout with one line from the waiting rank', async () => {
  const out = path.join(root, 'hung');
  const p = port();
  const state = path.join(out, 'checkpoint', 'state.json');
  let stoppedAt = 0;
  const watcher = setInterval(() => {
    if (stoppedAt || !fs.existsSync(state)) return;
    const pids = workerPids(1, p);
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    if (pids.length) stoppedAt = Date.now();
  }, 50);
  const r = await run([CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(p), '--', ...trainArgs('mv-unet', out, ['--steps', '60', '--dist-timeout', '5'])]);
  clearInterval(watcher);
  for (const pid of workerPids(1, p)) process.kill(pid, 'SIGKILL');
  assert.ok(stoppedAt > 0, `rank 1 was never stopped: ${r.stderr.slice(-500)}`);
  assert.notEqual(r.code, 0);
  const seconds = (Date.now() - stoppedAt) / 1000;
  // 5 s of waiting, then the launcher's grace for the stopped rank before SIGKILL.
  assert.ok(seconds >= 4 && seconds < 40, `ended ${seconds} s after the hang`);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('[rank 0] avap:'));
  assert.equal(errors.length, 1, r.stderr.slice(-800));
  assert.match(errors[0], /rank 0: .* failed: no answer from another rank within 5 s \(--dist-timeout\)/);
  assert.match(r.stderr, /avap launch: rank 0 exited with status 1; ending the other ranks/);
});

test('Ctrl-C to avap launch reaches every worker: all stop, and the launch exits 130', async () => {
  const p = port();
  const out = path.join(root, 'interrupted');
  const child = spawn(process.execPath, [CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(p), '--', ...trainArgs('mv-unet', out, ['--steps', '200'])],
    { env: ENV, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  while (!/\[rank 0\] train step/.test(stderr)) await new Promise((r) => setTimeout(r, 100));
  const code = await new Promise<number | null>((resolve) => {
    child.on('close', (c) => resolve(c));
    child.kill('SIGINT');
  });
  assert.equal(code, 130, stderr.slice(-500));
  assert.deepEqual([...workerPids(0, p), ...workerPids(1, p)], [], 'workers left running');
});

test('ranks that disagree on WORLD_SIZE are refused in one line each, at once', async () => {
  const p = String(port());
  const env = (r: number, w: number) => rankEnv(r, p, w);
  const args = trainArgs('mv-unet', path.join(root, 'disagree'), ['--steps', '2', '--dist-timeout', '60']);
  const started = Date.now();
  const [r0, r1] = await Promise.all([run([CLI, ...args], env(0, 2)), run([CLI, ...args], env(1, 4))]);
  assertOneLineError(r0, /rank 0: rendezvous failed: WORLD_SIZE is 2 here but 4 on rank 1/);
  assertOneLineError(r1, /rank 1: rendezvous failed: WORLD_SIZE is 4 here but 2 on rank 0/);
  assert.ok((Date.now() - started) / 1000 < 40, 'refused before the 60 s timeout');
});

test('a second run on a port in use is refused in one line, and the first run goes on', async () => {
  const p = port();
  const first = path.join(root, 'first');
  const state = path.join(first, 'checkpoint', 'state.json');
  const launched = run([CLI, 'launch', '--nproc-per-node', '2', '--master-port', String(p), '--', ...trainArgs('mv-unet', first, ['--steps', '8'])]);
  while (!fs.existsSync(state)) await new Promise((r) => setTimeout(r, 100));
  const env = (r: number) => rankEnv(r, p);
  const args = trainArgs('mv-unet', path.join(root, 'second'), ['--steps', '2', '--dist-timeout', '20']);
  const [r0, r1] = await Promise.all([run([CLI, ...args], env(0)), run([CLI, ...args], env(1))]);
  assertOneLineError(r0, /rank 0: rendezvous failed: .*127\.0\.0\.1:\d+ is taken/);
  assertOneLineError(r1, /rank 1: rendezvous failed: rank 1 has already joined the rendezvous at 127\.0\.0\.1:\d+: another run is using this port/);
  ok(await launched, 'the first run');
  assert.ok(fs.existsSync(path.join(first, 'summary.json')));
});

test('a rendezvous with a missing rank fails in one line within its timeout', async () => {
  const started = Date.now();
  const r = await run([CLI, ...trainArgs('mv-unet', path.join(root, 'alone'), ['--steps', '2', '--dist-timeout', '3'])],
    rankEnv(0, port()));
  const seconds = (Date.now() - started) / 1000;
  assertOneLineError(r, /rank 0: rendezvous failed: not every rank of WORLD_SIZE 2 reached 127\.0\.0\.1:\d+ within 3 s/);
  // 3 s of waiting plus loading the engine and the dataset on a busy machine.
  assert.ok(seconds < 30, `took ${seconds} s`);
  assert.ok(!fs.existsSync(path.join(root, 'alone')), 'nothing written before the rendezvous');
});

test('a batch that cannot be split over the ranks is refused in one line before the rendezvous', async () => {
  const r = await run([CLI, ...trainArgs('mv-unet', path.join(root, 'odd'), ['--steps', '2', '--batch-size', '3'])],
    rankEnv(0, port()));
  assertOneLineError(r, /--batch-size 3 cannot be split over WORLD_SIZE 2 ranks/);
});

test('netns: 2 ranks in their own network namespaces joined by a veth pair train exactly as on loopback', async (t) => {
  const reason = netnsUnavailable();
  if (reason) return t.skip(reason);
  const loopback = path.join(root, 'mv-unet-2', 'model.safetensors');
  if (!fs.existsSync(loopback)) return t.skip('the loopback 2-rank MV-UNet run (an earlier test) did not run');
  const tag = String(process.pid % 100000);
  const ns = [`avap-d0-${tag}`, `avap-d1-${tag}`];
  const veth = [`av0-${tag}`, `av1-${tag}`];
  const address = ['10.213.0.1', '10.213.0.2'];
  const ip = (...args: string[]) => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
  };
  try {
    ns.forEach((n) => ip('netns', 'add', n));
    ip('link', 'add', veth[0], 'type', 'veth', 'peer', 'name', veth[1]);
    for (const i of [0, 1]) {
      ip('link', 'set', veth[i], 'netns', ns[i]);
      ip('-n', ns[i], 'addr', 'add', `${address[i]}/24`, 'dev', veth[i]);
      ip('-n', ns[i], 'link', 'set', veth[i], 'up');
      ip('-n', ns[i], 'link', 'set', 'lo', 'up');
    }
    const out = path.join(root, 'netns');
    const p = String(port());
    // Loopback is up in each namespace but reaches nothing of the other: only the veth pair joins them.
    const rank = (r: number) => run(['netns', 'exec', ns[r], process.execPath, CLI, ...trainArgs('mv-unet', out, ['--steps', '2', '--dist-timeout', '60'])],
      rankEnv(r, p, 2, address[0]), 'ip');
    const results = await Promise.all([rank(0), rank(1)]);
    results.forEach((r, i) => ok(r, `rank ${i} in ${ns[i]}`));
    // The same two ranks compute the same sums in the same order whatever carries the bytes.
    const c = compareWeights(loopback, path.join(out, 'model.safetensors'), 0);
    assert.equal(c.worst, 0, 'weights differ from the loopback run');
    assert.equal(c.buffers, 0, 'running statistics differ from the loopback run');
  } finally {
    for (const n of ns) spawnSync('ip', ['netns', 'del', n]);
  }
});

function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `'ip netns' is unavailable here (${r.error?.message ?? r.stderr.trim()})`;
  return null;
}
