import { Command } from 'commander';
import { launch } from '../distributed/launch';
import { DEFAULT_MASTER_PORT } from '../distributed/env';
import { parseIntFlag } from '../util/flags';

interface LaunchFlags { nprocPerNode: string; nnodes: string; nodeRank: string; masterAddr?: string; masterPort: string }

/** `avap launch`: parses flags and starts this machine's workers (torchrun's variables, see docs/distributed.md). */
export function registerLaunchCommand(program: Command): void {
  program
    .command('launch')
    .description("start this machine's workers of a data-parallel run, as torchrun does: avap launch --nproc-per-node 2 -- train --data DIR --out RUN")
    .requiredOption('--nproc-per-node <n>', 'workers on this machine')
    .option('--nnodes <n>', 'machines in the job', '1')
    .option('--node-rank <r>', "this machine's index, 0 for the machine hosting rank 0", '0')
    .option('--master-addr <host>', 'address of the machine with --node-rank 0, as the other machines reach it (default 127.0.0.1)')
    .option('--master-port <p>', 'free TCP port on that machine for the rendezvous', String(DEFAULT_MASTER_PORT))
    .argument('<command...>', "the avap command every worker runs, after '--'")
    .action(async (command: string[], f: LaunchFlags) => {
      process.exitCode = await launch({
        nprocPerNode: parseIntFlag('--nproc-per-node', f.nprocPerNode, 1, 1024),
        nnodes: parseIntFlag('--nnodes', f.nnodes, 1, 65536),
        nodeRank: parseIntFlag('--node-rank', f.nodeRank, 0, 65535),
        masterAddr: f.masterAddr,
        masterPort: parseIntFlag('--master-port', f.masterPort, 1, 65535),
        args: command,
      });
    });
}
