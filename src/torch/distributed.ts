// torch.distributed's collectives over the addon's one default process group (c10d): Gloo for CPU
// tensors and, when this process trains on a GPU, NCCL for GPU tensors, as init_process_group's
// "cpu:gloo,cuda:nccl". Every call blocks until the collective is done on every rank; a failure (a
// peer gone, a timeout) throws an Error whose message is c10d's, prefixed with the collective's name.
import { native } from './native';
import { Tensor } from './tensor';

/** Where the Gloo transport binds: a network interface (GLOO_SOCKET_IFNAME) or a local address. */
export type GlooDevice = { interface: string } | { address: string };

export interface InitOptions {
  /** The TCPStore's host and port (MASTER_ADDR, MASTER_PORT). */
  host: string;
  port: number;
  rank: number;
  worldSize: number;
  /** This process hosts the store (rank 0, unless torchrun's agent does). */
  isStoreServer: boolean;
  /** Rendezvous and collective timeout. */
  timeoutMs: number;
  /** Key prefix inside the store ('' for none; '/worker/attempt_<n>' under torchrun's agent store). */
  prefix: string;
  device: GlooDevice;
  /** This process's GPU index when it computes on a GPU: its tensors' collectives then use NCCL. */
  gpu: number | null;
}

/**
 * Joins the group; returns the backend that GPU tensors' collectives use: 'nccl', or 'gloo' (by way
 * of a CPU copy) when the addon was built without NCCL or the process computes on the CPU.
 */
export function initProcessGroup(o: InitOptions): 'nccl' | 'gloo' {
  const [kind, name] = 'interface' in o.device ? ['interface', o.device.interface] : ['address', o.device.address];
  return native.distInit(o.host, o.port, o.rank, o.worldSize, o.isStoreServer, Math.round(o.timeoutMs), o.prefix, kind, name, o.gpu ?? -1) as 'nccl' | 'gloo';
}

export function destroyProcessGroup(): void {
  native.distDestroy();
}

/**
 * Adds `delta` to the counter at `key` of the job's store (without the attempt's prefix; created at 0)
 * and returns its value: `storeAdd(key, 0)` reads it.
 */
export function storeAdd(key: string, delta: number): number {
  return native.distStoreAdd(key, delta) as number;
}

/** Sums each tensor over the ranks, in place (flattened into buckets). */
export function allReduce(tensors: Tensor[]): void {
  if (tensors.length) native.distAllReduce(tensors.map((t) => t.handle));
}

/** Rank 0's values into every rank's tensors, in place. */
export function broadcast(tensors: Tensor[]): void {
  if (tensors.length) native.distBroadcast(tensors.map((t) => t.handle));
}

export function barrier(): void {
  native.distBarrier();
}

/**
 * DDP's gradient reduction after backward: each parameter's gradient becomes the mean over the ranks;
 * a parameter without a gradient on every rank keeps none.
 */
export function averageGradients(params: Tensor[]): void {
  if (params.length) native.distAverageGradients(params.map((p) => p.handle));
}

/**
 * Seconds spent in allReduceSum's collectives (forward and backward, waiting for the other ranks
 * included) and their number since the previous call.
 */
export function takeAllReduceSumTimes(): { seconds: number; collectives: number } {
  const [seconds, collectives] = native.distTakeStatisticsTimes() as [number, number];
  return { seconds, collectives };
}

/** The sum over the ranks, differentiable: backward sums the gradient over the ranks too. */
export function allReduceSum(t: Tensor): Tensor {
  return new Tensor(native.allReduceSumAutograd(t.handle));
}
