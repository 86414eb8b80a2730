// The variables torchrun (and `avap launch`) give each worker, read and checked as torch.distributed's
// env:// rendezvous reads them.
import * as dgram from 'node:dgram';
import * as os from 'node:os';
import { UserError } from '../errors';
import type { GlooDevice } from '../torch/distributed';

export interface WorkerEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** torchrun's agent hosts the store: every rank is a client, under /worker/attempt_<restartCount>. */
  useAgentStore: boolean;
  restartCount: number;
}

export const DEFAULT_MASTER_PORT = 29500;

function intVar(env: NodeJS.ProcessEnv, name: string, min: number, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new UserError(`${name} is not set (torchrun and 'avap launch' set it for every worker)`);
  }
  const v = /^\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!Number.isSafeInteger(v) || v < min) throw new UserError(`${name} must be an integer >= ${min}, got '${raw}'`);
  return v;
}

/**
 * The worker's place in the job, or null when it is not one of several (WORLD_SIZE unset or 1): a
 * single process then takes exactly the path it takes without any launcher.
 */
export function readWorkerEnv(env: NodeJS.ProcessEnv = process.env): WorkerEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') {
    if (env.RANK !== undefined && env.RANK !== '' && env.RANK !== '0') throw new UserError(`RANK is ${env.RANK} but WORLD_SIZE is not set`);
    return null;
  }
  const worldSize = intVar(env, 'WORLD_SIZE', 1);
  if (worldSize === 1) return null;
  const rank = intVar(env, 'RANK', 0);
  if (rank >= worldSize) throw new UserError(`RANK ${rank} is not below WORLD_SIZE ${worldSize}`);
  const localWorldSize = intVar(env, 'LOCAL_WORLD_SIZE', 1, 1);
  const localRank = intVar(env, 'LOCAL_RANK', 0, 0);
  if (localRank >= localWorldSize) throw new UserError(`LOCAL_RANK ${localRank} is not below LOCAL_WORLD_SIZE ${localWorldSize}`);
  if (localWorldSize > worldSize) throw new UserError(`LOCAL_WORLD_SIZE ${localWorldSize} exceeds WORLD_SIZE ${worldSize}`);
  const masterAddr = env.MASTER_ADDR ?? '';
  if (!masterAddr) throw new UserError('MASTER_ADDR is not set: the address of the machine running rank 0 (torchrun and avap launch set it)');
  const masterPort = intVar(env, 'MASTER_PORT', 1, DEFAULT_MASTER_PORT);
  if (masterPort > 65535) throw new UserError(`MASTER_PORT must be a TCP port (1..65535), got ${masterPort}`);
  const agent = env.TORCHELASTIC_USE_AGENT_STORE;
  if (agent !== undefined && agent !== '' && agent !== 'True' && agent !== 'False') throw new UserError(`TORCHELASTIC_USE_AGENT_STORE must be 'True' or 'False', got '${agent}'`);
  return {
    rank, worldSize, localRank, localWorldSize, masterAddr, masterPort,
    useAgentStore: agent === 'True', restartCount: intVar(env, 'TORCHELASTIC_RESTART_COUNT', 0, 0),
  };
}

/**
 * Where Gloo binds: GLOO_SOCKET_IFNAME (as in PyTorch), else the local address the kernel routes to
 * MASTER_ADDR through (a UDP connect sends nothing). The hostname is never resolved: on Debian it
 * often maps to 127.0.1.1, which no other machine can reach.
 */
export async function chooseGlooDevice(masterAddr: string, masterPort: number, env: NodeJS.ProcessEnv = process.env): Promise<GlooDevice> {
  const ifname = env.GLOO_SOCKET_IFNAME;
  if (ifname) {
    const first = ifname.split(',')[0];
    if (!os.networkInterfaces()[first]) throw new UserError(`GLOO_SOCKET_IFNAME: no network interface '${first}' on this machine (there are ${Object.keys(os.networkInterfaces()).join(', ')})`);
    return { interface: first };
  }
  return { address: await localAddressTowards(masterAddr, masterPort) };
}

function localAddressTowards(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.once('error', (err) => {
      socket.close();
      reject(new UserError(`MASTER_ADDR ${host}: no route from this machine (${err.message})`));
    });
    socket.connect(port, host, () => {
      const { address } = socket.address();
      socket.close();
      resolve(address);
    });
  });
}
