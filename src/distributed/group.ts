// A worker's membership of the job: the rendezvous (c10d's TCPStore) and the Gloo process group, plus
// what data-parallel training needs on top of the collectives: bytes and decisions from rank 0, a
// check that every rank agrees, gradient averaging. Every failure is a UserError of one line naming
// this rank and what happened.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../errors';
import { Device, Tensor, cudaIndex, distributed as dist, isCuda, noGrad, tensor, tidy } from '../torch';
import { chooseGlooDevice, WorkerEnv } from './env';
import { isRunning } from '../io/atomic';

/** Default collective and rendezvous timeout: longer than a validation round plus a checkpoint of a large run. */
export const DEFAULT_DIST_TIMEOUT_SECONDS = 600;

export class ProcessGroup {
  private constructor(readonly env: WorkerEnv, readonly timeoutSeconds: number) {}
  /** Each rank's machine and pid: a failure caused by a rank's process ending can name that rank. */
  private peers: Peer[] = [];

  get rank(): number { return this.env.rank; }
  /** One line for a GPU run's log: how the model's gradients and batch statistics travel between the ranks. */
  describeGpuCollectives(): string {
    return this.modelBackend === 'nccl'
      ? 'collectives: NCCL between the GPUs (Gloo for the CPU-side exchanges)'
      : "collectives: Gloo by way of the CPU — this addon was built without NCCL's headers (docs/distributed.md)";
  }
  get worldSize(): number { return this.env.worldSize; }
  /** Rank 0 writes the run folder; the others only train. */
  get isWriter(): boolean { return this.env.rank === 0; }

  /** Which backend reduces the model's tensors: NCCL on GPUs, else Gloo (by way of the CPU for GPU tensors). */
  private modelBackend: 'nccl' | 'gloo' = 'gloo';

  /**
   * Joins the job: every rank blocks here until all WORLD_SIZE ranks have arrived, or the timeout ends
   * it. On a GPU (`device` cuda:N) the model's collectives go through NCCL where the addon has it.
   */
  static async init(env: WorkerEnv, timeoutSeconds: number, device: Device = 'cpu'): Promise<ProcessGroup> {
    const glooDevice = await chooseGlooDevice(env.masterAddr, env.masterPort);
    const g = new ProcessGroup(env, timeoutSeconds);
    g.modelBackend = g.run('rendezvous', () => dist.initProcessGroup({
      host: env.masterAddr, port: env.masterPort, rank: env.rank, worldSize: env.worldSize,
      isStoreServer: env.rank === 0 && !env.useAgentStore, timeoutMs: timeoutSeconds * 1000,
      prefix: env.useAgentStore ? `/worker/attempt_${env.restartCount}` : '', device: glooDevice,
      gpu: isCuda(device) ? cudaIndex(device) : null,
    }));
    g.peers = g.run('rendezvous', () => g.exchangeProcesses());
    return g;
  }

  /** Runs a collective; c10d's failure becomes one line naming this rank. */
  run<T>(what: string, body: () => T): T {
    try {
      return body();
    } catch (err) {
      throw new UserError(`rank ${this.rank}: ${what} failed: ${describeFailure((err as Error).message, what, this.env, this.timeoutSeconds, this.peers)}`);
    }
  }

  /**
   * A training step's failure: one that came from a collective inside the model (SyncBatchNorm's
   * statistics, forward or backward) becomes one line naming this rank; anything else is rethrown.
   */
  step<T>(what: string, body: () => T): T {
    try {
      return body();
    } catch (err) {
      if (err instanceof UserError || !isCollectiveFailure((err as Error).message)) throw err;
      throw new UserError(`rank ${this.rank}: ${what} failed: ${describeFailure((err as Error).message, what, this.env, this.timeoutSeconds, this.peers)}`);
    }
  }

  /**
   * torchrun restarts every worker of a job with the same command line after one fails
   * (--max_restarts). Rank 0 notes in the agent's store, which outlives the workers, that this job
   * created the run folder `out`; a later attempt then continues that run from its last checkpoint
   * (continuesRun) instead of refusing the folder. A folder the job did not create is never taken over.
   */
  recordRunCreated(out: string): void {
    if (this.env.useAgentStore && this.isWriter) this.run('rendezvous', () => dist.storeAdd(createdKey(out), 1));
  }

  /** On rank 0 of a restarted torchrun job: an earlier attempt created `out` (recordRunCreated). */
  continuesRun(out: string): boolean {
    if (!this.env.useAgentStore || this.env.restartCount === 0 || !this.isWriter) return false;
    return this.run('rendezvous', () => dist.storeAdd(createdKey(out), 0)) > 0;
  }

  allReduce(tensors: Tensor[]): void { this.run('allreduce', () => dist.allReduce(tensors)); }
  broadcast(tensors: Tensor[]): void { this.run('broadcast', () => dist.broadcast(tensors)); }
  barrier(): void { this.run('barrier', () => dist.barrier()); }
  /** Seconds spent in the gradient allreduce and the fp32 bytes of the parameters it reduced, since the last take. */
  private gradientSeconds = 0;
  private gradientBytes = 0;
  private checkSeconds = 0;

  averageGradients(params: Tensor[]): void {
    const t0 = process.hrtime.bigint();
    this.run('gradient allreduce', () => dist.averageGradients(params));
    this.gradientSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
    for (const p of params) this.gradientBytes += p.numel() * 4;
  }

  /**
   * Since the previous call (a round's, in the log): the gradient allreduce's time and payload, the
   * time and number of SyncBatchNorm's collectives (each waits for the slowest rank to reach its
   * layer), and the time of the parameter check.
   */
  takeCollectiveStats(): { seconds: number; bytes: number; batchNormSeconds: number; batchNormCollectives: number; parameterCheckSeconds: number } {
    const batchNorm = dist.takeAllReduceSumTimes();
    const out = {
      seconds: this.gradientSeconds, bytes: this.gradientBytes, batchNormSeconds: batchNorm.seconds, batchNormCollectives: batchNorm.collectives,
      parameterCheckSeconds: this.checkSeconds,
    };
    this.gradientSeconds = 0;
    this.gradientBytes = 0;
    this.checkSeconds = 0;
    return out;
  }

  /** The sum of each number over the ranks (float64). */
  sumNumbers(values: number[]): number[] {
    return tidy(() => {
      const t = tensor(Float64Array.from(values), [values.length]);
      this.allReduce([t]);
      return Array.from(t.data() as Float64Array);
    });
  }

  /** Rank 0's bytes on every rank (the others pass anything; their own bytes are ignored). */
  broadcastBytes(bytes: Uint8Array): Uint8Array {
    return tidy(() => {
      const length = tensor(Float64Array.of(bytes.length), [1]);
      this.broadcast([length]);
      const n = (length.data() as Float64Array)[0];
      const buffer = new Uint8Array(n);
      if (this.isWriter) buffer.set(bytes);
      const t = tensor(buffer, [n]);
      if (n > 0) this.broadcast([t]);
      return new Uint8Array(t.data() as Uint8Array);
    });
  }

  broadcastJson<T>(value: T): T {
    const bytes = this.broadcastBytes(this.isWriter ? Buffer.from(JSON.stringify(value)) : new Uint8Array(0));
    return JSON.parse(Buffer.from(bytes).toString('utf8')) as T;
  }

  /** Rank 0's decision on every rank. */
  broadcastFlag(flag: boolean): boolean {
    return tidy(() => {
      const t = tensor(Float64Array.of(flag ? 1 : 0), [1]);
      this.broadcast([t]);
      return (t.data() as Float64Array)[0] === 1;
    });
  }

  /**
   * Every rank compares its `text` (settings, data) with rank 0's; when any differs, every rank
   * stops with one line (the differing ranks say what differs).
   */
  agree(what: string, text: string): void {
    const reference = Buffer.from(this.broadcastBytes(Buffer.from(text))).toString('utf8');
    const differs = reference !== text;
    const [count] = this.sumNumbers([differs ? 1 : 0]);
    if (differs) throw new UserError(`rank ${this.rank}: ${what} differ from rank 0's: ${firstDifference(reference, text)}`);
    if (count > 0) throw new UserError(`rank ${this.rank}: ${count} other rank(s) have ${what} that differ from rank 0's (see their message)`);
  }

  /** Rank 0's parameters and buffers on every rank. */
  broadcastState(tensors: Tensor[]): void {
    noGrad(() => this.broadcast(tensors));
  }

  /**
   * Compares a checksum of the parameters (sum and sum of squares per tensor) across the ranks; the
   * ranks apply the same averaged gradients, so they differ only through a bug or a faulty machine.
   */
  checkSameParameters(params: Tensor[], where: string): void {
    const t0 = process.hrtime.bigint();
    const local = tidy(() => params.flatMap((p) => {
      const f = p.detach().to('float64');
      return [f.sum().item(), f.square().sum().item()];
    }));
    const total = this.sumNumbers(local);
    this.checkSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
    for (let i = 0; i < local.length; i++) {
      const mean = total[i] / this.worldSize;
      if (Math.abs(local[i] - mean) > 1e-9 * Math.max(1, Math.abs(mean))) {
        throw new UserError(`rank ${this.rank}: parameters differ between ranks ${where} (tensor ${Math.floor(i / 2)}: ${local[i]} here, mean ${mean}); stopping`);
      }
    }
  }

  /** Every rank's machine and pid, gathered by one allreduce of a table where each rank fills its own row. */
  private exchangeProcesses(): Peer[] {
    return tidy(() => {
      const table = new Float64Array(this.worldSize * 2);
      table[this.rank * 2] = hostId();
      table[this.rank * 2 + 1] = process.pid;
      const t = tensor(table, [table.length]);
      dist.allReduce([t]);
      const all = t.data() as Float64Array;
      return Array.from({ length: this.worldSize }, (_, r) => ({ host: all[r * 2], pid: all[r * 2 + 1] }));
    });
  }

  destroy(): void {
    try { dist.destroyProcessGroup(); } catch { /* the group is gone with the process anyway */ }
  }
}

interface Peer { host: number; pid: number }

const createdKey = (out: string) => `avap/run-created/${path.resolve(out)}`;

/** A number for this machine's name (FNV-1a), so that ranks can tell which of them share it. */
function hostId(): number {
  let h = 0x811c9dc5;
  for (const c of Buffer.from(os.hostname())) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return h;
}

function processGone(pid: number): boolean {
  try {
    // A process killed but not yet reaped by its parent is a zombie: gone for the job.
    return /^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return !isRunning(pid);
  }
}

/**
 * The rank that stopped, when it can be told: the only other rank of a 2-rank job, or the one rank on
 * this machine whose process is gone. Gloo's message names a peer address that does not identify it.
 */
function stoppedRank(env: WorkerEnv, peers: Peer[]): number | null {
  if (env.worldSize === 2) return 1 - env.rank;
  const me = hostId();
  const gone = peers.flatMap((p, r) => (r !== env.rank && p.host === me && p.pid > 0 && processGone(p.pid) ? [r] : []));
  return gone.length === 1 ? gone[0] : null;
}

function isCollectiveFailure(message: string): boolean {
  return /allReduceSumAutograd|gloo|c10d|Connection reset|Connection closed|Socket Timeout|Timed out waiting/i.test(message);
}

function describeFailure(message: string, what: string, env: WorkerEnv, timeoutSeconds: number, peers: Peer[] = []): string {
  const m = message.replace(/^\w+: /, '').replace(/\s*\n[\s\S]*$/, '').replace(/ \(inputs: [^)]*\)$/, '');
  if (/Socket Timeout|timed out|Timeout/i.test(m) && what === 'rendezvous') {
    return `not every rank of WORLD_SIZE ${env.worldSize} reached ${env.masterAddr}:${env.masterPort} within ${timeoutSeconds} s (${m})`;
  }
  if (/Address already in use|bind/i.test(m)) return `${env.masterAddr}:${env.masterPort} is taken, perhaps by another run (${m}); choose another --master-port`;
  if (/Timeout|timed out/i.test(m)) return `no answer from another rank within ${timeoutSeconds} s (--dist-timeout): a rank hung or stopped (${m})`;
  if (/reset by peer|closed|EOF|Broken pipe|Connection refused/i.test(m)) {
    const peer = stoppedRank(env, peers);
    return `${peer === null ? 'another rank' : `rank ${peer}`} stopped (${m})`;
  }
  return m;
}

function firstDifference(a: string, b: string): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const from = Math.max(0, i - 30);
  return `rank 0 has '…${a.slice(from, i + 30)}…', this rank '…${b.slice(from, i + 30)}…'`;
}
