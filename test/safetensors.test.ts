import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../src/errors';
import {
  SafeTensor,
  decodeSafetensors,
  encodeSafetensors,
  loadSafetensors,
  saveSafetensors,
} from '../src/torch/safetensors';

const ascii = (s: string): number[] => [...Buffer.from(s, 'utf8')];
const u64le = (n: number): number[] => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return [...b];
};
const bytesOf = (view: ArrayBufferView): Uint8Array => new Uint8Array(view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength));

/** A file image from a header (object or raw text) and data bytes, with the header padded as the spec says. */
function image(header: unknown, data: number[] | Uint8Array = [], lengthOverride?: number): Uint8Array {
  let json = typeof header === 'string' ? header : JSON.stringify(header);
  while (Buffer.byteLength(json) % 8 !== 0) json += ' ';
  const h = Buffer.from(json, 'utf8');
  return Uint8Array.from([...u64le(lengthOverride ?? h.byteLength), ...h, ...data]);
}

/** Asserts a UserError whose message is one line, names the source, and matches `pattern`. */
function assertUserError(fn: () => unknown, pattern: RegExp, source = 'bad.safetensors'): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected UserError, got ${String(err)}`);
    assert.ok(!err.message.includes('\n'), `message should be one line: ${err.message}`);
    assert.ok(err.message.startsWith(`${source}: `), `message should name the source: ${err.message}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('hand-built fixture: {"a": F32 [2] = [1, 2]} encodes to the exact reference bytes and decodes back', () => {
  // Built from the spec, not from our encoder: the 54-byte compact JSON header padded with two
  // spaces to 56 (a multiple of 8), its length as u64 LE, then 1.0f and 2.0f little-endian.
  const expected = Uint8Array.from([
    0x38, 0, 0, 0, 0, 0, 0, 0,
    ...ascii('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'),
    0x20, 0x20,
    0x00, 0x00, 0x80, 0x3f, // 1.0f
    0x00, 0x00, 0x00, 0x40, // 2.0f
  ]);
  assert.equal(expected.length, 8 + 56 + 8);
  const a: SafeTensor = { dtype: 'F32', shape: [2], data: bytesOf(new Float32Array([1, 2])) };
  assert.deepEqual(encodeSafetensors({ a }), expected);

  const decoded = decodeSafetensors(expected);
  assert.deepEqual(decoded.metadata, {});
  assert.deepEqual(Object.keys(decoded.tensors), ['a']);
  assert.equal(decoded.tensors.a.dtype, 'F32');
  assert.deepEqual(decoded.tensors.a.shape, [2]);
  assert.deepEqual([...new Float32Array(decoded.tensors.a.data.buffer)], [1, 2]);
});

test('matches the byte layouts published in the reference implementation tests', () => {
  // safetensors/src/tensor.rs test_serialization: "attn.0" F32 [1,2,3] = 0..5, a 64-byte header (no padding).
  const attn = { dtype: 'F32' as const, shape: [1, 2, 3], data: bytesOf(new Float32Array([0, 1, 2, 3, 4, 5])) };
  assert.deepEqual(
    encodeSafetensors({ 'attn.0': attn }),
    Uint8Array.from([...u64le(64), ...ascii('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}'), ...attn.data]),
  );
  // test_empty: no tensors gives "{}" padded to 8; with metadata, "__metadata__" comes first (35 -> 40 bytes).
  assert.deepEqual(encodeSafetensors({}), Uint8Array.from([...u64le(8), ...ascii('{}      ')]));
  assert.deepEqual(
    encodeSafetensors({}, { framework: 'pt' }),
    Uint8Array.from([...u64le(40), ...ascii('{"__metadata__":{"framework":"pt"}}     ')]),
  );
});

test('header order follows the reference writer: descending dtype alignment, then name', () => {
  const t = (dtype: SafeTensor['dtype'], size: number): SafeTensor => ({ dtype, shape: [1], data: new Uint8Array(size) });
  const bytes = encodeSafetensors({ b: t('F32', 4), a: t('U8', 1), '10': t('F32', 4), '9': t('F32', 4), c: t('I64', 8), d: t('F16', 2) });
  const headerLen = Number(Buffer.from(bytes).readBigUInt64LE(0));
  const headerText = Buffer.from(bytes.subarray(8, 8 + headerLen)).toString('utf8');
  const order = [...headerText.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
  // Integer-like names keep their sorted place (a JS object would have hoisted them to the front).
  assert.deepEqual(order, ['c', '10', '9', 'b', 'd', 'a']);
  // Every tensor's data starts aligned to its element size, because of that order and the 8-byte padding.
  const { tensors } = decodeSafetensors(bytes);
  assert.equal(Object.keys(tensors).length, 6);
  assert.equal((8 + headerLen) % 8, 0);
});

test('round trip is bit-exact for every dtype, special values, empty and scalar tensors, odd names', () => {
  const f32 = new DataView(new ArrayBuffer(6 * 4));
  [0x7fc00000, 0x7fc00001, 0xffa00001 /* signalling NaN, payload */, 0x80000000 /* -0 */, 0x7f800000, 0x00000001].forEach((bits, i) =>
    f32.setUint32(i * 4, bits, true),
  );
  const f64 = new DataView(new ArrayBuffer(4 * 8));
  [0x7ff0000000000001n, 0xfff8dead0000beefn, 0x8000000000000000n, 0x0000000000000001n].forEach((bits, i) => f64.setBigUint64(i * 8, bits, true));
  const i64 = new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 2n ** 53n + 1n]);
  const tensors: Record<string, SafeTensor> = {
    'enc.w': { dtype: 'F32', shape: [2, 3], data: bytesOf(f32) },
    'enc.d': { dtype: 'F64', shape: [4], data: bytesOf(f64) },
    'bn.num_batches_tracked': { dtype: 'I64', shape: [], data: bytesOf(new BigInt64Array([7n])) },
    extremes: { dtype: 'I64', shape: [5], data: bytesOf(i64) },
    i32: { dtype: 'I32', shape: [2], data: bytesOf(new Int32Array([-(2 ** 31), 2 ** 31 - 1])) },
    i16: { dtype: 'I16', shape: [2], data: bytesOf(new Int16Array([-32768, 32767])) },
    i8: { dtype: 'I8', shape: [2], data: bytesOf(new Int8Array([-128, 127])) },
    u8: { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 128, 255]) },
    mask: { dtype: 'BOOL', shape: [2, 2], data: Uint8Array.from([1, 0, 0, 1]) },
    half: { dtype: 'F16', shape: [3], data: bytesOf(new Uint16Array([0x7e01 /* NaN payload */, 0x8000, 0x3c00])) },
    bhalf: { dtype: 'BF16', shape: [2], data: bytesOf(new Uint16Array([0x7fc1, 0x3f80])) },
    empty: { dtype: 'F32', shape: [0, 3], data: new Uint8Array(0) },
    empty2: { dtype: 'I64', shape: [4, 0], data: new Uint8Array(0) },
    scalar: { dtype: 'F32', shape: [], data: bytesOf(new Float32Array([-0])) },
    '0': { dtype: 'U8', shape: [1], data: Uint8Array.from([9]) },
    'naïve "quoted"\\name\n': { dtype: 'U8', shape: [1], data: Uint8Array.from([1]) },
    '𝔘nicode': { dtype: 'U8', shape: [1], data: Uint8Array.from([2]) },
  };
  // A tensor literally named __proto__ must stay an ordinary own entry, not replace the prototype.
  Object.defineProperty(tensors, '__proto__', {
    value: { dtype: 'U8', shape: [1], data: Uint8Array.from([3]) },
    enumerable: true,
    writable: true,
    configurable: true,
  });
  const metadata = { format: 'pt', 'note "x"': 'line1\nline2\t€' };

  const bytes = encodeSafetensors(tensors, metadata);
  const decoded = decodeSafetensors(bytes);
  assert.deepEqual(decoded.metadata, metadata);
  assert.deepEqual(Object.keys(decoded.tensors).sort(), Object.keys(tensors).sort());
  assert.equal(Object.getPrototypeOf(decoded.tensors), Object.prototype);
  for (const [name, t] of Object.entries(tensors)) {
    const d = decoded.tensors[name];
    assert.equal(d.dtype, t.dtype, name);
    assert.deepEqual(d.shape, t.shape, name);
    assert.deepEqual(d.data, t.data, name); // byte-wise: NaN payloads and -0 are compared as bits
    assert.equal(d.data.byteOffset, 0, `${name} data starts its own buffer`);
  }
  assert.equal(new DataView(decoded.tensors['enc.w'].data.buffer).getUint32(4, true), 0x7fc00001);
  assert.deepEqual([...new BigInt64Array(decoded.tensors.extremes.data.buffer)], [...i64]);
  assert.ok(Object.is(new Float32Array(decoded.tensors.scalar.data.buffer)[0], -0));
  // Encoding is deterministic, so decode -> encode reproduces the file byte for byte.
  assert.deepEqual(encodeSafetensors(decoded.tensors, decoded.metadata), bytes);
});

test('decoding accepts a Buffer view that does not start at offset 0', () => {
  const file = encodeSafetensors({ x: { dtype: 'F64', shape: [1], data: bytesOf(new Float64Array([Math.PI])) } });
  const backing = Buffer.alloc(file.length + 3);
  backing.set(file, 3);
  const { tensors } = decodeSafetensors(backing.subarray(3));
  assert.equal(new Float64Array(tensors.x.data.buffer)[0], Math.PI);
});

test('save writes atomically and load reads it back; load errors name the file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-safetensors-'));
  try {
    const file = path.join(dir, 'sub', 'model.safetensors');
    const tensors = { w: { dtype: 'F32' as const, shape: [2, 2], data: bytesOf(new Float32Array([1, -2, 3.5, NaN])) } };
    saveSafetensors(file, tensors, { epoch: '3' });
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['model.safetensors']); // no temp file left behind
    const loaded = loadSafetensors(file);
    assert.deepEqual(loaded.metadata, { epoch: '3' });
    assert.deepEqual(loaded.tensors.w.data, tensors.w.data);

    const missing = path.join(dir, 'nope.safetensors');
    assertUserError(() => loadSafetensors(missing), /: file not found$/, missing);
    assertUserError(() => loadSafetensors(dir), /is a folder, not a regular file/, dir);

    const corrupt = path.join(dir, 'corrupt.safetensors');
    fs.writeFileSync(corrupt, Buffer.from([1, 2, 3]));
    assertUserError(() => loadSafetensors(corrupt), /shorter than the 8-byte header length/, corrupt);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('each malformed file gives its own specific one-line error', () => {
  const src = 'bad.safetensors';
  const decode = (bytes: Uint8Array) => () => decodeSafetensors(bytes, src);
  const f32x2 = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const eight = new Array(8).fill(0);

  assertUserError(decode(new Uint8Array(0)), /0 bytes, shorter than the 8-byte header length/);
  assertUserError(decode(Uint8Array.from([8, 0, 0, 0, 0, 0, 0])), /7 bytes, shorter than the 8-byte/);
  assertUserError(decode(image({ a: f32x2 }, eight, 4096)), /header length 4096 is beyond the end of the file/);
  assertUserError(decode(Uint8Array.from([...u64le(2 ** 53 + 5), 0x7b, 0x7d])), /is beyond the end of the file/);
  assertUserError(decode(image('{"a": {"dtype": "F32",')), /header is not valid JSON/);
  assertUserError(decode(Uint8Array.from([...u64le(8), 0x7b, 0xff, 0xfe, 0x7d, 0x20, 0x20, 0x20, 0x20])), /header is not valid UTF-8/);
  assertUserError(decode(image('[1, 2]')), /header is not a JSON object/);
  assertUserError(decode(image({ __metadata__: { epoch: 3 } })), /"__metadata__" entry "epoch" is not a string/);
  assertUserError(decode(image({ a: 5 })), /tensor "a": entry is not an object/);
  assertUserError(decode(image({ a: { ...f32x2, dtype: 'F8_E4M3' } }, eight)), /tensor "a": unknown dtype "F8_E4M3"/);
  assertUserError(decode(image({ a: { ...f32x2, dtype: undefined } }, eight)), /tensor "a": unknown dtype undefined/);
  assertUserError(decode(image({ a: { ...f32x2, shape: [2, -1] } }, eight)), /tensor "a": shape \[2,-1\] is not a list of non-negative integers/);
  assertUserError(decode(image({ a: { ...f32x2, shape: [3] } }, eight)), /tensor "a": F32 \[3\] needs 12 bytes but data_offsets \[0, 8\] span 8/);
  assertUserError(decode(image({ a: { ...f32x2, dtype: 'F64' } }, eight)), /tensor "a": F64 \[2\] needs 16 bytes/);
  assertUserError(decode(image({ a: { ...f32x2, shape: [2 ** 40, 2 ** 40] } }, eight)), /needs an impossible number of bytes/);
  assertUserError(decode(image({ a: { ...f32x2, data_offsets: [8, 0] } }, eight)), /tensor "a": data_offsets \[8,0\] are out of range/);
  assertUserError(decode(image({ a: { ...f32x2, data_offsets: [0] } }, eight)), /data_offsets \[0\] are out of range/);
  assertUserError(decode(image({ a: { ...f32x2, data_offsets: [-8, 0] } }, eight)), /out of range/);
  assertUserError(
    decode(image({ a: f32x2, b: { ...f32x2, data_offsets: [4, 12] } }, new Array(12).fill(0))),
    /tensor "b": data_offsets \[4, 12\] overlap tensor "a" \(which ends at 8\)/,
  );
  assertUserError(
    decode(image({ a: f32x2, b: { ...f32x2, data_offsets: [12, 20] } }, new Array(20).fill(0))),
    /tensor "b": data_offsets \[12, 20\] leave bytes 8\.\.12 not covered by any tensor/,
  );
  assertUserError(decode(image({ a: { ...f32x2, data_offsets: [4, 12] } }, new Array(12).fill(0))), /leave bytes 0\.\.4 not covered/);
  assertUserError(decode(image({ a: f32x2 }, [0, 0, 0, 0, 0])), /truncated data: the header needs 8 data bytes but the file has 5/);
  assertUserError(decode(image({ a: f32x2 }, new Array(11).fill(0))), /3 bytes at the end of the data are not covered by any tensor/);
  assertUserError(decode(image({}, [1])), /1 bytes at the end of the data are not covered/);
});

test('tolerated by the spec: extra header fields, unsorted entries, empty tensors sharing an offset', () => {
  const bytes = image(
    {
      z: { dtype: 'U8', shape: [2], data_offsets: [0, 2], comment: 'ignored' },
      a: { dtype: 'U8', shape: [0], data_offsets: [2, 2] },
      b: { dtype: 'U8', shape: [1, 0], data_offsets: [2, 2] },
      c: { dtype: 'U8', shape: [1], data_offsets: [2, 3] },
    },
    [7, 8, 9],
  );
  const { tensors } = decodeSafetensors(bytes);
  assert.deepEqual([...tensors.z.data], [7, 8]);
  assert.deepEqual([...tensors.c.data], [9]);
  assert.equal(tensors.a.data.length, 0);
  assert.deepEqual(tensors.b.shape, [1, 0]);
});

test('encoding rejects tensors whose bytes do not match dtype and shape', () => {
  assert.throws(() => encodeSafetensors({ a: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } }), /needs 12 bytes, got 8/);
  assert.throws(() => encodeSafetensors({ a: { dtype: 'Q4' as never, shape: [1], data: new Uint8Array(1) } }), /unknown dtype/);
  assert.throws(() => encodeSafetensors({ a: { dtype: 'U8', shape: [1.5], data: new Uint8Array(1) } }), /invalid shape/);
  assert.throws(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), /reserved/);
  assert.throws(() => encodeSafetensors({ ['bad\ud800']: { dtype: 'U8', shape: [1], data: new Uint8Array(1) } }), /not valid Unicode/);
});
