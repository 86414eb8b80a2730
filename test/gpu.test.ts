// On a CUDA GPU (scripts/gpu-check.sh runs this with a CUDA libtorch): ops, autograd and modules give the
// CPU's numbers, bf16 autocast runs on the GPU, a method trains, predicts and resumes bit-identically
// there, and running out of GPU memory is one line. Without a GPU every test is skipped, saying why.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../src/errors';
import { writeSynthDataset } from '../src/data/synth';
import {
  F, Tensor, autocast, deviceSupport, distributed as dist, explainOutOfMemory, gpuMemory, manualSeed, nn, optim, randn, resetPeakGpuMemory, synchronize, tidy, zeros,
} from '../src/torch';
import { assertClose, freePort, seq, values } from './torch-helpers';
import { avap, ok } from './cli-run';
import { loadRun } from '../src/train/loadRun';
import { torchEngine } from '../src/predict/engine';
import { tmpDir } from './data-fixtures';

const support = deviceSupport();
const NO_GPU = support.cudaDevices > 0 ? false : support.cudaBuilt ? 'libtorch has CUDA but sees no GPU' : "this avap's libtorch has no CUDA (GPU checks: scripts/gpu-check.sh)";
const GPU = 'cuda:0';
const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');
const t = (name: string, fn: () => void | Promise<void>) => test(name, { skip: NO_GPU }, fn);

/** fn's result computed on the CPU and on the GPU, read back. */
function both(fn: (device: string) => Tensor): [number[], number[]] {
  return [tidy(() => values(fn('cpu'))), tidy(() => values(fn(GPU)))];
}

t('ops on the GPU give the CPU\'s values: conv2d, matmul, softmax, pooling, bilinear resize, a loss', () => {
  const cases: Record<string, (d: string) => Tensor> = {
    conv2d: (d) => F.conv2d(seq([2, 3, 9, 9]).to(d), seq([4, 3, 3, 3], 1).to(d), seq([4], 2).to(d), { padding: 1, stride: 2 }),
    matmul: (d) => seq([5, 7]).to(d).matmul(seq([7, 3], 3).to(d)),
    softmax: (d) => F.softmax(seq([3, 6]).to(d), 1),
    maxPool2d: (d) => F.maxPool2d(seq([1, 2, 8, 8]).to(d), 2),
    interpolate: (d) => F.interpolate(seq([1, 2, 5, 5]).to(d), [9, 9], 'bilinear'),
    bce: (d) => F.binaryCrossEntropyWithLogits(seq([4, 4]).to(d), seq([4, 4], 5).sigmoid().to(d)),
  };
  for (const [name, fn] of Object.entries(cases)) {
    const [cpu, gpu] = both(fn);
    assertClose(gpu, cpu, 1e-4, 1e-4, name);
  }
  assert.equal(tidy(() => seq([2]).to(GPU).device), GPU);
});

t('autograd on the GPU: a conv-BN-ReLU stack\'s gradients equal the CPU\'s', () => {
  const grads = (device: string) => tidy(() => {
    manualSeed(0);
    const net = new nn.Sequential(new nn.Conv2d(3, 8, 3, { padding: 1 }), new nn.BatchNorm2d(8), new nn.ReLU());
    net.to(device);
    assert.equal(net.parameterDevice(), device);
    net.forward(seq([2, 3, 6, 6]).to(device)).square().mean().backward();
    const g = net.parameters().map((p) => values(p.grad!));
    net.dispose();
    return g;
  });
  const cpu = grads('cpu'), gpu = grads(GPU);
  cpu.forEach((g, i) => assertClose(gpu[i], g, 1e-4, 1e-3, `parameter ${i}`));
});

t('an optimiser steps parameters that live on the GPU, and its state round-trips there', () => tidy(() => {
  const w = randn([4, 4]).to(GPU).requiresGrad_(true);
  const opt = new optim.Adam([w], { lr: 0.1 });
  const before = values(w);
  w.square().sum().backward();
  opt.step();
  assert.notDeepEqual(values(w), before);
  const again = new optim.Adam([w], { lr: 0.1 });
  again.loadState(opt.stateBytes());
}));

t('bf16 autocast on the GPU: convolutions compute in bfloat16, float32 after the region', () => tidy(() => {
  const x = randn([1, 2, 5, 5]).to(GPU), w = randn([3, 2, 3, 3]).to(GPU);
  assert.equal(autocast('bfloat16', () => F.conv2d(x, w).dtype, GPU), 'bfloat16');
  assert.equal(F.conv2d(x, w).dtype, 'float32');
}));

t('memory figures come from the caching allocator, and running out of GPU memory is one line', () => {
  resetPeakGpuMemory(GPU);
  tidy(() => void zeros([1024, 1024], { device: GPU }).sum().item());
  synchronize(GPU);
  const m = gpuMemory(GPU);
  if (m) assert.ok(m.peak >= 4 * 1024 * 1024, `peak ${m.peak} bytes covers the 4 MiB tensor`);
  let caught: unknown = null;
  try {
    tidy(() => zeros([1 << 20, 1 << 20, 64], { device: GPU })); // 256 TiB of float32
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, 'the allocation failed');
  const explained = explainOutOfMemory(caught, 'train');
  assert.ok(explained instanceof UserError, `an out-of-memory error, got: ${(caught as Error).message.split('\n')[0]}`);
});

t('avap train and predict --device cuda: a run on the GPU, its predictions close to the CPU\'s', async () => {
  const dir = tmpDir('gpu');
  const data = path.join(dir, 'data');
  await writeSynthDataset({ out: data, cases: 6, size: 64, seed: 0, train: 6 });
  const common = ['--data', data, '--size', '64', '--encoder', 'resnet18', '--batch-size', '2', '--steps', '4', '--preference-steps', '2', '--val-fraction', '0'];
  const trained = avap('train', ...common, '--out', path.join(dir, 'run'), '--device', 'cuda', '--precision', 'fp32');
  ok(trained);
  assert.match(trained.stderr, /device: cuda:0/);
  ok(avap('predict', '--model', path.join(dir, 'run'), '--input', path.join(data, 'images'), '--out', path.join(dir, 'pred-cuda'), '--device', 'cuda', '--no-overlay'));
  assert.equal(fs.readdirSync(path.join(dir, 'pred-cuda')).filter((c) => fs.statSync(path.join(dir, 'pred-cuda', c)).isDirectory()).length, 6);
  // The same weights on either device: every calibrated and per-annotator probability within 1e-3.
  const images = tidy(() => randn([3, 3, 64, 64]).data() as Float32Array);
  const maps = async (device: string) => {
    const loaded = loadRun(path.join(dir, 'run'), 'fp32', device);
    const engine = torchEngine(loaded);
    const out = await engine.predict(images, 3);
    const read = [0, 1, 2].flatMap((i) => engine.structures.flatMap((_, s) =>
      [...out.calibrated(i, s), ...engine.annotators.flatMap((k) => [...out.annotator(i, k, s)])]));
    loaded.method.model.dispose();
    return read;
  };
  const [cpu, gpu] = [await maps('cpu'), await maps(GPU)];
  assert.equal(gpu.length, cpu.length);
  const worst = cpu.reduce((m, v, i) => Math.max(m, Math.abs(v - gpu[i])), 0);
  assert.ok(worst <= 1e-3, `largest difference between the CPU's and the GPU's probabilities: ${worst}`);
  const bf16 = avap('train', ...common, '--out', path.join(dir, 'run-bf16'), '--device', 'cuda');
  ok(bf16);
  assert.match(bf16.stderr, /precision: bf16 .*\(auto: a CUDA GPU\)/);
});

t('a run killed on the GPU and resumed there ends bit-identical to an uninterrupted one', async () => {
  const dir = tmpDir('gpu-resume');
  const data = path.join(dir, 'data');
  await writeSynthDataset({ out: data, cases: 6, size: 64, seed: 1, train: 6 });
  const args = (out: string) => ['train', '--data', data, '--out', out, '--size', '64', '--encoder', 'resnet18', '--batch-size', '2', '--steps', '20', '--preference-steps', '4',
    '--val-fraction', '0', '--device', 'cuda', '--precision', 'fp32', '--seed', '3'];
  const env = { ...process.env, AVAP_CHECKPOINT_SECONDS: '0' };
  ok(avap(...args(path.join(dir, 'reference'))));
  const killed = path.join(dir, 'killed');
  const state = path.join(killed, 'checkpoint', 'state.json');
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args(killed)], { stdio: 'ignore', env });
    const timer = setInterval(() => { if (fs.existsSync(state)) child.kill('SIGKILL'); }, 5);
    child.on('exit', () => { clearInterval(timer); resolve(); });
    child.on('error', reject);
  });
  assert.ok(fs.existsSync(state), 'the run was killed after its first checkpoint');
  ok(avap(...args(killed), '--resume'));
  const same = fs.readFileSync(path.join(killed, 'model.safetensors')).equals(fs.readFileSync(path.join(dir, 'reference', 'model.safetensors')));
  assert.ok(same, 'model.safetensors is bit-identical to the uninterrupted run (cuDNN deterministic, no benchmarking)');
});

test('c10d on the GPU: NCCL reduces and broadcasts GPU tensors in place, Gloo the CPU ones, in one call', {
  skip: NO_GPU || (support.ncclBuilt ? false : "this addon was built without NCCL's headers (native/libtorch.js)"),
}, async () => {
  const port = await freePort();
  const backend = dist.initProcessGroup({
    host: '127.0.0.1', port, rank: 0, worldSize: 1, isStoreServer: true, timeoutMs: 60_000, prefix: '', device: { address: '127.0.0.1' }, gpu: 0,
  });
  try {
    assert.equal(backend, 'nccl');
    tidy(() => {
      const onGpu = seq([3, 4]).to(GPU), onCpu = seq([5], 2);
      dist.allReduce([onGpu, onCpu]);
      dist.broadcast([onCpu, onGpu]);
      // One rank: the sum over the ranks is the tensor itself, wherever it lives.
      assert.deepEqual(values(onGpu), values(seq([3, 4])));
      assert.deepEqual(values(onCpu), values(seq([5], 2)));
      assert.equal(onGpu.device, GPU);
      const w = seq([4], 1).to(GPU).requiresGrad_();
      const summed = dist.allReduceSum(w.square());
      summed.sum().backward();
      assert.deepEqual(values(w.grad!), values(seq([4], 1).mul(2)));
      dist.averageGradients([w]);
      assert.deepEqual(values(w.grad!), values(seq([4], 1).mul(2)));
      dist.barrier();
    });
  } finally {
    dist.destroyProcessGroup();
  }
});
