// Autograd through the engine: the grad API, and every layer op's gradient against central finite
// differences in float64 (eps 1e-6), which is how torch.autograd.gradcheck validates them.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { F, Tensor, cat, isGradEnabled, noGrad, optim, setNumThreads, tensor, tidy } from '../src/torch';
import { assertClose, prng, randomF64, values } from './torch-helpers';

// These tests run thousands of tiny ops; with two intra-op threads on a loaded 2-core machine every op
// waits for the second thread to be scheduled (measured: 1000 small training steps 10 s instead of 1.3 s).
// One thread keeps the suite fast; the multi-threaded kernels get their own check in torch-ops.
setNumThreads(1);

const t = (name: string, fn: () => void): void => {
  test(name, () => tidy(fn));
};

// ---------------------------------------------------------------- the grad API
t('requiresGrad: off by default, on for leaves that ask and for results computed from them', () => {
  const x = tensor([1, 2, 3]);
  assert.equal(x.requiresGrad, false);
  assert.equal(x.mul(2).requiresGrad, false);
  x.requiresGrad_();
  assert.equal(x.requiresGrad, true);
  assert.equal(x.grad, null);
  const y = x.mul(2).add(tensor([1, 1, 1]));
  assert.equal(y.requiresGrad, true);
  x.requiresGrad_(false);
  assert.equal(x.requiresGrad, false);
});

t('backward on a scalar without a gradient argument', () => {
  const x = tensor(new Float64Array([1, -2, 3])).requiresGrad_();
  x.mul(x).sum().backward(); // d/dx Σx² = 2x
  assert.deepEqual(values(x.grad!), [2, -4, 6]);
  const w = tensor(new Float64Array([0.5, 2])).requiresGrad_();
  const m = tensor(new Float64Array([1, 2, 3, 4]), [2, 2]);
  m.matmul(w).mean().backward(); // mean over rows of m·w: grad = column means of m
  assert.deepEqual(values(w.grad!), [2, 3]);
});

t('backward on a non-scalar with a gradient argument (vector-Jacobian product)', () => {
  const x = tensor(new Float64Array([1, 2, 3])).requiresGrad_();
  const y = x.mul(x); // dy/dx = diag(2x)
  y.backward(tensor(new Float64Array([1, 10, 100])));
  assert.deepEqual(values(x.grad!), [2, 40, 600]);
  // without the gradient argument a non-scalar cannot start backward
  const z = tensor([1, 2]).requiresGrad_().mul(2);
  assert.throws(() => z.backward(), /^Error: backward: grad can be implicitly created only for scalar outputs/);
});

t('gradients accumulate across two backward calls until cleared', () => {
  const x = tensor(new Float64Array([1, 2, 3])).requiresGrad_();
  x.mul(2).sum().backward();
  assert.deepEqual(values(x.grad!), [2, 2, 2]);
  x.mul(x).sum().backward();
  assert.deepEqual(values(x.grad!), [4, 6, 8]);
  x.clearGrad();
  assert.equal(x.grad, null);
  x.mul(3).sum().backward();
  assert.deepEqual(values(x.grad!), [3, 3, 3]);
  // the optimizer's zeroGrad drops gradients the same way
  const opt = new optim.SGD([x], { lr: 0.1 });
  opt.zeroGrad();
  assert.equal(x.grad, null);
});

t('retainGraph allows a second backward through the same graph', () => {
  const x = tensor(new Float64Array([2])).requiresGrad_();
  const y = x.mul(x).mul(x).sum(); // 3x² = 12
  y.backward(undefined, true);
  y.backward();
  assert.deepEqual(values(x.grad!), [24]);
  assert.throws(() => y.backward(), /^Error: backward: /);
});

t('detach cuts the graph but shares the values', () => {
  const x = tensor(new Float64Array([1, 2])).requiresGrad_();
  const d = x.mul(3).detach();
  assert.equal(d.requiresGrad, false);
  assert.deepEqual(values(d), [3, 6]);
  // only the non-detached path contributes: d(x·x.detach())/dx = x.detach()
  x.mul(x.detach()).sum().backward();
  assert.deepEqual(values(x.grad!), [1, 2]);
  // detach() of a leaf aliases its storage, as in PyTorch
  const leaf = tensor([1, 2]);
  const alias = leaf.detach();
  leaf.fill_(7);
  assert.deepEqual(values(alias), [7, 7]);
});

t('noGrad records nothing, and restores the previous mode even after an exception', () => {
  const x = tensor([1, 2]).requiresGrad_();
  assert.equal(isGradEnabled(), true);
  const y = noGrad(() => {
    assert.equal(isGradEnabled(), false);
    return x.mul(2).add(1);
  });
  assert.equal(y.requiresGrad, false);
  assert.throws(() => y.sum().backward(), /^Error: backward: element 0 of tensors does not require grad/);
  assert.equal(x.grad, null);
  assert.throws(() => noGrad(() => {
    throw new Error('boom');
  }), /boom/);
  assert.equal(isGradEnabled(), true);
  // nested: the inner scope restores "disabled", the outer one "enabled"
  noGrad(() => {
    noGrad(() => undefined);
    assert.equal(isGradEnabled(), false);
  });
  assert.equal(isGradEnabled(), true);
  assert.equal(x.mul(2).requiresGrad, true);
});

// ---------------------------------------------------------------- finite-difference gradient checks
const EPS = 1e-6;

/**
 * Checks d(Σ f(inputs)·R)/d(input) for every input against central differences, R a fixed random
 * weighting (so that every output element matters with a different coefficient). Inputs are float64.
 */
function gradCheck(what: string, f: (xs: Tensor[]) => Tensor, inputs: Tensor[], seed = 1): Tensor[] {
  const project = (y: Tensor, r: Tensor): Tensor => y.mul(r).sum();
  const r = noGrad(() => randomF64(f(inputs).shape, seed + 1000));
  const leaves = inputs.map((x) => x.detach().clone().requiresGrad_());
  project(f(leaves), r).backward();
  const analytic = leaves.map((l) => l.grad!);
  inputs.forEach((x, k) => {
    const base = values(x);
    const numeric = new Float64Array(base.length);
    noGrad(() => {
      const at = (j: number, v: number): number => tidy(() => {
        const moved = Float64Array.from(base);
        moved[j] = v;
        const xs = inputs.map((y, i) => (i === k ? tensor(moved, x.shape) : y));
        return project(f(xs), r).item();
      });
      for (let j = 0; j < base.length; j++) numeric[j] = (at(j, base[j] + EPS) - at(j, base[j] - EPS)) / (2 * EPS);
    });
    assert.equal(analytic[k].dtype, 'float64');
    assertClose(analytic[k], numeric, 1e-7, 1e-6, `${what}: d/d(input ${k})`);
    assert.ok(numeric.some((v) => Math.abs(v) > 1e-3), `${what}: input ${k} has a non-trivial gradient`);
  });
  return analytic;
}

t('gradcheck: conv2d with stride 2, padding 1, groups 2 (input, weight, bias)', () => {
  gradCheck('conv2d', ([x, w, b]) => F.conv2d(x, w, b, { stride: 2, padding: 1, groups: 2 }),
    [randomF64([2, 4, 5, 5], 1), randomF64([6, 2, 3, 3], 2), randomF64([6], 3)]);
});

t('gradcheck: conv2d with dilation 2 and asymmetric padding', () => {
  gradCheck('dilated conv2d', ([x, w]) => F.conv2d(x, w, null, { dilation: 2, padding: [2, 1] }), [randomF64([1, 2, 5, 6], 4), randomF64([3, 2, 3, 3], 5)]);
});

t('gradcheck: convTranspose2d with stride 2 (and padding, outputPadding)', () => {
  gradCheck('convTranspose2d', ([x, w, b]) => F.convTranspose2d(x, w, b, { stride: 2 }),
    [randomF64([2, 3, 3, 3], 6), randomF64([3, 2, 3, 3], 7), randomF64([2], 8)]);
  gradCheck('convTranspose2d padded', ([x, w]) => F.convTranspose2d(x, w, null, { stride: 2, padding: 1, outputPadding: 1, groups: 2 }),
    [randomF64([1, 4, 3, 3], 9), randomF64([4, 1, 3, 3], 10)]);
});

t('gradcheck: batchNorm in training mode (input, weight, bias)', () => {
  gradCheck('batchNorm', ([x, w, b]) => F.batchNorm(x, { weight: w, bias: b, training: true }),
    [randomF64([3, 2, 3, 3], 11), randomF64([2], 12), randomF64([2], 13)]);
});

t('gradcheck: batchNorm in training mode with running stats still differentiates the batch statistics', () => {
  // the running stats change on every call, but training-mode output does not depend on them
  const runningMean = tensor(new Float64Array([0, 0]));
  const runningVar = tensor(new Float64Array([1, 1]));
  gradCheck('batchNorm+running', ([x]) => F.batchNorm(x, { runningMean, runningVar, training: true }), [randomF64([4, 2, 2, 2], 14)]);
});

t('gradcheck: groupNorm and linear', () => {
  gradCheck('groupNorm', ([x, w, b]) => F.groupNorm(x, 2, w, b), [randomF64([2, 4, 2, 3], 15), randomF64([4], 16), randomF64([4], 17)]);
  gradCheck('linear', ([x, w, b]) => F.linear(x, w, b), [randomF64([3, 5], 18), randomF64([4, 5], 19), randomF64([4], 20)]);
  gradCheck('linear 3-D, no bias', ([x, w]) => F.linear(x, w), [randomF64([2, 3, 5], 21), randomF64([4, 5], 22)]);
});

t('gradcheck: crossEntropy over logits, and its closed form (softmax - onehot) / N', () => {
  const target = tensor(new BigInt64Array([2n, 0n, 1n, 2n, 1n]));
  const weight = tensor(new Float64Array([0.3, 1, 2]));
  const logits = randomF64([5, 3], 23).mul(3);
  // the loss is a scalar; gradCheck's random projection just scales it
  gradCheck('crossEntropy', ([z]) => F.crossEntropy(z, target), [logits]);
  gradCheck('crossEntropy weighted, ignoreIndex', ([z]) => F.crossEntropy(z, target, { weight, ignoreIndex: 1 }), [logits]);
  gradCheck('crossEntropy none', ([z]) => F.crossEntropy(z, target, { reduction: 'none' }), [logits]);
  gradCheck('crossEntropy spatial', ([z]) => F.crossEntropy(z, tensor(new BigInt64Array([0n, 1n, 2n, 2n]), [1, 2, 2])),
    [randomF64([1, 3, 2, 2], 24)]);
  const z = logits.detach().clone().requiresGrad_();
  F.crossEntropy(z, target).backward();
  const closedForm = noGrad(() => F.softmax(logits, 1).sub(F.oneHot(target, 3).double()).div(5));
  assertClose(z.grad!, values(closedForm), 1e-12, 0);
});

t('gradcheck: dynamic filters (per-sample weights as a grouped conv) equal a per-sample conv2d loop', () => {
  const B = 3, C = 2, O = 2, H = 5, W = 4, k = 3;
  // the dynamic-filter pattern: every sample convolved with its own filters in one grouped conv
  const grouped = ([x, w]: Tensor[]): Tensor =>
    F.conv2d(x.reshape([1, B * C, H, W]), w.reshape([B * O, C, k, k]), null, { padding: 1, groups: B }).reshape([B, O, H, W]);
  const loop = ([x, w]: Tensor[]): Tensor =>
    cat(Array.from({ length: B }, (_, b) => F.conv2d(x.narrow(0, b, 1), w.select(0, b), null, { padding: 1 })), 0);
  const x = randomF64([B, C, H, W], 25);
  const w = randomF64([B, O, C, k, k], 26); // per-sample weights, as a hyper-network would predict them
  const [gx, gw] = gradCheck('dynamic grouped conv', grouped, [x, w], 26);
  // forward values and gradients agree with the loop of ordinary convolutions
  assertClose(grouped([x, w]), values(loop([x, w])), 1e-12, 0, 'forward');
  const lx = x.clone().requiresGrad_();
  const lw = w.clone().requiresGrad_();
  const r = randomF64([B, O, H, W], 1026); // gradCheck's projection (seed 26 + 1000)
  loop([lx, lw]).mul(r).sum().backward();
  assertClose(gx, values(lx.grad!), 1e-12, 0, 'd/dx');
  assertClose(gw, values(lw.grad!), 1e-12, 0, 'd/dw');
  // the samples are independent: the loss of sample 0 has no gradient on sample 1's weights
  const w0 = w.clone().requiresGrad_();
  grouped([x, w0]).select(0, 0).sum().backward();
  assert.ok(values(w0.grad!.select(0, 1)).every((v) => v === 0));
  assert.ok(values(w0.grad!.select(0, 0)).some((v) => v !== 0));
});

t('gradcheck catches a wrong gradient (the checker itself can fail)', () => {
  const r = prng(3);
  const x = tensor(Float64Array.from({ length: 4 }, () => r()));
  // x·stop(x) has true derivative 2x along the seeded projection, but autograd only sees x.detach()
  assert.throws(() => gradCheck('broken', ([a]) => a.mul(a.detach()), [x]), /d\/d\(input 0\)/);
});
