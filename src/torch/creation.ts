import { native } from './native';
import { DTYPES, DType, Device, Generator, Tensor, TypedData, isDType } from './tensor';
import { record } from './trace';
import { assertTensor, shapeArg } from './validate';

export interface CreationOptions {
  dtype?: DType;
  device?: Device;
}

export function zeros(shape: number[], opts: CreationOptions = {}): Tensor {
  return record('constant', [], {}, new Tensor(native.zeros(shapeArg('zeros', 'shape', shape), opts.dtype ?? null, opts.device ?? null)));
}
export function ones(shape: number[], opts: CreationOptions = {}): Tensor {
  return record('constant', [], {}, new Tensor(native.ones(shapeArg('ones', 'shape', shape), opts.dtype ?? null, opts.device ?? null)));
}
export function full(shape: number[], value: number, opts: CreationOptions = {}): Tensor {
  return record('constant', [], {}, new Tensor(native.full(shapeArg('full', 'shape', shape), value, opts.dtype ?? null, opts.device ?? null)));
}
export function arange(start: number, end: number, step = 1, opts: CreationOptions = {}): Tensor {
  if (step === 0) throw new Error('arange: step must be non-zero');
  return record('constant', [], {}, new Tensor(native.arange(start, end, step, opts.dtype ?? (isInt(start, end, step) ? 'int64' : 'float32'), opts.device ?? null)));
}
export function randn(shape: number[], opts: CreationOptions & { generator?: Generator } = {}): Tensor {
  return record('random', [], { fn: 'randn' }, new Tensor(native.randn(shapeArg('randn', 'shape', shape), opts.dtype ?? null, opts.device ?? null, opts.generator?.id ?? null)));
}
export function rand(shape: number[], opts: CreationOptions & { generator?: Generator } = {}): Tensor {
  return record('random', [], { fn: 'rand' }, new Tensor(native.rand(shapeArg('rand', 'shape', shape), opts.dtype ?? null, opts.device ?? null, opts.generator?.id ?? null)));
}
/** Integers uniform in [low, high). */
export function randint(low: number, high: number, shape: number[], opts: CreationOptions & { generator?: Generator } = {}): Tensor {
  return record('random', [], { fn: 'randint' }, new Tensor(native.randint(low, high, shapeArg('randint', 'shape', shape), opts.dtype ?? null, opts.device ?? null, opts.generator?.id ?? null)));
}
export function randperm(n: number, generator?: Generator): Tensor {
  return record('random', [], { fn: 'randperm' }, new Tensor(native.randperm(n, generator?.id ?? null)));
}

/**
 * A tensor holding a copy of `data` with the given shape. The dtype follows the typed array
 * (Float32Array → float32, Uint8Array → uint8, …) unless `dtype` converts it; plain arrays become float32.
 */
export function tensor(data: TypedData | number[], shape?: number[], dtype?: DType): Tensor {
  const values = Array.isArray(data) ? Float32Array.from(data) : data;
  if (!(values instanceof Float32Array || values instanceof Float64Array || values instanceof Int32Array || values instanceof BigInt64Array
    || values instanceof Uint8Array)) {
    throw new TypeError(`tensor: data must be a number array, Float32Array, Float64Array, Int32Array, BigInt64Array or Uint8Array, got ${describeData(data)}`);
  }
  const dims = shapeArg('tensor', 'shape', shape ?? [values.length]);
  const numel = dims.reduce((a, b) => a * b, 1);
  if (dims.some((d) => d < 0) || numel !== values.length) {
    throw new Error(`tensor: shape [${dims.join(', ')}] needs ${numel} values but data has ${values.length}`);
  }
  if (dtype !== undefined && !isDType(dtype)) throw new Error(`tensor: unknown dtype ${JSON.stringify(dtype)} (${DTYPES.join(', ')})`);
  return record('constant', [], {}, new Tensor(native.fromData(values, dims, dtype ?? null)));
}

function describeData(data: unknown): string {
  return data === null || typeof data !== 'object' ? String(data) : (data as object).constructor?.name ?? 'an object';
}

export function cat(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new Error('cat: tensors must be a non-empty array');
  tensors.forEach((t, i) => assertTensor('cat', `tensors[${i}]`, t));
  return record('cat', tensors, { dim }, new Tensor(native.cat(tensors.map((t) => t.handle), dim)));
}
export function stack(tensors: Tensor[], dim = 0): Tensor {
  if (!Array.isArray(tensors) || tensors.length === 0) throw new Error('stack: tensors must be a non-empty array');
  tensors.forEach((t, i) => assertTensor('stack', `tensors[${i}]`, t));
  return record('stack', tensors, { dim }, new Tensor(native.stack(tensors.map((t) => t.handle), dim)));
}
export function where(condition: Tensor, a: Tensor, b: Tensor): Tensor {
  assertTensor('where', 'condition', condition);
  assertTensor('where', 'input', a);
  assertTensor('where', 'other', b);
  return record('where', [condition, a, b], {}, new Tensor(native.where(condition.handle, a.handle, b.handle)));
}

/** Seeds the global generator (torch.manual_seed): initialisation, dropout and rand* without a generator. */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`setNumThreads: n must be a positive integer, got ${n}`);
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
export function cudaAvailable(): boolean {
  return native.cudaAvailable();
}
export function torchVersion(): string {
  return native.torchVersion();
}

function isInt(...xs: number[]): boolean {
  return xs.every(Number.isInteger);
}
