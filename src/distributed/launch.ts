// `avap launch`: torchrun's job for users without PyTorch. It starts this machine's workers with the
// variables torchrun gives them, prefixes their output with their rank, passes Ctrl-C and SIGTERM on,
// and as soon as one worker fails ends the others and returns a failure.
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';
import { UserError } from '../errors';
import { DEFAULT_MASTER_PORT } from './env';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** The avap command each worker runs, e.g. ['train', '--data', …]. */
  args: string[];
  /** Where workers' prefixed lines go (default: this process's stdout and stderr). */
  write?: (line: string, stream: 'stdout' | 'stderr') => void;
  /** Seconds the other workers get to stop after SIGTERM before SIGKILL. */
  graceSeconds?: number;
}

/** Runs the workers; resolves with 0 when all succeeded, else the first failure's exit status. */
export function launch(o: LaunchOptions): Promise<number> {
  const nnodes = o.nnodes ?? 1;
  const nodeRank = o.nodeRank ?? 0;
  if (nodeRank >= nnodes) throw new UserError(`--node-rank ${nodeRank} must be below --nnodes ${nnodes}`);
  if (nnodes > 1 && !o.masterAddr) throw new UserError('--master-addr is required with --nnodes above 1: the address of the machine with --node-rank 0');
  if (o.args.length === 0) throw new UserError("avap launch needs the command each worker runs after '--', e.g. -- train --data DIR --out RUN");
  const worldSize = nnodes * o.nprocPerNode;
  const write = o.write ?? ((line, stream) => (stream === 'stdout' ? process.stdout : process.stderr).write(line + '\n'));
  const main = path.resolve(__dirname, '../cli/main.js');
  const workers: { rank: number; child: ChildProcess; done: boolean }[] = [];
  for (let local = 0; local < o.nprocPerNode; local++) {
    const rank = nodeRank * o.nprocPerNode + local;
    const env = {
      ...process.env,
      RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(o.nprocPerNode),
      GROUP_RANK: String(nodeRank), ROLE_RANK: String(rank), ROLE_WORLD_SIZE: String(worldSize),
      MASTER_ADDR: o.masterAddr ?? '127.0.0.1', MASTER_PORT: String(o.masterPort ?? DEFAULT_MASTER_PORT),
    };
    // A worker of its own process group: a Ctrl-C in the terminal reaches the launcher alone, which passes it on once.
    const child = spawn(process.execPath, [main, ...o.args], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    for (const stream of ['stdout', 'stderr'] as const) {
      readline.createInterface({ input: child[stream]! }).on('line', (line) => write(`[rank ${rank}] ${line}`, stream));
    }
    workers.push({ rank, child, done: false });
  }
  let ending = false;
  const endAll = (signal: NodeJS.Signals) => {
    for (const w of workers) if (!w.done) w.child.kill(signal);
  };
  const forward = (signal: NodeJS.Signals) => () => {
    ending = true;
    endAll(signal);
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  return new Promise((resolve) => {
    let status = 0;
    let killTimer: NodeJS.Timeout | null = null;
    for (const w of workers) {
      w.child.on('exit', (code, signal) => {
        w.done = true;
        const failed = code !== 0;
        if (failed && status === 0) {
          status = code ?? 128 + signalNumber(signal);
          if (!ending) {
            write(`avap launch: rank ${w.rank} ${signal ? `was killed by ${signal}` : `exited with status ${code}`}; ending the other ranks`, 'stderr');
            ending = true;
            endAll('SIGTERM');
            killTimer = setTimeout(() => endAll('SIGKILL'), (o.graceSeconds ?? 10) * 1000);
          }
        }
        if (workers.every((x) => x.done)) {
          if (killTimer) clearTimeout(killTimer);
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          resolve(status);
        }
      });
    }
  });
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const numbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15, SIGABRT: 6 };
  return signal ? numbers[signal] ?? 1 : 1;
}
