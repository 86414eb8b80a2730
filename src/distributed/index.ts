// Data-parallel training over several processes or machines with PyTorch's c10d (Gloo).
export { readWorkerEnv, chooseGlooDevice, DEFAULT_MASTER_PORT } from './env';
export type { WorkerEnv } from './env';
export { ProcessGroup, DEFAULT_DIST_TIMEOUT_SECONDS } from './group';
