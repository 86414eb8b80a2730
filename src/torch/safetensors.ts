/**
 * The safetensors checkpoint format (https://huggingface.co/docs/safetensors), read and written in
 * pure TypeScript so that checkpoints can be inspected, validated and produced without the native
 * addon, and exchanged with PyTorch (bench/torch_unet.py writes the same layout).
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header, then the raw tensor
 * bytes. The header maps each tensor name to {dtype, shape, data_offsets: [begin, end]} with offsets
 * relative to the first byte after the header, plus an optional "__metadata__" string map.
 *
 * Tensor data is kept as raw little-endian bytes: this module never interprets values, so round
 * trips are bit-exact (NaN payloads, -0, int64 beyond 2^53 all survive).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { openRegular, readAt } from '../io/readBounded';

export type SafeDType = 'F32' | 'F64' | 'I64' | 'I32' | 'U8' | 'BOOL' | 'I8' | 'I16' | 'F16' | 'BF16';

export interface SafeTensor {
  dtype: SafeDType;
  shape: number[];
  /** Raw little-endian bytes, C (row-major) order; byteLength = product(shape) * bytes per element. */
  data: Uint8Array;
}

export interface DecodedSafetensors {
  tensors: Record<string, SafeTensor>;
  metadata: Record<string, string>;
}

/**
 * Bytes per element, and the rank the reference (Rust) writer sorts by: its Dtype enum is declared
 * in increasing alignment order (BOOL, U8, I8, [F8_*], I16, [U16], F16, BF16, I32, [U32], F32, F64,
 * I64, [U64]) and it writes tensors by descending rank, then by name. Writing large-alignment
 * dtypes first keeps every tensor's data aligned to its element size (the header is padded to 8),
 * and matching the order makes our files byte-identical to the reference's.
 */
const DTYPES: Record<SafeDType, { size: number; rank: number }> = {
  BOOL: { size: 1, rank: 0 },
  U8: { size: 1, rank: 1 },
  I8: { size: 1, rank: 2 },
  I16: { size: 2, rank: 5 },
  F16: { size: 2, rank: 7 },
  BF16: { size: 2, rank: 8 },
  I32: { size: 4, rank: 9 },
  F32: { size: 4, rank: 11 },
  F64: { size: 8, rank: 12 },
  I64: { size: 8, rank: 13 },
};

const METADATA_KEY = '__metadata__';
/**
 * Metadata entry holding the SHA-256 of every tensor (name, dtype, shape and bytes), so a file whose
 * data were damaged after writing (a bad disk, a partial copy that kept the length) is refused on load
 * instead of silently giving other weights. Files without it (e.g. from PyTorch) load unchecked.
 */
export const CHECKSUM_KEY = 'avap.sha256';
/** The reference reader refuses headers over 100 MB; a larger length is a corrupt file, not a model. */
const MAX_HEADER_BYTES = 100_000_000;

function isSafeDType(value: unknown): value is SafeDType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, value);
}

/** Number of elements, or undefined when the product is not exactly representable (a corrupt shape). */
function elementCount(shape: readonly number[]): number | undefined {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) return undefined;
  }
  return n;
}

function isDim(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** JSON.stringify would escape a lone surrogate as \udXXX, which the reference (Rust) reader rejects. */
function isWellFormedUtf16(s: string): boolean {
  return Buffer.from(s, 'utf8').toString('utf8') === s;
}

/** Rust compares names by UTF-8 bytes; JS `<` compares UTF-16 code units, which differs above U+FFFF. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Defines an own property even for the name "__proto__", which plain assignment would not. */
function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

/** SHA-256 over the tensors in name order: independent of the file layout, covering names, dtypes, shapes and data. */
export function tensorsDigest(tensors: Record<string, SafeTensor>): string {
  const hash = createHash('sha256');
  for (const name of Object.keys(tensors).sort(compareUtf8)) {
    const t = tensors[name];
    hash.update(`${JSON.stringify(name)}:${t.dtype}[${t.shape.join(',')}]\n`);
    hash.update(t.data);
  }
  return hash.digest('hex');
}

/**
 * Serialises tensors the way the reference writer does, byte for byte: header JSON without
 * whitespace, "__metadata__" first (keys sorted here, for reproducible files), tensors by descending
 * dtype alignment then name, header padded with spaces to a multiple of 8, data packed without gaps.
 * Throws a plain Error for malformed input (a bug in the caller, not something the user passed in).
 */
export function encodeSafetensors(tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(tensors);
  for (const name of names) {
    const t = tensors[name];
    if (name === METADATA_KEY) throw new Error(`safetensors: "${METADATA_KEY}" is reserved and cannot name a tensor`);
    if (!isWellFormedUtf16(name)) throw new Error(`safetensors: tensor name ${JSON.stringify(name)} is not valid Unicode`);
    if (!isSafeDType(t.dtype)) throw new Error(`safetensors: tensor "${name}" has unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every(isDim)) {
      throw new Error(`safetensors: tensor "${name}" has invalid shape ${JSON.stringify(t.shape)}`);
    }
    const count = elementCount(t.shape);
    const expected = count === undefined ? undefined : count * DTYPES[t.dtype].size;
    if (!(t.data instanceof Uint8Array) || t.data.byteLength !== expected) {
      throw new Error(
        `safetensors: tensor "${name}" ${t.dtype} [${t.shape.join(', ')}] needs ${expected} bytes, ` +
          `got ${t.data instanceof Uint8Array ? t.data.byteLength : typeof t.data}`,
      );
    }
  }
  names.sort((a, b) => DTYPES[tensors[b].dtype].rank - DTYPES[tensors[a].dtype].rank || compareUtf8(a, b));

  // Built by hand (not JSON.stringify of an object) so key order is exactly the order above:
  // JS objects would move integer-like names such as "0" to the front.
  const entries: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') throw new Error(`safetensors: metadata "${k}" must be a string`);
      if (!isWellFormedUtf16(k) || !isWellFormedUtf16(metadata[k])) throw new Error(`safetensors: metadata "${k}" is not valid Unicode`);
    }
    entries.push(`${JSON.stringify(METADATA_KEY)}:{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const end = offset + t.data.byteLength;
    entries.push(`${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const headerLen = Math.ceil(json.byteLength / 8) * 8;

  const out = new Uint8Array(8 + headerLen + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength, 8 + headerLen); // spaces: still valid JSON whitespace
  let pos = 8 + headerLen;
  for (const name of names) {
    out.set(tensors[name].data, pos);
    pos += tensors[name].data.byteLength;
  }
  return out;
}

interface HeaderEntry {
  name: string;
  dtype: SafeDType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parses and fully validates a safetensors image. Every problem is a UserError whose one-line
 * message starts with `source` (the file name) and says what is wrong. Returned tensor data are
 * fresh copies starting at byte 0 of their own ArrayBuffer, so they can be viewed as
 * Float32Array/BigInt64Array etc. without alignment trouble and outlive `bytes`.
 */
export function decodeSafetensors(bytes: Uint8Array, source = '<buffer>'): DecodedSafetensors {
  const fail = (problem: string): never => {
    throw new UserError(`${source}: ${problem}`);
  };
  if (bytes.byteLength < 8) fail(`not a safetensors file: ${bytes.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen64 = view.getBigUint64(0, true);
  if (headerLen64 > BigInt(bytes.byteLength - 8)) {
    fail(`header length ${headerLen64} is beyond the end of the file (${bytes.byteLength - 8} bytes after the length field)`);
  }
  const headerLen = Number(headerLen64);
  if (headerLen > MAX_HEADER_BYTES) fail(`header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);

  let text: string;
  try {
    // fatal: invalid UTF-8 is an error, not U+FFFD; ignoreBOM: keep a BOM so JSON.parse rejects it like the reference.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerLen));
  } catch {
    return fail('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message.split('\n')[0]})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) fail('header is not a JSON object');

  const metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (info === null || typeof info !== 'object' || Array.isArray(info)) fail(`"${METADATA_KEY}" is not an object`);
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`"${METADATA_KEY}" entry "${k}" is not a string`);
        setOwn(metadata, k, v as string);
      }
      continue;
    }
    if (info === null || typeof info !== 'object' || Array.isArray(info)) fail(`tensor "${name}": entry is not an object`);
    // Unknown extra fields are ignored, as the reference reader does.
    const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
    if (!isSafeDType(dtype)) fail(`tensor "${name}": unknown dtype ${JSON.stringify(dtype) ?? 'undefined'}`);
    if (!Array.isArray(shape) || !shape.every(isDim)) {
      fail(`tensor "${name}": shape ${JSON.stringify(shape) ?? 'undefined'} is not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isDim) || offsets[1] < offsets[0]) {
      fail(`tensor "${name}": data_offsets ${JSON.stringify(offsets) ?? 'undefined'} are out of range (need [begin, end] with 0 <= begin <= end)`);
    }
    const [begin, end] = offsets as number[];
    const count = elementCount(shape as number[]);
    const expected = count === undefined ? undefined : count * DTYPES[dtype as SafeDType].size;
    if (expected === undefined || !Number.isSafeInteger(expected) || expected !== end - begin) {
      fail(
        `tensor "${name}": ${dtype} [${(shape as number[]).join(', ')}] needs ${expected ?? 'an impossible number of'} bytes ` +
          `but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    entries.push({ name, dtype: dtype as SafeDType, shape: shape as number[], begin, end });
  }

  // Tensors must tile the data section exactly: sorted by offset, each starts where the previous
  // ended (no gap, no overlap) and the last ends at the end of the file (no unaccounted bytes).
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataStart = 8 + headerLen;
  const dataLen = bytes.byteLength - dataStart;
  let cursor = 0;
  let previous: string | undefined;
  for (const e of entries) {
    if (e.begin < cursor) fail(`tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] overlap tensor "${previous}" (which ends at ${cursor})`);
    if (e.begin > cursor) fail(`tensor "${e.name}": data_offsets [${e.begin}, ${e.end}] leave bytes ${cursor}..${e.begin} not covered by any tensor`);
    cursor = e.end;
    previous = e.name;
  }
  if (cursor > dataLen) fail(`truncated data: the header needs ${cursor} data bytes but the file has ${dataLen}`);
  if (cursor < dataLen) fail(`${dataLen - cursor} bytes at the end of the data are not covered by any tensor`);

  const tensors: Record<string, SafeTensor> = {};
  for (const e of entries) {
    const data = new Uint8Array(e.end - e.begin);
    data.set(bytes.subarray(dataStart + e.begin, dataStart + e.end));
    setOwn(tensors, e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  const stored = metadata[CHECKSUM_KEY];
  if (stored !== undefined) {
    const actual = tensorsDigest(tensors);
    if (actual !== stored) fail(`checksum mismatch: the tensor data are damaged (stored ${CHECKSUM_KEY} ${stored.slice(0, 12)}…, data hash to ${actual.slice(0, 12)}…)`);
    delete metadata[CHECKSUM_KEY];
  }
  return { tensors, metadata };
}

/**
 * Opens a safetensors file and reads its header, checked against the file's size before anything
 * else is read: the header length within the file, and the tensors it declares ending exactly at the
 * end of the file. A file that is not regular, or claims more than it holds, is refused without
 * reading its data. Returns the open descriptor (the caller closes it), the size and the header bytes.
 */
function openSafetensors(file: string): { fd: number; size: number; header: Buffer } {
  const { fd, size } = openRegular(file);
  try {
    if (size < 8) throw new UserError(`${file}: not a safetensors file: ${size} bytes, shorter than the 8-byte header length`);
    const len = readAt(fd, 8, 0).readBigUInt64LE(0);
    if (len > BigInt(size - 8)) throw new UserError(`${file}: header length ${len} is beyond the end of the file (${size - 8} bytes after the length field)`);
    if (len > BigInt(MAX_HEADER_BYTES)) throw new UserError(`${file}: header length ${len} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
    const header = readAt(fd, Number(len), 8);
    let parsed: unknown;
    try {
      parsed = JSON.parse(header.toString('utf8'));
    } catch {
      throw new UserError(`${file}: header is not valid JSON`);
    }
    let declared = 0;
    if (parsed !== null && typeof parsed === 'object') {
      for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
        const offsets = name === METADATA_KEY ? undefined : (entry as { data_offsets?: unknown } | null)?.data_offsets;
        if (Array.isArray(offsets) && isDim(offsets[1])) declared = Math.max(declared, offsets[1]);
      }
    }
    const data = size - 8 - header.length;
    if (declared > data) throw new UserError(`${file}: truncated data: the header needs ${declared} data bytes but the file has ${data}`);
    return { fd, size, header };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/**
 * The metadata of a safetensors file (its checksum included), from the header alone: cheap even
 * for a large model. A UserError naming the file when the header is unreadable.
 */
export function readSafetensorsMetadata(file: string): Record<string, string> {
  const { fd, header } = openSafetensors(file);
  fs.closeSync(fd);
  const meta = (JSON.parse(header.toString('utf8')) as Record<string, unknown>)?.[METADATA_KEY];
  return meta !== null && typeof meta === 'object' ? Object.fromEntries(Object.entries(meta).filter(([, v]) => typeof v === 'string')) as Record<string, string> : {};
}

/**
 * Writes a checkpoint atomically, with its checksum in the metadata: a crash mid-save leaves the
 * previous file, never a torn one, and damage after the write is detected on load.
 */
export function saveSafetensors(file: string, tensors: Record<string, SafeTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(file, encodeSafetensors(tensors, { ...metadata, [CHECKSUM_KEY]: tensorsDigest(tensors) }));
}

/** Reads and fully validates a safetensors file; its size is bounded by what its header declares. */
export function loadSafetensors(file: string): DecodedSafetensors {
  const { fd, size } = openSafetensors(file);
  let bytes: Buffer;
  try {
    bytes = readAt(fd, size, 0);
  } finally {
    fs.closeSync(fd);
  }
  return decodeSafetensors(bytes, file);
}
