import { native } from './native';
import { record } from './trace';

/** bfloat16 appears only inside autocast regions (mixed precision); data() reads it as float32. */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint8' | 'bool' | 'bfloat16';
export const DTYPES: readonly DType[] = ['float32', 'float64', 'int64', 'int32', 'uint8', 'bool', 'bfloat16'];
export function isDType(value: unknown): value is DType {
  return (DTYPES as readonly unknown[]).includes(value);
}
export type Device = string; // 'cpu', 'cuda', 'cuda:1'
export type TypedData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;
type Handle = any; // eslint-disable-line @typescript-eslint/no-explicit-any

// ---------------------------------------------------------------- memory scopes
// Tensor memory lives in libtorch, outside V8: the garbage collector neither sees its size in time nor
// frees it promptly. tidy() frees everything created inside it except what it returns or keep()s.
const scopes: Set<Tensor>[] = [];

/**
 * Runs `fn` and disposes every tensor created during it, except tensors reachable from its result
 * (directly, or inside arrays / plain objects) and tensors marked with keep(). Like tf.tidy; `fn` must be
 * synchronous, because a scope that spans an `await` would also capture other tasks' tensors.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const t of scope) if (!t.kept) t.dispose();
    throw err;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error('tidy: the function must be synchronous (it returned a Promise)');
  const returned = new Set<Tensor>();
  collectTensors(result, returned, 0);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (returned.has(t)) parent?.add(t);
    else if (!t.kept) t.dispose();
  }
  return result;
}

/** Excludes a tensor from every enclosing tidy(): it lives until disposed explicitly. */
export function keep<T extends Tensor>(t: T): T {
  t.kept = true;
  return t;
}

/** Disposes tensors found in a value (a tensor, or arrays / plain objects of them). */
export function dispose(value: unknown): void {
  const found = new Set<Tensor>();
  collectTensors(value, found, 0);
  for (const t of found) t.dispose();
}

function collectTensors(value: unknown, out: Set<Tensor>, depth: number): void {
  if (value instanceof Tensor) out.add(value);
  else if (depth > 4 || value === null || typeof value !== 'object') return;
  else if (Array.isArray(value)) for (const v of value) collectTensors(v, out, depth + 1);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, out, depth + 1);
  else if (Object.getPrototypeOf(value) === Object.prototype) for (const v of Object.values(value)) collectTensors(v, out, depth + 1);
}

/** Live native tensors and their bytes: for leak tests and memory reports. */
export function memory(): { tensors: number; bytes: number } {
  return { tensors: native.liveTensors(), bytes: native.nativeBytes() };
}

// ---------------------------------------------------------------- gradient mode
/** Runs `fn` without recording operations for autograd (torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const previous: boolean = native.isGradEnabled();
  native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

// ---------------------------------------------------------------- mixed precision
/**
 * Runs `fn` under autocast on `device`'s type (torch.autocast('cpu' | 'cuda', dtype=torch.bfloat16)):
 * convolutions and matrix products compute in bfloat16 from float32 weights cast once per region;
 * losses stay float32. Outputs come back in bfloat16, so a caller casts them with float() before any
 * loss or softmax.
 */
export function autocast<T>(dtype: 'bfloat16', fn: () => T, device: Device = 'cpu'): T {
  const type = device.startsWith('cuda') ? 'cuda' : 'cpu';
  const [enabled, previous]: [boolean, DType] = native.autocastEnter(dtype, type);
  try {
    return fn();
  } finally {
    native.autocastExit(enabled, previous, type);
  }
}

// ---------------------------------------------------------------- the tensor
export type Operand = Tensor | number;
const raw = (x: Operand): Handle => (x instanceof Tensor ? x.handle : x);

/**
 * A handle to one libtorch tensor, with PyTorch's method names and semantics.
 * Every method returns a new Tensor (registered with the enclosing tidy()); in-place methods end in `_`.
 */
export class Tensor {
  /** Set by keep(): survives enclosing tidy() scopes. */
  kept = false;
  private cachedShape?: number[];

  /** @internal Wraps an addon handle; use the creation functions (zeros, tensor, …) instead. */
  constructor(readonly handle: Handle) {
    scopes[scopes.length - 1]?.add(this);
  }

  get shape(): number[] {
    return (this.cachedShape ??= this.handle.shape());
  }
  get ndim(): number {
    return this.shape.length;
  }
  get dtype(): DType {
    return this.handle.dtype();
  }
  get device(): Device {
    return this.handle.device();
  }
  get isDisposed(): boolean {
    return this.handle.isDisposed();
  }
  numel(): number {
    return this.handle.numel();
  }
  size(dim: number): number {
    const s = this.shape;
    return s[dim < 0 ? s.length + dim : dim];
  }

  /** Copies the values out (contiguous, row-major). int64 comes back as BigInt64Array, bool as Uint8Array. */
  data(): TypedData {
    record('read', [this], { fn: 'data' }, undefined);
    return this.handle.data();
  }
  /** Float32 copy of the values whatever the dtype (int64 converted exactly up to 2^24). */
  toFloat32Array(): Float32Array {
    record('read', [this], { fn: 'toFloat32Array' }, undefined);
    if (this.dtype === 'float32') return this.handle.data();
    const t = new Tensor(native.toDType(this.handle, 'float32'));
    try {
      return t.handle.data();
    } finally {
      t.dispose();
    }
  }
  item(): number {
    record('read', [this], { fn: 'item' }, undefined);
    return this.handle.item();
  }

  dispose(): void {
    this.cachedShape = undefined; // so that shape, like every other accessor, reports the disposal
    this.handle.dispose();
  }

  // ---- autograd
  get requiresGrad(): boolean {
    return this.handle.requiresGrad();
  }
  requiresGrad_(value = true): this {
    this.handle.setRequiresGrad(value);
    return this;
  }
  /** The accumulated gradient, or null before any backward() reached this tensor. */
  get grad(): Tensor | null {
    const g = this.handle.grad();
    return g === null ? null : new Tensor(g);
  }
  clearGrad(): void {
    this.handle.clearGrad();
  }
  backward(gradient?: Tensor, retainGraph = false): void {
    this.handle.backward(gradient?.handle ?? null, retainGraph);
  }
  detach(): Tensor {
    return record('detach', [this], {}, new Tensor(native.detach(this.handle)));
  }

  // ---- conversion
  /** `nonBlocking`: a copy from pinned memory (pinMemory) to a GPU is queued and returns at once. */
  to(target: DType | Device, opts: { nonBlocking?: boolean } = {}): Tensor {
    if (isDType(target)) return record('to', [this], { dtype: target }, new Tensor(native.toDType(this.handle, target)));
    if (typeof target !== 'string' || !/^(cpu|cuda(:\d+)?)$/.test(target)) {
      throw new Error(`to: unknown dtype or device ${JSON.stringify(target)} (dtypes: ${DTYPES.join(', ')}; devices: cpu, cuda, cuda:N)`);
    }
    return record('to', [this], { device: target }, new Tensor(native.toDevice(this.handle, target, opts.nonBlocking ?? false)));
  }

  /** A copy in page-locked memory, which a GPU copies from asynchronously (needs a CUDA libtorch). */
  pinMemory(): Tensor {
    return new Tensor(native.pinMemory(this.handle));
  }
  float(): Tensor {
    return this.to('float32');
  }
  double(): Tensor {
    return this.to('float64');
  }
  long(): Tensor {
    return this.to('int64');
  }
  clone(): Tensor {
    return record('clone', [this], {}, new Tensor(native.clone(this.handle)));
  }
  /** format 'channels_last': the same values in NHWC memory (4-d only), which convolutions run faster on. */
  contiguous(format: 'contiguous' | 'channels_last' = 'contiguous'): Tensor {
    return record('contiguous', [this], { format }, new Tensor(native.contiguous(this.handle, format)));
  }
  /** 'channels_last' for NHWC strides, 'contiguous' for row-major ones, 'strided' for any other view. */
  get memoryFormat(): 'contiguous' | 'channels_last' | 'strided' {
    return native.memoryFormat(this.handle);
  }

  // ---- shape
  reshape(shape: number[]): Tensor {
    return record('reshape', [this], { shape }, new Tensor(native.reshape(this.handle, intList('reshape', 'shape', shape))));
  }
  view(shape: number[]): Tensor {
    return record('view', [this], { shape }, new Tensor(native.view(this.handle, intList('view', 'shape', shape))));
  }
  permute(dims: number[]): Tensor {
    return record('permute', [this], { dims }, new Tensor(native.permute(this.handle, intList('permute', 'dims', dims))));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return record('transpose', [this], { dim0, dim1 }, new Tensor(native.transpose(this.handle, dim0, dim1)));
  }
  squeeze(dim?: number): Tensor {
    return record('squeeze', [this], { dim }, new Tensor(native.squeeze(this.handle, dim)));
  }
  unsqueeze(dim: number): Tensor {
    return record('unsqueeze', [this], { dim }, new Tensor(native.unsqueeze(this.handle, dim)));
  }
  expand(shape: number[]): Tensor {
    return record('expand', [this], { shape }, new Tensor(native.expand(this.handle, intList('expand', 'shape', shape))));
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return record('flatten', [this], { startDim, endDim }, new Tensor(native.flatten(this.handle, startDim, endDim)));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return record('narrow', [this], { dim, start, length }, new Tensor(native.narrow(this.handle, dim, start, length)));
  }
  slice(dim: number, start: number, end: number, step = 1): Tensor {
    return record('slice', [this], { dim, start, end, step }, new Tensor(native.slice(this.handle, dim, start, end, step)));
  }
  select(dim: number, index: number): Tensor {
    return record('select', [this], { dim, index }, new Tensor(native.select(this.handle, dim, index)));
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return record('indexSelect', [this, index], { dim }, new Tensor(native.indexSelect(this.handle, dim, index.handle)));
  }
  gather(dim: number, index: Tensor): Tensor {
    return record('gather', [this, index], { dim }, new Tensor(native.gather(this.handle, dim, index.handle)));
  }
  flip(dims: number[]): Tensor {
    return record('flip', [this], { dims }, new Tensor(native.flip(this.handle, intList('flip', 'dims', dims))));
  }
  repeat(repeats: number[]): Tensor {
    return record('repeat', [this], { repeats }, new Tensor(native.repeat(this.handle, intList('repeat', 'repeats', repeats))));
  }

  // ---- elementwise
  add(other: Operand): Tensor {
    return record('add', [this, other], {}, new Tensor(native.add(this.handle, raw(other))));
  }
  sub(other: Operand): Tensor {
    return record('sub', [this, other], {}, new Tensor(native.sub(this.handle, raw(other))));
  }
  /** other - this (PyTorch's rsub), for a scalar `other`. */
  rsub(other: number): Tensor {
    return record('rsub', [this, other], {}, new Tensor(native.rsub(this.handle, other)));
  }
  mul(other: Operand): Tensor {
    return record('mul', [this, other], {}, new Tensor(native.mul(this.handle, raw(other))));
  }
  div(other: Operand): Tensor {
    return record('div', [this, other], {}, new Tensor(native.div(this.handle, raw(other))));
  }
  pow(exponent: Operand): Tensor {
    return record('pow', [this, exponent], {}, new Tensor(native.pow(this.handle, raw(exponent))));
  }
  maximum(other: Operand): Tensor {
    return record('maximum', [this, other], {}, new Tensor(native.maximum(this.handle, raw(other))));
  }
  minimum(other: Operand): Tensor {
    return record('minimum', [this, other], {}, new Tensor(native.minimum(this.handle, raw(other))));
  }
  remainder(other: Operand): Tensor {
    return record('remainder', [this, other], {}, new Tensor(native.remainder(this.handle, raw(other))));
  }
  eq(other: Operand): Tensor {
    return record('eq', [this, other], {}, new Tensor(native.eq(this.handle, raw(other))));
  }
  ne(other: Operand): Tensor {
    return record('ne', [this, other], {}, new Tensor(native.ne(this.handle, raw(other))));
  }
  lt(other: Operand): Tensor {
    return record('lt', [this, other], {}, new Tensor(native.lt(this.handle, raw(other))));
  }
  le(other: Operand): Tensor {
    return record('le', [this, other], {}, new Tensor(native.le(this.handle, raw(other))));
  }
  gt(other: Operand): Tensor {
    return record('gt', [this, other], {}, new Tensor(native.gt(this.handle, raw(other))));
  }
  ge(other: Operand): Tensor {
    return record('ge', [this, other], {}, new Tensor(native.ge(this.handle, raw(other))));
  }
  logicalAnd(other: Tensor): Tensor {
    return record('logicalAnd', [this, other], {}, new Tensor(native.logicalAnd(this.handle, other.handle)));
  }
  logicalOr(other: Tensor): Tensor {
    return record('logicalOr', [this, other], {}, new Tensor(native.logicalOr(this.handle, other.handle)));
  }
  logicalNot(): Tensor {
    return record('logicalNot', [this], {}, new Tensor(native.logicalNot(this.handle)));
  }
  neg(): Tensor {
    return record('neg', [this], {}, new Tensor(native.neg(this.handle)));
  }
  abs(): Tensor {
    return record('abs', [this], {}, new Tensor(native.abs(this.handle)));
  }
  exp(): Tensor {
    return record('exp', [this], {}, new Tensor(native.exp(this.handle)));
  }
  log(): Tensor {
    return record('log', [this], {}, new Tensor(native.log(this.handle)));
  }
  sqrt(): Tensor {
    return record('sqrt', [this], {}, new Tensor(native.sqrt(this.handle)));
  }
  rsqrt(): Tensor {
    return record('rsqrt', [this], {}, new Tensor(native.rsqrt(this.handle)));
  }
  square(): Tensor {
    return record('square', [this], {}, new Tensor(native.square(this.handle)));
  }
  sign(): Tensor {
    return record('sign', [this], {}, new Tensor(native.sign(this.handle)));
  }
  floor(): Tensor {
    return record('floor', [this], {}, new Tensor(native.floor(this.handle)));
  }
  ceil(): Tensor {
    return record('ceil', [this], {}, new Tensor(native.ceil(this.handle)));
  }
  round(): Tensor {
    return record('round', [this], {}, new Tensor(native.round(this.handle)));
  }
  tanh(): Tensor {
    return record('tanh', [this], {}, new Tensor(native.tanh(this.handle)));
  }
  sigmoid(): Tensor {
    return record('sigmoid', [this], {}, new Tensor(native.sigmoid(this.handle)));
  }
  relu(): Tensor {
    return record('relu', [this], {}, new Tensor(native.relu(this.handle)));
  }
  isnan(): Tensor {
    return record('isnan', [this], {}, new Tensor(native.isnan(this.handle)));
  }
  isfinite(): Tensor {
    return record('isfinite', [this], {}, new Tensor(native.isfinite(this.handle)));
  }
  clamp(min?: number, max?: number): Tensor {
    return record('clamp', [this], { min, max }, new Tensor(native.clamp(this.handle, min ?? null, max ?? null)));
  }
  softmax(dim: number): Tensor {
    return record('softmax', [this], { dim }, new Tensor(native.softmax(this.handle, dim)));
  }
  logSoftmax(dim: number): Tensor {
    return record('logSoftmax', [this], { dim }, new Tensor(native.logSoftmax(this.handle, dim)));
  }
  matmul(other: Tensor): Tensor {
    return record('matmul', [this, other], {}, new Tensor(native.matmul(this.handle, other.handle)));
  }

  // ---- reductions: no dims reduces everything
  sum(dims?: number | number[], keepdim = false): Tensor {
    return record('sum', [this], { dims: dimList(dims), keepdim }, new Tensor(native.sum(this.handle, dimList(dims), keepdim)));
  }
  mean(dims?: number | number[], keepdim = false): Tensor {
    return record('mean', [this], { dims: dimList(dims), keepdim }, new Tensor(native.mean(this.handle, dimList(dims), keepdim)));
  }
  /** Maximum over all elements (dims omitted) or over the given dims (torch.amax). */
  amax(dims?: number | number[], keepdim = false): Tensor {
    return record('amax', [this], { dims: dimList(dims), keepdim }, new Tensor(native.amax(this.handle, dimList(dims), keepdim)));
  }
  amin(dims?: number | number[], keepdim = false): Tensor {
    return record('amin', [this], { dims: dimList(dims), keepdim }, new Tensor(native.amin(this.handle, dimList(dims), keepdim)));
  }
  /** torch.max(x, dim): values and indices. */
  max(dim: number, keepdim = false): { values: Tensor; indices: Tensor } {
    const [v, i] = native.maxDim(this.handle, dim, keepdim);
    const [values, indices] = record('max', [this], { dim, keepdim }, [new Tensor(v), new Tensor(i)]);
    return { values, indices };
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return record('argmax', [this], { dim: dim ?? null, keepdim }, new Tensor(native.argmax(this.handle, dim ?? null, keepdim)));
  }
  logsumexp(dims: number | number[], keepdim = false): Tensor {
    return record('logsumexp', [this], { dims: dimList(dims), keepdim }, new Tensor(native.logsumexp(this.handle, dimList(dims), keepdim)));
  }
  var(dims: number | number[], unbiased = true, keepdim = false): Tensor {
    return record('var', [this], { dims: dimList(dims), unbiased, keepdim }, new Tensor(native.var(this.handle, dimList(dims), unbiased, keepdim)));
  }

  // ---- in place (no autograd): initialisation, loading weights
  copy_(src: Tensor): this {
    native.copy_(this.handle, src.handle);
    return record('copy_', [this, src], {}, this);
  }
  /** tensor.data = src: this handle now holds src's storage (another device, say), keeping its autograd identity. */
  setData_(src: Tensor): this {
    native.setData(this.handle, src.handle);
    this.cachedShape = undefined;
    return this;
  }
  fill_(value: number): this {
    native.fill_(this.handle, value);
    return record('fill_', [this], { value }, this);
  }
  zero_(): this {
    return this.fill_(0);
  }
  uniform_(low: number, high: number, generator?: Generator): this {
    native.uniform_(this.handle, low, high, generator?.id ?? null);
    return record('random', [], { fn: 'uniform_' }, this);
  }
  normal_(mean: number, std: number, generator?: Generator): this {
    native.normal_(this.handle, mean, std, generator?.id ?? null);
    return record('random', [], { fn: 'normal_' }, this);
  }

  toString(): string {
    return `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }
}

/** Rejects non-integers in shape and dim lists, which the addon would otherwise truncate silently. */
function intList(op: string, arg: string, v: number[]): number[] {
  if (!Array.isArray(v) || !v.every(Number.isInteger)) throw new Error(`${op}: ${arg} must be an array of integers, got ${JSON.stringify(v)}`);
  return v;
}

function dimList(dims: number | number[] | undefined): number[] | null {
  if (dims === undefined) return null;
  return typeof dims === 'number' ? [dims] : dims;
}

/** A seeded random stream independent of the global one (torch.Generator). */
export class Generator {
  readonly id: number;
  constructor(seed: number) {
    this.id = native.newGenerator(seed);
  }
  manualSeed(seed: number): this {
    native.seedGenerator(this.id, seed);
    return this;
  }
}
