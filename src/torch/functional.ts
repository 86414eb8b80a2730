// torch.nn.functional: the layer ops, validated at the boundary (op and argument named in every error).
import { native } from './native';
import { Tensor, tidy } from './tensor';
import { isTracing, record } from './trace';
import { assertFloat, assertRank, assertTensor, pair, positiveInt } from './validate';

const NCHW = '[N, C, H, W]';

export interface Conv2dOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  groups?: number;
}

export function conv2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, opts: Conv2dOptions = {}): Tensor {
  assertRank('conv2d', 'input', input, 4, NCHW);
  assertRank('conv2d', 'weight', weight, 4, '[out, in/groups, kH, kW]');
  if (bias !== null) assertRank('conv2d', 'bias', bias, 1, '[out]');
  assertFloat('conv2d', 'input', input);
  const groups = positiveInt('conv2d', 'groups', opts.groups ?? 1);
  if (input.shape[1] !== weight.shape[1] * groups) {
    throw new Error(`conv2d: input has ${input.shape[1]} channels but weight [${weight.shape.join(', ')}] with groups=${groups} expects ${weight.shape[1] * groups}`);
  }
  const stride = pair('conv2d', 'stride', opts.stride ?? 1, 1);
  const padding = pair('conv2d', 'padding', opts.padding ?? 0);
  const dilation = pair('conv2d', 'dilation', opts.dilation ?? 1, 1);
  return record('conv2d', [input, weight, bias], { stride, padding, dilation, groups },
    new Tensor(native.conv2d(input.handle, weight.handle, bias?.handle ?? null, stride, padding, dilation, groups)));
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: number | number[];
}

export function convTranspose2d(input: Tensor, weight: Tensor, bias: Tensor | null = null, opts: ConvTranspose2dOptions = {}): Tensor {
  assertRank('convTranspose2d', 'input', input, 4, NCHW);
  assertRank('convTranspose2d', 'weight', weight, 4, '[in, out/groups, kH, kW]');
  if (bias !== null) assertRank('convTranspose2d', 'bias', bias, 1, '[out]');
  const groups = positiveInt('convTranspose2d', 'groups', opts.groups ?? 1);
  if (input.shape[1] !== weight.shape[0]) {
    throw new Error(`convTranspose2d: input has ${input.shape[1]} channels but weight [${weight.shape.join(', ')}] expects ${weight.shape[0]}`);
  }
  const stride = pair('convTranspose2d', 'stride', opts.stride ?? 1, 1);
  const padding = pair('convTranspose2d', 'padding', opts.padding ?? 0);
  const outputPadding = pair('convTranspose2d', 'outputPadding', opts.outputPadding ?? 0);
  const dilation = pair('convTranspose2d', 'dilation', opts.dilation ?? 1, 1);
  const [, , kh, kw] = weight.shape;
  const tiles = kh === stride[0] && kw === stride[1] && groups === 1 && padding.every((p) => p === 0)
    && outputPadding.every((p) => p === 0) && dilation.every((d) => d === 1);
  if (tiles && !isTracing()) return stridedTiles(input, weight, bias);
  return record('convTranspose2d', [input, weight, bias], { stride, padding, outputPadding, dilation, groups },
    new Tensor(native.convTranspose2d(input.handle, weight.handle, bias?.handle ?? null, stride, padding, outputPadding, groups, dilation)));
}

/**
 * A transposed convolution whose kernel equals its stride (a U-Net's 2×2, stride-2 up-convolution) writes
 * each input pixel's kH×kW output tile independently: it is a 1×1 convolution to out·kH·kW channels,
 * then a pixel shuffle. libtorch's transposed convolution ran 4–5× slower, fwd+bwd, than this on the
 * decoder's shapes, and CPU autocast cannot lower it to bfloat16 (README, "Speed"). Same values up to
 * float rounding; the output keeps the input's memory format.
 */
function stridedTiles(input: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  return tidy(() => {
    const [inChannels, out, kh, kw] = weight.shape;
    const [N, , H, W] = input.shape;
    const w = weight.permute([1, 2, 3, 0]).reshape([out * kh * kw, inChannels, 1, 1]);
    const b = bias === null ? null : bias.view([out, 1]).expand([out, kh * kw]).reshape([out * kh * kw]);
    const y = new Tensor(native.conv2d(input.handle, w.handle, b?.handle ?? null, [1, 1], [0, 0], [1, 1], 1));
    if (y.memoryFormat === 'channels_last') {
      // NHWC memory: [N, H, W, out, kh, kw] → [N, H, kh, W, kw, out], a channels-last result.
      return y.permute([0, 2, 3, 1]).reshape([N, H, W, out, kh, kw]).permute([0, 1, 4, 2, 5, 3])
        .reshape([N, H * kh, W * kw, out]).permute([0, 3, 1, 2]);
    }
    return y.view([N, out, kh, kw, H, W]).permute([0, 1, 4, 2, 5, 3]).reshape([N, out, H * kh, W * kw]);
  });
}

export function linear(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  assertTensor('linear', 'input', input);
  assertRank('linear', 'weight', weight, 2, '[out, in]');
  if (input.shape[input.ndim - 1] !== weight.shape[1]) {
    throw new Error(`linear: input's last dimension is ${input.shape[input.ndim - 1]} but weight [${weight.shape.join(', ')}] expects ${weight.shape[1]}`);
  }
  return record('linear', [input, weight, bias], {}, new Tensor(native.linear(input.handle, weight.handle, bias?.handle ?? null)));
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  runningMean?: Tensor | null;
  runningVar?: Tensor | null;
  training: boolean;
  momentum?: number;
  eps?: number;
}

/** Batch normalisation; in training mode it updates runningMean/runningVar in place (PyTorch's semantics). */
export function batchNorm(input: Tensor, opts: BatchNormOptions): Tensor {
  assertTensor('batchNorm', 'input', input);
  if (input.ndim < 2) throw new Error(`batchNorm: input must have a channel dimension [N, C, ...], got shape [${input.shape.join(', ')}]`);
  if (opts.training && input.numel() / input.shape[1] <= 1) {
    throw new Error(`batchNorm: expected more than 1 value per channel when training, got input shape [${input.shape.join(', ')}]`);
  }
  const { training, momentum = 0.1, eps = 1e-5 } = opts;
  return record('batchNorm', [input, opts.weight, opts.bias, opts.runningMean, opts.runningVar], { training, momentum, eps },
    new Tensor(native.batchNorm(input.handle, opts.weight?.handle ?? null, opts.bias?.handle ?? null, opts.runningMean?.handle ?? null,
      opts.runningVar?.handle ?? null, training, momentum, eps)));
}

export function groupNorm(input: Tensor, numGroups: number, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  assertTensor('groupNorm', 'input', input);
  positiveInt('groupNorm', 'numGroups', numGroups);
  if (input.ndim < 2 || input.shape[1] % numGroups !== 0) {
    throw new Error(`groupNorm: channels (${input.shape[1]}) must be divisible by numGroups (${numGroups})`);
  }
  return record('groupNorm', [input, weight, bias], { numGroups, eps }, new Tensor(native.groupNorm(input.handle, numGroups, weight?.handle ?? null, bias?.handle ?? null, eps)));
}

export function relu(x: Tensor): Tensor {
  assertTensor('relu', 'input', x);
  return record('relu', [x], {}, new Tensor(native.relu(x.handle)));
}
/** In-place ReLU (F.relu(x, inplace=True)); returns x. Only valid where autograd does not need x's old value. */
export function relu_(x: Tensor): Tensor {
  assertTensor('relu_', 'input', x);
  native.relu_(x.handle);
  return record('relu', [x], {}, x);
}
export function leakyRelu(x: Tensor, negativeSlope = 0.01): Tensor {
  assertTensor('leakyRelu', 'input', x);
  return record('leakyRelu', [x], { negativeSlope }, new Tensor(native.leakyRelu(x.handle, negativeSlope)));
}
export function sigmoid(x: Tensor): Tensor {
  assertTensor('sigmoid', 'input', x);
  return record('sigmoid', [x], {}, new Tensor(native.sigmoid(x.handle)));
}
export function softplus(x: Tensor): Tensor {
  assertTensor('softplus', 'input', x);
  return record('softplus', [x], {}, new Tensor(native.softplus(x.handle)));
}
export function softmax(x: Tensor, dim: number): Tensor {
  assertTensor('softmax', 'input', x);
  return record('softmax', [x], { dim }, new Tensor(native.softmax(x.handle, dim)));
}
export function logSoftmax(x: Tensor, dim: number): Tensor {
  assertTensor('logSoftmax', 'input', x);
  return record('logSoftmax', [x], { dim }, new Tensor(native.logSoftmax(x.handle, dim)));
}

export interface MaxPool2dOptions {
  stride?: number | number[];
  padding?: number | number[];
  dilation?: number | number[];
  ceilMode?: boolean;
}
export function maxPool2d(x: Tensor, kernelSize: number | number[], opts: MaxPool2dOptions = {}): Tensor {
  assertRank('maxPool2d', 'input', x, 4, NCHW);
  const kernel = pair('maxPool2d', 'kernelSize', kernelSize, 1);
  const stride = pair('maxPool2d', 'stride', opts.stride ?? kernel, 1);
  const padding = pair('maxPool2d', 'padding', opts.padding ?? 0);
  const dilation = pair('maxPool2d', 'dilation', opts.dilation ?? 1, 1);
  const ceilMode = opts.ceilMode ?? false;
  return record('maxPool2d', [x], { kernel, stride, padding, dilation, ceilMode }, new Tensor(native.maxPool2d(x.handle, kernel, stride, padding, dilation, ceilMode)));
}
export function avgPool2d(x: Tensor, kernelSize: number | number[], stride?: number | number[], padding: number | number[] = 0): Tensor {
  assertRank('avgPool2d', 'input', x, 4, NCHW);
  const kernel = pair('avgPool2d', 'kernelSize', kernelSize, 1);
  const strides = pair('avgPool2d', 'stride', stride ?? kernel, 1);
  const pads = pair('avgPool2d', 'padding', padding);
  return record('avgPool2d', [x], { kernel, stride: strides, padding: pads }, new Tensor(native.avgPool2d(x.handle, kernel, strides, pads)));
}
export function adaptiveAvgPool2d(x: Tensor, outputSize: number | number[]): Tensor {
  assertRank('adaptiveAvgPool2d', 'input', x, 4, NCHW);
  const size = pair('adaptiveAvgPool2d', 'outputSize', outputSize, 1);
  return record('adaptiveAvgPool2d', [x], { outputSize: size }, new Tensor(native.adaptiveAvgPool2d(x.handle, size)));
}

export function interpolate(x: Tensor, size: number | number[], mode: 'bilinear' | 'nearest' = 'nearest', alignCorners = false): Tensor {
  assertRank('interpolate', 'input', x, 4, NCHW);
  if (mode !== 'bilinear' && mode !== 'nearest') throw new Error(`interpolate: mode must be 'bilinear' or 'nearest', got '${mode}'`);
  const outputSize = pair('interpolate', 'size', size, 1);
  return record('interpolate', [x], { size: outputSize, mode, alignCorners }, new Tensor(native.interpolate(x.handle, outputSize, mode, alignCorners)));
}

export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  assertTensor('dropout', 'input', x);
  if (!(p >= 0 && p <= 1)) throw new Error(`dropout: p must be in [0, 1], got ${p}`);
  return record('dropout', [x], { p, training }, new Tensor(native.dropout(x.handle, p, training)));
}

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  reduction?: Reduction;
  ignoreIndex?: number;
  labelSmoothing?: number;
}

/** Cross-entropy over class logits [N, C, ...] and int64 class targets [N, ...] (PyTorch's F.cross_entropy). */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  assertTensor('crossEntropy', 'input', logits);
  assertTensor('crossEntropy', 'target', target);
  if (target.dtype !== 'int64') throw new Error(`crossEntropy: target must hold int64 class indices, got ${target.dtype}`);
  if (opts.weight) assertRank('crossEntropy', 'weight', opts.weight, 1, '[C]');
  return new Tensor(native.crossEntropy(logits.handle, target.handle, opts.weight?.handle ?? null, opts.reduction ?? 'mean', opts.ignoreIndex ?? -100,
    opts.labelSmoothing ?? 0));
}

export function nllLoss(logProbs: Tensor, target: Tensor, opts: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  assertTensor('nllLoss', 'input', logProbs);
  assertTensor('nllLoss', 'target', target);
  if (target.dtype !== 'int64') throw new Error(`nllLoss: target must hold int64 class indices, got ${target.dtype}`);
  return new Tensor(native.nllLoss(logProbs.handle, target.handle, opts.weight?.handle ?? null, opts.reduction ?? 'mean', opts.ignoreIndex ?? -100));
}

export function binaryCrossEntropyWithLogits(logits: Tensor, target: Tensor, weight: Tensor | null = null, reduction: Reduction = 'mean'): Tensor {
  assertTensor('binaryCrossEntropyWithLogits', 'input', logits);
  assertTensor('binaryCrossEntropyWithLogits', 'target', target);
  return new Tensor(native.binaryCrossEntropyWithLogits(logits.handle, target.handle, weight?.handle ?? null, reduction));
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  assertTensor('mseLoss', 'input', input);
  assertTensor('mseLoss', 'target', target);
  return new Tensor(native.mseLoss(input.handle, target.handle, reduction));
}

/** One-hot encoding of int64 indices: [...] → [..., numClasses] int64. */
export function oneHot(indices: Tensor, numClasses: number): Tensor {
  assertTensor('oneHot', 'input', indices);
  if (indices.dtype !== 'int64') throw new Error(`oneHot: input must be int64, got ${indices.dtype}`);
  return record('oneHot', [indices], { numClasses }, new Tensor(native.oneHot(indices.handle, positiveInt('oneHot', 'numClasses', numClasses))));
}
