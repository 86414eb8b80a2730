/**
 * NIfTI-1 and NIfTI-2 volumes (`.nii`, `.nii.gz`): reading through nifti-reader-js, writing here.
 *
 * Reading is bounded: the header is decoded and checked (dimensions, datatype, the number of voxels)
 * before the voxel data is inflated or allocated, and inflating stops at the size the header declares,
 * so a hostile file costs at most MAX_NIFTI_BYTES. Every fault is a UserError naming the file.
 *
 * Writing copies a template header (the image's), so qform, sform, pixel sizes and units are kept, and
 * changes only what describes the data: dimensions, datatype, bits per voxel, the data offset, and the
 * scaling/display range when they no longer apply. The library serialises headers but writes no data,
 * and writing the fields by offset keeps every other byte of the template as it was.
 */
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import { UserError } from '../errors';
import { writeFileAtomic } from './atomic';

/** The most voxel data one file may hold (1 GiB). */
export const MAX_NIFTI_BYTES = 2 ** 30;
/**
 * The most voxels one volume may hold (2^28): a 512×512×1000 CT fits, and as float32 intensities it
 * takes 1 GiB of memory; a header declaring 10^9 voxels does not.
 */
export const MAX_NIFTI_VOXELS = 2 ** 28;

export type NiftiArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

/** The datatypes read and written: the integer and float types medical volumes (QUBIQ included) use. */
export const NIFTI_DATATYPES = {
  uint8: { code: 2, bytes: 1 },
  int16: { code: 4, bytes: 2 },
  int32: { code: 8, bytes: 4 },
  float32: { code: 16, bytes: 4 },
  float64: { code: 64, bytes: 8 },
  int8: { code: 256, bytes: 1 },
  uint16: { code: 512, bytes: 2 },
  uint32: { code: 768, bytes: 4 },
} as const;
export type NiftiDatatype = keyof typeof NIFTI_DATATYPES;

const DATATYPE_BY_CODE = new Map<number, NiftiDatatype>(Object.entries(NIFTI_DATATYPES).map(([name, d]) => [d.code, name as NiftiDatatype]));

/** A decoded volume. Axes are NIfTI's: x varies fastest, then y, z, t, … */
export interface NiftiVolume {
  version: 1 | 2;
  /** Size along each axis, dim[1..dim[0]]. */
  shape: number[];
  /** Datatype of `data`: the file's own, or float32/float64 when the header's scaling was applied. */
  datatype: NiftiDatatype;
  /** Voxel values with the header's scl_slope/scl_inter applied. */
  data: NiftiArray;
  /** Voxel sizes along each axis, pixdim[1..dim[0]]. */
  pixdim: number[];
  qformCode: number;
  sformCode: number;
  /** The header bytes as stored (348 or 540), the template a written volume copies. */
  header: Uint8Array;
  littleEndian: boolean;
}

export function isNiftiPath(file: string): boolean {
  return /\.nii(\.gz)?$/i.test(file);
}

type NiftiReaderModule = typeof import('nifti-reader-js');
let readerModule: Promise<NiftiReaderModule> | undefined;

/**
 * nifti-reader-js is an ES module and this package is CommonJS; TypeScript would compile a plain
 * `import()` to `require()`, which cannot load it, so the import is built at run time.
 */
function niftiReader(): Promise<NiftiReaderModule> {
  const dynamicImport = new Function('s', 'return import(s)') as (s: string) => Promise<NiftiReaderModule>;
  readerModule ??= dynamicImport('nifti-reader-js');
  return readerModule;
}

const HEADER_BYTES = { 1: 348, 2: 540 } as const;

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** At least `want` leading bytes of a gzip stream (fewer only when the stream is shorter), without inflating the rest. */
async function inflatePrefix(bytes: Uint8Array, want: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const gunzip = zlib.createGunzip();
    const parts: Buffer[] = [];
    let got = 0;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      gunzip.destroy();
      if (err && got < want) reject(err);
      else resolve(Buffer.concat(parts));
    };
    gunzip.on('data', (chunk: Buffer) => {
      parts.push(chunk);
      got += chunk.length;
      if (got >= want) finish();
    });
    gunzip.on('end', () => finish());
    gunzip.on('error', (err) => finish(err));
    gunzip.end(bytes);
  });
}

interface CheckedHeader {
  raw: Buffer;
  gz: boolean;
  head: Buffer;
  version: 1 | 2;
  header: Awaited<ReturnType<NiftiReaderModule['readHeaderAsync']>>;
  shape: number[];
  datatype: NiftiDatatype;
  voxels: number;
  offset: number;
  needed: number;
}

/** Reads the file's bytes and decodes and checks its header, inflating only the header's bytes. */
async function readCheckedHeader(file: string): Promise<CheckedHeader> {
  let raw: Buffer;
  try {
    const size = fs.statSync(file).size;
    // A compressed file is never larger than what it inflates to, beyond gzip's few bytes of framing.
    if (size > MAX_NIFTI_BYTES + 1024 * 1024) throw new UserError(`${file}: the file is ${size} bytes, more than the ${MAX_NIFTI_BYTES} a NIfTI volume may hold here`);
    raw = fs.readFileSync(file);
  } catch (err) {
    if (err instanceof UserError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`${file}: ${code === 'ENOENT' ? 'file not found' : `cannot read (${code ?? (err as Error).message})`}`);
  }
  const gz = isGzip(raw);
  let head: Buffer;
  try {
    head = gz ? await inflatePrefix(raw, HEADER_BYTES[2] + 4) : raw;
  } catch (err) {
    throw new UserError(`${file}: cannot decompress (${firstLine((err as Error).message)})`);
  }
  const lib = await niftiReader();
  const headBuffer = toArrayBuffer(head.subarray(0, Math.min(head.length, HEADER_BYTES[2] + 4)));
  if (!lib.isNIFTI(headBuffer)) {
    const what = head.length < HEADER_BYTES[1] ? `is only ${head.length} bytes${gz ? ' after decompression' : ''}` : 'has no NIfTI-1 or NIfTI-2 magic';
    throw new UserError(`${file}: not a NIfTI volume (the file ${what})`);
  }
  const version: 1 | 2 = lib.isNIFTI2(headBuffer) ? 2 : 1;
  let header: CheckedHeader['header'];
  try {
    header = lib.readHeader(headBuffer);
  } catch (err) {
    throw new UserError(`${file}: unreadable NIfTI header (${firstLine((err as Error).message)})`);
  }
  if ('isHDR' in header && header.isHDR) throw new UserError(`${file}: a header of an .hdr/.img pair (only single-file .nii/.nii.gz volumes are read)`);

  const rank = header.dims[0];
  if (!Number.isInteger(rank) || rank < 1 || rank > 7) throw new UserError(`${file}: the header declares ${rank} dimensions (dim[0] must be 1 to 7)`);
  const shape = header.dims.slice(1, rank + 1);
  const bad = shape.findIndex((n) => !Number.isInteger(n) || n < 1);
  if (bad >= 0) throw new UserError(`${file}: dimension ${bad + 1} of the header is ${shape[bad]} (sizes must be positive)`);
  const datatype = DATATYPE_BY_CODE.get(header.datatypeCode);
  if (datatype === undefined) {
    const known = Object.entries(NIFTI_DATATYPES).map(([n, d]) => `${n} (${d.code})`).join(', ');
    throw new UserError(`${file}: NIfTI datatype ${header.datatypeCode} is not supported (read: ${known})`);
  }
  const bytesPerVoxel = NIFTI_DATATYPES[datatype].bytes;
  if (header.numBitsPerVoxel !== bytesPerVoxel * 8) throw new UserError(`${file}: the header says ${header.numBitsPerVoxel} bits per voxel for datatype ${datatype} (expected ${bytesPerVoxel * 8})`);
  const voxels = shape.reduce((a, b) => a * b, 1);
  const dataBytes = voxels * bytesPerVoxel;
  if (voxels > MAX_NIFTI_VOXELS) throw new UserError(`${file}: the header declares ${shape.join('×')} = ${voxels} voxels, more than the ${MAX_NIFTI_VOXELS} a volume may hold here`);
  if (dataBytes > MAX_NIFTI_BYTES) throw new UserError(`${file}: the header declares ${shape.join('×')} voxels (${dataBytes} bytes), more than the ${MAX_NIFTI_BYTES} bytes a volume may hold here`);
  const offset = header.vox_offset;
  if (!Number.isInteger(offset) || offset < HEADER_BYTES[version]) throw new UserError(`${file}: the header's vox_offset ${offset} lies inside the header`);
  const needed = offset + dataBytes;

  return { raw, gz, head, version, header, shape, datatype, voxels, offset, needed };
}

/** The size of each axis of a `.nii` or `.nii.gz` file, from its (checked) header, without decoding the voxels. */
export async function readNiftiShape(file: string): Promise<{ shape: number[]; datatype: NiftiDatatype; pixdim: number[] }> {
  const h = await readCheckedHeader(file);
  return { shape: h.shape, datatype: h.datatype, pixdim: h.header.pixDims.slice(1, h.shape.length + 1) };
}

/** A file's shape and header bytes, the template writeNifti copies, without decoding the voxels. */
export async function readNiftiHeader(file: string): Promise<{ shape: number[] } & Pick<NiftiVolume, 'version' | 'header' | 'littleEndian'>> {
  const h = await readCheckedHeader(file);
  return { shape: h.shape, version: h.version, header: new Uint8Array(h.head.subarray(0, HEADER_BYTES[h.version])), littleEndian: h.header.littleEndian };
}

/** Reads a `.nii` or `.nii.gz` file. Throws a UserError naming the file for anything it cannot or will not read. */
export async function readNifti(file: string): Promise<NiftiVolume> {
  const { raw, gz, head, version, header, shape, datatype, voxels, offset, needed } = await readCheckedHeader(file);
  let body: Uint8Array;
  if (gz) {
    try {
      // Inflating stops at the declared size: trailing bytes beyond it are not the volume's.
      body = zlib.gunzipSync(raw, { maxOutputLength: needed });
    } catch (err) {
      if (err instanceof RangeError || (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') body = (await inflatePrefix(raw, needed)).subarray(0, needed);
      else throw new UserError(`${file}: cannot decompress (${firstLine((err as Error).message)}; the file may be truncated)`);
    }
  } else {
    body = raw;
  }
  if (body.length < needed) throw new UserError(`${file}: truncated: the header declares ${shape.join('×')} ${datatype} voxels from byte ${offset} (${needed} bytes), the ${gz ? 'decompressed ' : ''}file holds ${body.length}`);

  let data = decodeVoxels(body.subarray(offset, needed), datatype, voxels, header.littleEndian);
  let outType: NiftiDatatype = datatype;
  const slope = header.scl_slope;
  const inter = header.scl_inter;
  // NIfTI: a slope of 0 (or NaN) means "no scaling".
  if (Number.isFinite(slope) && slope !== 0 && (slope !== 1 || (Number.isFinite(inter) && inter !== 0))) {
    const scaled = datatype === 'float64' ? new Float64Array(voxels) : new Float32Array(voxels);
    const b = Number.isFinite(inter) ? inter : 0;
    for (let i = 0; i < voxels; i++) scaled[i] = data[i] * slope + b;
    data = scaled;
    outType = datatype === 'float64' ? 'float64' : 'float32';
  }
  return {
    version,
    shape,
    datatype: outType,
    data,
    pixdim: header.pixDims.slice(1, shape.length + 1),
    qformCode: header.qform_code,
    sformCode: header.sform_code,
    header: new Uint8Array(head.subarray(0, HEADER_BYTES[version])),
    littleEndian: header.littleEndian,
  };
}

function decodeVoxels(bytes: Uint8Array, datatype: NiftiDatatype, n: number, littleEndian: boolean): NiftiArray {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (datatype) {
    case 'uint8': return new Uint8Array(bytes);
    case 'int8': return new Int8Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + n));
    case 'int16': { const a = new Int16Array(n); for (let i = 0; i < n; i++) a[i] = view.getInt16(2 * i, littleEndian); return a; }
    case 'uint16': { const a = new Uint16Array(n); for (let i = 0; i < n; i++) a[i] = view.getUint16(2 * i, littleEndian); return a; }
    case 'int32': { const a = new Int32Array(n); for (let i = 0; i < n; i++) a[i] = view.getInt32(4 * i, littleEndian); return a; }
    case 'uint32': { const a = new Uint32Array(n); for (let i = 0; i < n; i++) a[i] = view.getUint32(4 * i, littleEndian); return a; }
    case 'float32': { const a = new Float32Array(n); for (let i = 0; i < n; i++) a[i] = view.getFloat32(4 * i, littleEndian); return a; }
    case 'float64': { const a = new Float64Array(n); for (let i = 0; i < n; i++) a[i] = view.getFloat64(8 * i, littleEndian); return a; }
  }
}

function datatypeOf(data: NiftiArray): NiftiDatatype {
  if (data instanceof Uint8Array) return 'uint8';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Int16Array) return 'int16';
  if (data instanceof Uint16Array) return 'uint16';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint32Array) return 'uint32';
  if (data instanceof Float32Array) return 'float32';
  return 'float64';
}

/** Field offsets that writing changes, per NIfTI version (the standard's nifti1.h / nifti2.h layouts). */
const FIELDS = {
  1: { dim: 40, dimBytes: 2, datatype: 70, bitpix: 72, pixdim: 76, pixBytes: 4, voxOffset: 108, sclSlope: 112, sclInter: 116, calMax: 124, calMin: 128 },
  2: { dim: 16, dimBytes: 8, datatype: 12, bitpix: 14, pixdim: 104, pixBytes: 8, voxOffset: 168, sclSlope: 176, sclInter: 184, calMax: 192, calMin: 200 },
} as const;

/**
 * Encodes `data` (x fastest, `shape` its sizes) as a NIfTI file with `template`'s header: geometry, units,
 * description and intent are copied, extensions are not. Gzipped when `gzip`.
 */
export function encodeNifti(template: Pick<NiftiVolume, 'version' | 'header' | 'littleEndian'>, shape: number[], data: NiftiArray, gzip: boolean): Buffer {
  const voxels = shape.reduce((a, b) => a * b, 1);
  if (shape.length < 1 || shape.length > 7 || shape.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`encodeNifti: bad shape ${shape.join('×')}`);
  if (data.length !== voxels) throw new Error(`encodeNifti: ${data.length} values for shape ${shape.join('×')}`);
  const { version, littleEndian: le } = template;
  const f = FIELDS[version];
  const headerBytes = HEADER_BYTES[version];
  const offset = headerBytes + 4;
  const datatype = datatypeOf(data);
  const { code, bytes } = NIFTI_DATATYPES[datatype];
  const out = Buffer.alloc(offset + voxels * bytes);
  out.set(template.header.subarray(0, headerBytes), 0);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const setInt = (at: number, width: number, v: number) => {
    if (width === 2) view.setInt16(at, v, le);
    else view.setBigInt64(at, BigInt(v), le);
  };
  const setFloat = (at: number, v: number) => (version === 1 ? view.setFloat32(at, v, le) : view.setFloat64(at, v, le));
  const oldType = view.getInt16(f.datatype, le);
  setInt(f.dim, f.dimBytes, shape.length);
  for (let i = 1; i <= 7; i++) setInt(f.dim + i * f.dimBytes, f.dimBytes, i <= shape.length ? shape[i - 1] : 1);
  // Axes the template lacks get a unit voxel size (0 would be an invalid spacing).
  for (let i = 1; i <= shape.length; i++) {
    const at = f.pixdim + i * f.pixBytes;
    const p = version === 1 ? view.getFloat32(at, le) : view.getFloat64(at, le);
    if (!(p > 0)) setFloat(at, 1);
  }
  view.setInt16(f.datatype, code, le);
  view.setInt16(f.bitpix, bytes * 8, le);
  if (version === 1) view.setFloat32(f.voxOffset, offset, le);
  else view.setBigInt64(f.voxOffset, BigInt(offset), le);
  // The values written are final: an active scaling of the template would rescale them again.
  const slope = version === 1 ? view.getFloat32(f.sclSlope, le) : view.getFloat64(f.sclSlope, le);
  const inter = version === 1 ? view.getFloat32(f.sclInter, le) : view.getFloat64(f.sclInter, le);
  if (Number.isFinite(slope) && slope !== 0 && (slope !== 1 || (Number.isFinite(inter) && inter !== 0))) {
    setFloat(f.sclSlope, 1);
    setFloat(f.sclInter, 0);
  }
  // The template's display range described its own values, not these.
  if (oldType !== code) {
    setFloat(f.calMax, 0);
    setFloat(f.calMin, 0);
  }
  out.fill(0, headerBytes, offset); // no extensions
  const body = new DataView(out.buffer, out.byteOffset + offset, voxels * bytes);
  for (let i = 0; i < voxels; i++) {
    const v = data[i];
    switch (datatype) {
      case 'uint8': body.setUint8(i, v); break;
      case 'int8': body.setInt8(i, v); break;
      case 'int16': body.setInt16(2 * i, v, le); break;
      case 'uint16': body.setUint16(2 * i, v, le); break;
      case 'int32': body.setInt32(4 * i, v, le); break;
      case 'uint32': body.setUint32(4 * i, v, le); break;
      case 'float32': body.setFloat32(4 * i, v, le); break;
      case 'float64': body.setFloat64(8 * i, v, le); break;
    }
  }
  return gzip ? zlib.gzipSync(out, { level: 6 }) : out;
}

/** Writes a volume atomically with `template`'s header; gzipped when the name ends in `.gz`. */
export function writeNifti(file: string, template: Pick<NiftiVolume, 'version' | 'header' | 'littleEndian'>, shape: number[], data: NiftiArray): void {
  writeFileAtomic(file, encodeNifti(template, shape, data, /\.gz$/i.test(file)));
}

/** A minimal NIfTI-1 header (little-endian, unit voxels, scanner-anatomical qform and sform), for volumes made from nothing (synthetic data). */
export function blankNiftiTemplate(pixdim: number[] = [1, 1, 1], origin: number[] = [0, 0, 0]): Pick<NiftiVolume, 'version' | 'header' | 'littleEndian'> {
  const h = Buffer.alloc(HEADER_BYTES[1]);
  const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
  v.setInt32(0, 348, true);
  v.setInt16(40, 1, true);
  for (let i = 1; i <= 7; i++) v.setInt16(40 + 2 * i, 1, true);
  v.setInt16(70, 2, true);
  v.setInt16(72, 8, true);
  v.setFloat32(76, 1, true); // qfac
  for (let i = 0; i < 7; i++) v.setFloat32(80 + 4 * i, pixdim[i] ?? 1, true);
  v.setFloat32(108, 352, true);
  v.setFloat32(112, 1, true);
  h.writeUInt8(2 | (3 << 3), 123); // millimetres, seconds
  v.setInt16(252, 1, true); // qform: scanner anatomical
  v.setInt16(254, 1, true); // sform: scanner anatomical
  v.setFloat32(268, origin[0] ?? 0, true); // qoffset_x
  v.setFloat32(272, origin[1] ?? 0, true);
  v.setFloat32(276, origin[2] ?? 0, true);
  // srow_x, srow_y, srow_z: the same diagonal affine as the qform.
  for (let r = 0; r < 3; r++) {
    v.setFloat32(280 + 16 * r + 4 * r, pixdim[r] ?? 1, true);
    v.setFloat32(280 + 16 * r + 12, origin[r] ?? 0, true);
  }
  h.write('n+1\0', 344, 'latin1');
  return { version: 1, header: new Uint8Array(h), littleEndian: true };
}

function toArrayBuffer(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

function firstLine(message: string): string {
  return message.split('\n')[0].trim();
}
