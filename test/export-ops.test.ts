// The exporter's op table: every op the tensor layer records, traced on small random inputs, gives on
// onnxruntime-node what it gave on libtorch; and what cannot be a faithful graph is refused by name.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { traceToOnnx } from '../src/export/onnx';
import { EXPORTABLE_OPS } from '../src/export/ops';
import { UserError } from '../src/errors';
import { F, Tensor, arange, cat, dispose, nn, randn, stack, tensor, tidy, where } from '../src/torch';
import { TraceError, traceOps } from '../src/torch/trace';
import { prng } from './torch-helpers';

function random(shape: number[], seed: number, low = -2, high = 2): Tensor {
  const r = prng(seed);
  return tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => low + (high - low) * r()), shape);
}

interface Case {
  name: string;
  inputs: () => Tensor[];
  /** Called with the inputs, then the parameters' tensors. */
  fn: (...xs: Tensor[]) => Tensor | Tensor[];
  params?: () => [string, Tensor][];
  opset?: number;
  tolerance?: number;
}

/** Traces `fn`, runs the graph on ORT with the same inputs, and compares every output with libtorch's. */
async function check(c: Case): Promise<void> {
  const params = c.params?.() ?? [];
  const inputs = c.inputs();
  const { trace, result } = traceOps(params, (t) => {
    inputs.forEach((x, i) => t.input(`x${i}`, x));
    return tidy(() => [c.fn(...inputs, ...params.map(([, p]) => p))].flat());
  });
  const bytes = traceToOnnx(trace, result.map((r, i) => ({ name: `y${i}`, value: trace.valueOf(r) })), {
    opset: c.opset ?? 17, graphName: c.name, producerVersion: 'test', docString: '', metadata: {},
  });
  const session = await ort.InferenceSession.create(bytes);
  const feeds: Record<string, ort.Tensor> = {};
  inputs.forEach((x, i) => { feeds[`x${i}`] = new ort.Tensor('float32', x.data() as Float32Array, x.shape); });
  const got = await session.run(feeds);
  result.forEach((r, i) => {
    const y = got[`y${i}`];
    assert.deepEqual([...y.dims], r.shape, `${c.name}: output ${i} shape`);
    const expected = r.data();
    const actual = y.data as ArrayLike<number | bigint>;
    for (let j = 0; j < expected.length; j++) {
      const [e, a] = [Number(expected[j]), Number(actual[j])];
      if (!(Math.abs(e - a) <= (c.tolerance ?? 1e-5) * (1 + Math.abs(e)))) assert.fail(`${c.name}: output ${i} element ${j}: onnx ${a}, libtorch ${e}`);
    }
  });
  await session.release();
  dispose([inputs, result, params.map(([, p]) => p)]);
}

const x34 = () => [random([3, 4], 1)];
const img = () => [random([2, 4, 6, 6], 2)];
const positive = () => [random([3, 4], 3, 0.1, 3)];

const CASES: Case[] = [
  { name: 'add, sub, mul, div with tensors (broadcast) and scalars', inputs: () => [random([3, 4], 1), random([4], 2)], fn: (a, b) => [a.add(b), a.sub(2.5), a.mul(b), a.div(b.abs().add(1)), a.add(1).div(3)] },
  { name: 'rsub, pow, maximum, minimum', inputs: () => [random([3, 4], 1), random([3, 4], 2)], fn: (a, b) => [a.rsub(1), a.abs().pow(1.5), a.maximum(b), a.minimum(0.5)] },
  { name: 'remainder follows the divisor sign', inputs: x34, fn: (a) => [a.mul(3).remainder(1.5), a.mul(3).remainder(-1.25)] },
  { name: 'comparisons and logic', inputs: () => [random([3, 4], 1), random([3, 4], 2)], fn: (a, b) => [a.lt(b), a.le(0), a.gt(b), a.ge(0.5), a.eq(a), a.ne(b), a.gt(0).logicalAnd(b.gt(0)), a.gt(0).logicalOr(b.gt(0)), a.gt(0).logicalNot()] },
  { name: 'unary maths', inputs: x34, fn: (a) => [a.neg(), a.abs(), a.exp(), a.tanh(), a.sigmoid(), a.relu(), a.sign(), a.floor(), a.ceil(), a.mul(2).round(), a.square()] },
  { name: 'log, sqrt, rsqrt of positive values', inputs: positive, fn: (a) => [a.log(), a.sqrt(), a.rsqrt()] },
  { name: 'functional activations', inputs: x34, fn: (a) => [F.relu(a), F.leakyRelu(a, 0.2), F.sigmoid(a), F.softplus(a), F.relu_(a.mul(1))] },
  { name: 'clamp with both bounds and one', inputs: x34, fn: (a) => [a.clamp(-0.5, 0.5), a.clamp(0), a.clamp(undefined, 1)] },
  { name: 'isnan and isfinite', inputs: x34, fn: (a) => [a.log().isnan(), a.div(a.gt(0).float()).isfinite()] },
  { name: 'softmax and logSoftmax', inputs: img, fn: (a) => [a.softmax(1), F.softmax(a, -1), a.logSoftmax(1), F.logSoftmax(a, 2)] },
  { name: 'sum, mean, amax, amin, logsumexp', inputs: img, fn: (a) => [a.sum(), a.sum([1, 3]), a.sum(1, true), a.mean(), a.mean([2, 3], true), a.amax(1), a.amin([0, 2]), a.logsumexp(1)] },
  { name: 'reductions with opset 18 axes inputs', inputs: img, opset: 18, fn: (a) => [a.mean(1), a.amax([2, 3], true), a.amin(-1), a.var(1)] },
  { name: 'var, biased and unbiased', inputs: img, fn: (a) => [a.var(1, false), a.var([2, 3], true, true), a.var(0)] },
  { name: 'argmax and max(dim)', inputs: img, fn: (a) => { const m = a.max(1, true); return [a.argmax(1), a.argmax(), a.argmax(-1, true), m.values, m.indices]; } },
  { name: 'casts', inputs: x34, fn: (a) => [a.mul(2).long(), a.gt(0).float(), a.to('float64'), a.to('cpu')] },
  { name: 'shape ops', inputs: img, fn: (a) => [a.reshape([2, -1]), a.view([4, 2, 36]), a.unsqueeze(1).squeeze(1), a.narrow(1, 1, 2).squeeze(), a.flatten(1), a.flatten(), a.contiguous(), a.clone(), a.detach()] },
  { name: 'expand, permute, transpose', inputs: () => [random([2, 1, 3], 4)], fn: (a) => [a.expand([2, 5, 3]), a.permute([2, 0, 1]), a.transpose(0, -1), a.repeat([2, 1, 2]), a.repeat([3, 1, 1, 1])] },
  { name: 'narrow, slice, select, flip', inputs: img, fn: (a) => [a.narrow(-1, 2, 3), a.slice(2, 1, 6, 2), a.slice(3, 0, 100), a.select(1, -1), a.select(0, 1), a.flip([1, 3])] },
  { name: 'indexSelect and gather with constant indices', inputs: img, fn: (a) => [a.indexSelect(1, tensor(BigInt64Array.from([3n, 0n, 3n]), [3])), a.gather(1, a.argmax(1, true))] },
  { name: 'cat, stack, where', inputs: () => [random([2, 3], 1), random([2, 3], 2)], fn: (a, b) => [cat([a, b], 1), cat([a, b, a], -2), stack([a, b], 0), stack([a, b], -1), where(a.gt(b), a, b)] },
  { name: 'matmul and linear (2-D and 3-D input)', inputs: () => [random([2, 3, 4], 1)], params: () => [['w', random([5, 4], 7)], ['b', random([5], 8)]],
    fn: (a, w, b) => [a.matmul(w.transpose(0, 1)), F.linear(a, w, b), F.linear(a.select(0, 0), w, b), F.linear(a.select(0, 1), w)] },
  { name: 'constants made inside the traced function', inputs: x34, fn: (a) => [a.mul(arange(0, 4, 1, { dtype: 'float32' })), a.add(tensor([1, 2, 3], [3, 1]))] },
];

/** nn layers as the models use them, with random weights and statistics, in eval mode. */
function layerCase(name: string, make: () => nn.Module & { forward(x: Tensor): Tensor }, shape: number[]): Case {
  let layer: (nn.Module & { forward(x: Tensor): Tensor }) | null = null;
  return {
    name, inputs: () => [random(shape, 11)],
    params: () => {
      layer = make();
      let seed = 20;
      for (const [, t] of layer.namedBuffers()) if (t.dtype === 'float32') t.copy_(random(t.shape, seed++, 0.2, 1.5));
      for (const [, t] of layer.namedParameters()) t.detach().copy_(random(t.shape, seed++, -0.5, 0.5));
      layer.eval();
      return [...layer.namedParameters(), ...layer.namedBuffers()];
    },
    fn: (x) => layer!.forward(x),
    tolerance: 1e-4,
  };
}

CASES.push(
  layerCase('Conv2d with stride, padding, dilation and groups', () => new nn.Conv2d(4, 6, 3, { stride: 2, padding: 2, dilation: 2, groups: 2 }), [2, 4, 9, 9]),
  layerCase('Conv2d without bias', () => new nn.Conv2d(4, 3, [1, 3], { padding: [0, 1], bias: false }), [1, 4, 5, 5]),
  layerCase('ConvTranspose2d with output padding', () => new nn.ConvTranspose2d(4, 3, 3, { stride: 2, padding: 1, outputPadding: 1 }), [1, 4, 5, 5]),
  layerCase('BatchNorm2d in eval mode', () => new nn.BatchNorm2d(4), [2, 4, 5, 5]),
  layerCase('GroupNorm', () => new nn.GroupNorm(2, 4), [2, 4, 3, 5]),
  layerCase('Linear', () => new nn.Linear(5, 3), [2, 4, 5]),
  layerCase('Dropout in eval mode', () => new nn.Dropout(0.5), [2, 4, 5, 5]),
  { name: 'max, average and adaptive pooling', inputs: () => [random([1, 3, 8, 8], 5)],
    fn: (a) => [F.maxPool2d(a, 3, { stride: 2, padding: 1 }), F.maxPool2d(a, 2, { ceilMode: true, stride: 3 }), F.avgPool2d(a, 2), F.avgPool2d(a, 3, 2, 1), F.adaptiveAvgPool2d(a, 1), F.adaptiveAvgPool2d(a, [2, 4])] },
  { name: 'interpolate nearest and bilinear', inputs: () => [random([1, 2, 4, 5], 6)],
    fn: (a) => [F.interpolate(a, [8, 10]), F.interpolate(a, [7, 3], 'nearest'), F.interpolate(a, [8, 9], 'bilinear'), F.interpolate(a, [6, 7], 'bilinear', true), F.interpolate(a, [2, 3], 'bilinear')] },
);

for (const c of CASES) test(`export op: ${c.name}`, () => check(c));

test('every op in the table is exercised by a case above', () => {
  const traced = new Set<string>();
  for (const c of CASES) {
    const params = c.params?.() ?? [];
    const inputs = c.inputs();
    const { trace, result } = traceOps(params, (t) => {
      inputs.forEach((x, i) => t.input(`x${i}`, x));
      return tidy(() => [c.fn(...inputs, ...params.map(([, p]) => p))].flat());
    });
    for (const n of trace.nodes) traced.add(n.op);
    dispose([inputs, result, params.map(([, p]) => p)]);
  }
  assert.deepEqual(EXPORTABLE_OPS.filter((op) => !traced.has(op)), []);
});

function traceOne(fn: (x: Tensor) => Tensor, params: [string, Tensor][] = []): { error: unknown } {
  const x = random([1, 2, 4, 4], 9);
  try {
    const { trace, result } = traceOps(params, (t) => {
      t.input('x', x);
      return fn(x);
    });
    traceToOnnx(trace, [{ name: 'y', value: trace.valueOf(result) }], { opset: 17, graphName: 'g', producerVersion: 'test', docString: '', metadata: {} });
    return { error: null };
  } catch (err) {
    return { error: err };
  } finally {
    x.dispose();
  }
}

test('a trace refuses random draws, reads of computed values and tensors it cannot account for', () => {
  const cases: [string, (x: Tensor) => Tensor, RegExp][] = [
    ['randn', (x) => x.add(randn(x.shape)), /draws random numbers \(randn\)/],
    ['item', (x) => (x.sum().item() > 0 ? x : x.neg()), /reads a computed tensor's values into JavaScript \(item\)/],
    ['data', (x) => tensor(x.data() as Float32Array, x.shape), /reads a computed tensor's values into JavaScript \(data\)/],
  ];
  for (const [what, fn, pattern] of cases) {
    const { error } = traceOne(fn);
    assert.ok(error instanceof TraceError && pattern.test(error.message), `${what}: ${error}`);
  }
  const outside = random([1, 2, 4, 4], 10);
  const { error } = traceOne((x) => x.add(outside));
  assert.ok(error instanceof TraceError && /add reads a tensor of shape \[1, 2, 4, 4\] that is neither an input, a parameter/.test(error.message), String(error));
  outside.dispose();
});

test('export refuses ops with no faithful ONNX form, naming them', () => {
  const bn = new nn.BatchNorm2d(2);
  const params: [string, Tensor][] = [...bn.namedParameters(), ...bn.namedBuffers()];
  const inPlace = traceOne((x) => bn.forward(x), params);
  assert.ok(inPlace.error instanceof UserError && /overwrites a tensor in place \(copy_\)/.test(inPlace.error.message), String(inPlace.error));
  const training = traceOne((x) => F.batchNorm(x, { weight: bn.weight, bias: bn.bias, runningMean: bn.runningMean, runningVar: bn.runningVar, training: true }), params);
  assert.ok(training.error instanceof UserError && /batch normalisation runs in training mode/.test(training.error.message), String(training.error));
  const oneHot = traceOne((x) => F.oneHot(x.argmax(1), 3).float());
  assert.ok(oneHot.error instanceof UserError && /uses 'oneHot', which has no ONNX form/.test(oneHot.error.message), String(oneHot.error));
  bn.dispose();
});

test('outside a trace ops record nothing; traces do not nest', () => {
  const { trace } = traceOps([], () => tidy(() => void random([2], 1).add(1)));
  assert.equal(trace.nodes.length, 1, 'only the add inside the trace');
  assert.throws(() => traceOps([], () => traceOps([], () => 0)), /a trace is already active/);
  // After a failed trace, nothing is recording any more.
  assert.throws(() => traceOps([], () => { throw new Error('boom'); }), /boom/);
  const again = traceOps([], () => 1);
  assert.equal(again.trace.nodes.length, 0);
});
