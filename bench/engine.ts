// npm run bench:engine — a ResNet34 U-Net training step (batch 8, 256², Adam) and a one-image forward pass,
// ours (TypeScript on libtorch) against PyTorch (Python, Debian's python3-torch) on the same CPU, in
// alternating fresh processes. Last line: one JSON object.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { F, Generator, manualSeed, noGrad, optim, randint, randn, tidy, loadStateDict, getNumThreads } from '../src/torch';
import { BenchUnet } from './unet';

interface WorkerResult { train_ms: number[]; infer_ms: number[]; peak_rss_mb: number; params: number }
const PY = '/usr/bin/python3';
const TWIN = path.resolve(__dirname, '../../bench/torch_unet.py');

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** One measurement in this process: the mirror image of torch_unet.py's main(). */
function worker(): void {
  const batch = arg('batch', 8), size = arg('size', 256), seed = arg('seed', 0);
  const trainSteps = arg('train-steps', 5), inferSteps = arg('infer-steps', 10), warmup = arg('warmup', 1);
  manualSeed(seed);
  const model = new BenchUnet();
  const opt = new optim.Adam(model.parameters(), { lr: 1e-4, weightDecay: 1e-5 });
  const gen = new Generator(seed + 1);
  const x = randn([batch, 3, size, size], { generator: gen });
  const target = randint(0, 2, [batch, size, size], { generator: gen });
  const x1 = x.narrow(0, 0, 1).contiguous();
  const trainStep = () => tidy(() => {
    opt.zeroGrad();
    // The inner scope drops our handles on the activations before backward, as Python's refcounting
    // does; autograd keeps what it needs and frees it as backward proceeds.
    const loss = tidy(() => F.crossEntropy(model.forward(x), target));
    loss.backward();
    opt.step();
    return loss.item();
  });
  const inferStep = () => tidy(() => void model.forward(x1).sum().item());
  const timed = (fn: () => unknown, n: number) => Array.from({ length: n }, () => {
    const t0 = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - t0) / 1e6;
  });
  model.train();
  for (let i = 0; i < warmup; i++) trainStep();
  const train_ms = timed(trainStep, trainSteps);
  model.eval();
  const infer_ms = noGrad(() => {
    for (let i = 0; i < warmup; i++) inferStep();
    return timed(inferStep, inferSteps);
  });
  const result: WorkerResult = { train_ms, infer_ms, peak_rss_mb: process.resourceUsage().maxRSS / 1024, params: model.parameterCount() };
  console.log(JSON.stringify(result));
}

function ensurePythonTorch(): void {
  if (spawnSync(PY, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return;
  console.log('installing python3-torch (Debian) for the PyTorch side of the benchmark…');
  execFileSync('bash', ['-c', `${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install -y -qq --no-install-recommends python3-torch >/dev/null`], { stdio: 'inherit' });
}

/** Same seed → the same numbers: our initialisation draws from libtorch's generator in PyTorch's order. */
function checkInitParity(): { identical: boolean; keys: number } {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'avap-bench-')), 'init.safetensors');
  execFileSync(PY, [TWIN, '--seed', '0', '--state-dict-out', file, '--print-names'], { stdio: ['ignore', 'ignore', 'ignore'] });
  manualSeed(0);
  const model = new BenchUnet();
  const theirs = loadStateDict(file).state;
  const ours = model.stateDict();
  const keys = Object.keys(theirs);
  const identical = keys.length === Object.keys(ours).length && keys.every((k) => k in ours && tidy(() => ours[k].eq(theirs[k]).logicalNot().sum().item() === 0));
  return { identical, keys: keys.length };
}

function run(cmd: string, args: string[]): WorkerResult {
  const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 24 });
  const last = out.trim().split('\n').pop()!;
  return JSON.parse(last) as WorkerResult;
}

function main(): void {
  if (process.argv.includes('--worker')) return worker();
  ensurePythonTorch();
  const threads = getNumThreads();
  const rounds = arg('rounds', 3), trainSteps = arg('train-steps', 3), inferSteps = arg('infer-steps', 10);
  const common = ['--batch', String(arg('batch', 8)), '--size', String(arg('size', 256)), '--train-steps', String(trainSteps), '--infer-steps', String(inferSteps), '--warmup', '1'];
  const parity = checkInitParity();
  console.log(`state dict: ${parity.keys} tensors; initial weights identical to PyTorch's under the same seed: ${parity.identical}`);
  const ours: WorkerResult[] = [], torch: WorkerResult[] = [];
  for (let r = 0; r < rounds; r++) {
    torch.push(run(PY, [TWIN, '--threads', String(threads), ...common]));
    ours.push(run(process.execPath, [__filename, '--worker', ...common]));
    console.log(`round ${r + 1}/${rounds}: train ours ${median(ours[r].train_ms).toFixed(0)} ms, torch ${median(torch[r].train_ms).toFixed(0)} ms; `
      + `infer ours ${median(ours[r].infer_ms).toFixed(1)} ms, torch ${median(torch[r].infer_ms).toFixed(1)} ms`);
  }
  const m = (rs: WorkerResult[], k: 'train_ms' | 'infer_ms') => median(rs.flatMap((x) => x[k]));
  const peak = (rs: WorkerResult[]) => Math.max(...rs.map((x) => x.peak_rss_mb));
  const result = {
    ours_train_ms: +m(ours, 'train_ms').toFixed(1), torch_train_ms: +m(torch, 'train_ms').toFixed(1),
    train_ratio: +(m(ours, 'train_ms') / m(torch, 'train_ms')).toFixed(3),
    ours_infer_ms: +m(ours, 'infer_ms').toFixed(2), torch_infer_ms: +m(torch, 'infer_ms').toFixed(2),
    infer_ratio: +(m(ours, 'infer_ms') / m(torch, 'infer_ms')).toFixed(3),
    ours_peak_rss_mb: +peak(ours).toFixed(0), torch_peak_rss_mb: +peak(torch).toFixed(0),
    threads, params: ours[0].params, init_identical_to_torch: parity.identical,
  };
  console.log(JSON.stringify(result));
}

main();
