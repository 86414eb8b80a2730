// npm run bench:distributed — data-parallel AVAP step 1 (ResNet34 U-Net + AVM, batch 8, fp32) on this
// machine: 2 ranks × 1 thread (avap launch, loopback Gloo) against 1 process × 2 threads, the same
// global batch, in alternating fresh runs. Per configuration: steps/s over the step-1 rounds after the
// first (the first holds the warm-up); for the 2 ranks also the gradient allreduce's share of a step
// and the gradient bytes each rank reduces per step (a ring allreduce sends 2·(W−1)/W of them).
// Flags: --size 128 --steps 12 --rounds 2 --batch 8 --encoder resnet34. Last line: JSON.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const size = Number(arg('size', '128'));
const steps = Number(arg('steps', '12'));
const rounds = Number(arg('rounds', '2'));
const batch = Number(arg('batch', '8'));
const encoder = arg('encoder', 'resnet34');

const CLI = path.resolve(__dirname, '../src/cli/main.js');
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-bench-distributed-'));
process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
const data = path.join(root, 'data');

function avap(args: string[], threads: number): void {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, AVAP_NUM_THREADS: String(threads) }, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`avap ${args.slice(0, 3).join(' ')} failed (${r.status}): ${r.stderr.slice(-800)}`);
}

interface Round { stage: string; step: number; seconds: number; allreduce?: { seconds: number; bytes: number } }

/** Step-1 rounds after the first: steps/s, and the allreduce's share and bytes per step when logged. */
function measure(run: string): { stepsPerSecond: number; allreduceShare: number | null; bytesPerStep: number | null } {
  const rounds = fs.readFileSync(path.join(run, 'log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((e) => e.event === 'round' && e.stage === 'variation') as Round[];
  let seconds = 0;
  let n = 0;
  let reduceSeconds = 0;
  let bytes = 0;
  for (let i = 1; i < rounds.length; i++) {
    seconds += rounds[i].seconds;
    n += rounds[i].step - rounds[i - 1].step;
    reduceSeconds += rounds[i].allreduce?.seconds ?? 0;
    bytes += rounds[i].allreduce?.bytes ?? 0;
  }
  const logged = rounds.some((r) => r.allreduce);
  return { stepsPerSecond: n / seconds, allreduceShare: logged ? reduceSeconds / seconds : null, bytesPerStep: logged ? bytes / n : null };
}

function main(): void {
  avap(['synth', '--out', data, '--cases', String(2 * batch + 2), '--size', String(size), '--annotators', '6', '--seed', '1'], 2);
  const train = (out: string) => ['train', '--data', data, '--out', out, '--size', String(size), '--encoder', encoder, '--batch-size', String(batch),
    '--steps', String(steps), '--preference-steps', '1', '--precision', 'fp32', '--val-fraction', '0', '--seed', '0'];
  const single: ReturnType<typeof measure>[] = [];
  const double: ReturnType<typeof measure>[] = [];
  for (let r = 0; r < rounds; r++) {
    // Alternating, so that a slower period of a shared machine does not fall on one configuration only.
    const a = path.join(root, `single-${r}`);
    avap(train(a), 2);
    single.push(measure(a));
    const b = path.join(root, `double-${r}`);
    avap(['launch', '--nproc-per-node', '2', '--master-port', String(29900 + r), '--', ...train(b)], 1);
    double.push(measure(b));
    process.stderr.write(`round ${r + 1}/${rounds}: 1×2 ${single[r].stepsPerSecond.toFixed(3)} steps/s, 2×1 ${double[r].stepsPerSecond.toFixed(3)} steps/s, allreduce ${(double[r].allreduceShare! * 100).toFixed(1)}% of a step\n`);
  }
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const one = mean(single.map((m) => m.stepsPerSecond));
  const two = mean(double.map((m) => m.stepsPerSecond));
  console.log(JSON.stringify({
    bench: 'distributed', size, batch, encoder, steps, rounds, cores: os.availableParallelism(),
    oneProcessTwoThreads: { stepsPerSecond: +one.toFixed(4) },
    twoRanksOneThread: {
      stepsPerSecond: +two.toFixed(4),
      allreduceShare: +mean(double.map((m) => m.allreduceShare!)).toFixed(4),
      gradientBytesPerStep: Math.round(mean(double.map((m) => m.bytesPerStep!))),
    },
    // > 1: the 2 ranks are slower than one process using both cores.
    timeRatio: +(one / two).toFixed(3),
  }));
}

main();
