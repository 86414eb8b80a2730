import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AVAP, AvapConfig } from '../src/models/avap';
import { DynamicHead } from '../src/models/heads/preference';
import { VariationHead } from '../src/models/heads/variation';
import { UnetBackbone } from '../src/models/backbone';
import { Tensor, cat, manualSeed, noGrad, randn, tidy, saveStateDict, loadStateDict } from '../src/torch';
import { UserError } from '../src/errors';

function config(M: number, structures: string[], encoder = 'resnet18'): AvapConfig {
  return {
    structures,
    annotators: Array.from({ length: M }, (_, k) => `A${k + 1}`),
    backbone: { encoder, inChannels: 3, featureChannels: 16 },
    avm: { hidden: 8, calibration: 'expectation' },
    apm: { hidden: 8, conditioning: 'both' },
  };
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => a.sub(b).abs().amax().item());
}

for (const [M, structures] of [[6, ['disc', 'cup']], [7, ['lesion']]] as const) {
  test(`AVAP output shapes for M = ${M}, K = ${structures.length}`, () => {
    manualSeed(0);
    const model = new AVAP(config(M, [...structures], 'resnet34'));
    tidy(() => {
      const x = randn([2, 3, 64, 64]);
      const out = model.forward(x, [[0, 2], [1, 3]]);
      assert.equal(out.variation.length, structures.length);
      for (const v of out.variation) assert.deepEqual(v.shape, [2, M + 1, 64, 64]);
      assert.deepEqual(out.preference!.shape, [2, 2, structures.length, 64, 64]);
      model.eval();
      const p = model.predict(x);
      assert.deepEqual(p.calibrated.shape, [2, structures.length, 64, 64]);
      assert.deepEqual(p.annotators.shape, [2, M, structures.length, 64, 64]);
      const cal = p.calibrated.data() as Float32Array;
      assert.ok(cal.every((v) => v >= 0 && v <= 1), 'calibrated map lies in [0, 1]');
      const argmax = model.predict(x, 'argmax').calibrated.data() as Float32Array;
      assert.ok(argmax.every((v) => Number.isInteger(Math.round(v * M)) && Math.abs(v * M - Math.round(v * M)) < 1e-5), 'argmax calibration is a count / M');
    });
    model.dispose();
  });
}

test('the backbone rejects sizes it cannot take and says which work', () => {
  const backbone = new UnetBackbone({ encoder: 'resnet18', inChannels: 3, featureChannels: 8 });
  tidy(() => {
    assert.throws(() => backbone.forward(randn([1, 3, 100, 96])), (e: Error) => e instanceof UserError && /multiples of 32 \(e\.g\. 96×96/.test(e.message));
    assert.throws(() => backbone.forward(randn([1, 1, 64, 64])), /1 channels, the model was built for 3/);
    assert.deepEqual(backbone.forward(randn([1, 3, 64, 96])).shape, [1, 8, 64, 96]);
  });
  backbone.dispose();
});

/** The controller as training leaves it: its last layer's filters no longer zero. */
function randomController(head: DynamicHead): DynamicHead {
  noGrad(() => { for (const p of head.controller.parameters()) p.copy_(randn(p.shape).mul(0.2)); });
  return head;
}

test('an untrained APM predicts the consensus for every annotator: σ(logit of the expected agreement)', () => {
  manualSeed(7);
  const model = new AVAP(config(4, ['disc', 'cup'])).eval();
  tidy(() => {
    const p = model.predict(randn([2, 3, 64, 64]));
    const consensus = p.calibrated.clamp(1e-4, 1 - 1e-4).unsqueeze(1).expand(p.annotators.shape);
    assert.ok(maxAbsDiff(p.annotators, consensus) < 1e-5, `max difference ${maxAbsDiff(p.annotators, consensus)}`);
  });
  randomController(model.apm);
  tidy(() => {
    const p = model.predict(randn([1, 3, 64, 64]));
    const consensus = p.calibrated.clamp(1e-4, 1 - 1e-4).unsqueeze(1).expand(p.annotators.shape);
    assert.ok(maxAbsDiff(p.annotators, consensus) > 1e-3, 'a trained APM departs from the consensus');
  });
  model.dispose();
});

test('the grouped dynamic convolution equals a per-sample, per-annotator loop', () => {
  manualSeed(1);
  const head = randomController(new DynamicHead({ inChannels: 12, annotators: 5, structures: 2, hidden: 8 }));
  // Batch norm in eval mode is per-sample, so batching must not change a single value.
  head.eval();
  noGrad(() => tidy(() => {
    // Give the BN layers non-trivial statistics so the check covers them.
    for (const [, t] of head.namedBuffers()) if (t.dtype === 'float32') t.copy_(randn(t.shape).abs().add(0.5));
    const features = randn([3, 12, 16, 16]);
    const annotators = [[0, 4], [2, 2], [1, 3]];
    const grouped = head.forward(features, annotators);
    const loop = cat(annotators.map((ks, b) => cat(ks.map((k) => head.forward(features.narrow(0, b, 1), [[k]])), 1)), 0);
    assert.deepEqual(grouped.shape, [3, 2, 2, 16, 16]);
    assert.ok(maxAbsDiff(grouped, loop) < 1e-5, `max difference ${maxAbsDiff(grouped, loop)}`);
    // Different annotators get different filters: the code matters.
    assert.ok(maxAbsDiff(grouped.select(0, 0).select(0, 0), grouped.select(0, 0).select(0, 1)) > 1e-4);
  }));
  head.dispose();
});

test('conditioning on the code only ignores the image content; on features only ignores the annotator', () => {
  for (const conditioning of ['code', 'features'] as const) {
    manualSeed(2);
    const head = randomController(new DynamicHead({ inChannels: 4, annotators: 3, structures: 1, conditioning })).eval();
    noGrad(() => tidy(() => {
      const f = randn([1, 4, 8, 8]);
      const a = head.forward(f, [[0, 1]]);
      const sameForAnnotators = maxAbsDiff(a.select(1, 0), a.select(1, 1)) < 1e-6;
      assert.equal(sameForAnnotators, conditioning === 'features');
    }));
    head.dispose();
  }
});

test('a checkpoint round trip reproduces predictions exactly', () => {
  manualSeed(3);
  const a = new AVAP(config(3, ['disc', 'cup']));
  manualSeed(4);
  const b = new AVAP(config(3, ['disc', 'cup']));
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'avap-ckpt-')), 'model.safetensors');
  // Train-mode forward passes move the batch-norm statistics away from their initial values first.
  tidy(() => void a.forward(randn([2, 3, 64, 64]), [[0], [1]]));
  saveStateDict(file, a.stateDict());
  tidy(() => void b.loadStateDict(loadStateDict(file).state));
  a.eval();
  b.eval();
  tidy(() => {
    const x = randn([2, 3, 64, 64]);
    const pa = a.predict(x);
    const pb = b.predict(x);
    assert.equal(maxAbsDiff(pa.calibrated, pb.calibrated), 0);
    assert.equal(maxAbsDiff(pa.annotators, pb.annotators), 0);
  });
  a.dispose();
  b.dispose();
});

test('--pretrained loads torchvision-named ResNet weights into the encoder (fc ignored) and rejects incomplete files', async () => {
  const { tensor: makeTensor } = await import('../src/torch');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-pretrained-'));
  manualSeed(5);
  const source = new AVAP(config(2, ['disc']));
  // torchvision's names: conv1.weight, layer1.0.conv1.weight, …, plus a classifier the U-Net does not use.
  const torchvisionStyle = { ...source.backbone.encoder.stateDict(), 'fc.weight': makeTensor(new Float32Array(4), [2, 2]) };
  const file = path.join(dir, 'resnet18.safetensors');
  saveStateDict(file, torchvisionStyle);
  manualSeed(6);
  const target = new AVAP(config(2, ['disc']));
  target.backbone.encoder.loadPretrained(file);
  const a = source.backbone.encoder.stateDict();
  const b = target.backbone.encoder.stateDict();
  for (const k of Object.keys(a)) assert.equal(maxAbsDiff(a[k].double(), b[k].double()), 0, k);
  // The decoder and heads keep their own initialisation.
  assert.ok(maxAbsDiff(source.backbone.decoder.up5.weight, target.backbone.decoder.up5.weight) > 0);

  const partial = path.join(dir, 'partial.safetensors');
  const { 'layer4.1.bn2.weight': _dropped, ...rest } = source.backbone.encoder.stateDict();
  void _dropped;
  saveStateDict(partial, rest);
  assert.throws(() => target.backbone.encoder.loadPretrained(partial), (e: Error) => e instanceof UserError && /missing keys \(1\): layer4\.1\.bn2\.weight/.test(e.message));
  source.dispose();
  target.dispose();
});

test('the AVM computes in channels-last memory and gives what the branches give on NCHW features', () => {
  manualSeed(8);
  const head = new VariationHead(16, 2, 3, 8).eval();
  noGrad(() => tidy(() => {
    for (const [, t] of head.namedBuffers()) if (t.dtype === 'float32') t.copy_(randn(t.shape).abs().add(0.5));
    const features = randn([2, 16, 32, 32]);
    const nhwc = head.forward(features);
    head.branches.items.forEach((b, s) => {
      const nchw = b.forward(features);
      assert.deepEqual(nhwc[s].shape, [2, 4, 32, 32]);
      assert.ok(maxAbsDiff(nhwc[s], nchw) < 1e-5, `structure ${s}: max difference ${maxAbsDiff(nhwc[s], nchw)}`);
    });
  }));
  head.dispose();
});

test('predicting a subset of annotators runs the head for them only and gives their rows of the full prediction', () => {
  manualSeed(3);
  const model = new AVAP(config(5, ['disc', 'cup'])).eval();
  tidy(() => {
    const x = randn([2, 3, 64, 64]);
    const all = model.predict(x);
    const some = model.predict(x, undefined, [3, 0]);
    assert.deepEqual(some.annotators.shape, [2, 2, 2, 64, 64]);
    assert.ok(maxAbsDiff(some.calibrated, all.calibrated) === 0);
    assert.ok(maxAbsDiff(some.annotators.select(1, 0), all.annotators.select(1, 3)) < 1e-6);
    assert.ok(maxAbsDiff(some.annotators.select(1, 1), all.annotators.select(1, 0)) < 1e-6);
  });
  model.dispose();
});
