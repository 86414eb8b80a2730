// Where tensors live: the CPU, or one CUDA GPU when the addon's libtorch has CUDA and sees one. What
// libtorch reports is read once; the choice is checked here so that a GPU asked for but absent is one
// line saying what to do, never an abort inside libtorch.
import { UserError } from '../errors';
import { native } from './native';
import type { Device, Tensor } from './tensor';

export const DEVICE_CHOICES = ['auto', 'cpu', 'cuda'] as const;
export type DeviceChoice = (typeof DEVICE_CHOICES)[number];

/** What the addon's libtorch can compute on. */
export interface DeviceSupport {
  /** The libtorch has its CUDA backend (Debian's libtorch-dev does not). */
  cudaBuilt: boolean;
  /** GPUs it sees (0 without CUDA or without a GPU). */
  cudaDevices: number;
  /** The addon has c10d's NCCL process group, for collectives on GPU tensors (else they go through Gloo). */
  ncclBuilt: boolean;
}

export function deviceSupport(): DeviceSupport {
  const cudaBuilt = native.cudaBuilt() as boolean;
  return { cudaBuilt, cudaDevices: cudaBuilt && native.cudaAvailable() ? Number(native.cudaDeviceCount()) : 0, ncclBuilt: native.distNcclBuilt() as boolean };
}

/** The GPU of this process: LOCAL_RANK's when torchrun or avap launch started several on one machine. */
function localGpuIndex(env: NodeJS.ProcessEnv): number {
  const raw = env.LOCAL_RANK;
  if (raw === undefined || raw === '') return 0;
  if (!/^\d+$/.test(raw.trim())) throw new UserError(`LOCAL_RANK must be a non-negative integer, got '${raw}'`);
  return Number(raw.trim());
}

/**
 * --device as a libtorch device: 'cpu', or 'cuda:N' with N this process's GPU. 'auto' is CUDA when
 * libtorch sees a GPU, else the CPU.
 */
export function resolveDevice(choice: DeviceChoice, support: DeviceSupport = deviceSupport(), env: NodeJS.ProcessEnv = process.env): Device {
  if (choice === 'cpu') return 'cpu';
  if (choice === 'auto' && support.cudaDevices === 0) return 'cpu';
  if (!support.cudaBuilt) {
    throw new UserError("--device cuda: this avap's libtorch has no CUDA (Debian's libtorch-dev is CPU-only); rebuild the addon against a CUDA libtorch (LIBTORCH=/path/to/torch bash scripts/setup.sh, docs/getting-started.md) or use --device cpu");
  }
  if (support.cudaDevices === 0) {
    throw new UserError('--device cuda: libtorch has CUDA but sees no GPU (check nvidia-smi and CUDA_VISIBLE_DEVICES) — use --device cpu or auto');
  }
  const index = localGpuIndex(env);
  if (index >= support.cudaDevices) {
    throw new UserError(`--device cuda: LOCAL_RANK ${index} needs GPU ${index}, but libtorch sees ${support.cudaDevices}; start at most ${support.cudaDevices} worker(s) per machine`);
  }
  return `cuda:${index}`;
}

/**
 * `t` on `device`: itself when it is there already (a CPU run makes no copy). A CPU tensor bound for a
 * GPU goes through pinned memory and is copied asynchronously, as a DataLoader with pin_memory=True and
 * .to(device, non_blocking=True) do: the copy overlaps what the host does next, and later work on the
 * GPU's stream waits for it.
 */
export function onDevice(t: Tensor, device: Device): Tensor {
  if (t.device === device) return t;
  return isCuda(device) && t.device === 'cpu' ? t.pinMemory().to(device, { nonBlocking: true }) : t.to(device);
}

export function isCuda(device: Device): boolean {
  return device.startsWith('cuda');
}

/** The GPU index of a 'cuda:N' device (0 for plain 'cuda'). */
export function cudaIndex(device: Device): number {
  const m = /^cuda(?::(\d+))?$/.exec(device);
  if (!m) throw new Error(`not a CUDA device: '${device}'`);
  return Number(m[1] ?? 0);
}

/**
 * Makes runs on `device` repeatable: on a GPU, cuDNN picks deterministic algorithms and does not
 * benchmark (benchmarking may choose differently from run to run), and so does every op that can. The
 * CPU is deterministic already.
 */
export function useDevice(device: Device): void {
  if (!isCuda(device)) return;
  // cuBLAS is deterministic only with a fixed workspace; it reads this when its first handle is made.
  process.env.CUBLAS_WORKSPACE_CONFIG ??= ':4096:8';
  native.setCudnn(true, false);
  // torch.use_deterministic_algorithms(True, warn_only=True): deterministic kernels where libtorch has
  // them, a warning (not an error) for an op that has none.
  native.setDeterministic(true);
}

/** Waits for the GPU's queued work (a timer then measures it); nothing to wait for on the CPU. */
export function synchronize(device: Device): void {
  if (isCuda(device)) native.cudaSynchronize(cudaIndex(device));
}

/** The caching allocator's current and peak bytes on a GPU; null on the CPU or where libtorch does not tell. */
export function gpuMemory(device: Device): { allocated: number; peak: number } | null {
  return isCuda(device) ? native.cudaMemory(cudaIndex(device)) : null;
}

export function resetPeakGpuMemory(device: Device): void {
  if (isCuda(device)) native.cudaResetPeakMemory(cudaIndex(device));
}

/** One line for logs. */
export function describeDevice(choice: DeviceChoice, device: Device): string {
  return `device: ${device}${choice === 'auto' ? (isCuda(device) ? ' (auto: libtorch sees a GPU)' : ' (auto: no GPU visible to libtorch)') : ''}`;
}

/** A CUDA out-of-memory error from libtorch as one line saying what to do. */
export function explainOutOfMemory(err: unknown, what: string): Error {
  const message = (err as Error)?.message ?? String(err);
  if (/CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|cudaErrorMemoryAllocation/i.test(message)) {
    return new UserError(`${what}: the GPU ran out of memory — use a smaller --batch-size or --size, or --device cpu`);
  }
  return err as Error;
}
