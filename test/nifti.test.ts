import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { UserError } from '../src/errors';
import { blankNiftiTemplate, encodeNifti, readNifti, writeNifti } from '../src/io/nifti';
import { tmpDir } from './data-fixtures';

const PYTHON = '/usr/bin/python3';
/** nibabel is the reference NIfTI implementation these tests compare against; without it they are skipped. */
const nibabelMissing = (() => {
  if (!fs.existsSync(PYTHON)) return `${PYTHON} not found`;
  const r = spawnSync(PYTHON, ['-c', 'import nibabel'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'nibabel is not installed (apt-get install -y python3-nibabel)';
})();

function python(script: string, ...args: string[]): string {
  const r = spawnSync(PYTHON, ['-c', script, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}

/**
 * nibabel writes one file per (datatype, version, compression, shape) with distinct qform and sform,
 * negative values for the signed types, and one scaled int16 volume; a manifest lists the values
 * (x fastest) and the geometry nibabel reads back.
 */
const MAKE = `
import sys, json, numpy as np, nibabel as nib
out = sys.argv[1]
rng = np.random.default_rng(7)
cases = []
def geometry(img):
    h = img.header
    return dict(affine=img.affine.tolist(), qform=h.get_qform().tolist(), sform=h.get_sform().tolist(),
                qcode=int(h['qform_code']), scode=int(h['sform_code']), zooms=[float(z) for z in h.get_zooms()])
for version in (1, 2):
    for dtype in ('uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'float32', 'float64'):
        for shape in ((5, 4), (5, 4, 3), (6, 5, 1, 4)):
            for gz in (False, True):
                lo = 0 if dtype.startswith('uint') else -100 if dtype == 'int8' else -1000
                hi = 100 if dtype == 'int8' else 255
                data = rng.integers(lo, hi, size=shape).astype(dtype)
                if dtype.startswith('float'):
                    data = data + 0.25
                cls = nib.Nifti1Image if version == 1 else nib.Nifti2Image
                q = np.diag([0.8, 0.7, 2.5, 1.0]); q[:3, 3] = [-10, 20, 5.5]
                s = np.array([[0, -0.7, 0, 3], [0.8, 0, 0, -4], [0, 0, 2.5, 1], [0, 0, 0, 1]])
                img = cls(data, s)
                img.set_qform(q, code=1)
                img.set_sform(s, code=2)
                img.header['descrip'] = b'avap test'
                name = f'v{version}_{dtype}_{"x".join(map(str, shape))}.nii' + ('.gz' if gz else '')
                nib.save(img, f'{out}/{name}')
                back = nib.load(f'{out}/{name}')
                cases.append(dict(name=name, version=version, dtype=dtype, shape=list(shape),
                                  values=np.asarray(back.dataobj).ravel(order='F').tolist(), **geometry(back)))
# Scaled integers: the stored int16 values times scl_slope plus scl_inter are the intensities.
img = nib.Nifti1Image(np.arange(-6, 6, dtype=np.int16).reshape(4, 3), np.eye(4))
img.header.set_slope_inter(0.5, -100)
nib.save(img, f'{out}/scaled.nii')
back = nib.load(f'{out}/scaled.nii')
cases.append(dict(name='scaled.nii', version=1, dtype='float32', shape=[4, 3], scaled=True,
                  values=back.get_fdata().ravel(order='F').tolist(), **geometry(back)))
print(json.dumps(cases))
`;

const READ_BACK = `
import sys, json, numpy as np, nibabel as nib
img = nib.load(sys.argv[1]); h = img.header
print(json.dumps(dict(shape=list(img.shape), dtype=str(img.get_data_dtype()),
    values=np.asarray(img.dataobj).ravel(order='F').tolist(), qform=h.get_qform().tolist(), sform=h.get_sform().tolist(),
    qcode=int(h['qform_code']), scode=int(h['sform_code']), zooms=[float(z) for z in h.get_zooms()], descrip=h['descrip'].tobytes().rstrip(b'\\0').decode())))
`;

interface Made {
  name: string; version: number; dtype: string; shape: number[]; values: number[]; scaled?: boolean;
  qform: number[][]; sform: number[][]; qcode: number; scode: number; zooms: number[];
}

test('NIfTI-1 and -2, gzipped or not, every datatype read (uint8 … float64), 2-4 axes: values, voxel sizes and a byte-identical rewrite, against nibabel', { skip: nibabelMissing ?? false }, async () => {
  const dir = tmpDir('nifti');
  const made = JSON.parse(python(MAKE, dir)) as Made[];
  assert.ok(made.length > 90);
  for (const m of made) {
    const file = path.join(dir, m.name);
    const vol = await readNifti(file);
    assert.equal(vol.version, m.version, m.name);
    assert.deepEqual(vol.shape, m.shape, m.name);
    assert.equal(vol.datatype, m.dtype, m.name);
    assert.deepEqual([...vol.data], m.values, m.name);
    for (let i = 0; i < m.shape.length; i++) assert.ok(Math.abs(vol.pixdim[i] - m.zooms[i]) < 1e-6, `${m.name}: pixdim ${i}`);
    assert.equal(vol.qformCode, m.qcode);
    assert.equal(vol.sformCode, m.scode);
    if (m.scaled) continue;
    // Written back with its own header and data, a volume is the very file nibabel wrote (uncompressed).
    const original = file.endsWith('.gz') ? zlib.gunzipSync(fs.readFileSync(file)) : fs.readFileSync(file);
    const rewritten = encodeNifti(vol, vol.shape, vol.data, false);
    assert.ok(Buffer.compare(rewritten, original) === 0, `${m.name}: rewrite differs from nibabel's bytes`);
  }
});

test('a written volume (new datatype and shape, copied geometry) reads back in nibabel with the same values, qform, sform and voxel sizes', { skip: nibabelMissing ?? false }, async () => {
  const dir = tmpDir('nifti');
  const made = JSON.parse(python(MAKE, dir)) as Made[];
  for (const name of ['v1_int16_5x4x3.nii.gz', 'v2_uint8_6x5x1x4.nii', 'scaled.nii']) {
    const m = made.find((x) => x.name === name)!;
    const vol = await readNifti(path.join(dir, name));
    // A probability map in float32 over the first three axes, as a submission holds.
    const shape = vol.shape.slice(0, 3);
    const n = shape.reduce((a, b) => a * b, 1);
    const probs = new Float32Array(n).map((_, i) => (i % 11) / 10);
    const out = path.join(dir, `out-${name}`);
    writeNifti(out, vol, shape, probs);
    const back = JSON.parse(python(READ_BACK, out)) as Made & { descrip: string };
    assert.deepEqual(back.shape, shape, name);
    assert.equal(back.dtype, 'float32');
    assert.deepEqual(back.values, [...probs], name);
    assert.deepEqual(back.qform, m.qform, name);
    assert.deepEqual(back.sform, m.sform, name);
    assert.equal(back.qcode, m.qcode);
    assert.equal(back.scode, m.scode);
    assert.deepEqual(back.zooms.slice(0, shape.length), m.zooms.slice(0, shape.length));
    if (name !== 'scaled.nii') assert.equal(back.descrip, 'avap test');
    // Our reader agrees with nibabel on our own file.
    assert.deepEqual([...(await readNifti(out)).data], [...probs]);
  }
});

test('a volume made from nothing (synthetic data) has the voxel sizes and origin asked for, in nibabel', { skip: nibabelMissing ?? false }, async () => {
  const dir = tmpDir('nifti');
  const out = path.join(dir, 'blank.nii.gz');
  writeNifti(out, blankNiftiTemplate([0.5, 0.75, 3], [10, -20, 30]), [3, 2, 2], new Int16Array([-1024, -5, 0, 7, 100, 3000, 1, 2, 3, 4, 5, 6]));
  const back = JSON.parse(python(READ_BACK, out)) as Made;
  assert.deepEqual(back.shape, [3, 2, 2]);
  assert.deepEqual(back.values, [-1024, -5, 0, 7, 100, 3000, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(back.zooms, [0.5, 0.75, 3]);
  assert.deepEqual(back.sform, [[0.5, 0, 0, 10], [0, 0.75, 0, -20], [0, 0, 3, 30], [0, 0, 0, 1]]);
  assert.deepEqual(back.qform, back.sform);
});

/** A valid little-endian NIfTI-1 volume of uint8 voxels, then altered by `edit` (header fields by offset). */
function handMade(shape: number[], edit?: (v: DataView) => void): Buffer {
  const n = shape.reduce((a, b) => a * b, 1);
  const bytes = encodeNifti(blankNiftiTemplate(), shape, new Uint8Array(n).fill(3), false);
  edit?.(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return bytes;
}

test('hostile NIfTI files are refused in one line naming the file, before any large allocation', async () => {
  const dir = tmpDir('nifti-bad');
  const cases: [string, Buffer, RegExp][] = [
    // 1000×1000×1000 uint8 declared, four voxels stored: refused from the header alone.
    ['huge.nii', handMade([2, 2], (v) => { v.setInt16(40, 3, true); v.setInt16(42, 1000, true); v.setInt16(44, 1000, true); v.setInt16(46, 1000, true); }), /1000×1000×1000 = 1000000000 voxels, more than/],
    ['huge.nii.gz', zlib.gzipSync(handMade([2, 2], (v) => { v.setInt16(42, 31623, true); v.setInt16(44, 31623, true); })), /more than/],
    ['negative.nii', handMade([4, 4], (v) => v.setInt16(44, -4, true)), /dimension 2 of the header is -4/],
    ['rank.nii', handMade([4, 4], (v) => v.setInt16(40, 9, true)), /declares 9 dimensions/],
    ['complex.nii', handMade([4, 4], (v) => { v.setInt16(70, 32, true); v.setInt16(72, 64, true); }), /datatype 32 is not supported/],
    ['rgb.nii', handMade([4, 4], (v) => { v.setInt16(70, 128, true); v.setInt16(72, 24, true); }), /datatype 128 is not supported/],
    ['bitpix.nii', handMade([4, 4], (v) => v.setInt16(72, 16, true)), /16 bits per voxel for datatype uint8/],
    ['short.nii', handMade([8, 8]).subarray(0, 352 + 10), /truncated: .*8×8 uint8 voxels.*holds 362/],
    ['short.nii.gz', zlib.gzipSync(handMade([64, 64])).subarray(0, 60), /cannot decompress|truncated/],
    ['notnifti.nii', Buffer.from('hello, this is not a volume'), /not a NIfTI volume/],
    ['empty.nii.gz', zlib.gzipSync(Buffer.alloc(0)), /not a NIfTI volume/],
  ];
  for (const [name, bytes, pattern] of cases) {
    const file = path.join(dir, name);
    fs.writeFileSync(file, bytes);
    const before = process.memoryUsage().rss;
    await assert.rejects(readNifti(file), (err: unknown) => {
      assert.ok(err instanceof UserError, `${name}: ${String(err)}`);
      assert.ok(err.message.startsWith(`${file}: `), err.message);
      assert.match(err.message, pattern, name);
      assert.ok(!err.message.includes('\n'), err.message);
      return true;
    });
    assert.ok(process.memoryUsage().rss - before < 200 * 1024 * 1024, `${name}: memory grew while refusing`);
  }
  await assert.rejects(readNifti(path.join(dir, 'missing.nii.gz')), /missing\.nii\.gz: file not found/);
});

test('a gzipped volume with bytes after its data reads the declared voxels only', async () => {
  const dir = tmpDir('nifti');
  const file = path.join(dir, 'trailing.nii.gz');
  fs.writeFileSync(file, zlib.gzipSync(Buffer.concat([handMade([3, 2]), Buffer.alloc(100_000, 9)])));
  const vol = await readNifti(file);
  assert.deepEqual(vol.shape, [3, 2]);
  assert.deepEqual([...vol.data], [3, 3, 3, 3, 3, 3]);
});
