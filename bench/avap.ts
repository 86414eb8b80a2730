// npm run bench:avap — the whole AVAP (ResNet34 U-Net + AVM + APM), ours (TypeScript on libtorch) against
// its PyTorch twin (bench/torch_avap.py: same parameter names, same initial weights, checked) on the same
// CPU, in alternating fresh processes:
//   • step 1 (backbone + AVM) and step 2 (APM on the frozen rest) training steps, batch 8 at 256², M = 6;
//   • one-image inference of the calibrated map and every annotator's map, and of one annotator's, for
//     M = 2, 6, 16, 32;
//   • `avap predict` on a folder of images (ours only), images/s.
// The twin runs as the authors' code does (fp32, NCHW, eager: "plain") and in its best configuration
// ("best": channels-last, bf16 autocast, glibc's mmap threshold raised as our addon does). Ours runs with
// its defaults: training at --precision auto, predict at fp32; inference is also timed in bf16.
// --device cuda (or auto) runs both on a GPU: ours at --precision auto (bf16 autocast there), the twin
// plain (fp32) and best (bf16 autocast, channels-last); each worker reports its peak GPU memory too.
// AVAP_BENCH_PYTHON names the twin's Python (default /usr/bin/python3, where Debian's python3-torch goes).
// Flags: --rounds 2 --steps 3 --warmup 2 --reps 5 --ms 2,6,16,32 --size 256 --batch 8 --device cpu. Last line: JSON.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AvapMethod } from '../src/methods/avap';
import { TrainingBatch } from '../src/methods/method';
import { buildMethod, methodConfigFor } from '../src/methods/registry';
import { predict } from '../src/predict/predict';
import { writeSynthDataset } from '../src/data/synth';
import { train } from '../src/train/trainer';
import {
  DEVICE_CHOICES, Device, Generator, Precision, getNumThreads, gpuMemory, hasBf16Arithmetic, isCuda, loadStateDict, manualSeed, noGrad, optim, rand,
  randn, resetPeakGpuMemory, resolveDevice, resolvePrecision, tidy, useDevice,
} from '../src/torch';
import { parseChoice } from '../src/util/flags';
import { Rng } from '../src/util/random';

const PY = process.env.AVAP_BENCH_PYTHON || '/usr/bin/python3';
const TWIN = path.resolve(__dirname, '../../bench/torch_avap.py');
const STRUCTURES = ['disc', 'cup'];
const TRAINING_M = 6; // RIGA's six annotators

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const num = (name: string, fallback: number) => Number(arg(name, String(fallback)));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function elapsed(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** first_loss: the loss of the first training step, the same in both engines when the models are. */
interface WorkerResult { ms: number[]; one_ms?: number[]; first_loss?: number; peak_rss_mb: number; peak_gpu_mb?: number; params: number }

function buildAvap(M: number, precision: Precision, device: Device = 'cpu'): AvapMethod {
  manualSeed(num('seed', 0));
  const config = methodConfigFor('avap', {
    structures: STRUCTURES, annotators: Array.from({ length: M }, (_, k) => `A${k + 1}`), inChannels: 3, encoder: 'resnet34', steps: 1,
  }, { preferenceSteps: 1 });
  const method = buildMethod(config) as AvapMethod;
  method.model.setPrecision(precision).to(device);
  return method;
}

/** One measurement in this process, the mirror image of torch_avap.py's main(). */
function worker(): void {
  const task = arg('task', 'step1');
  const M = num('annotators', TRAINING_M), B = num('batch', 8), S = num('size', 256);
  const steps = num('steps', 3), warmup = num('warmup', 2);
  const precision = arg('precision', 'fp32') as Precision;
  const device = arg('device', 'cpu');
  useDevice(device);
  const method = buildAvap(M, precision, device);
  const model = method.model;
  // Drawn on the CPU (the same numbers on every device), then uploaded once.
  const gen = new Generator(num('seed', 0) + 1);
  const x = randn([B, 3, S, S], { generator: gen }).to(device);
  const result: WorkerResult = { ms: [], peak_rss_mb: 0, params: model.parameterCount() };
  resetPeakGpuMemory(device);
  if (task === 'infer') {
    model.eval();
    const x1 = x.narrow(0, 0, 1).contiguous();
    const all = () => tidy(() => { const p = model.predict(x1); void (p.calibrated.sum().item() + p.annotators.sum().item()); });
    const one = () => tidy(() => {
      const out = model.forward(x1, [[0]]);
      void (model.avm.calibrated(out.variation).sum().item() + out.preference!.sigmoid().sum().item());
    });
    noGrad(() => {
      for (let i = 0; i < warmup; i++) { all(); one(); }
      result.one_ms = [];
      for (let i = 0; i < steps; i++) {
        result.ms.push(elapsed(all));
        result.one_ms.push(elapsed(one));
      }
    });
  } else {
    const masks = rand([B, M, STRUCTURES.length, S, S], { generator: gen }).gt(0.5).float().to(device);
    const batch: TrainingBatch = {
      size: B, images: x, annotatorMasks: masks, agreementClasses: masks.sum(1).long(), meanVotes: masks.mean(1), available: new Uint8Array(B * M).fill(1),
    };
    const stage = method.stages()[task === 'step1' ? 0 : 1];
    // As the trainer sets a stage up: modes, frozen modules, Adam over the trained ones.
    for (const m of stage.frozen) m.eval().requiresGrad_(false);
    for (const m of stage.trained) m.train().requiresGrad_(true);
    const opt = new optim.Adam([...new Set(stage.trained.flatMap((m) => m.parameters()))], { lr: 1e-4, weightDecay: 1e-5 });
    const rng = new Rng(0);
    const step = () => tidy(() => {
      opt.zeroGrad();
      const loss = tidy(() => stage.loss(batch, rng));
      loss.backward();
      opt.step();
      return loss.item();
    });
    result.first_loss = step();
    for (let i = 1; i < warmup; i++) step();
    for (let i = 0; i < steps; i++) result.ms.push(elapsed(step));
  }
  result.peak_rss_mb = process.resourceUsage().maxRSS / 1024;
  const gpu = gpuMemory(device);
  if (gpu) result.peak_gpu_mb = gpu.peak / 2 ** 20;
  console.log(JSON.stringify(result));
}

function ensurePythonTorch(device: Device): void {
  const check = isCuda(device) ? 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' : 'import torch';
  if (spawnSync(PY, ['-c', check], { stdio: 'ignore' }).status === 0) return;
  if (isCuda(device)) throw new Error(`${PY} has no PyTorch with CUDA for the twin: set AVAP_BENCH_PYTHON to one that has`);
  console.log('installing python3-torch (Debian) for the PyTorch side of the benchmark…');
  execFileSync('bash', ['-c', `${process.getuid?.() === 0 ? '' : 'sudo '}apt-get install -y -qq --no-install-recommends python3-torch >/dev/null`], { stdio: 'inherit' });
}

/** Same seed → the same weights: our initialisation draws from libtorch's generator in PyTorch's order. */
function checkInitParity(dir: string): { identical: boolean; keys: number } {
  const file = path.join(dir, 'twin-init.safetensors');
  execFileSync(PY, [TWIN, '--task', 'names', '--annotators', String(TRAINING_M), '--seed', '0', '--state-dict-out', file], { stdio: ['ignore', 'ignore', 'inherit'] });
  const method = buildAvap(TRAINING_M, 'fp32');
  const theirs = loadStateDict(file).state;
  const ours = method.model.stateDict();
  const keys = Object.keys(theirs);
  const identical = keys.length === Object.keys(ours).length
    && keys.every((k) => k in ours && tidy(() => ours[k].eq(theirs[k]).logicalNot().sum().item() === 0));
  method.model.dispose();
  return { identical, keys: keys.length };
}

/** The largest GPU memory each configuration's workers allocated, per task. */
function peakGpu(results: Map<string, WorkerResult[]>): Record<string, number> {
  return Object.fromEntries([...results].map(([key, ws]) => [key, Math.round(Math.max(...ws.map((w) => w.peak_gpu_mb ?? 0)))]));
}

function run(cmd: string, args: string[]): WorkerResult {
  const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 24 });
  return JSON.parse(out.trim().split('\n').pop()!) as WorkerResult;
}

type Config = 'ours' | 'ours_bf16' | 'torch' | 'torch_best';
const TWIN_FLAGS: Record<'torch' | 'torch_best', string[]> = { torch: [], torch_best: ['--channels-last', '--bf16', '--keep-freed-memory'] };

/** `avap predict` on a folder of synthetic fundus images with a freshly initialised run: images/s. */
async function predictThroughput(dir: string, trainPrecision: Precision, device: Device): Promise<{ images: number; seconds: number; images_per_s: number }> {
  const data = path.join(dir, 'data');
  const images = 16;
  await writeSynthDataset({ out: data, cases: images, size: 256, seed: 0, train: images });
  const runDir = path.join(dir, 'run');
  await train({
    data, out: runDir, size: 256, steps: 1, batchSize: 2, valFraction: 0, methodOptions: { preferenceSteps: 1 },
    precision: trainPrecision, device: isCuda(device) ? 'cuda' : 'cpu', onEvent: () => undefined,
  });
  const t0 = Date.now();
  const n = await predict({ model: runDir, input: path.join(data, 'images'), out: path.join(dir, 'predictions'), overlay: false, device: isCuda(device) ? 'cuda' : 'cpu' });
  const seconds = (Date.now() - t0) / 1000;
  return { images: n, seconds: +seconds.toFixed(2), images_per_s: +(n / seconds).toFixed(2) };
}

async function main(): Promise<void> {
  if (process.argv.includes('--worker')) return worker();
  const device = resolveDevice(parseChoice('--device', arg('device', 'cpu'), DEVICE_CHOICES));
  ensurePythonTorch(device);
  const started = Date.now();
  const threads = getNumThreads();
  const rounds = num('rounds', 2), reps = num('reps', 5), MS = arg('ms', '2,6,16,32').split(',').map(Number);
  const common = ['--batch', arg('batch', '8'), '--size', arg('size', '256'), '--seed', '0', '--device', device];
  const trainPrecision = resolvePrecision('auto', device);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-bench-'));
  const parity = checkInitParity(dir);
  console.log(`AVAP, ResNet34, ${arg('size', '256')}², batch ${arg('batch', '8')}, on ${device}${isCuda(device) ? '' : ` with ${threads} threads`}; state dict ${parity.keys} tensors, initial weights identical to the twin's under the same seed: ${parity.identical}`);
  console.log(`ours trains at --precision auto = ${trainPrecision} on ${isCuda(device) ? 'this GPU' : 'this CPU'}; the twin runs plain (fp32 NCHW eager) and best (channels-last + bf16 autocast + malloc setting)`);

  const measure = (config: Config, task: string, extra: string[]): WorkerResult => {
    if (config === 'torch' || config === 'torch_best') return run(PY, [TWIN, '--task', task, '--threads', String(threads), ...common, ...extra, ...TWIN_FLAGS[config]]);
    const precision = config === 'ours_bf16' ? 'bf16' : task === 'infer' ? 'fp32' : trainPrecision;
    return run(process.execPath, [__filename, '--worker', '--task', task, '--precision', precision, ...common, ...extra]);
  };
  const results = new Map<string, WorkerResult[]>();
  const add = (key: string, r: WorkerResult) => results.set(key, [...(results.get(key) ?? []), r]);
  const canBf16 = isCuda(device) || hasBf16Arithmetic();
  const trainConfigs: Config[] = ['torch', 'torch_best', 'ours'];
  const inferConfigs: Config[] = canBf16 ? ['torch', 'torch_best', 'ours', 'ours_bf16'] : ['torch', 'torch_best', 'ours'];
  for (let r = 0; r < rounds; r++) {
    for (const task of ['step1', 'step2']) {
      const extra = ['--annotators', String(TRAINING_M), '--steps', arg('steps', '3'), '--warmup', arg('warmup', '2')];
      for (const c of trainConfigs) add(`${task}/${c}`, measure(c, task, extra));
      const line = trainConfigs.map((c) => `${c} ${median(results.get(`${task}/${c}`)!.at(-1)!.ms).toFixed(0)} ms`).join(', ');
      console.log(`round ${r + 1}/${rounds} ${task}: ${line}`);
    }
    for (const M of MS) {
      const extra = ['--annotators', String(M), '--steps', String(reps), '--warmup', '2'];
      for (const c of inferConfigs) add(`infer${M}/${c}`, measure(c, 'infer', extra));
      const line = inferConfigs.map((c) => {
        const w = results.get(`infer${M}/${c}`)!.at(-1)!;
        return `${c} ${median(w.ms).toFixed(0)}/${median(w.one_ms!).toFixed(0)} ms`;
      }).join(', ');
      console.log(`round ${r + 1}/${rounds} inference M = ${M} (all/one annotator): ${line}`);
    }
  }
  const ms = (key: string, field: 'ms' | 'one_ms' = 'ms') => median((results.get(key) ?? []).flatMap((w) => w[field] ?? []));
  const peak = (prefix: (k: string) => boolean) => Math.max(...[...results].filter(([k]) => prefix(k)).flatMap(([, ws]) => ws.map((w) => w.peak_rss_mb)));
  const ratio = (a: number, b: number) => +(a / b).toFixed(3);
  const round1 = (x: number) => +x.toFixed(1);
  const inferM = MS.includes(TRAINING_M) ? TRAINING_M : MS[0];
  const lastM = MS[MS.length - 1];
  const predictRun = await predictThroughput(dir, trainPrecision, device);
  console.log(`avap predict: ${predictRun.images} images of 256² in ${predictRun.seconds} s = ${predictRun.images_per_s} images/s (fp32, all annotators, no overlays)`);
  const scaling = MS.map((M) => ({
    M, ...Object.fromEntries(inferConfigs.map((c) => [c, { all_ms: round1(ms(`infer${M}/${c}`)), one_ms: round1(ms(`infer${M}/${c}`, 'one_ms')) }])),
  }));
  const s1 = { ours: ms('step1/ours'), torch: ms('step1/torch'), best: ms('step1/torch_best') };
  const s2 = { ours: ms('step2/ours'), torch: ms('step2/torch'), best: ms('step2/torch_best') };
  const inf = { ours: ms(`infer${inferM}/ours`), torch: ms(`infer${inferM}/torch`), best: ms(`infer${inferM}/torch_best`), bf16: ms(`infer${inferM}/ours_bf16`) };
  const result = {
    size: num('size', 256), batch: num('batch', 8), threads, train_precision: trainPrecision, init_identical_to_torch: parity.identical,
    step1_ms: { ours: round1(s1.ours), torch: round1(s1.torch), torch_best: round1(s1.best) },
    step2_ms: { ours: round1(s2.ours), torch: round1(s2.torch), torch_best: round1(s2.best) },
    infer_ms: { M: inferM, ours: round1(inf.ours), ours_bf16: canBf16 ? round1(inf.bf16) : null, torch: round1(inf.torch), torch_best: round1(inf.best) },
    step1_ratio: ratio(s1.ours, s1.torch), step2_ratio: ratio(s2.ours, s2.torch), infer_ratio: ratio(inf.ours, inf.torch),
    step1_ratio_best: ratio(s1.ours, s1.best), step2_ratio_best: ratio(s2.ours, s2.best), infer_ratio_best: ratio(inf.ours, inf.best),
    infer_ratio_bf16: canBf16 ? ratio(inf.bf16, inf.torch) : null, infer_ratio_bf16_best: canBf16 ? ratio(inf.bf16, inf.best) : null,
    scaling_m32: ratio(ms(`infer${lastM}/ours`), ms(`infer${lastM}/ours`, 'one_ms')), scaling_m: lastM,
    ours_peak_rss_mb: Math.round(peak((k) => k.endsWith('/ours'))), torch_peak_rss_mb: Math.round(peak((k) => k.endsWith('/torch'))),
    torch_best_peak_rss_mb: Math.round(peak((k) => k.endsWith('/torch_best'))),
    device, ...(isCuda(device) ? { peak_gpu_mb: peakGpu(results) } : {}),
    predict: predictRun, scaling, seconds: Math.round((Date.now() - started) / 1000),
  };
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify(result));
}

void (async () => {
  try {
    await main();
  } catch (err) {
    console.error(err);
    process.exit(1);
  }
})();


