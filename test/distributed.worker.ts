// One rank of the gradient-equivalence check in distributed.test.ts (or, with WORLD_SIZE unset, the
// one-process reference): a small conv + batch-norm net's gradients on its rows of a fixed batch,
// written as JSON to the file named by argv[2] (rank 0 only).
import * as fs from 'node:fs';
import { ProcessGroup, readWorkerEnv } from '../src/distributed';
import { manualSeed, nn, randn, tidy } from '../src/torch';

async function main(): Promise<void> {
  const out = process.argv[2];
  const env = readWorkerEnv();
  const group = env ? await ProcessGroup.init(env, 30) : null;
  manualSeed(7);
  const conv = new nn.Conv2d(3, 4, 3, { padding: 1 });
  const bn = new nn.BatchNorm2d(4);
  const head = new nn.Conv2d(4, 1, 1);
  const unused = new nn.Linear(2, 2);
  const x = randn([8, 3, 6, 6]);
  const target = randn([8, 1, 6, 6]);
  // Every rank builds the same weights from the seed; rank 0's are broadcast anyway, as in training.
  const params = [...conv.parameters(), ...bn.parameters(), ...head.parameters(), ...unused.parameters()];
  if (group) {
    nn.convertSyncBatchNorm(bn);
    group.broadcastState(params);
  }
  const W = group?.worldSize ?? 1;
  const rows = 8 / W;
  const first = (group?.rank ?? 0) * rows;
  tidy(() => {
    const xi = x.narrow(0, first, rows);
    const ti = target.narrow(0, first, rows);
    const y = head.forward(bn.forward(conv.forward(xi)).relu());
    y.sub(ti).square().mean().backward();
  });
  if (group) group.averageGradients(params);
  const grads = params.map((p) => (p.grad ? Array.from(p.grad.data() as Float32Array) : null));
  const stats = [Array.from(bn.runningMean.data() as Float32Array), Array.from(bn.runningVar.data() as Float32Array)];
  if (!group || group.isWriter) fs.writeFileSync(out, JSON.stringify({ grads, stats }));
  group?.barrier();
  group?.destroy();
}

// The test runner that runs every file of dist/test/ starts this one bare, with no output file: nothing to do.
if (process.argv[2] !== undefined) {
  main().catch((err) => {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(1);
  });
}
