// npm run bench:distributed — data-parallel AVAP step 1 (ResNet34 U-Net + AVM, batch 8, fp32) on this
// machine: 2 ranks × 1 thread (avap launch, loopback Gloo) against 1 process × 2 threads, the same
// global batch, in alternating fresh runs, at each size. Per configuration: steps/s over the step-1
// rounds after the first (the first holds the warm-up); for the 2 ranks also where a step's time goes:
// the gradient allreduce, SyncBatchNorm's collectives (their number, and their time including the
// wait for the other rank), and the gradient bytes each rank reduces per step (a ring allreduce sends
// 2·(W−1)/W of them). From the largest size: the projection for the paper's 655-image protocol on W
// machines like this one. Flags: --sizes 128,256 --steps 8 --rounds 2 --batch 8 --encoder resnet34.
// Last line: JSON.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const sizes = arg('sizes', arg('size', '128,256')).split(',').map(Number);
const steps = Number(arg('steps', '8'));
const rounds = Number(arg('rounds', '2'));
const batch = Number(arg('batch', '8'));
const encoder = arg('encoder', 'resnet34');

const CLI = path.resolve(__dirname, '../src/cli/main.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-bench-distributed-'));
process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));

function avap(args: string[], threads: number): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, AVAP_NUM_THREADS: String(threads) }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`avap ${args.slice(0, 3).join(' ')} failed (${r.status}): ${r.stderr.slice(-800)}`);
}

interface Round {
  stage: string; step: number; seconds: number;
  allreduce?: { seconds: number; bytes: number; batchNormSeconds: number; batchNormCollectives: number; parameterCheckSeconds: number };
}

interface Measured {
  stepsPerSecond: number;
  /** Shares of a step's time, and the payload; null for one process. */
  allreduceShare: number | null;
  batchNormShare: number | null;
  batchNormCollectivesPerStep: number | null;
  bytesPerStep: number | null;
  /** The cross-rank parameter check's seconds per round (left out of the step times above). */
  parameterCheckSeconds: number | null;
}

/**
 * Step-1 rounds after the first: steps/s, and where a 2-rank step's time goes when logged. With this
 * bench's few steps every round is one step, so the parameter check that ends each round (20 per
 * stage in a real run, amortised over hundreds of steps) is left out of the step time and reported apart.
 */
function measure(run: string): Measured {
  const logged = fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((e) => e.event === 'round' && e.stage === 'variation') as Round[];
  let seconds = 0;
  let n = 0;
  let reduceSeconds = 0;
  let bytes = 0;
  let bnSeconds = 0;
  let bnCollectives = 0;
  let checkSeconds = 0;
  for (let i = 1; i < logged.length; i++) {
    seconds += logged[i].seconds - (logged[i].allreduce?.parameterCheckSeconds ?? 0);
    checkSeconds += logged[i].allreduce?.parameterCheckSeconds ?? 0;
    n += logged[i].step - logged[i - 1].step;
    reduceSeconds += logged[i].allreduce?.seconds ?? 0;
    bytes += logged[i].allreduce?.bytes ?? 0;
    bnSeconds += logged[i].allreduce?.batchNormSeconds ?? 0;
    bnCollectives += logged[i].allreduce?.batchNormCollectives ?? 0;
  }
  const ranks = logged.some((r) => r.allreduce);
  return {
    stepsPerSecond: n / seconds,
    allreduceShare: ranks ? reduceSeconds / seconds : null,
    batchNormShare: ranks ? bnSeconds / seconds : null,
    batchNormCollectivesPerStep: ranks ? bnCollectives / n : null,
    bytesPerStep: ranks ? bytes / n : null,
    parameterCheckSeconds: ranks ? checkSeconds / (logged.length - 1) : null,
  };
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const round = (x: number, digits = 4) => +x.toFixed(digits);

function benchSize(size: number, port: number) {
  const data = path.join(root, `data-${size}`);
  avap(['synth', '--out', data, '--cases', String(2 * batch + 2), '--size', String(size), '--annotators', '6', '--seed', '1'], 2);
  const train = (out: string) => ['train', '--data', data, '--out', out, '--size', String(size), '--encoder', encoder, '--batch-size', String(batch),
    '--steps', String(steps), '--preference-steps', '1', '--precision', 'fp32', '--val-fraction', '0', '--seed', '0'];
  const single: Measured[] = [];
  const double: Measured[] = [];
  for (let r = 0; r < rounds; r++) {
    // Alternating, so that a slower period of a shared machine does not fall on one configuration only.
    const a = path.join(root, `single-${size}-${r}`);
    avap(train(a), 2);
    single.push(measure(a));
    const b = path.join(root, `double-${size}-${r}`);
    avap(['launch', '--nproc-per-node', '2', '--master-port', String(port + r), '--', ...train(b)], 1);
    double.push(measure(b));
    const d = double[r];
    process.stderr.write(`${size}² round ${r + 1}/${rounds}: 1×2 ${single[r].stepsPerSecond.toFixed(3)} steps/s, 2×1 ${d.stepsPerSecond.toFixed(3)} steps/s `
      + `(gradient allreduce ${(d.allreduceShare! * 100).toFixed(1)}%, SyncBatchNorm's ${d.batchNormCollectivesPerStep!.toFixed(0)} collectives ${(d.batchNormShare! * 100).toFixed(1)}% of a step)\n`);
  }
  const one = mean(single.map((m) => m.stepsPerSecond));
  const two = mean(double.map((m) => m.stepsPerSecond));
  return {
    size,
    oneProcessTwoThreads: { stepsPerSecond: round(one) },
    twoRanksOneThread: {
      stepsPerSecond: round(two),
      allreduceShare: round(mean(double.map((m) => m.allreduceShare!))),
      batchNormShare: round(mean(double.map((m) => m.batchNormShare!))),
      batchNormCollectivesPerStep: round(mean(double.map((m) => m.batchNormCollectivesPerStep!)), 1),
      gradientBytesPerStep: Math.round(mean(double.map((m) => m.bytesPerStep!))),
      parameterCheckSecondsPerRound: round(mean(double.map((m) => m.parameterCheckSeconds!)), 3),
    },
    // > 1: the 2 ranks are slower than one process using both cores (target: at most 1.15).
    timeRatio: round(one / two, 3),
  };
}

/**
 * The paper's protocol (655 images, 8200 step-1 + 4100 step-2 steps of a global batch of 8; step 2
 * assumed to cost what step 1 does) on W machines like this one, one worker each: a step is the
 * batch's compute split W ways, plus a ring allreduce moving 2(W−1)/W of the gradient bytes in and out
 * of each machine, plus SyncBatchNorm's collectives of 2(W−1) latency-bound hops each at 0.1 ms a hop.
 */
function projection(point: ReturnType<typeof benchSize>) {
  const STEPS = 8200 + 4100;
  const HOP_SECONDS = 1e-4;
  const computePerImage = 1 / point.oneProcessTwoThreads.stepsPerSecond / batch;
  const bytes = point.twoRanksOneThread.gradientBytesPerStep;
  const collectives = point.twoRanksOneThread.batchNormCollectivesPerStep;
  const hours = (bytesPerSecond: number) => Object.fromEntries([1, 2, 4, 8].map((W) => {
    const step = (batch / W) * computePerImage + (W > 1 ? (2 * (W - 1) / W) * bytes / bytesPerSecond + collectives * 2 * (W - 1) * HOP_SECONDS : 0);
    return [`W${W}`, round(STEPS * step / 3600, 1)];
  }));
  return {
    size: point.size, steps: STEPS, computeSecondsPerImage: round(computePerImage, 3),
    hours: { '1Gbit': hours(117e6), '10Gbit': hours(1170e6) },
  };
}

/**
 * One rank of the latency probe: the mean time of a small allreduce (a SyncBatchNorm layer's
 * statistics: 3 × 256 floats) between 2 ranks of 1 thread on loopback, when both are ready at once.
 */
function latencyWorker(): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { distributed: dist, zeros } = require('../src/torch') as typeof import('../src/torch');
  const rank = Number(process.env.RANK);
  dist.initProcessGroup({ host: '127.0.0.1', port: Number(process.env.MASTER_PORT), rank, worldSize: 2, isStoreServer: rank === 0, timeoutMs: 60_000, prefix: '', device: { address: '127.0.0.1' }, gpu: null });
  const t = zeros([3 * 256]);
  for (let i = 0; i < 100; i++) dist.allReduce([t]);
  const n = 2000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) dist.allReduce([t]);
  if (rank === 0) console.log(Number(process.hrtime.bigint() - t0) / 1e3 / n);
  dist.destroyProcessGroup();
}

async function probeLatency(port: number): Promise<number> {
  const ranks = [0, 1].map((rank) => spawn(process.execPath, [__filename, '--latency-worker'], {
    env: { ...process.env, AVAP_NUM_THREADS: '1', RANK: String(rank), WORLD_SIZE: '2', MASTER_PORT: String(port) }, stdio: ['ignore', 'pipe', 'inherit'],
  }));
  let out = '';
  ranks[0].stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  const codes = await Promise.all(ranks.map((c) => new Promise<number | null>((resolve) => c.on('close', resolve))));
  if (codes.some((c) => c !== 0)) throw new Error(`the latency probe failed (exit codes ${codes.join(', ')})`);
  return Number(out);
}

async function main(): Promise<void> {
  const points = sizes.map((size, i) => benchSize(size, 29900 + 10 * i));
  const latency = await probeLatency(29990);
  process.stderr.write(`a small allreduce (3 × 256 floats) between 2 ranks ready at once: ${latency.toFixed(0)} µs\n`);
  console.log(JSON.stringify({
    bench: 'distributed', batch, encoder, steps, rounds, cores: os.availableParallelism(),
    smallAllreduceMicroseconds: round(latency, 1), points, projection655: projection(points[points.length - 1]),
  }));
}

if (process.argv.includes('--latency-worker')) latencyWorker();
else void main();
