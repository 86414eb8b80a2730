// A method defined here, outside src/: one descriptor and one registerMethod call make it trainable,
// predictable, a row of an experiment's Table II, and its option a flag of `avap train`.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import { main } from '../src/cli/main';
import {
  Method, MethodConfig, MethodDescriptor, Prediction, TrainingBatch,
  broadcastToAnnotators, experiment, losses, predict, registerMethod, torch, train, writeSynthDataset,
} from '../src/index';

// ---- the whole method ------------------------------------------------------------------------
interface TinyConfig extends MethodConfig { inChannels: number; steps: number; gain: number }

class TinyMethod implements Method {
  readonly name = 'tiny';
  readonly encoder = null;
  readonly model: torch.nn.Conv2d;
  constructor(readonly config: TinyConfig) {
    this.model = new torch.nn.Conv2d(config.inChannels, config.structures.length, 1);
  }
  stages() {
    return tiny.plan(this.config).map((p) => ({ ...p, trained: [this.model], frozen: [],
      loss: (b: TrainingBatch) => losses.segmentationLoss(this.model.forward(b.images).mul(this.config.gain), b.meanVotes) }));
  }
  predict(images: torch.Tensor): Prediction {
    return torch.noGrad(() => torch.tidy(() => {
      const calibrated = torch.F.sigmoid(this.model.forward(images).mul(this.config.gain));
      return { calibrated, annotators: broadcastToAnnotators(calibrated, this.config.annotators.length) };
    }));
  }
}

const tiny: MethodDescriptor<TinyConfig> = {
  name: 'tiny', label: 'Tiny', description: 'Tiny: one 1×1 convolution on the image, trained on the mean vote',
  schema: z.object({ method: z.literal('tiny'), structures: z.array(z.string()), annotators: z.array(z.string()), inChannels: z.number(), steps: z.number(), gain: z.number() }),
  options: [{ key: 'gain', flag: '--tiny-gain', description: 'Tiny: logit gain', value: { type: 'number', min: 0.1, max: 10 }, default: 1 }],
  configure: (c, o) => ({ method: 'tiny', structures: c.structures, annotators: c.annotators, inChannels: c.inChannels, steps: c.steps, gain: o.gain as number }),
  plan: (c) => [{ name: 'fit', steps: c.steps, select: 'mean_voting' }],
  build: (c) => new TinyMethod(c),
};
registerMethod(tiny);
// ------------------------------------------------------------------------------------------------

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-plugin-'));
const data = path.join(tmp, 'data');
const ready = writeSynthDataset({ out: data, cases: 10, annotators: 3, size: 32, seed: 0 });
const quiet = { size: 32, batchSize: 4, lr: 1e-2, resume: false, progress: false, print: () => undefined };

test('a registered method trains through the shared trainer and predicts the common layout', async () => {
  await ready;
  const run = path.join(tmp, 'run');
  const events: string[] = [];
  const summary = await train({ ...quiet, data, out: run, method: 'tiny', steps: 2, methodOptions: { gain: 2 }, onEvent: (e) => events.push(e.type) });
  assert.deepEqual(summary.stages.map((s) => [s.name, s.steps, s.select]), [['fit', 2, 'mean_voting']]);
  assert.equal(events.filter((e) => e === 'round').length, 2, 'a stage of 2 steps is 2 rounds');
  assert.ok(events.includes('step') && events.at(-1) === 'done');
  const config = JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8'));
  assert.deepEqual([config.model.method, config.model.gain], ['tiny', 2]);
  const out = path.join(tmp, 'pred');
  const n = await predict({ model: run, input: data, out, overlay: false });
  assert.equal(n, 10);
  assert.deepEqual(fs.readdirSync(path.join(out, 'case000')).sort(), ['cup_annotator1.png', 'cup_annotator2.png', 'cup_annotator3.png', 'cup_mean.png', 'disc_annotator1.png', 'disc_annotator2.png', 'disc_annotator3.png', 'disc_mean.png']);
  await assert.rejects(train({ ...quiet, data, out: path.join(tmp, 'bad'), method: 'tiny', methodOptions: { traceWeight: 1 } }), /method 'tiny' has no option 'traceWeight' \(its options: gain\)/);
  await assert.rejects(train({ ...quiet, data, out: path.join(tmp, 'bad'), method: 'tiny', methodOptions: { gain: 50 } }), /--tiny-gain must be a number in 0.1..10, got 50/);
});

test("a registered method is a row of the experiment's Table II, with its label", async () => {
  await ready;
  const out = path.join(tmp, 'exp');
  const lines: string[] = [];
  const result = await experiment({ data, out, methods: ['tiny', 'mv-unet'], profile: 'quick', steps: 1, size: 32, encoder: 'resnet18', seed: 0, ablations: false, print: (l) => lines.push(l) });
  assert.deepEqual(result.methods.map((m) => [m.id, m.label]), [['mv-unet', 'MV-UNet'], ['tiny', 'Tiny']], 'after the built-in methods');
  const table = fs.readFileSync(path.join(out, 'table2.md'), 'utf8');
  assert.match(table, /\n\| Tiny \| [\d.*]+, [\d.*]+ \|/);
  assert.ok(lines.some((l) => /\[2\/2 tiny\] fit step 1\/1: .*experiment 2\/2 steps, ETA/.test(l)), 'its steps count in the ETA');
});

/** Runs the CLI in this process; returns its exit code and what it wrote to `stream` starting with `prefix` (the test runner reports through stdout too). */
async function cli(args: string[], stream: NodeJS.WriteStream, prefix: string): Promise<{ code: number; text: string }> {
  const write = stream.write;
  let text = '';
  stream.write = ((chunk: unknown, ...rest: never[]) => {
    if (typeof chunk === 'string' && chunk.startsWith(prefix)) text += chunk;
    else write.call(stream, chunk as string, ...rest);
    return true;
  }) as typeof stream.write;
  try {
    return { code: await main(['node', 'avap', ...args]), text };
  } finally {
    stream.write = write;
  }
}

test("a registered method's option is a flag of avap train, refused for other methods", async () => {
  await ready;
  const run = path.join(tmp, 'cli-run');
  const trained = await cli(['train', '--data', data, '--out', run, '--method', 'tiny', '--tiny-gain', '3', '--steps', '1', '--size', '32', '--batch-size', '4'], process.stdout, '{"run"');
  assert.equal(trained.code, 0);
  assert.equal(JSON.parse(trained.text.trim()).stages[0].name, 'fit');
  assert.equal(JSON.parse(fs.readFileSync(path.join(run, 'config.json'), 'utf8')).model.gain, 3);
  const refused = await cli(['train', '--data', data, '--out', path.join(tmp, 'x'), '--method', 'mv-unet', '--tiny-gain', '3'], process.stderr, 'avap:');
  assert.equal(refused.code, 1);
  assert.equal(refused.text, 'avap: --tiny-gain is an option of --method tiny, not of mv-unet\n');
});
