// --device: which device a choice resolves to for what libtorch reports, the one-line refusals, and a
// module moved in place. On a machine without a GPU the CLI's refusal of --device cuda is checked as
// the user meets it.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../src/errors';
import {
  DeviceSupport, deviceSupport, describeDevice, distributed as dist, ones, explainOutOfMemory, gpuMemory, nn, onDevice, randn, resolveDevice, synchronize, tensor, tidy,
} from '../src/torch';
import { native } from '../src/torch/native';
import { avap } from './cli-run';
import { freePort } from './torch-helpers';
import { smallNativeSpec, tmpDir, writeNative } from './data-fixtures';

const cpuOnly: DeviceSupport = { cudaBuilt: false, cudaDevices: 0, ncclBuilt: false };
const noGpu: DeviceSupport = { cudaBuilt: true, cudaDevices: 0, ncclBuilt: true };
const twoGpus: DeviceSupport = { cudaBuilt: true, cudaDevices: 2, ncclBuilt: true };
const HERE = deviceSupport();
const HAS_GPU = HERE.cudaDevices > 0 ? 'libtorch sees a GPU here, so --device cuda is not refused' : false;

test('resolveDevice: cpu stays cpu, auto is cuda only where libtorch sees a GPU, cuda takes LOCAL_RANK\'s GPU', () => {
  for (const support of [cpuOnly, noGpu, twoGpus]) assert.equal(resolveDevice('cpu', support, {}), 'cpu');
  assert.equal(resolveDevice('auto', cpuOnly, {}), 'cpu');
  assert.equal(resolveDevice('auto', noGpu, {}), 'cpu');
  assert.equal(resolveDevice('auto', twoGpus, {}), 'cuda:0');
  assert.equal(resolveDevice('cuda', twoGpus, { LOCAL_RANK: '1' }), 'cuda:1');
  assert.equal(resolveDevice('auto', twoGpus, { LOCAL_RANK: '1' }), 'cuda:1');
});

test('resolveDevice: a GPU asked for but unusable is one line saying what to do', () => {
  const refused = (support: DeviceSupport, env: NodeJS.ProcessEnv, pattern: RegExp) =>
    assert.throws(() => resolveDevice('cuda', support, env), (e: Error) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n'));
  refused(cpuOnly, {}, /^--device cuda: this avap's libtorch has no CUDA .*LIBTORCH=.* or use --device cpu$/);
  refused(noGpu, {}, /^--device cuda: libtorch has CUDA but sees no GPU .* use --device cpu or auto$/);
  refused(twoGpus, { LOCAL_RANK: '2' }, /LOCAL_RANK 2 needs GPU 2, but libtorch sees 2; start at most 2 worker\(s\) per machine/);
  refused(twoGpus, { LOCAL_RANK: 'one' }, /^LOCAL_RANK must be a non-negative integer, got 'one'$/);
});

test('what this libtorch reports agrees with itself, and the CPU needs no synchronisation or memory figures', () => {
  // CUDA is built in exactly when libtorch's CUDA half was linked and loaded, GPU or not.
  assert.equal(HERE.cudaBuilt, fs.readFileSync('/proc/self/maps', 'utf8').includes('libtorch_cuda.so'));
  assert.ok(!HERE.ncclBuilt || HERE.cudaBuilt, 'NCCL only with CUDA');
  assert.ok(HERE.cudaDevices === 0 || HERE.cudaBuilt, 'GPUs only with CUDA');
  assert.equal(HERE.cudaDevices > 0, native.cudaAvailable());
  assert.equal(resolveDevice('auto'), HERE.cudaDevices > 0 ? 'cuda:0' : 'cpu');
  assert.equal(gpuMemory('cpu'), null);
  synchronize('cpu');
  native.setCudnn(true, false); // the flags exist in every build; without cuDNN they change nothing
  assert.equal(describeDevice('auto', 'cpu'), 'device: cpu (auto: no GPU visible to libtorch)');
  assert.equal(describeDevice('cuda', 'cuda:1'), 'device: cuda:1');
});

test('Module.to moves parameters and buffers in place: holders keep the same tensors, gradients still flow', () => tidy(() => {
  const bn = new nn.BatchNorm2d(3);
  const before = bn.parameters();
  assert.equal(bn.to('cpu'), bn);
  assert.deepEqual(bn.parameters(), before, 'the same tensor objects');
  assert.equal(bn.parameterDevice(), 'cpu');
  assert.equal(new nn.ReLU().parameterDevice(), 'cpu', 'a module without parameters');
  const w = bn.parameters()[0];
  w.setData_(tensor(new Float32Array([2, 3, 4]), [3]));
  assert.deepEqual([...w.data() as Float32Array], [2, 3, 4]);
  assert.equal(w.requiresGrad, true, 'still a parameter');
  bn.forward(randn([2, 3, 4, 4])).sum().backward();
  assert.deepEqual(w.grad!.shape, [3]);
  const x = randn([2]);
  assert.equal(onDevice(x, 'cpu'), x, 'no copy where the tensor already is');
  bn.dispose();
}));

test('a CUDA out-of-memory error becomes one line saying what to do; other errors pass through', () => {
  const oom = explainOutOfMemory(new Error('conv2d: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.2 GiB total)'), 'train');
  assert.ok(oom instanceof UserError);
  assert.equal(oom.message, 'train: the GPU ran out of memory — use a smaller --batch-size or --size, or --device cpu');
  const other = new Error('shape mismatch');
  assert.equal(explainOutOfMemory(other, 'train'), other);
});

test('--device cuda without a usable GPU: train, predict and evaluate each say so in one line and exit non-zero', { skip: HAS_GPU }, async () => {
  const dir = tmpDir('device');
  const data = await writeNative(path.join(dir, 'data'), smallNativeSpec());
  const expected = HERE.cudaBuilt ? /--device cuda: libtorch has CUDA but sees no GPU/ : /--device cuda: this avap's libtorch has no CUDA/;
  const runs = {
    train: avap('train', '--data', data, '--out', path.join(dir, 'run'), '--steps', '1', '--size', '32', '--device', 'cuda'),
    predict: avap('predict', '--model', path.join(dir, 'run'), '--input', path.join(data, 'images'), '--out', path.join(dir, 'pred'), '--device', 'cuda'),
    evaluate: avap('evaluate', '--data', data, '--model', path.join(dir, 'run'), '--out', path.join(dir, 'eval'), '--device', 'cuda'),
  };
  for (const [command, r] of Object.entries(runs)) {
    assert.notEqual(r.code, 0, command);
    assert.match(r.stderr, expected, command);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${command}: one line, no stack trace: ${r.stderr}`);
  }
  assert.ok(!fs.existsSync(path.join(dir, 'run')), 'train left no run folder behind');
  const bad = avap('predict', '--model', path.join(dir, 'run'), '--input', path.join(data, 'images'), '--out', path.join(dir, 'pred'), '--device', 'gpu');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--device must be one of auto, cpu, cuda, got 'gpu'/);
});

const CUDA_WITHOUT_GPU = HERE.cudaBuilt && HERE.cudaDevices === 0 ? false : 'needs a CUDA libtorch on a machine without a GPU (scripts/test-libtorch.sh with a CUDA wheel)';

test('a CUDA libtorch without a GPU: GPU ops and an NCCL group throw a JS error naming the op, and leave no half-made group', { skip: CUDA_WITHOUT_GPU }, async () => {
  assert.throws(() => tidy(() => ones([2]).pinMemory()), (e: Error) => /^pinMemory: .*NVIDIA driver/.test(e.message));
  assert.throws(() => tidy(() => ones([2]).to('cuda:0')), (e: Error) => /^to: /.test(e.message));
  const port = await freePort();
  const options = { host: '127.0.0.1', port, rank: 0, worldSize: 1, isStoreServer: true, timeoutMs: 10_000, prefix: '', device: { address: '127.0.0.1' } };
  if (HERE.ncclBuilt) assert.throws(() => dist.initProcessGroup({ ...options, gpu: 0 }), (e: Error) => /^distInit: /.test(e.message));
  // The failed start kept nothing: a CPU group can be made on a fresh port, and it reduces.
  const again = await freePort();
  assert.equal(dist.initProcessGroup({ ...options, port: again, gpu: null }), 'gloo');
  try {
    tidy(() => {
      const t = ones([3]);
      dist.allReduce([t]);
      assert.deepEqual([...t.data() as Float32Array], [1, 1, 1]);
    });
  } finally {
    dist.destroyProcessGroup();
  }
});
