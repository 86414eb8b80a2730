// Mixed precision and memory layout: the precision rule ('auto' by CPU), autocast regions, the
// transposed convolution computed as tiles, channels-last features, and a bf16 AVAP that stays close to
// its float32 self. Everything here must leave float32 results unchanged beyond rounding.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { UserError } from '../src/errors';
import { AVAP } from '../src/models/avap';
import { UnetBackbone } from '../src/models/backbone';
import {
  F, Tensor, autocast, cpuBf16Support, describePrecision, hasBf16Arithmetic, inPrecision, manualSeed, noGrad, randn, resolvePrecision, setNumThreads, tensor, tidy,
} from '../src/torch';
import { native } from '../src/torch/native';
import { traceOps } from '../src/torch/trace';
import { randomF64, values } from './torch-helpers';

setNumThreads(1);
const t = (name: string, fn: () => void, opts: { skip?: string | false } = {}): void => {
  test(name, { skip: opts.skip }, () => tidy(fn));
};
const maxDiff = (a: Tensor, b: Tensor) => tidy(() => a.float().sub(b.float()).abs().flatten().amax([0]).item());
const NO_BF16 = hasBf16Arithmetic() ? false : 'this CPU has neither AVX512-BF16 nor AMX: bf16 cannot be checked here';

// ---------------------------------------------------------------- the precision rule
const cpuinfo = (flags: string) => `processor\t: 0\nflags\t\t: fpu sse2 avx2 ${flags}\n\nprocessor\t: 1\n`;

t('cpuBf16Support reads the flags line of /proc/cpuinfo', () => {
  assert.deepEqual(cpuBf16Support(cpuinfo('avx512f avx512_bf16')), { avx512bf16: true, amx: false });
  assert.deepEqual(cpuBf16Support(cpuinfo('amx_bf16 amx_tile amx_int8')), { avx512bf16: false, amx: true });
  assert.deepEqual(cpuBf16Support(cpuinfo('amx_bf16')), { avx512bf16: false, amx: false }, 'AMX needs its tiles');
  assert.deepEqual(cpuBf16Support(cpuinfo('avx512f avx512_bf16x')), { avx512bf16: false, amx: false }, 'whole flags only');
  assert.deepEqual(cpuBf16Support(''), { avx512bf16: false, amx: false });
});

t('resolvePrecision: a table of choices, devices and CPUs', () => {
  const none = { avx512bf16: false, amx: false }, avx = { avx512bf16: true, amx: false }, amx = { avx512bf16: false, amx: true };
  const cases: [Parameters<typeof resolvePrecision>[0], string, typeof none, string][] = [
    ['auto', 'cpu', avx, 'bf16'], ['auto', 'cpu', amx, 'bf16'], ['auto', 'cpu', none, 'fp32'], ['auto', 'cuda', none, 'bf16'], ['auto', 'cuda:1', none, 'bf16'],
    ['fp32', 'cpu', avx, 'fp32'], ['fp32', 'cpu', none, 'fp32'], ['bf16', 'cpu', avx, 'bf16'], ['bf16', 'cpu', amx, 'bf16'], ['bf16', 'cuda', none, 'bf16'], ['fp32', 'cuda', avx, 'fp32'],
  ];
  for (const [choice, device, support, expected] of cases) assert.equal(resolvePrecision(choice, device, support), expected, `${choice} on ${device} ${JSON.stringify(support)}`);
  assert.throws(() => resolvePrecision('bf16', 'cpu', none), (e: Error) => e instanceof UserError && /--precision bf16 needs a CPU with AVX512-BF16 or AMX/.test(e.message));
  assert.throws(() => resolvePrecision('bf16', 'mps', avx), /--precision bf16 runs on the CPU or a CUDA GPU \(the device is mps\)/);
  assert.match(describePrecision('auto', 'bf16', none, 'cuda:0'), /\(auto: a CUDA GPU\)$/);
  assert.match(describePrecision('auto', 'bf16', avx), /^precision: bf16 convolutions, .* \(auto: this CPU has AVX512-BF16\)$/);
  assert.equal(describePrecision('auto', 'fp32', none), 'precision: fp32 (auto: this CPU has no bf16 arithmetic)');
  assert.equal(describePrecision('fp32', 'fp32', avx), 'precision: fp32');
});

t('autocast: convolutions compute in bfloat16 inside, float32 outside, and the region is left on throw', () => {
  const x = randn([1, 2, 5, 5]), w = randn([3, 2, 3, 3]);
  assert.equal(F.conv2d(x, w).dtype, 'float32');
  assert.equal(autocast('bfloat16', () => F.conv2d(x, w).dtype), 'bfloat16');
  assert.equal(autocast('bfloat16', () => autocast('bfloat16', () => F.conv2d(x, w)).dtype), 'bfloat16', 'nested');
  assert.throws(() => autocast('bfloat16', () => { throw new Error('inside'); }), /inside/);
  assert.equal(F.conv2d(x, w).dtype, 'float32', 'after a throw, autocast is off again');
  assert.throws(() => native.autocastEnter('float32'), /autocast supports only bfloat16 here/);
  assert.throws(() => native.autocastEnter('bfloat16', 'mps'), /autocast runs on 'cpu' or 'cuda', not 'mps'/);
  const y = inPrecision('bf16', () => F.conv2d(x, w));
  assert.equal(y.dtype, 'float32', 'inPrecision returns float32');
  assert.ok(maxDiff(y, F.conv2d(x, w)) < 0.1, 'bf16 keeps about three significant digits');
  assert.equal(values(y.float()).length, 27);
}, { skip: NO_BF16 });

t('a trace records float32 whatever the precision', () => {
  const xs = Float32Array.from({ length: 32 }, (_, i) => Math.sin(i)), ws = Float32Array.from({ length: 6 }, (_, i) => Math.cos(i));
  const { result, trace } = traceOps([], () => inPrecision('bf16', () => F.conv2d(tensor(xs, [1, 2, 4, 4]), tensor(ws, [3, 2, 1, 1]))));
  assert.equal(result.dtype, 'float32');
  assert.equal(maxDiff(result, F.conv2d(tensor(xs, [1, 2, 4, 4]), tensor(ws, [3, 2, 1, 1]))), 0);
  assert.deepEqual(trace.nodes.map((n) => n.op), ['conv2d'], 'no cast recorded');
});

// ---------------------------------------------------------------- transposed convolution as tiles
/** libtorch's own transposed convolution (the path a trace takes), for reference. */
function nativeConvTranspose(x: Tensor, w: Tensor, b: Tensor | null, stride: number[]): Tensor {
  return new Tensor(native.convTranspose2d(x.handle, w.handle, b?.handle ?? null, stride, [0, 0], [0, 0], 1, [1, 1]));
}

for (const [kernel, layout] of [[[2, 2], 'contiguous'], [[2, 2], 'channels_last'], [[3, 1], 'contiguous'], [[1, 2], 'channels_last']] as const) {
  t(`convTranspose2d with kernel = stride ${kernel.join('×')} (${layout} input): values and gradients equal libtorch's`, () => {
    const x0 = randomF64([2, 3, 3, 4], 1).contiguous(layout), w0 = randomF64([3, 2, kernel[0], kernel[1]], 2), b0 = randomF64([2], 3);
    const grads = (fn: (x: Tensor, w: Tensor, b: Tensor) => Tensor) => {
      const [x, w, b] = [x0, w0, b0].map((p) => p.detach().requiresGrad_());
      const y = fn(x, w, b);
      // A weighting that differs per output pixel, so a misplaced tile changes every gradient.
      y.mul(randomF64(y.shape, 4)).sum().backward();
      return { y, gx: x.grad!, gw: w.grad!, gb: b.grad! };
    };
    const ours = grads((x, w, b) => F.convTranspose2d(x, w, b, { stride: [...kernel] }));
    const ref = grads((x, w, b) => nativeConvTranspose(x, w, b, [...kernel]));
    assert.deepEqual(ours.y.shape, [2, 2, 3 * kernel[0], 4 * kernel[1]]);
    for (const k of ['y', 'gx', 'gw', 'gb'] as const) assert.ok(maxDiff(ours[k], ref[k]) < 1e-12, `${k}: ${maxDiff(ours[k], ref[k])}`);
    assert.equal(ours.y.memoryFormat, layout, 'the output keeps the input layout');
  });
}

t('convTranspose2d: a kernel unlike its stride, padding or groups keep libtorch\'s kernel', () => {
  const x = randomF64([1, 4, 3, 3], 5), w = randomF64([4, 2, 3, 3], 6);
  const y = F.convTranspose2d(x, w, null, { stride: 2, padding: 1, groups: 2 });
  assert.ok(maxDiff(y, new Tensor(native.convTranspose2d(x.handle, w.handle, null, [2, 2], [1, 1], [0, 0], 2, [1, 1]))) === 0);
});

// ---------------------------------------------------------------- channels-last features
t('the backbone computes in channels-last memory and gives NCHW\'s features', () => {
  manualSeed(4);
  const backbone = new UnetBackbone({ encoder: 'resnet18', inChannels: 3, featureChannels: 8 }).eval();
  const x = randn([2, 3, 64, 64]);
  noGrad(() => {
    const features = backbone.forward(x);
    assert.equal(features.memoryFormat, 'channels_last');
    const nchw = backbone.decoder.forward(backbone.encoder.forward(x));
    assert.equal(nchw.memoryFormat, 'contiguous');
    assert.ok(maxDiff(features, nchw) < 1e-4, `max difference ${maxDiff(features, nchw)}`);
  });
});

// ---------------------------------------------------------------- a whole model in bf16
t('AVAP in bf16: every output float32 and close to the float32 model\'s', () => {
  manualSeed(2);
  const model = new AVAP({
    structures: ['disc', 'cup'], annotators: ['A1', 'A2', 'A3'], backbone: { encoder: 'resnet18', inChannels: 3, featureChannels: 16 },
    avm: { hidden: 16, calibration: 'expectation' }, apm: { hidden: 8, conditioning: 'both' },
  }).eval();
  const x = randn([2, 3, 64, 64]);
  const fp32 = model.predict(x);
  model.setPrecision('bf16');
  assert.equal(model.apm.precision, 'bf16', 'setPrecision reaches every module');
  const bf16 = model.predict(x);
  for (const k of ['calibrated', 'annotators'] as const) {
    assert.equal(bf16[k].dtype, 'float32');
    assert.deepEqual(bf16[k].shape, fp32[k].shape);
    assert.ok(maxDiff(bf16[k], fp32[k]) < 0.05, `${k}: max difference ${maxDiff(bf16[k], fp32[k])}`);
    assert.ok(maxDiff(bf16[k], fp32[k]) > 0, `${k}: bf16 really ran`);
  }
  model.dispose();
}, { skip: NO_BF16 });
