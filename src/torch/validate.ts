import { Tensor } from './tensor';

/**
 * Boundary checks in tfjs-core's style: the message names the op and the argument, so a user sees
 * "conv2d: input must be 4-D [N, C, H, W], got shape [3, 256, 256]" instead of a libtorch backtrace.
 */
export function assertTensor(op: string, arg: string, value: unknown): asserts value is Tensor {
  if (!(value instanceof Tensor)) throw new TypeError(`${op}: ${arg} must be a Tensor, got ${describe(value)}`);
  if (value.isDisposed) throw new Error(`${op}: ${arg} has been disposed`);
}

export function assertRank(op: string, arg: string, value: unknown, rank: number, layout: string): asserts value is Tensor {
  assertTensor(op, arg, value);
  if (value.ndim !== rank) throw new Error(`${op}: ${arg} must be ${rank}-D ${layout}, got shape [${value.shape.join(', ')}]`);
}

export function assertFloat(op: string, arg: string, value: Tensor): void {
  if (value.dtype !== 'float32' && value.dtype !== 'float64' && value.dtype !== 'bfloat16') throw new Error(`${op}: ${arg} must be float32, float64 or bfloat16, got ${value.dtype}`);
}

/** Normalises PyTorch's `int | [int, int]` arguments, rejecting negatives and non-integers. */
export function pair(op: string, arg: string, value: number | number[], min = 0): [number, number] {
  const v = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x) && x >= min)) {
    throw new Error(`${op}: ${arg} must be an integer >= ${min} or a pair of them, got ${JSON.stringify(value)}`);
  }
  return [v[0], v[1]];
}

export function positiveInt(op: string, arg: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new Error(`${op}: ${arg} must be a positive integer, got ${value}`);
  return value;
}

export function shapeArg(op: string, arg: string, shape: number[]): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= -1)) {
    throw new Error(`${op}: ${arg} must be an array of integers, got ${JSON.stringify(shape)}`);
  }
  return shape;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}
