// The encoder registry: entries are data (block type, layers, widths) built by one ResNet class with
// torchvision's names and sizes, and every command that takes --encoder lists the registry's keys.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { UnetBackbone } from '../src/models/backbone';
import { ENCODERS, createEncoder, encoderInfo, encoderNames } from '../src/models/encoders/registry';
import { manualSeed, randn, tidy } from '../src/torch';

// torchvision's parameter counts (25,557,032 for resnet50, …) less the ImageNet classifier fc (in·1000 + 1000).
const TORCHVISION_PARAMS: Record<string, number> = {
  resnet18: 11_689_512 - 513_000,
  resnet34: 21_797_672 - 513_000,
  resnet50: 25_557_032 - 2_049_000,
};

for (const name of Object.keys(TORCHVISION_PARAMS)) {
  test(`${name}: torchvision's parameter count, feature channels and reduction`, () => {
    manualSeed(0);
    const encoder = createEncoder(name);
    assert.equal(encoder.parameterCount(), TORCHVISION_PARAMS[name]);
    assert.deepEqual([...encoder.outChannels], encoderInfo(name).outChannels);
    assert.equal(encoder.reduction, 32);
    tidy(() => {
      const features = encoder.forward(randn([1, 3, 64, 64]));
      assert.deepEqual(features.map((f) => f.shape), encoder.outChannels.map((c, i) => [1, c, 64 / 2 ** (i + 1), 64 / 2 ** (i + 1)]));
    });
    encoder.dispose();
  });
}

test('resnet50 uses Bottleneck blocks under torchvision names (conv3, downsample in every first block)', () => {
  manualSeed(0);
  const encoder = createEncoder('resnet50');
  assert.deepEqual([...encoder.outChannels], [64, 256, 512, 1024, 2048]);
  const keys = Object.keys(encoder.stateDict());
  // 53 convolutions and 53 batch norms (weight, bias, running_mean, running_var, num_batches_tracked).
  assert.equal(keys.length, 53 + 53 * 5);
  for (const k of ['conv1.weight', 'bn1.running_var', 'layer1.0.conv3.weight', 'layer1.0.downsample.0.weight', 'layer1.0.downsample.1.bias', 'layer4.2.bn3.weight']) {
    assert.ok(keys.includes(k), k);
  }
  assert.ok(!keys.includes('layer1.1.downsample.0.weight'), 'only a block that changes the shape projects its residual');
  encoder.dispose();
});

test('a U-Net backbone takes any registered encoder', () => {
  for (const name of encoderNames()) {
    manualSeed(0);
    const backbone = new UnetBackbone({ encoder: name, inChannels: 3, featureChannels: 8 });
    tidy(() => assert.deepEqual(backbone.forward(randn([1, 3, 64, 64])).shape, [1, 8, 64, 64]));
    backbone.dispose();
  }
  assert.throws(() => createEncoder('vgg16'), /unknown encoder 'vgg16' \(known: resnet18, resnet34, resnet50\)/);
});

test('train and experiment list every registered encoder and refuse others in one line', () => {
  const cli = path.join(__dirname, '..', 'src', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  for (const command of ['train', 'experiment']) {
    const help = run(command, '--help').stdout.replace(/\s+/g, ' ');
    for (const name of Object.keys(ENCODERS)) assert.ok(help.includes(name), `${command} --help lists ${name}`);
  }
  const r = run('train', '--data', 'nowhere', '--out', 'nowhere', '--encoder', 'vgg16');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^avap: --encoder must be one of resnet18, resnet34, resnet50, got 'vgg16'\n$/);
});
