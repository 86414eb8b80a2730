// Each traced op of the tensor layer (src/torch: PyTorch's names and semantics) as ONNX nodes. Shapes are
// static: the trace knows every value's shape, so reshapes and expands use the concrete output shape.
import { UserError } from '../errors';
import { DType } from '../torch';
import { TraceNode, TraceValue } from '../torch/trace';
import { GraphBuilder, ONNX_DTYPE, float, int, ints, str } from './graph';

type Emit = (b: GraphBuilder, n: TraceNode) => void;

const INT64_MIN = -(2 ** 63);
const IN_PLACE_WRITES = new Set(['copy_', 'fill_']);

/** Writes one traced op into the graph; an op without an ONNX form is a UserError naming it. */
export function emitNode(b: GraphBuilder, n: TraceNode): void {
  if (IN_PLACE_WRITES.has(n.op)) {
    throw new UserError(`export: the model's forward pass overwrites a tensor in place (${n.op}), which a graph cannot express (a module in training mode does; export in eval mode)`);
  }
  const emit = OPS[n.op];
  if (!emit) throw new UserError(`export: the model's forward pass uses '${n.op}', which has no ONNX form in this exporter`);
  emit(b, n);
}

// ---------------------------------------------------------------- operand helpers
function tensorAt(n: TraceNode, i: number): TraceValue {
  const x = n.inputs[i];
  if (x === null || typeof x === 'number') throw new Error(`export: ${n.op} expects a tensor as operand ${i}`);
  return x;
}
const out = (n: TraceNode, i = 0): TraceValue => n.outputs[i];
const input = (b: GraphBuilder, n: TraceNode, i = 0): string => b.nameOf(tensorAt(n, i));
const optional = (b: GraphBuilder, n: TraceNode, i: number): string => {
  const x = n.inputs[i];
  return x === null || x === undefined ? '' : b.nameOf(x as TraceValue);
};
const attr = <T>(n: TraceNode, key: string): T => n.attrs[key] as T;
const axis = (dim: number, rank: number): number => (dim < 0 ? dim + rank : dim);

/** Binds the op's single output to a node's result. */
function result(b: GraphBuilder, n: TraceNode, name: string): void {
  b.bind(out(n), name);
}

/** An operand (tensor or scalar) as a value of `dtype`, cast when the tensor layer promoted it. */
function operandAs(b: GraphBuilder, n: TraceNode, i: number, dtype: DType): string {
  const x = n.inputs[i];
  if (typeof x === 'number') return b.scalar(dtype, x);
  const v = tensorAt(n, i);
  return v.dtype === dtype ? b.nameOf(v) : b.op('Cast', [b.nameOf(v)], { to: int(ONNX_DTYPE[dtype]) });
}

/** The dtype both operands of a comparison are brought to (PyTorch's promotion, for the dtypes used here). */
function commonDType(n: TraceNode): DType {
  const dtypes = n.inputs.filter((x): x is TraceValue => x !== null && typeof x !== 'number').map((v) => v.dtype);
  if (dtypes.includes('float64')) return 'float64';
  if (dtypes.includes('float32') || n.inputs.some((x) => typeof x === 'number' && !Number.isInteger(x))) return 'float32';
  return dtypes[0];
}

function arithmetic(opType: string): Emit {
  return (b, n) => {
    const dtype = out(n).dtype;
    result(b, n, b.op(opType, [operandAs(b, n, 0, dtype), operandAs(b, n, 1, dtype)]));
  };
}

function comparison(opType: string, negate = false): Emit {
  return (b, n) => {
    const dtype = commonDType(n);
    const r = b.op(opType, [operandAs(b, n, 0, dtype), operandAs(b, n, 1, dtype)]);
    result(b, n, negate ? b.op('Not', [r]) : r);
  };
}

function unary(opType: string, attrs: (n: TraceNode) => Record<string, ReturnType<typeof int>> = () => ({})): Emit {
  return (b, n) => result(b, n, b.op(opType, [input(b, n)], attrs(n)));
}

function alias(b: GraphBuilder, n: TraceNode): void {
  result(b, n, input(b, n));
}

/** Every op that only changes the shape: a Reshape to the traced output shape. */
function reshapeTo(b: GraphBuilder, n: TraceNode): void {
  result(b, n, b.op('Reshape', [input(b, n), b.int64s(out(n).shape)]));
}

/** ReduceX over dims (all when null); the axes moved from an attribute to an input in opset 18 (13 for ReduceSum). */
function reduce(b: GraphBuilder, opType: string, x: string, rank: number, dims: number[] | null, keepdim: boolean): string {
  const attrs = { keepdims: int(keepdim ? 1 : 0) };
  if (dims === null) return b.op(opType, [x], attrs);
  const axes = dims.map((d) => axis(d, rank));
  const axesAsInput = opType === 'ReduceSum' ? b.opset >= 13 : b.opset >= 18;
  return axesAsInput ? b.op(opType, [x, b.int64s(axes)], attrs) : b.op(opType, [x], { ...attrs, axes: ints(axes) });
}

function reduction(opType: string): Emit {
  return (b, n) => {
    const x = tensorAt(n, 0);
    result(b, n, reduce(b, opType, b.nameOf(x), x.shape.length, attr(n, 'dims'), attr(n, 'keepdim')));
  };
}

function pads(padding: number[]): number[] {
  return [padding[0], padding[1], padding[0], padding[1]];
}

// ---------------------------------------------------------------- the table
const OPS: Record<string, Emit> = {
  // elementwise
  add: arithmetic('Add'),
  sub: arithmetic('Sub'),
  mul: arithmetic('Mul'),
  div: arithmetic('Div'),
  pow: arithmetic('Pow'),
  maximum: arithmetic('Max'),
  minimum: arithmetic('Min'),
  rsub: (b, n) => {
    const dtype = out(n).dtype;
    result(b, n, b.op('Sub', [operandAs(b, n, 1, dtype), operandAs(b, n, 0, dtype)]));
  },
  remainder: (b, n) => {
    const dtype = out(n).dtype;
    const [x, y] = [operandAs(b, n, 0, dtype), operandAs(b, n, 1, dtype)];
    if (dtype !== 'float32' && dtype !== 'float64') return result(b, n, b.op('Mod', [x, y], { fmod: int(0) }));
    // PyTorch's remainder takes the divisor's sign: x - floor(x / y)·y.
    result(b, n, b.op('Sub', [x, b.op('Mul', [b.op('Floor', [b.op('Div', [x, y])]), y])]));
  },
  eq: comparison('Equal'),
  ne: comparison('Equal', true),
  lt: comparison('Less'),
  le: comparison('LessOrEqual'),
  gt: comparison('Greater'),
  ge: comparison('GreaterOrEqual'),
  logicalAnd: (b, n) => result(b, n, b.op('And', [input(b, n, 0), input(b, n, 1)])),
  logicalOr: (b, n) => result(b, n, b.op('Or', [input(b, n, 0), input(b, n, 1)])),
  logicalNot: unary('Not'),
  neg: unary('Neg'),
  abs: unary('Abs'),
  exp: unary('Exp'),
  log: unary('Log'),
  sqrt: unary('Sqrt'),
  rsqrt: (b, n) => result(b, n, b.op('Reciprocal', [b.op('Sqrt', [input(b, n)])])),
  square: (b, n) => result(b, n, b.op('Mul', [input(b, n), input(b, n)])),
  sign: unary('Sign'),
  floor: unary('Floor'),
  ceil: unary('Ceil'),
  // Both round half to even.
  round: unary('Round'),
  tanh: unary('Tanh'),
  sigmoid: unary('Sigmoid'),
  relu: unary('Relu'),
  leakyRelu: unary('LeakyRelu', (n) => ({ alpha: float(attr(n, 'negativeSlope')) })),
  softplus: unary('Softplus'),
  isnan: unary('IsNaN'),
  isfinite: (b, n) => {
    const x = input(b, n);
    result(b, n, b.op('Not', [b.op('Or', [b.op('IsNaN', [x]), b.op('IsInf', [x])])]));
  },
  clamp: (b, n) => {
    const dtype = out(n).dtype;
    const bound = (v: number | undefined) => (v === undefined || v === null ? '' : b.scalar(dtype, v));
    result(b, n, b.op('Clip', [input(b, n), bound(attr(n, 'min')), bound(attr(n, 'max'))]));
  },
  softmax: (b, n) => result(b, n, b.op('Softmax', [input(b, n)], { axis: int(axis(attr(n, 'dim'), tensorAt(n, 0).shape.length)) })),
  logSoftmax: (b, n) => result(b, n, b.op('LogSoftmax', [input(b, n)], { axis: int(axis(attr(n, 'dim'), tensorAt(n, 0).shape.length)) })),
  matmul: (b, n) => result(b, n, b.op('MatMul', [input(b, n, 0), input(b, n, 1)])),
  to: (b, n) => {
    const dtype = attr<DType | undefined>(n, 'dtype');
    if (dtype === undefined || dtype === tensorAt(n, 0).dtype) return alias(b, n);
    result(b, n, b.op('Cast', [input(b, n)], { to: int(ONNX_DTYPE[dtype]) }));
  },
  clone: alias,
  contiguous: alias,
  detach: alias,

  // reductions
  sum: reduction('ReduceSum'),
  mean: reduction('ReduceMean'),
  amax: reduction('ReduceMax'),
  amin: reduction('ReduceMin'),
  logsumexp: reduction('ReduceLogSumExp'),
  var: (b, n) => {
    const x = tensorAt(n, 0);
    const rank = x.shape.length;
    const dims = attr<number[] | null>(n, 'dims') ?? x.shape.map((_, i) => i);
    const name = b.nameOf(x);
    const centred = b.op('Sub', [name, reduce(b, 'ReduceMean', name, rank, dims, true)]);
    let v = reduce(b, 'ReduceMean', b.op('Mul', [centred, centred]), rank, dims, attr(n, 'keepdim'));
    if (attr(n, 'unbiased')) {
      const count = dims.reduce((p, d) => p * x.shape[axis(d, rank)], 1);
      v = b.op('Mul', [v, b.scalar(x.dtype, count / (count - 1))]);
    }
    result(b, n, v);
  },
  argmax: (b, n) => {
    const x = tensorAt(n, 0);
    const dim = attr<number | null>(n, 'dim');
    if (dim === null) {
      const flat = b.op('Reshape', [b.nameOf(x), b.int64s([-1])]);
      return result(b, n, b.op('Reshape', [b.op('ArgMax', [flat], { axis: int(0), keepdims: int(0) }), b.int64s(out(n).shape)]));
    }
    result(b, n, b.op('ArgMax', [b.nameOf(x)], { axis: int(axis(dim, x.shape.length)), keepdims: int(attr(n, 'keepdim') ? 1 : 0) }));
  },
  max: (b, n) => {
    const x = tensorAt(n, 0);
    const dim = axis(attr(n, 'dim'), x.shape.length);
    const keepdims = int(attr(n, 'keepdim') ? 1 : 0);
    b.bind(out(n, 0), reduce(b, 'ReduceMax', b.nameOf(x), x.shape.length, [dim], attr(n, 'keepdim')));
    b.bind(out(n, 1), b.op('ArgMax', [b.nameOf(x)], { axis: int(dim), keepdims }));
  },

  // shapes and indexing
  reshape: reshapeTo,
  view: reshapeTo,
  squeeze: reshapeTo,
  unsqueeze: reshapeTo,
  flatten: reshapeTo,
  expand: (b, n) => result(b, n, b.op('Expand', [input(b, n), b.int64s(out(n).shape)])),
  permute: (b, n) => {
    const rank = tensorAt(n, 0).shape.length;
    result(b, n, b.op('Transpose', [input(b, n)], { perm: ints(attr<number[]>(n, 'dims').map((d) => axis(d, rank))) }));
  },
  transpose: (b, n) => {
    const rank = tensorAt(n, 0).shape.length;
    const perm = Array.from({ length: rank }, (_, i) => i);
    const [d0, d1] = [axis(attr(n, 'dim0'), rank), axis(attr(n, 'dim1'), rank)];
    [perm[d0], perm[d1]] = [perm[d1], perm[d0]];
    result(b, n, b.op('Transpose', [input(b, n)], { perm: ints(perm) }));
  },
  narrow: (b, n) => {
    const x = tensorAt(n, 0);
    const dim = axis(attr(n, 'dim'), x.shape.length);
    const start = axis(attr(n, 'start'), x.shape[dim]);
    result(b, n, b.op('Slice', [b.nameOf(x), b.int64s([start]), b.int64s([start + attr<number>(n, 'length')]), b.int64s([dim])]));
  },
  slice: (b, n) => {
    const x = tensorAt(n, 0);
    const dim = axis(attr(n, 'dim'), x.shape.length);
    const clampEnd = Math.min(attr<number>(n, 'end'), x.shape[dim]);
    result(b, n, b.op('Slice', [b.nameOf(x), b.int64s([attr(n, 'start')]), b.int64s([clampEnd]), b.int64s([dim]), b.int64s([attr(n, 'step')])]));
  },
  select: (b, n) => {
    const x = tensorAt(n, 0);
    const dim = axis(attr(n, 'dim'), x.shape.length);
    const index = axis(attr(n, 'index'), x.shape[dim]);
    result(b, n, b.op('Gather', [b.nameOf(x), b.scalar('int64', index)], { axis: int(dim) }));
  },
  indexSelect: (b, n) => result(b, n, b.op('Gather', [input(b, n, 0), input(b, n, 1)], { axis: int(axis(attr(n, 'dim'), tensorAt(n, 0).shape.length)) })),
  gather: (b, n) => result(b, n, b.op('GatherElements', [input(b, n, 0), input(b, n, 1)], { axis: int(axis(attr(n, 'dim'), tensorAt(n, 0).shape.length)) })),
  flip: (b, n) => {
    const rank = tensorAt(n, 0).shape.length;
    const dims = attr<number[]>(n, 'dims').map((d) => axis(d, rank));
    result(b, n, b.op('Slice', [input(b, n), b.int64s(dims.map(() => -1)), b.int64s(dims.map(() => INT64_MIN)), b.int64s(dims), b.int64s(dims.map(() => -1))]));
  },
  repeat: (b, n) => {
    const x = tensorAt(n, 0);
    const repeats = attr<number[]>(n, 'repeats');
    // Like torch, more repeats than dims prepend dims of size 1.
    const padded = [...Array(repeats.length - x.shape.length).fill(1), ...x.shape];
    const source = padded.length === x.shape.length ? b.nameOf(x) : b.op('Reshape', [b.nameOf(x), b.int64s(padded)]);
    result(b, n, b.op('Tile', [source, b.int64s(repeats)]));
  },
  cat: (b, n) => {
    const rank = tensorAt(n, 0).shape.length;
    result(b, n, b.op('Concat', n.inputs.map((_, i) => input(b, n, i)), { axis: int(axis(attr(n, 'dim'), rank)) }));
  },
  stack: (b, n) => {
    const dim = axis(attr(n, 'dim'), tensorAt(n, 0).shape.length + 1);
    const parts = n.inputs.map((_, i) => {
      const shape = [...tensorAt(n, i).shape];
      shape.splice(dim, 0, 1);
      return b.op('Reshape', [input(b, n, i), b.int64s(shape)]);
    });
    result(b, n, b.op('Concat', parts, { axis: int(dim) }));
  },
  where: (b, n) => {
    const dtype = out(n).dtype;
    result(b, n, b.op('Where', [input(b, n, 0), operandAs(b, n, 1, dtype), operandAs(b, n, 2, dtype)]));
  },

  // layers
  conv2d: (b, n) => {
    const w = tensorAt(n, 1);
    result(b, n, b.op('Conv', [input(b, n, 0), b.nameOf(w), optional(b, n, 2)], {
      kernel_shape: ints(w.shape.slice(2)), strides: ints(attr(n, 'stride')), pads: ints(pads(attr(n, 'padding'))),
      dilations: ints(attr(n, 'dilation')), group: int(attr(n, 'groups')),
    }));
  },
  convTranspose2d: (b, n) => {
    const w = tensorAt(n, 1);
    result(b, n, b.op('ConvTranspose', [input(b, n, 0), b.nameOf(w), optional(b, n, 2)], {
      kernel_shape: ints(w.shape.slice(2)), strides: ints(attr(n, 'stride')), pads: ints(pads(attr(n, 'padding'))),
      output_padding: ints(attr(n, 'outputPadding')), dilations: ints(attr(n, 'dilation')), group: int(attr(n, 'groups')),
    }));
  },
  linear: (b, n) => {
    const x = tensorAt(n, 0);
    if (x.shape.length === 2) {
      return result(b, n, b.op('Gemm', [b.nameOf(x), input(b, n, 1), optional(b, n, 2)], { transB: int(1) }));
    }
    const product = b.op('MatMul', [b.nameOf(x), b.op('Transpose', [input(b, n, 1)], { perm: ints([1, 0]) })]);
    result(b, n, n.inputs[2] ? b.op('Add', [product, input(b, n, 2)]) : product);
  },
  batchNorm: (b, n) => {
    if (attr(n, 'training')) throw new UserError('export: batch normalisation runs in training mode; export a model in eval mode');
    if (!n.inputs[3] || !n.inputs[4]) throw new UserError('export: batch normalisation without running statistics cannot be exported');
    const x = tensorAt(n, 0);
    const C = x.shape[1];
    const scale = n.inputs[1] ? input(b, n, 1) : b.constant(x.dtype, [C], new Float32Array(C).fill(1));
    const bias = n.inputs[2] ? input(b, n, 2) : b.constant(x.dtype, [C], new Float32Array(C));
    result(b, n, b.op('BatchNormalization', [b.nameOf(x), scale, bias, input(b, n, 3), input(b, n, 4)], { epsilon: float(attr(n, 'eps')) }));
  },
  groupNorm: (b, n) => {
    // Per (image, group) statistics: InstanceNormalization over [N, G, rest], then the per-channel affine.
    const x = tensorAt(n, 0);
    const [N, C, ...rest] = x.shape;
    const G = attr<number>(n, 'numGroups');
    const grouped = b.op('Reshape', [b.nameOf(x), b.int64s([N, G, -1])]);
    const normed = b.op('InstanceNormalization', [grouped, b.constant(x.dtype, [G], new Float32Array(G).fill(1)), b.constant(x.dtype, [G], new Float32Array(G))],
      { epsilon: float(attr(n, 'eps')) });
    let y = b.op('Reshape', [normed, b.int64s(x.shape)]);
    const channelShape = b.int64s([C, ...rest.map(() => 1)]);
    if (n.inputs[1]) y = b.op('Mul', [y, b.op('Reshape', [input(b, n, 1), channelShape])]);
    if (n.inputs[2]) y = b.op('Add', [y, b.op('Reshape', [input(b, n, 2), channelShape])]);
    result(b, n, y);
  },
  dropout: (b, n) => {
    if (attr(n, 'training') && attr<number>(n, 'p') > 0) throw new UserError('export: dropout runs in training mode; export a model in eval mode');
    alias(b, n);
  },
  maxPool2d: (b, n) => result(b, n, b.op('MaxPool', [input(b, n)], {
    kernel_shape: ints(attr(n, 'kernel')), strides: ints(attr(n, 'stride')), pads: ints(pads(attr(n, 'padding'))),
    dilations: ints(attr(n, 'dilation')), ceil_mode: int(attr(n, 'ceilMode') ? 1 : 0),
  })),
  avgPool2d: (b, n) => result(b, n, b.op('AveragePool', [input(b, n)], {
    kernel_shape: ints(attr(n, 'kernel')), strides: ints(attr(n, 'stride')), pads: ints(pads(attr(n, 'padding'))), count_include_pad: int(1),
  })),
  adaptiveAvgPool2d: (b, n) => {
    const [, , H, W] = tensorAt(n, 0).shape;
    const [oh, ow] = attr<number[]>(n, 'outputSize');
    if (oh === 1 && ow === 1) return result(b, n, b.op('GlobalAveragePool', [input(b, n)]));
    if (H % oh !== 0 || W % ow !== 0) throw new UserError(`export: adaptive average pooling from ${H}×${W} to ${oh}×${ow} has uneven windows, which ONNX cannot express`);
    const kernel = [H / oh, W / ow];
    result(b, n, b.op('AveragePool', [input(b, n)], { kernel_shape: ints(kernel), strides: ints(kernel) }));
  },
  interpolate: (b, n) => {
    const bilinear = attr(n, 'mode') === 'bilinear';
    const transform = bilinear ? (attr(n, 'alignCorners') ? 'align_corners' : 'pytorch_half_pixel') : 'asymmetric';
    result(b, n, b.op('Resize', [input(b, n), '', '', b.int64s(out(n).shape)], {
      mode: str(bilinear ? 'linear' : 'nearest'), coordinate_transformation_mode: str(transform), ...(bilinear ? {} : { nearest_mode: str('floor') }),
    }));
  },
};

/** The op names this exporter can write (for tests and error messages). */
export const EXPORTABLE_OPS: readonly string[] = Object.keys(OPS);
