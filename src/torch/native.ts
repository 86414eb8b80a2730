import * as os from 'node:os';
import * as path from 'node:path';

// OpenBLAS (pthreads) and torch's OpenMP pool oversubscribe the cores unless OpenBLAS runs single-threaded;
// measured on a 2-core machine a U-Net step then varied from 0.38 s to 2.2 s. It must be set before the
// shared library is loaded, i.e. before the addon is required below.
process.env.OPENBLAS_NUM_THREADS ??= '1';
// In a worker of several, c10d logs each failed connection before throwing; the failure then reaches
// the user as one line, so the log is kept to fatal messages there (read when libtorch loads): glog's
// setting for libtorch built with glog (Debian's), c10's own for PyTorch 2.x wheels.
if (Number(process.env.WORLD_SIZE) > 1) {
  process.env.GLOG_minloglevel ??= '3';
  process.env.TORCH_CPP_LOG_LEVEL ??= 'FATAL';
}
// libgomp's idle threads spin between parallel regions by default, as in PyTorch. On a dedicated machine
// that is fastest (passive waiting made one-image inference 25% slower: 122 ms against 97 ms). When
// other processes want the cores, spinning threads and the real work preempt each other (a small-net
// step took 8.3 s instead of 0.86 s): set OMP_WAIT_POLICY=PASSIVE there — `npm test` does.

/** The addon's raw functions. Only src/torch/* calls these; everything else uses the typed API. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = Record<string, any>;

/**
 * The addon built by scripts/setup.sh, or AVAP_ADDON's: one built against another libtorch into a
 * folder of its own (scripts/test-libtorch.sh), leaving the default build untouched.
 */
function loadAddon(): NativeAddon {
  const file = process.env.AVAP_ADDON ? path.resolve(process.env.AVAP_ADDON) : path.resolve(__dirname, '../../../native/build/Release/avap_torch.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(file);
  } catch (err) {
    throw new Error(`cannot load the libtorch addon at ${file}: ${(err as Error).message.split('\n')[0]} — run 'bash scripts/setup.sh' to build it`);
  }
}

export const native: NativeAddon = loadAddon();

/**
 * Threads torch uses for one op: every available core, or AVAP_NUM_THREADS up to that (more threads
 * than cores take turns at every synchronisation of the spinning pools and steps crawl). The default
 * shares the cores among the workers torchrun or avap launch started on this machine (LOCAL_WORLD_SIZE).
 */
export function defaultThreadCount(): number {
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const fromEnv = Number(process.env.AVAP_NUM_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) return Math.min(fromEnv, cores);
  const workers = Number(process.env.LOCAL_WORLD_SIZE);
  return Number.isInteger(workers) && workers > 1 ? Math.max(1, Math.floor(cores / workers)) : cores;
}

native.setNumThreads(defaultThreadCount());
