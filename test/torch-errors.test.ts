// Bad input fails as a catchable JS Error whose one-line message starts with the op's name, and the
// process carries on: after each failure a normal op runs and gives the right answer.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { UserError } from '../src/errors';
import {
  DType, F, Tensor, arange, cat, cudaAvailable, isGradEnabled, memory, nn, ones, optim, randint, randn, setNumThreads, stack, tensor, tidy, where, zeros,
} from '../src/torch';

setNumThreads(1); // see torch-ops.test.ts

const longs = (v: number[], shape?: number[]): Tensor => tensor(BigInt64Array.from(v, BigInt), shape);

/** The call throws an Error (TypeError counts) with a one-line message matching `pattern`; then a normal op still works. */
function assertOpError(what: string, fn: () => unknown, pattern: RegExp): void {
  tidy(() => {
    let caught: unknown = null;
    try {
      fn();
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof Error, `${what}: expected an Error, got ${caught === null ? 'no exception' : String(caught)}`);
    assert.match(caught.message, pattern, what);
    assert.ok(!caught.message.includes('\n'), `${what}: message should be one line, got ${JSON.stringify(caught.message)}`);
    assert.ok(!/c10::|\.cpp|\.h:\d/.test(caught.message), `${what}: no C++ internals in ${caught.message}`);
    // the engine is still usable
    assert.equal(ones([2, 3]).matmul(ones([3, 1])).sum().item(), 6, `${what}: a normal op after the error`);
  });
}

const cases = (group: string, list: [string, () => unknown, RegExp][]): void => {
  test(group, () => {
    for (const [what, fn, pattern] of list) assertOpError(what, fn, pattern);
  });
};

cases('shape mismatches name the op and the shapes', [
  ['matmul', () => ones([2, 3]).matmul(ones([4, 5])), /^matmul: .*2x3 and 4x5.*\(inputs: \[2,3\] float32, \[4,5\] float32\)$/],
  ['batched matmul', () => ones([2, 2, 3]).matmul(ones([3, 2, 2])), /^matmul: /],
  ['add broadcasting', () => ones([2, 3]).add(ones([4])), /^add: The size of tensor a \(3\) must match the size of tensor b \(4\)/],
  ['mul broadcasting', () => ones([2, 3]).mul(ones([2, 2])), /^mul: /],
  ['logicalAnd broadcasting', () => ones([2]).gt(0).logicalAnd(ones([3]).gt(0)), /^logicalAnd: /],
  ['where broadcasting', () => where(ones([2]).gt(0), ones([3]), ones([2])), /^where: /],
  ['conv2d channels', () => F.conv2d(ones([1, 3, 8, 8]), ones([4, 2, 3, 3])), /^conv2d: input has 3 channels but weight \[4, 2, 3, 3\] with groups=1 expects 2$/],
  ['conv2d rank', () => F.conv2d(ones([3, 8, 8]), ones([4, 3, 3, 3])), /^conv2d: input must be 4-D \[N, C, H, W\], got shape \[3, 8, 8\]$/],
  ['conv2d kernel larger than input', () => F.conv2d(ones([1, 1, 2, 2]), ones([1, 1, 3, 3])), /^conv2d: /],
  ['conv2d bias size', () => F.conv2d(ones([1, 1, 4, 4]), ones([2, 1, 3, 3]), ones([3])), /^conv2d: /],
  ['convTranspose2d channels', () => F.convTranspose2d(ones([1, 3, 4, 4]), ones([2, 2, 3, 3])), /^convTranspose2d: input has 3 channels/],
  ['Conv2d layer channels', () => new nn.Conv2d(4, 2, 3).forward(ones([1, 3, 8, 8])), /^conv2d: input has 3 channels/],
  ['cat', () => cat([ones([2, 3]), ones([2, 4])], 0), /^cat: Sizes of tensors must match except in dimension 0/],
  ['cat dim', () => cat([ones([2, 3]), ones([2, 3])], 2), /^cat: Dimension out of range/],
  ['stack', () => stack([ones([2]), ones([3])]), /^stack: /],
  ['linear', () => F.linear(ones([2, 3]), ones([4, 5])), /^linear: input's last dimension is 3 but weight \[4, 5\] expects 5$/],
  ['reshape', () => ones([2, 3]).reshape([4, 2]), /^reshape: shape '\[4, 2\]' is invalid for input of size 6/],
  ['view of a non-contiguous tensor', () => ones([2, 3]).transpose(0, 1).view([6]), /^view: .*Use \.reshape/],
  ['expand', () => ones([2, 3]).expand([4, 3]), /^expand: /],
  ['permute', () => ones([2, 3]).permute([0, 0]), /^permute: /],
  ['select out of range', () => ones([2, 3]).select(1, 3), /^select: /],
  ['narrow out of range', () => ones([2, 3]).narrow(1, 2, 2), /^narrow: /],
  ['indexSelect out of range', () => ones([2, 3]).indexSelect(1, longs([5])), /^indexSelect: /],
  ['gather index shape', () => ones([2, 3]).gather(1, longs([0, 1, 2, 0, 1, 2, 0, 1, 2], [3, 3])), /^gather: /],
  ['sum over a missing dim', () => ones([2, 3]).sum(2), /^sum: Dimension out of range/],
  ['max over a missing dim', () => ones([2, 3]).max(5), /^max: Dimension out of range/],
  ['softmax dim', () => F.softmax(ones([2, 3]), 2), /^softmax: /],
  ['batchNorm weight size', () => F.batchNorm(ones([2, 3, 4, 4]), { weight: ones([2]), training: true }), /^batchNorm: /],
  ['BatchNorm2d channels', () => new nn.BatchNorm2d(4).forward(ones([2, 3, 4, 4])), /^BatchNorm2d: input has 3 channels, expected 4$/],
  ['batchNorm one value per channel', () => F.batchNorm(ones([1, 3, 1, 1]), { training: true }), /^batchNorm: expected more than 1 value per channel/],
  ['groupNorm groups', () => F.groupNorm(ones([1, 6, 2, 2]), 4), /^groupNorm: channels \(6\) must be divisible by numGroups \(4\)$/],
  ['crossEntropy class out of range', () => F.crossEntropy(ones([2, 3]), longs([0, 3])), /^crossEntropy: Target 3 is out of bounds/],
  ['crossEntropy target shape', () => F.crossEntropy(ones([2, 3, 4, 4]), longs([0, 1])), /^crossEntropy: /],
  ['crossEntropy weight size', () => F.crossEntropy(ones([2, 3]), longs([0, 1]), { weight: ones([4]) }), /^crossEntropy: /],
  ['mseLoss', () => F.mseLoss(ones([2, 3]), ones([3, 2])), /^mseLoss: /],
  ['tensor data length', () => tensor([1, 2, 3], [2, 2]), /^tensor: shape \[2, 2\] needs 4 values but data has 3$/],
  ['backward of a non-scalar', () => ones([2]).requiresGrad_().mul(2).backward(), /^backward: grad can be implicitly created only for scalar outputs/],
  ['backward gradient shape', () => ones([2]).requiresGrad_().mul(2).backward(ones([3])), /^backward: /],
  ['item of many', () => ones([2]).item(), /^item: only a one-element tensor has an item, this one has 2/],
]);

cases('wrong dtypes name the op and the dtype', [
  ['crossEntropy with a float target', () => F.crossEntropy(ones([2, 3]), zeros([2])), /^crossEntropy: target must hold int64 class indices, got float32$/],
  ['crossEntropy with an int32 target', () => F.crossEntropy(ones([2, 3]), zeros([2], { dtype: 'int32' })), /^crossEntropy: target must hold int64 class indices, got int32$/],
  ['nllLoss with a float target', () => F.nllLoss(ones([2, 3]), zeros([2])), /^nllLoss: target must hold int64 class indices, got float32$/],
  ['oneHot on float', () => F.oneHot(zeros([2]), 3), /^oneHot: input must be int64, got float32$/],
  ['oneHot index too large', () => F.oneHot(longs([0, 5]), 3), /^oneHot: /],
  ['conv2d on int64', () => F.conv2d(arange(0, 16).reshape([1, 1, 4, 4]), ones([1, 1, 3, 3])), /^conv2d: input must be float32, float64 or bfloat16, got int64$/],
  ['conv2d with mixed dtypes', () => F.conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3], { dtype: 'float64' })), /^conv2d: /],
  ['matmul of int64 and float32', () => arange(0, 4).reshape([2, 2]).matmul(ones([2, 2])), /^matmul: /],
  ['mean of int64', () => arange(0, 4).mean(), /^mean: .*Long/],
  ['requiresGrad on int64', () => arange(0, 4).requiresGrad_(), /^requiresGrad_: .*floating point/],
  ['indexSelect with a float index', () => ones([3]).indexSelect(0, zeros([1])), /^indexSelect: /],
]);

cases('using a disposed tensor names the op', [
  ['method on a disposed tensor', () => { const x = ones([2]); x.dispose(); return x.add(1); }, /^add: argument 0 is a disposed tensor$/],
  ['disposed operand', () => { const y = ones([2]); y.dispose(); return ones([2]).add(y); }, /^add: argument 1 is a disposed tensor$/],
  ['functional op', () => { const x = ones([1, 1, 3, 3]); x.dispose(); return F.conv2d(x, ones([1, 1, 1, 1])); }, /^conv2d: input has been disposed$/],
  ['cat element', () => { const y = ones([2]); y.dispose(); return cat([ones([2]), y]); }, /^cat: tensors\[1\] has been disposed$/],
  ['shape', () => { const x = ones([2]); void x.shape; x.dispose(); return x.shape; }, /^shape: tensor is disposed$/],
  ['data', () => { const x = ones([2]); x.dispose(); return x.data(); }, /^data: tensor is disposed$/],
  ['item', () => { const x = ones([1]); x.dispose(); return x.item(); }, /^item: tensor is disposed$/],
  ['backward', () => { const x = ones([1]).requiresGrad_().mul(2).sum(); x.dispose(); x.backward(); }, /^backward: tensor is disposed$/],
  ['dtype', () => { const x = ones([1]); x.dispose(); return x.dtype; }, /^dtype: tensor is disposed$/],
  ['optimizer over a disposed parameter', () => { const p = ones([1]).requiresGrad_(); p.dispose(); return new optim.SGD([p], { lr: 0.1 }); }, /^optimizer: argument 1 is a disposed tensor$/],
]);

test('a disposed tensor still answers isDisposed, and disposing twice is harmless', () => {
  const x = ones([2]);
  x.dispose();
  assert.equal(x.isDisposed, true);
  x.dispose();
  assert.equal(x.isDisposed, true);
  assert.equal(ones([3]).sum().item(), 3);
});

cases('bad arguments are rejected at the boundary with the op and argument named', [
  ['negative stride', () => F.conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { stride: -1 }), /^conv2d: stride must be an integer >= 1 or a pair of them, got -1$/],
  ['zero stride', () => F.conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { stride: [1, 0] }), /^conv2d: stride must be an integer >= 1 or a pair of them, got \[1,0\]$/],
  ['negative padding', () => F.conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { padding: -1 }), /^conv2d: padding must be an integer >= 0/],
  ['fractional dilation', () => F.conv2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { dilation: 1.5 }), /^conv2d: dilation must be an integer >= 1/],
  ['groups 0', () => F.conv2d(ones([1, 2, 4, 4]), ones([2, 2, 3, 3]), null, { groups: 0 }), /^conv2d: groups must be a positive integer, got 0$/],
  ['three-element stride', () => F.convTranspose2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { stride: [1, 1, 1] }), /^convTranspose2d: stride must be/],
  ['negative outputPadding', () => F.convTranspose2d(ones([1, 1, 4, 4]), ones([1, 1, 3, 3]), null, { outputPadding: -1 }), /^convTranspose2d: outputPadding must be/],
  ['non-integer kernel', () => F.maxPool2d(ones([1, 1, 4, 4]), 1.5), /^maxPool2d: kernelSize must be an integer >= 1 or a pair of them, got 1\.5$/],
  ['zero kernel', () => F.avgPool2d(ones([1, 1, 4, 4]), 0), /^avgPool2d: kernelSize must be/],
  ['maxPool2d negative stride', () => F.maxPool2d(ones([1, 1, 4, 4]), 2, { stride: -2 }), /^maxPool2d: stride must be/],
  ['maxPool2d padding larger than half the kernel', () => F.maxPool2d(ones([1, 1, 4, 4]), 2, { padding: 2 }), /^maxPool2d: /],
  ['Conv2d kernel 0', () => new nn.Conv2d(1, 1, 0), /^Conv2d: kernelSize must be/],
  ['adaptiveAvgPool2d size 0', () => F.adaptiveAvgPool2d(ones([1, 1, 4, 4]), 0), /^adaptiveAvgPool2d: outputSize must be/],
  ['interpolate mode', () => F.interpolate(ones([1, 1, 2, 2]), 4, 'bicubic' as 'bilinear'), /^interpolate: mode must be 'bilinear' or 'nearest', got 'bicubic'$/],
  ['interpolate size', () => F.interpolate(ones([1, 1, 2, 2]), [4, -1]), /^interpolate: size must be/],
  ['dropout p', () => F.dropout(ones([2]), 1.5), /^dropout: p must be in \[0, 1\], got 1\.5$/],
  ['dropout NaN', () => F.dropout(ones([2]), NaN), /^dropout: p must be in \[0, 1\], got NaN$/],
  ['reduction', () => F.crossEntropy(ones([2, 3]), longs([0, 1]), { reduction: 'avg' as 'mean' }), /^crossEntropy: reduction must be 'mean', 'sum' or 'none', got 'avg'/],
  ['oneHot classes', () => F.oneHot(longs([0]), 0), /^oneHot: numClasses must be a positive integer, got 0$/],
  ['reshape fractional', () => ones([4]).reshape([2.5, 2]), /^reshape: shape must be an array of integers, got \[2\.5,2\]$/],
  ['zeros fractional shape', () => zeros([2, 1.5]), /^zeros: shape must be an array of integers/],
  ['zeros negative shape', () => zeros([-2]), /^zeros: shape must be an array of integers|^zeros: /],
  ['arange step 0', () => arange(0, 5, 0), /^arange: step must be non-zero$/],
  ['arange wrong direction', () => arange(5, 0, 1), /^arange: /],
  ['randint empty range', () => randint(5, 5, [2]), /^randint: /],
  ['setNumThreads 0', () => setNumThreads(0), /^setNumThreads: n must be a positive integer, got 0$/],
  ['conv2d on a non-tensor', () => F.conv2d(null as unknown as Tensor, ones([1, 1, 1, 1])), /^conv2d: input must be a Tensor, got null$/],
  ['add a string', () => ones([2]).add('1' as unknown as number), /^add: argument 1 must be a tensor$/],
  ['cat of a non-array', () => cat(ones([2]) as unknown as Tensor[]), /^cat: tensors must be a non-empty array$/],
  ['tensor from an Int16Array', () => tensor(new Int16Array(2) as unknown as Int32Array), /^tensor: data must be a number array, Float32Array.*got Int16Array$/],
  ['SGD nesterov without momentum', () => new optim.SGD([ones([1]).requiresGrad_()], { nesterov: true }), /^SGD: nesterov needs momentum > 0/],
  ['Adam lr 0', () => new optim.Adam([ones([1]).requiresGrad_()], { lr: 0 }), /^adam: lr must be positive, got 0$/],
  ['loading optimizer garbage', () => new optim.Adam([ones([1]).requiresGrad_()]).loadState(new Uint8Array(10)), /^optimizer\.load: /],
]);

cases('unknown dtypes and devices name the op', [
  ['zeros', () => zeros([2], { dtype: 'float16' as DType }), /^zeros: unknown dtype 'float16' \(float32, float64, int64, int32, uint8, bool, bfloat16\)$/],
  ['ones', () => ones([2], { dtype: 'half' as DType }), /^ones: unknown dtype 'half'/],
  ['randn', () => randn([2], { dtype: 'float8' as DType }), /^randn: unknown dtype 'float8'/],
  ['arange', () => arange(0, 3, 1, { dtype: 'complex64' as DType }), /^arange: unknown dtype 'complex64'/],
  ['tensor', () => tensor([1, 2], [2], 'float16' as DType), /^tensor: unknown dtype "float16" \(float32, float64, int64, int32, uint8, bool, bfloat16\)$/],
  ['to', () => ones([2]).to('float16' as DType), /^to: unknown dtype or device "float16"/],
  ['to an unknown device', () => ones([2]).to('tpu'), /^to: unknown dtype or device "tpu"/],
  ['zeros on an unknown device', () => zeros([2], { device: 'gpu' }), /^zeros: /],
]);

test('a CUDA device without CUDA fails cleanly', () => {
  if (cudaAvailable()) return; // on a CUDA build this is not an error
  assertOpError('to cuda', () => ones([2]).to('cuda'), /^to: device 'cuda' requested but this libtorch has no CUDA device available/);
});

test('loadStateDict errors are UserErrors (the CLI prints them without a stack trace)', () => {
  const lin = new nn.Linear(2, 2);
  try {
    assert.throws(() => lin.loadStateDict({ weight: zeros([2, 3]) }), (e: unknown) => e instanceof UserError && /^cannot load state dict: /.test(e.message));
    assert.equal(ones([1]).add(1).item(), 2);
  } finally {
    lin.dispose();
  }
});

test('after many errors nothing leaked and grad mode is intact', () => {
  const base = memory();
  for (let i = 0; i < 200; i++) {
    try {
      tidy(() => ones([2, 3]).matmul(ones([2, 3])));
    } catch {
      // expected
    }
  }
  assert.deepEqual(memory(), base);
  assert.equal(isGradEnabled(), true);
});

test('contiguous: channels_last keeps the values, and a bad format or rank names the op', () => {
  tidy(() => {
    const x = randn([2, 3, 4, 5]);
    const nhwc = x.contiguous('channels_last');
    assert.deepEqual(nhwc.shape, [2, 3, 4, 5]);
    assert.deepEqual(Array.from(nhwc.data() as Float32Array), Array.from(x.data() as Float32Array));
    assert.deepEqual(Array.from(nhwc.permute([0, 2, 3, 1]).contiguous().data() as Float32Array), Array.from(x.permute([0, 2, 3, 1]).contiguous().data() as Float32Array));
  });
  assertOpError('3-d', () => randn([2, 3, 4]).contiguous('channels_last'), /^contiguous: channels_last needs a 4-d tensor, got 3-d/);
  assertOpError('format', () => randn([1, 1, 2, 2]).contiguous('nhwc' as 'channels_last'), /^contiguous: memory format must be 'contiguous' or 'channels_last', got 'nhwc'/);
});
