/**
 * Shared by the fault-injection suites (test/faults.*.test.ts): the CLI run as a user runs it, tree
 * snapshots to prove that nothing outside an output folder changed, and the assertions every fault
 * case makes (exit status, one line on stderr naming the file or flag, no stack trace, no temp file).
 */
import * as assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

export const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** A fresh folder under the system temp folder, readable by every user (the unprivileged runs read it), removed at exit. */
export function sandbox(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `avap-faults-${tag}-`));
  fs.chmodSync(dir, 0o755);
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const ENV = { ...process.env, AVAP_NUM_THREADS: '1', AVAP_DEBUG: '', AVAP_CHECKPOINT_SECONDS: '0' };

/** Runs the CLI in a child process; `prefix` runs it through another program (setpriv, to drop privileges). */
export function avap(args: string[], opts: { prefix?: string[]; cwd?: string } = {}): Promise<CliResult> {
  const argv = [...(opts.prefix ?? []), process.execPath, CLI, ...args];
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: opts.cwd, env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

let worker: Worker | undefined;
let nextId = 0;
let queue: Promise<unknown> = Promise.resolve();
const CALL_TIMEOUT_MS = 120_000;
const pending = new Map<number, (r: CliResult) => void>();

/**
 * Runs the CLI's main() in a worker thread of this process and returns the exit status the `avap`
 * binary would exit with, and what it wrote. Several times faster than a child process (the engine
 * is loaded once), so the large tables use it.
 */
export function avapInProcess(args: string[]): Promise<CliResult> {
  if (!worker) {
    // A worker's process.env is a copy: libtorch's OpenBLAS reads the real environment, so set it here.
    process.env.OPENBLAS_NUM_THREADS ??= '1';
    worker = new Worker(path.join(__dirname, 'faults.worker.js'), { env: ENV, stdout: true, stderr: true });
    worker.on('message', (m: CliResult & { id: number }) => {
      pending.get(m.id)?.({ code: m.code, stdout: m.stdout, stderr: m.stderr });
      pending.delete(m.id);
      if (pending.size === 0) worker?.unref();
    });
    worker.on('error', (err) => {
      for (const resolve of pending.values()) resolve({ code: 70, stdout: '', stderr: `worker died: ${err.stack}` });
      pending.clear();
      worker = undefined;
    });
  }
  const w = worker;
  // One command at a time: each captures the worker's stdout and stderr while it runs.
  const call = queue.then(() => new Promise<CliResult>((resolve) => {
    const id = nextId++;
    w.ref();
    const timer = setTimeout(() => resolve({ code: null, stdout: '', stderr: `timed out after ${CALL_TIMEOUT_MS} ms: avap ${args.join(' ')}` }), CALL_TIMEOUT_MS);
    pending.set(id, (r) => (clearTimeout(timer), resolve(r)));
    w.postMessage({ id, argv: [process.execPath, CLI, ...args] });
  }));
  queue = call;
  return call;
}

export function avapSync(args: string[]): CliResult {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: ENV });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function ok(r: CliResult, what = 'command'): string {
  assert.equal(r.code, 0, `${what} failed (exit ${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** The status lines train prints on stderr as it goes (not errors). */
const STATUS_LINE = /^(dataset \S+: \d+ training|leaving out \d+ case|resuming |no validation cases held out|\d+ validation cases held out|precision: |device: |\S+ step \d+\/\d+: loss)/;

/**
 * Exit status, and on stderr exactly one error line, 'avap: …' matching `pattern`, after at most the
 * status lines a command prints while working; no stack trace.
 */
export function assertOneLineError(r: CliResult, pattern: RegExp, code = 1, what = ''): void {
  const label = what ? `${what}: ` : '';
  assert.equal(r.code, code, `${label}exit ${r.code} (expected ${code}); stderr: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !STATUS_LINE.test(l));
  assert.equal(lines.length, 1, `${label}expected one error line, got: ${r.stderr}`);
  assert.match(lines[0], /^(avap: |error: )/, `${label}${lines[0]}`);
  assert.doesNotMatch(r.stderr, /^\s+at /m, `${label}stack trace: ${r.stderr}`);
  assert.match(lines[0], pattern, `${label}${lines[0]}`);
}

/** Every entry below `dir` (links not followed): kind, size and modification time. */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    let names: string[];
    try {
      names = fs.readdirSync(d).sort();
    } catch {
      return;
    }
    for (const name of names) {
      const p = path.join(d, name);
      // A file a running writer renames or removes between readdir and lstat is simply not there.
      const st = fs.lstatSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      const rel = path.relative(dir, p);
      if (st.isDirectory()) {
        out.set(rel, 'dir');
        walk(p);
      } else {
        out.set(rel, `${st.isSymbolicLink() ? 'link' : 'file'} ${st.size} ${st.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return out;
}

/** What changed between two snapshots, one line per entry ('+ added', '- removed', '~ changed'). */
export function changes(before: Map<string, string>, after: Map<string, string>, ignoreBelow?: string): string[] {
  const skip = (rel: string) => ignoreBelow !== undefined && (rel === ignoreBelow || rel.startsWith(`${ignoreBelow}${path.sep}`));
  const out: string[] = [];
  for (const [k, v] of after) if (!skip(k) && before.get(k) !== v) out.push(`${before.has(k) ? '~' : '+'} ${k}`);
  for (const k of before.keys()) if (!skip(k) && !after.has(k)) out.push(`- ${k}`);
  return out;
}

/** Temp files of interrupted atomic writes (`.<name>.<pid>-<n>.tmp`) anywhere below `dir`. */
export function tempFiles(dir: string): string[] {
  return [...snapshot(dir).keys()].filter((rel) => /(^|\/)\..+\.\d+-\d+\.tmp$/.test(rel));
}

/** Runs `fn` over `items`, at most `limit` at a time. */
export async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** Whether this process may mount a tmpfs (root, and a kernel that allows it here). */
export function canMountTmpfs(): string | null {
  if (process.getuid?.() !== 0) return 'not running as root (mounting a small tmpfs needs root)';
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-tmpfs-probe-'));
  try {
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { encoding: 'utf8' });
    if (r.status !== 0) return `mount -t tmpfs failed: ${(r.stderr || r.error?.message || '').trim()}`;
    spawnSync('umount', [probe]);
    return null;
  } finally {
    fs.rmdirSync(probe);
  }
}

/** Mounts a tmpfs of `size` (e.g. '30m') on a new folder under `parent`; unmount() in a finally. */
export function mountTmpfs(parent: string, name: string, size: string, readOnly = false): { dir: string; remount: (size: string) => void; unmount: () => void } {
  const dir = path.join(parent, name);
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${readOnly ? ',ro' : ''}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mount tmpfs on ${dir}: ${r.stderr}`);
  return {
    dir,
    remount: (s) => {
      const m = spawnSync('mount', ['-o', `remount,size=${s}`, dir], { encoding: 'utf8' });
      if (m.status !== 0) throw new Error(`remount ${dir}: ${m.stderr}`);
    },
    unmount: () => {
      spawnSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The command prefix that runs the CLI as the unprivileged user 'nobody', or the reason it cannot
 * (not root, no setpriv/runuser, or 'nobody' cannot read the checkout).
 */
export function unprivilegedPrefix(): { prefix: string[] } | { reason: string } {
  if (process.getuid?.() !== 0) return { reason: 'not running as root (running as another user needs root)' };
  const candidates = [
    ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'],
    ['runuser', '-u', 'nobody', '--'],
  ];
  for (const prefix of candidates) {
    const r = spawnSync(prefix[0], [...prefix.slice(1), process.execPath, CLI, '--help'], { encoding: 'utf8', env: ENV });
    if (r.status === 0) return { prefix };
  }
  return { reason: "neither setpriv nor runuser can run the CLI as 'nobody' (missing, or 'nobody' cannot read the checkout)" };
}

export interface LimitedResult extends CliResult {
  /** Wall time until exit, in milliseconds. */
  ms: number;
  /** Killed at the time limit. */
  timedOut: boolean;
}

/** Whether `prlimit` can cap a child's address space here (util-linux; absent on some systems). */
/**
 * Address space a CUDA libtorch maps as it loads (cuDNN, cuBLAS, NCCL…: about 2.3 GiB more than the
 * CPU-only one) and never touches without a GPU: the limits above are for what avap allocates, so
 * they sit that much higher with such a build. Asked once, of a child process loading the addon.
 */
let gpuLibraries: number | undefined;
function gpuLibrariesMiB(): number {
  if (gpuLibraries === undefined) {
    const torch = path.join(__dirname, '..', 'src', 'torch');
    const r = spawnSync(process.execPath, ['-p', `require(${JSON.stringify(torch)}).deviceSupport().cudaBuilt`], { encoding: 'utf8', env: ENV });
    gpuLibraries = r.stdout.trim() === 'true' ? 4096 : 0;
  }
  return gpuLibraries;
}

export const hasPrlimit = spawnSync('prlimit', ['--as=4294967296', 'true']).status === 0;

/**
 * Runs the CLI as a child process with its memory bounded, so that a reader that would read without
 * end fails fast instead of taking the machine: V8's heap capped by --max-old-space-size and, where
 * prlimit exists, the whole address space by `prlimit --as` (libtorch and onnxruntime allocate outside
 * V8's heap). Killed after `timeoutMs`.
 */
export function avapLimited(args: string[], opts: { memoryMiB?: number; heapMiB?: number; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<LimitedResult> {
  const { memoryMiB = 4096, heapMiB = 512, timeoutMs = 60_000 } = opts;
  const node = [process.execPath, `--max-old-space-size=${heapMiB}`, CLI, ...args];
  const argv = hasPrlimit ? ['prlimit', `--as=${(memoryMiB + gpuLibrariesMiB()) * 1024 * 1024}`, ...node] : node;
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { env: { ...ENV, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer = setTimeout(() => ((timedOut = true), child.kill('SIGKILL')), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - started, timedOut });
    });
  });
}

/** Training flags that make a run in seconds. */
export const TINY = ['--size', '32', '--encoder', 'resnet18', '--batch-size', '4', '--seed', '3', '--threads', '1'];

/**
 * The shared fixtures of the fault suites: synthetic datasets (6 cases of 32², 3 annotators unless
 * their extra flags say otherwise), a run trained one step on the first, and its predictions.
 */
export async function tinyFixtures(datasets: [string, ...string[]][], run: string, preds: string, predictFlags: string[] = []): Promise<void> {
  const synth = ([out, ...extra]: [string, ...string[]]) => avapInProcess(['synth', '--out', out, '--cases', '6', '--size', '32', '--annotators', '3', '--seed', '5', ...extra]);
  for (const r of await Promise.all(datasets.map(synth))) ok(r, 'synth');
  const data = datasets[0][0];
  ok(await avapInProcess(['train', '--data', data, '--out', run, ...TINY, '--steps', '1']), 'train');
  ok(await avapInProcess(['predict', '--model', run, '--input', data, '--out', preds, '--threads', '1', ...predictFlags]), 'predict');
}

/** Where a fault suite keeps its sandbox and shared fixtures (see tinyFixtures). */
export function fixturePaths(tag: string): { root: string; shared: string; data: string; data4: string; run: string; preds: string } {
  const root = sandbox(tag);
  const shared = path.join(root, 'shared');
  const at = (name: string) => path.join(shared, name);
  return { root, shared, data: at('data'), data4: at('data-4-annotators'), run: at('run'), preds: at('preds') };
}
