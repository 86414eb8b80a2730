// Shared helpers for the engine's tests (test/torch-*.test.ts). Not a test file itself.
import * as assert from 'node:assert/strict';
import * as net from 'node:net';
import { DType, Tensor, tensor } from '../src/torch';

/**
 * The deterministic inputs the Python reference values were computed from:
 * element i of a tensor of `shape` is (((i * 7 + k) % 13) - 6) / 4 (exact in float32). Python twin:
 *   torch.tensor([(((i * 7 + k) % 13) - 6) / 4 for i in range(n)]).reshape(shape)
 */
export function seq(shape: number[], k = 0, dtype: DType = 'float32'): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) v[i] = (((i * 7 + k) % 13) - 6) / 4;
  return tensor(v, shape, dtype);
}

/** Values as plain numbers (int64 converted, bool as 0/1). */
export function values(t: Tensor): number[] {
  const d = t.data();
  return d instanceof BigInt64Array ? Array.from(d, Number) : Array.from(d as ArrayLike<number>);
}

/** |a - e| <= atol + rtol·|e| element by element, with the worst offender in the message. */
export function assertClose(actual: Tensor | ArrayLike<number>, expected: ArrayLike<number>, atol = 1e-5, rtol = 1e-5, what = ''): void {
  const a = actual instanceof Tensor ? values(actual) : Array.from(actual);
  assert.equal(a.length, expected.length, `${what} length: got ${a.length}, expected ${expected.length}`);
  for (let i = 0; i < a.length; i++) {
    const e = expected[i];
    const ok = Number.isNaN(e) ? Number.isNaN(a[i]) : Math.abs(a[i] - e) <= atol + rtol * Math.abs(e);
    if (!ok) assert.fail(`${what} element ${i}: got ${a[i]}, expected ${e} (atol ${atol}, rtol ${rtol})\n got: ${a.join(', ')}\n exp: ${Array.from(expected).join(', ')}`);
  }
}

/** A reference value pasted from Python: shape and row-major values. */
export interface Ref {
  shape: number[];
  values: number[];
}

export function assertRef(actual: Tensor, ref: Ref, atol = 1e-5, what = ''): void {
  assert.deepEqual(actual.shape, ref.shape, `${what} shape`);
  assertClose(actual, ref.values, atol, 1e-5, what);
}

/** Small deterministic pseudo-random numbers (mulberry32) for tests that do not need Python's values. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A float64 tensor of uniform(-1, 1) values from prng(seed). */
export function randomF64(shape: number[], seed: number): Tensor {
  const r = prng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float64Array.from({ length: n }, () => r() * 2 - 1), shape);
}

/** A TCP port on 127.0.0.1 that nothing listens on now, for a process group's store. */
export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
