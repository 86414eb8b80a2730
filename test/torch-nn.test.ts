// nn.Module, the layers, their default initialisation, the optimizers and state-dict round trips,
// against PyTorch's names and numbers (reference values pasted from python3-torch 1.13, see NET_REF).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../src/errors';
import {
  F, Generator, Tensor, loadStateDict, manualSeed, memory, nn, noGrad, ones, optim, randint, randn, saveStateDict, setNumThreads, tensor, tidy, zeros,
} from '../src/torch';
import { assertClose, values } from './torch-helpers';

// These tests run thousands of tiny ops; with two intra-op threads on a loaded 2-core machine every op
// waits for the second thread to be scheduled (measured: 1000 small training steps 10 s instead of 1.3 s).
// One thread keeps the suite fast; the multi-threaded kernels get their own check in torch-ops.
setNumThreads(1);

const t = (name: string, fn: () => void): void => {
  test(name, () => tidy(fn));
};

// ---------------------------------------------------------------- a small ResNet-like net, twin of NET_REF's Python
class Block extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.BatchNorm2d;
  readonly relu: nn.ReLU;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.BatchNorm2d;
  readonly downsample: nn.Sequential | null;
  constructor(cin: number, cout: number, stride: number) {
    super();
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(cin, cout, 3, { stride, padding: 1, bias: false }));
    this.bn1 = this.registerModule('bn1', new nn.BatchNorm2d(cout));
    this.relu = this.registerModule('relu', new nn.ReLU());
    this.conv2 = this.registerModule('conv2', new nn.Conv2d(cout, cout, 3, { padding: 1, bias: false }));
    this.bn2 = this.registerModule('bn2', new nn.BatchNorm2d(cout));
    this.downsample = stride !== 1 || cin !== cout
      ? this.registerModule('downsample', new nn.Sequential(new nn.Conv2d(cin, cout, 1, { stride, bias: false }), new nn.BatchNorm2d(cout)))
      : null;
  }
  forward(x: Tensor): Tensor {
    const h = this.bn2.forward(this.conv2.forward(this.relu.forward(this.bn1.forward(this.conv1.forward(x)))));
    return h.add(this.downsample ? this.downsample.forward(x) : x).relu();
  }
}

class Net extends nn.Module {
  readonly conv1 = this.registerModule('conv1', new nn.Conv2d(3, 4, 3, { padding: 1, bias: false }));
  readonly bn1 = this.registerModule('bn1', new nn.BatchNorm2d(4));
  readonly layer1 = this.registerModule('layer1', new nn.Sequential(new Block(4, 4, 1), new Block(4, 4, 1)));
  readonly layer2 = this.registerModule('layer2', new nn.Sequential(new Block(4, 8, 2)));
  readonly heads = this.registerModule('heads', new nn.ModuleList<nn.Module>([new nn.Conv2d(8, 2, 1), new nn.ConvTranspose2d(8, 3, 2, { stride: 2 })]));
  readonly gn = this.registerModule('gn', new nn.GroupNorm(2, 8));
  readonly fc = this.registerModule('fc', new nn.Linear(8, 2));
  forward(x: Tensor): Tensor {
    const h = this.gn.forward(this.layer2.forward(this.layer1.forward(this.bn1.forward(this.conv1.forward(x)).relu())));
    return this.fc.forward(h.mean([2, 3]));
  }
}

/*
 * [key, shape, sum, first value] of the twin's state_dict() after torch.manual_seed(0), printed by /usr/bin/python3 (torch 1.13):
 *   class Block(nn.Module): conv1 = Conv2d(cin, cout, 3, stride, 1, bias=False); bn1 = BatchNorm2d(cout); relu = ReLU();
 *     conv2 = Conv2d(cout, cout, 3, 1, 1, bias=False); bn2 = BatchNorm2d(cout);
 *     downsample = Sequential(Conv2d(cin, cout, 1, stride, bias=False), BatchNorm2d(cout)) if stride != 1 or cin != cout else None
 *   class Net(nn.Module): conv1 = Conv2d(3, 4, 3, padding=1, bias=False); bn1 = BatchNorm2d(4)
 *     layer1 = Sequential(Block(4, 4, 1), Block(4, 4, 1)); layer2 = Sequential(Block(4, 8, 2))
 *     heads = ModuleList([Conv2d(8, 2, 1), ConvTranspose2d(8, 3, 2, stride=2)]); gn = GroupNorm(2, 8); fc = Linear(8, 2)
 *   torch.manual_seed(0); n = Net()
 *   print(json.dumps([[k, list(v.shape), float('%.7g' % v.double().sum()), float('%.7g' % v.flatten()[0])] for k, v in n.state_dict().items()]))
 *   print(sum(p.numel() for p in n.parameters()))   # 1819
 */
const NET_REF: [string, number[], number, number][] = 
[
  ["conv1.weight", [4, 3, 3, 3], -0.7475196, -0.001440839],
  ["bn1.weight", [4], 4.0, 1.0],
  ["bn1.bias", [4], 0.0, 0.0],
  ["bn1.running_mean", [4], 0.0, 0.0],
  ["bn1.running_var", [4], 4.0, 1.0],
  ["bn1.num_batches_tracked", [], 0.0, 0.0],
  ["layer1.0.conv1.weight", [4, 4, 3, 3], -1.203095, -0.009183268],
  ["layer1.0.bn1.weight", [4], 4.0, 1.0],
  ["layer1.0.bn1.bias", [4], 0.0, 0.0],
  ["layer1.0.bn1.running_mean", [4], 0.0, 0.0],
  ["layer1.0.bn1.running_var", [4], 4.0, 1.0],
  ["layer1.0.bn1.num_batches_tracked", [], 0.0, 0.0],
  ["layer1.0.conv2.weight", [4, 4, 3, 3], 1.10199, 0.1378198],
  ["layer1.0.bn2.weight", [4], 4.0, 1.0],
  ["layer1.0.bn2.bias", [4], 0.0, 0.0],
  ["layer1.0.bn2.running_mean", [4], 0.0, 0.0],
  ["layer1.0.bn2.running_var", [4], 4.0, 1.0],
  ["layer1.0.bn2.num_batches_tracked", [], 0.0, 0.0],
  ["layer1.1.conv1.weight", [4, 4, 3, 3], -0.1778728, 0.1184885],
  ["layer1.1.bn1.weight", [4], 4.0, 1.0],
  ["layer1.1.bn1.bias", [4], 0.0, 0.0],
  ["layer1.1.bn1.running_mean", [4], 0.0, 0.0],
  ["layer1.1.bn1.running_var", [4], 4.0, 1.0],
  ["layer1.1.bn1.num_batches_tracked", [], 0.0, 0.0],
  ["layer1.1.conv2.weight", [4, 4, 3, 3], 0.2144494, -0.08708179],
  ["layer1.1.bn2.weight", [4], 4.0, 1.0],
  ["layer1.1.bn2.bias", [4], 0.0, 0.0],
  ["layer1.1.bn2.running_mean", [4], 0.0, 0.0],
  ["layer1.1.bn2.running_var", [4], 4.0, 1.0],
  ["layer1.1.bn2.num_batches_tracked", [], 0.0, 0.0],
  ["layer2.0.conv1.weight", [8, 4, 3, 3], 0.9257528, 0.07436832],
  ["layer2.0.bn1.weight", [8], 8.0, 1.0],
  ["layer2.0.bn1.bias", [8], 0.0, 0.0],
  ["layer2.0.bn1.running_mean", [8], 0.0, 0.0],
  ["layer2.0.bn1.running_var", [8], 8.0, 1.0],
  ["layer2.0.bn1.num_batches_tracked", [], 0.0, 0.0],
  ["layer2.0.conv2.weight", [8, 8, 3, 3], -1.153501, 0.1175831],
  ["layer2.0.bn2.weight", [8], 8.0, 1.0],
  ["layer2.0.bn2.bias", [8], 0.0, 0.0],
  ["layer2.0.bn2.running_mean", [8], 0.0, 0.0],
  ["layer2.0.bn2.running_var", [8], 8.0, 1.0],
  ["layer2.0.bn2.num_batches_tracked", [], 0.0, 0.0],
  ["layer2.0.downsample.0.weight", [8, 4, 1, 1], -2.879321, -0.2743082],
  ["layer2.0.downsample.1.weight", [8], 8.0, 1.0],
  ["layer2.0.downsample.1.bias", [8], 0.0, 0.0],
  ["layer2.0.downsample.1.running_mean", [8], 0.0, 0.0],
  ["layer2.0.downsample.1.running_var", [8], 8.0, 1.0],
  ["layer2.0.downsample.1.num_batches_tracked", [], 0.0, 0.0],
  ["heads.0.weight", [2, 8, 1, 1], 0.5194696, -0.02566558],
  ["heads.0.bias", [2], -0.3072527, -0.2814686],
  ["heads.1.weight", [8, 3, 2, 2], 0.2278128, 0.1436138],
  ["heads.1.bias", [3], 0.5741445, 0.2251137],
  ["gn.weight", [8], 8.0, 1.0],
  ["gn.bias", [8], 0.0, 0.0],
  ["fc.weight", [2, 8], -0.4921884, 0.3221847],
  ["fc.bias", [2], 0.04465993, -0.1537835],
];
const NET_PARAMS = 1819;

t('state dict keys, order and shapes equal PyTorch\'s, and so do the initial values under the same seed', () => {
  manualSeed(0);
  const net = new Net();
  try {
    const sd = net.stateDict();
    assert.deepEqual(Object.keys(sd), NET_REF.map(([k]) => k));
    for (const [key, shape, sum, first] of NET_REF) {
      assert.deepEqual(sd[key].shape, shape, key);
      assertClose([values(sd[key]).reduce((a, b) => a + b, 0), values(sd[key])[0]], [sum, first], 1e-6, 1e-5, key);
    }
    assert.equal(sd['bn1.num_batches_tracked'].dtype, 'int64');
    assert.equal(sd['bn1.running_mean'].dtype, 'float32');
    assert.equal(net.parameterCount(), NET_PARAMS);
  } finally {
    net.dispose();
  }
});

t('parameters() are the state dict\'s parameters, in order, all requiring grad; buffers are not parameters', () => {
  const net = new Net();
  try {
    const named = net.namedParameters();
    const params = net.parameters();
    assert.equal(params.length, named.length);
    params.forEach((p, i) => assert.equal(p, named[i][1]));
    assert.deepEqual(named.map(([k]) => k), NET_REF.map(([k]) => k).filter((k) => !/running_|num_batches/.test(k)));
    assert.ok(params.every((p) => p.requiresGrad));
    const buffers = net.namedBuffers();
    assert.equal(buffers.length, 3 * 8); // eight BatchNorm2d layers
    assert.ok(buffers.every(([, b]) => !b.requiresGrad));
    assert.equal(params.reduce((n, p) => n + p.numel(), 0), NET_PARAMS);
    // stateDict hands out the live tensors
    assert.equal(net.stateDict()['fc.weight'], net.fc.weight);
  } finally {
    net.dispose();
  }
});

t('train() and eval() propagate to every descendant', () => {
  const net = new Net();
  try {
    const modes = (): boolean[] => net.namedModules().map(([, m]) => m.training);
    assert.ok(modes().every((m) => m));
    assert.equal(net.eval(), net);
    assert.ok(modes().every((m) => !m));
    net.train();
    assert.ok(modes().every((m) => m));
    net.layer2.eval();
    for (const [name, m] of net.namedModules()) assert.equal(m.training, !name.startsWith('layer2'), name);
    net.train(false);
    assert.ok(modes().every((m) => !m));
    // eval mode changes behaviour: batch norm uses (and keeps) its running stats
    const x = randn([2, 3, 8, 8]);
    const before = values(net.bn1.runningMean);
    net.forward(x);
    assert.deepEqual(values(net.bn1.runningMean), before);
    assert.equal(net.bn1.numBatchesTracked.item(), 0);
    net.train();
    net.forward(x);
    assert.notDeepEqual(values(net.bn1.runningMean), before);
    assert.equal(net.bn1.numBatchesTracked.item(), 1);
    assert.equal(net.bn1.numBatchesTracked.dtype, 'int64');
  } finally {
    net.dispose();
  }
});

t('BatchNorm2d in training updates running stats with momentum 0.1 like PyTorch', () => {
  const bn = new nn.BatchNorm2d(2);
  try {
    const x = tensor([1, 3, 5, 7, 2, 2, 2, 2], [2, 2, 1, 2]); // channel 0: 1, 3, 2, 2 · channel 1: 5, 7, 2, 2
    bn.forward(x);
    bn.forward(x);
    // after two updates from (0, 1): mean → 0.19·m, var → 0.81 + 0.19·unbiased var
    const m = [2, 4];
    const v = [2 / 3, 18 / 3];
    assertClose(bn.runningMean, m.map((mi) => 0.19 * mi), 1e-6);
    assertClose(bn.runningVar, v.map((vi) => 0.81 + 0.19 * vi), 1e-6);
    assert.equal(bn.numBatchesTracked.item(), 2);
  } finally {
    bn.dispose();
  }
});

t('requiresGrad_(false) freezes: no parameter gradients, while the input still gets one', () => {
  const net = new Net();
  try {
    net.requiresGrad_(false);
    assert.ok(net.parameters().every((p) => !p.requiresGrad));
    const x = randn([2, 3, 8, 8]).requiresGrad_();
    net.forward(x).sum().backward();
    assert.ok(net.parameters().every((p) => p.grad === null));
    assert.notEqual(x.grad, null);
    // an unfrozen part trains again
    net.fc.requiresGrad_(true);
    net.forward(randn([2, 3, 8, 8])).sum().backward();
    assert.notEqual(net.fc.weight.grad, null);
    assert.equal(net.conv1.weight.grad, null);
  } finally {
    net.dispose();
  }
});

t('loadStateDict strict: one UserError lists missing keys, unexpected keys and shape mismatches', () => {
  const net = new Net();
  try {
    const src: Record<string, Tensor> = { ...net.stateDict() };
    delete src['fc.bias'];
    delete src['layer1.0.bn1.running_var'];
    src['extra.weight'] = zeros([1]);
    src['conv1.weight'] = zeros([4, 3, 5, 5]);
    assert.throws(() => net.loadStateDict(src, { source: 'ckpt.safetensors' }), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /^ckpt\.safetensors: cannot load state dict: /);
      assert.match(err.message, /missing keys \(2\): layer1\.0\.bn1\.running_var, fc\.bias/);
      assert.match(err.message, /unexpected keys \(1\): extra\.weight/);
      assert.match(err.message, /shape mismatches \(1\): conv1\.weight: expected \[4, 3, 3, 3\], got \[4, 3, 5, 5\]/);
      return true;
    });
    // a failed load changes nothing
    assert.notDeepEqual(values(net.conv1.weight), new Array(108).fill(0));
    // only missing keys
    const onlyMissing = { ...net.stateDict() };
    delete onlyMissing['gn.weight'];
    assert.throws(() => net.loadStateDict(onlyMissing), (err: unknown) => err instanceof UserError && /missing keys \(1\): gn\.weight/.test(err.message)
      && !/unexpected/.test(err.message));
  } finally {
    net.dispose();
  }
});

t('loadStateDict non-strict loads what matches and reports the rest; shape mismatches still throw', () => {
  manualSeed(1);
  const a = new Net();
  manualSeed(2);
  const b = new Net();
  try {
    const fcBias = values(b.fc.bias!);
    const src: Record<string, Tensor> = { ...a.stateDict(), 'bogus.weight': ones([2]) };
    delete src['fc.bias'];
    const weightHandle = b.conv1.weight;
    const r = b.loadStateDict(src, { strict: false });
    assert.deepEqual(r, { missing: ['fc.bias'], unexpected: ['bogus.weight'] });
    assert.deepEqual(values(b.conv1.weight), values(a.conv1.weight));
    assert.deepEqual(values(b.fc.bias!), fcBias);
    assert.equal(b.conv1.weight, weightHandle, 'loaded in place: the same tensor object');
    assert.throws(() => b.loadStateDict({ 'fc.weight': zeros([3, 8]) }, { strict: false }), /shape mismatches \(1\): fc\.weight/);
    // dtypes convert as copy_ does (float64 and int64 sources into float32 / int64 tensors)
    const lin = new nn.Linear(2, 1);
    lin.loadStateDict({ weight: tensor(new Float64Array([0.25, -0.5]), [1, 2]), bias: tensor(new BigInt64Array([3n])) });
    assert.equal(lin.weight.dtype, 'float32');
    assert.deepEqual(values(lin.weight), [0.25, -0.5]);
    assert.deepEqual(values(lin.bias!), [3]);
    lin.dispose();
  } finally {
    a.dispose();
    b.dispose();
  }
});

t('default init: Conv2d / Linear bound 1/sqrt(fan_in), ConvTranspose2d fan_in from size(1), norm layers 1 and 0', () => {
  manualSeed(123);
  const stats = (x: Tensor): { maxAbs: number; mean: number; variance: number } => {
    const v = values(x);
    const mean = v.reduce((s, y) => s + y, 0) / v.length;
    return { maxAbs: Math.max(...v.map(Math.abs)), mean, variance: v.reduce((s, y) => s + (y - mean) ** 2, 0) / v.length };
  };
  const cases: [string, nn.Module & { weight: Tensor; bias: Tensor | null }, number][] = [
    ['Conv2d(16, 32, 3)', new nn.Conv2d(16, 32, 3), 1 / Math.sqrt(16 * 9)],
    ['Conv2d(8, 12, [3, 5], groups 4)', new nn.Conv2d(8, 12, [3, 5], { groups: 4 }), 1 / Math.sqrt(2 * 15)],
    // weight [in=8, out/groups=12, 4, 4]: fan_in = 12·16, not 8·16
    ['ConvTranspose2d(8, 12, 4)', new nn.ConvTranspose2d(8, 12, 4), 1 / Math.sqrt(12 * 16)],
    ['ConvTranspose2d(8, 12, 2, groups 2)', new nn.ConvTranspose2d(8, 12, 2, { groups: 2 }), 1 / Math.sqrt(6 * 4)],
    ['Linear(200, 30)', new nn.Linear(200, 30), 1 / Math.sqrt(200)],
  ];
  for (const [what, layer, bound] of cases) {
    const w = stats(layer.weight);
    assert.ok(w.maxAbs <= bound, `${what}: max |w| ${w.maxAbs} > bound ${bound}`);
    assert.ok(w.maxAbs > 0.97 * bound, `${what}: max |w| ${w.maxAbs} far below bound ${bound}`);
    assert.ok(Math.abs(w.mean) < 0.05 * bound, `${what}: mean ${w.mean}`);
    assert.ok(Math.abs(w.variance / (bound ** 2 / 3) - 1) < 0.1, `${what}: variance ${w.variance} vs uniform ${bound ** 2 / 3}`);
    const b = stats(layer.bias!);
    assert.ok(b.maxAbs <= bound && b.maxAbs > 0.7 * bound, `${what}: bias max |b| ${b.maxAbs}, bound ${bound}`);
    layer.dispose();
  }
  const bn = new nn.BatchNorm2d(5);
  assert.deepEqual(values(bn.weight), [1, 1, 1, 1, 1]);
  assert.deepEqual(values(bn.bias), [0, 0, 0, 0, 0]);
  assert.deepEqual(values(bn.runningMean), [0, 0, 0, 0, 0]);
  assert.deepEqual(values(bn.runningVar), [1, 1, 1, 1, 1]);
  assert.deepEqual(bn.numBatchesTracked.shape, []);
  assert.equal(bn.numBatchesTracked.item(), 0);
  bn.dispose();
  const gn = new nn.GroupNorm(2, 4);
  assert.deepEqual(values(gn.weight), [1, 1, 1, 1]);
  assert.deepEqual(values(gn.bias), [0, 0, 0, 0]);
  gn.dispose();
  assert.throws(() => new nn.ConvTranspose2d(4, 3, 3, { groups: 2 }), /^Error: ConvTranspose2d: channels \(4, 3\) must be divisible by groups \(2\)/);
  assert.throws(() => new nn.Conv2d(4, 3, 3, { groups: 2 }), /^Error: Conv2d: /);
});

t('Sequential and ModuleList name children 0, 1, … (nested too) and Sequential applies them in order', () => {
  const seq = new nn.Sequential(new nn.Conv2d(1, 2, 1), new nn.BatchNorm2d(2), new nn.Sequential(new nn.ReLU(), new nn.Conv2d(2, 1, 1, { bias: false })));
  const list = new nn.ModuleList<nn.Module>([new nn.Linear(2, 2)]).append(new nn.GroupNorm(1, 2));
  try {
    assert.deepEqual(Object.keys(seq.stateDict()), [
      '0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var', '1.num_batches_tracked', '2.1.weight',
    ]);
    assert.deepEqual(seq.namedModules().map(([n]) => n), ['', '0', '1', '2', '2.0', '2.1']);
    assert.deepEqual(Object.keys(list.stateDict()), ['0.weight', '0.bias', '1.weight', '1.bias']);
    assert.equal(list.length, 2);
    assert.ok(list.at(1) instanceof nn.GroupNorm);
    // applied in order: conv (2x - 3 into both channels) → BN (eval, fresh stats: divide by √(1 + eps)) → ReLU → conv (sum of channels)
    noGrad(() => {
      (seq.layers[0] as nn.Conv2d).weight.fill_(2);
      (seq.layers[0] as nn.Conv2d).bias!.fill_(-3);
      ((seq.layers[2] as nn.Sequential).layers[1] as nn.Conv2d).weight.fill_(1);
    });
    seq.eval();
    const y = seq.forward(tensor([1, 2], [1, 1, 1, 2]));
    // x = [1, 2] → [-1, 1] per channel → ReLU keeps [0, 1/√(1+eps)] → two channels summed
    assertClose(y, [0, 2 / Math.sqrt(1 + 1e-5)], 1e-6);
  } finally {
    seq.dispose();
    list.dispose();
  }
});

t('a small conv net overfits one batch with Adam (loss falls at least 10×)', () => {
  const STEPS = 40;
  manualSeed(0);
  const g = new Generator(5);
  const net = new nn.Sequential(
    new nn.Conv2d(3, 16, 3, { padding: 1 }), new nn.BatchNorm2d(16), new nn.ReLU(),
    new nn.Conv2d(16, 16, 3, { padding: 1 }), new nn.BatchNorm2d(16), new nn.ReLU(), new nn.Conv2d(16, 3, 1),
  );
  try {
    const x = randn([4, 3, 8, 8], { generator: g });
    const target = randint(0, 3, [4, 8, 8], { generator: g });
    const opt = new optim.Adam(net.parameters(), { lr: 0.01 });
    const losses: number[] = [];
    for (let step = 0; step < STEPS; step++) {
      losses.push(tidy(() => {
        opt.zeroGrad();
        const loss = F.crossEntropy(net.forward(x), target);
        loss.backward();
        opt.step();
        return loss.item();
      }));
    }
    assert.ok(losses[0] > 1, `initial loss ${losses[0]}`);
    assert.ok(losses[STEPS - 1] * 10 <= losses[0], `loss ${losses[0]} → ${losses[STEPS - 1]}`);
    // the trained net also classifies the batch (eval mode uses the running stats)
    net.eval();
    const acc = noGrad(() => tidy(() => net.forward(x).argmax(1).eq(target).float().mean().item()));
    assert.ok(acc > 0.9, `training accuracy ${acc}`);
  } finally {
    net.dispose();
  }
});

// ---------------------------------------------------------------- optimizers against hand computation
/** Runs `steps` optimizer steps on float64 parameters with the given gradients; returns the parameters after each step. */
function runOptimizer(make: (ps: Tensor[]) => optim.Optimizer, p0: number[], grads: number[][]): number[][] {
  const p = tensor(Float64Array.from(p0)).requiresGrad_();
  const opt = make([p]);
  const out: number[][] = [];
  for (const g of grads) {
    tidy(() => {
      opt.zeroGrad();
      p.mul(tensor(Float64Array.from(g))).sum().backward(); // d/dp (p·g) = g
      opt.step();
    });
    out.push(values(p));
  }
  p.dispose();
  return out;
}

const P0 = [1, -2, 0.5];
const GRADS = [[0.5, 1, -2], [-1, 0.25, 3], [2, -0.5, 0.1]];

t('SGD with momentum and dampening, and with nesterov and weight decay, equals the hand-computed update', () => {
  const hand = (lr: number, mu: number, damp: number, wd: number, nesterov: boolean): number[][] => {
    let p = [...P0];
    let buf: number[] | null = null;
    return GRADS.map((g0) => {
      const g = g0.map((gi, i) => gi + wd * p[i]);
      buf = buf === null ? [...g] : buf.map((b, i) => mu * b + (1 - damp) * g[i]);
      const d = nesterov ? g.map((gi, i) => gi + mu * buf![i]) : buf;
      p = p.map((pi, i) => pi - lr * d[i]);
      return p;
    });
  };
  const cases: [string, optim.SGDOptions, number[][]][] = [
    ['plain', { lr: 0.1 }, hand(0.1, 0, 0, 0, false)],
    ['momentum 0.9 dampening 0.3', { lr: 0.1, momentum: 0.9, dampening: 0.3 }, hand(0.1, 0.9, 0.3, 0, false)],
    ['nesterov, weight decay 0.01', { lr: 0.05, momentum: 0.8, nesterov: true, weightDecay: 0.01 }, hand(0.05, 0.8, 0, 0.01, true)],
  ];
  for (const [what, o, expected] of cases) {
    const got = runOptimizer((ps) => new optim.SGD(ps, o), P0, GRADS);
    got.forEach((p, i) => assertClose(p, expected[i], 1e-15, 1e-13, `${what} step ${i + 1}`));
  }
  // the hand computation is sensitive: nesterov differs from plain momentum
  assert.notDeepEqual(hand(0.05, 0.8, 0, 0.01, true), hand(0.05, 0.8, 0, 0.01, false));
  assert.throws(() => new optim.SGD([zeros([1])], { lr: 0.1, nesterov: true }), /^Error: SGD: nesterov needs momentum > 0/);
});

t('Adam and AdamW (decoupled decay) equal the hand-computed update; setLr takes effect', () => {
  const hand = (lr: number, b1: number, b2: number, eps: number, wd: number, decoupled: boolean, lrs?: number[]): number[][] => {
    let p = [...P0];
    let m = [0, 0, 0];
    let v = [0, 0, 0];
    return GRADS.map((g0, k) => {
      const step = k + 1;
      const a = lrs?.[k] ?? lr;
      if (decoupled) p = p.map((pi) => pi * (1 - a * wd));
      const g = decoupled ? g0 : g0.map((gi, i) => gi + wd * p[i]);
      m = m.map((mi, i) => b1 * mi + (1 - b1) * g[i]);
      v = v.map((vi, i) => b2 * vi + (1 - b2) * g[i] ** 2);
      const bc1 = 1 - b1 ** step;
      const bc2 = 1 - b2 ** step;
      p = p.map((pi, i) => pi - (a / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps));
      return p;
    });
  };
  const cases: [string, (ps: Tensor[]) => optim.Optimizer, number[][]][] = [
    ['Adam', (ps) => new optim.Adam(ps, { lr: 0.1 }), hand(0.1, 0.9, 0.999, 1e-8, 0, false)],
    ['Adam L2 0.1', (ps) => new optim.Adam(ps, { lr: 0.1, weightDecay: 0.1, betas: [0.8, 0.99], eps: 1e-3 }), hand(0.1, 0.8, 0.99, 1e-3, 0.1, false)],
    ['AdamW default decay', (ps) => new optim.AdamW(ps, { lr: 0.1 }), hand(0.1, 0.9, 0.999, 1e-8, 1e-2, true)],
    ['AdamW 0.5', (ps) => new optim.AdamW(ps, { lr: 0.2, weightDecay: 0.5 }), hand(0.2, 0.9, 0.999, 1e-8, 0.5, true)],
  ];
  for (const [what, make, expected] of cases) {
    const got = runOptimizer(make, P0, GRADS);
    got.forEach((p, i) => assertClose(p, expected[i], 1e-14, 1e-12, `${what} step ${i + 1}`));
  }
  // one AdamW step by the formula: p·(1 - lr·wd) - lr·sign(g) (the first Adam step has |m̂/√v̂| = 1)
  const first = runOptimizer((ps) => new optim.AdamW(ps, { lr: 0.2, weightDecay: 0.5, eps: 0 }), P0, GRADS.slice(0, 1))[0];
  assertClose(first, P0.map((p, i) => p * 0.9 - 0.2 * Math.sign(GRADS[0][i])), 1e-15, 1e-14, 'AdamW first step');
  // decoupled decay differs from L2 decay
  assert.notDeepEqual(hand(0.2, 0.9, 0.999, 1e-8, 0.5, true), hand(0.2, 0.9, 0.999, 1e-8, 0.5, false));
  // setLr between steps
  const lrs = [0.1, 0.01, 0.3];
  const p = tensor(Float64Array.from(P0)).requiresGrad_();
  const opt = new optim.AdamW([p], { lr: 0.1 });
  const expected = hand(0.1, 0.9, 0.999, 1e-8, 1e-2, true, lrs);
  GRADS.forEach((g, k) => {
    opt.setLr(lrs[k]);
    assert.equal(opt.lr, lrs[k]);
    tidy(() => {
      opt.zeroGrad();
      p.mul(tensor(Float64Array.from(g))).sum().backward();
      opt.step();
    });
    assertClose(p, expected[k], 1e-14, 1e-12, `setLr step ${k + 1}`);
  });
  assert.throws(() => opt.setLr(-1), /^Error: setLr: /);
  assert.throws(() => new optim.Adam([], {}), /^Error: adam: no parameters/);
});

t('optimizer state round trip: an optimizer restored from another\'s bytes continues identically', () => {
  const build = (): nn.Sequential => {
    manualSeed(11);
    return new nn.Sequential(new nn.Conv2d(2, 4, 3, { padding: 1 }), new nn.BatchNorm2d(4), new nn.ReLU(), new nn.Conv2d(4, 2, 1));
  };
  const g = new Generator(3);
  const x = randn([2, 2, 6, 6], { generator: g });
  const target = randn([2, 2, 6, 6], { generator: g });
  const step = (net: nn.Sequential, opt: optim.Optimizer): void => tidy(() => {
    opt.zeroGrad();
    F.mseLoss(net.forward(x), target).backward();
    opt.step();
  });
  for (const make of [(ps: Tensor[]) => new optim.Adam(ps, { lr: 0.01, weightDecay: 1e-3 }), (ps: Tensor[]) => new optim.SGD(ps, { lr: 0.05, momentum: 0.9 }),
    (ps: Tensor[]) => new optim.AdamW(ps, { lr: 0.01, amsgrad: true })]) {
    const a = build();
    const b = build();
    const fresh = build();
    try {
      const optA = make(a.parameters());
      for (let i = 0; i < 3; i++) step(a, optA);
      const bytes = optA.stateBytes();
      assert.ok(bytes.length > 0);
      b.loadStateDict(a.stateDict());
      fresh.loadStateDict(a.stateDict());
      const optB = make(b.parameters());
      optB.loadState(new Uint8Array(bytes));
      const optFresh = make(fresh.parameters());
      for (let i = 0; i < 3; i++) {
        step(a, optA);
        step(b, optB);
        step(fresh, optFresh);
      }
      const sa = a.stateDict();
      const sb = b.stateDict();
      for (const k of Object.keys(sa)) assert.deepEqual(values(sb[k]), values(sa[k]), `${k} identical after restore`);
      // without the restored state the run diverges (the state carried information)
      assert.notDeepEqual(values(fresh.stateDict()['0.weight']), values(sa['0.weight']));
    } finally {
      a.dispose();
      b.dispose();
      fresh.dispose();
    }
  }
  assert.throws(() => new optim.Adam([zeros([1]).requiresGrad_()]).loadState(new Uint8Array([1, 2, 3])), /^Error: optimizer\.load: /);
});

t('saveStateDict / loadStateDict round trip is bit-exact for float32, float64 and int64', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-nn-test-'));
  try {
    const f32 = new Float32Array([0, -0, 1.5, -1e-42, 3.4028234663852886e38, NaN, Infinity, -Infinity, Math.fround(0.1)]);
    const f64 = new Float64Array([-0, 5e-324, Math.PI, 1e308, NaN, -Infinity]);
    const i64 = new BigInt64Array([0n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 123456789012345678n, 7n]);
    const net = new Net();
    const state: Record<string, Tensor> = {
      ...net.stateDict(),
      'extra.f32': tensor(f32, [3, 3]),
      'extra.f64': tensor(f64, [2, 3]),
      'extra.i64': tensor(i64, [6]),
      'extra.scalar': tensor(new BigInt64Array([42n]), []),
      'extra.u8': tensor(new Uint8Array([0, 255])),
      'extra.bool': tensor(new Uint8Array([1, 0, 1]), [3], 'bool'),
      'extra.i32': tensor(new Int32Array([-5, 2 ** 31 - 1])),
    };
    const file = path.join(dir, 'model.safetensors');
    saveStateDict(file, state, { epoch: '3' });
    const { state: loaded, metadata } = loadStateDict(file);
    assert.deepEqual(metadata, { epoch: '3' });
    assert.deepEqual(Object.keys(loaded).sort(), Object.keys(state).sort());
    const bytes = (x: Tensor): Buffer => {
      const d = x.data();
      return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
    };
    for (const [k, v] of Object.entries(state)) {
      assert.equal(loaded[k].dtype, v.dtype, k);
      assert.deepEqual(loaded[k].shape, v.shape, k);
      assert.ok(bytes(loaded[k]).equals(bytes(v)), `${k} bit-exact`);
    }
    assert.ok(bytes(loaded['extra.f32']).equals(Buffer.from(f32.buffer)));
    assert.ok(bytes(loaded['extra.i64']).equals(Buffer.from(i64.buffer)));
    // a checkpoint loads into a fresh twin and gives the same outputs
    manualSeed(99);
    const twin = new Net();
    const netState = net.stateDict();
    twin.loadStateDict(Object.fromEntries(Object.keys(netState).map((k) => [k, loaded[k]])));
    net.eval();
    twin.eval();
    const xin = randn([1, 3, 8, 8]);
    assert.deepEqual(values(twin.forward(xin)), values(net.forward(xin)));
    net.dispose();
    twin.dispose();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('building and disposing a module leaves memory() where it was (no stray temporaries)', () => {
  const m = memory();
  const probe = tidy(() => {
    const net = new Net();
    net.dispose();
    return memory();
  });
  assert.deepEqual(probe, m);
});
