import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkDataset } from '../src/data/check';
import { convertRigaToNative } from '../src/data/convert';
import { openDataset, readAnnotations } from '../src/data/dataset';
import { readImage } from '../src/io/image';
import { UserError } from '../src/errors';
import { rigaMask, RigaImage, runCli, smallNativeSpec, tmpDir, writeNative, writeRiga } from './data-fixtures';

const S = 8;
function images(): RigaImage[] {
  const m = (cup: number, rim = 128) => rigaMask(S, 3, cup, rim);
  const second: (number[] | null)[] = [m(1), m(1), m(2, 131), null, m(1), m(1), m(1)];
  return [
    { subset: 'BinRushed', imgName: 'BinRushed\\BinRushed1\\image1.png', width: S, height: S, masks: [m(1), m(2), m(1), m(1), m(1), m(1), m(1, 126)] },
    { subset: 'MESSIDOR', imgName: 'MESSIDOR\\image7.png', width: S, height: S, masks: second },
    { subset: 'Magrabia', imgName: 'Magrabia\\MagrabiaFemale\\image3.png', width: S, height: S, masks: [m(1), m(1), m(1), m(1), m(1), m(1), m(2)] },
  ];
}

test('RIGA → native keeps cases, annotators, missing annotations and every mask; labels become 0/128/255', async () => {
  const riga = await writeRiga(tmpDir('conv-riga'), images());
  const out = path.join(tmpDir('conv-out'), 'native');
  const r = await convertRigaToNative(riga, out);
  assert.equal(r.cases, 3);
  assert.equal(r.missing, 1);

  const src = await openDataset(riga);
  const dst = await openDataset(out);
  assert.equal(dst.layout, 'native');
  assert.deepEqual(dst.annotators, src.annotators);
  assert.deepEqual(dst.cases.map((c) => c.id).sort(), src.cases.map((c) => c.id).sort());
  assert.deepEqual(dst.splits.train, ['BinRushed_BinRushed1_image1', 'MESSIDOR_image7']);
  assert.deepEqual(dst.splits.test, ['Magrabia_MagrabiaFemale_image3']);
  assert.deepEqual(dst.splits.MESSIDOR, ['MESSIDOR_image7'], 'subsets carried over');
  assert.equal(dst.cases.find((c) => c.id === 'MESSIDOR_image7')!.subset, 'MESSIDOR');
  for (const c of src.cases) {
    const d = dst.cases.find((x) => x.id === c.id)!;
    assert.deepEqual(d.labels.map((l) => l !== null), c.labels.map((l) => l !== null), c.id);
    const a = await readAnnotations(src, c);
    const b = await readAnnotations(dst, d);
    assert.deepEqual(b.masks, a.masks, `${c.id}: same disc and cup masks after conversion`);
    // Images are copied byte for byte.
    assert.ok(fs.readFileSync(d.image).equals(fs.readFileSync(c.image)));
  }
  // The rim value 131 of the source became 128.
  const label = await readImage(path.join(out, 'labels', 'MESSIDOR_image7_A2.png'));
  assert.deepEqual([...new Set(label.data)].sort((x, y) => x - y), [0, 128, 255]);
  assert.ok((await checkDataset(out)).ok);
});

test('convert --subsets keeps only those subsets and the splits they feed', async () => {
  const riga = await writeRiga(tmpDir('conv-riga'), images());
  const out = path.join(tmpDir('conv-out'), 'native');
  const cli = await runCli(['data', 'convert', '--from', riga, '--out', out, '--subsets', 'BinRushed,Magrabia']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^wrote 2 cases \(train 1, test 1, BinRushed 1, Magrabia 1; 0 missing annotations\) to /);
  const ds = await openDataset(out);
  assert.deepEqual(ds.cases.map((c) => c.id), ['BinRushed_BinRushed1_image1', 'Magrabia_MagrabiaFemale_image3']);
});

test('convert refuses: unknown subset, non-empty output, a native source', async () => {
  const riga = await writeRiga(tmpDir('conv-riga'), images());
  await assert.rejects(convertRigaToNative(riga, path.join(tmpDir('conv'), 'x'), { subsets: ['Messidor'] }), /unknown subset 'Messidor' \(known: BinRushed, MESSIDOR, Magrabia\)/);
  const full = tmpDir('conv-full');
  fs.writeFileSync(path.join(full, 'keep.txt'), 'x');
  await assert.rejects(convertRigaToNative(riga, full), (e: Error) => e instanceof UserError && /already exists and is not an empty folder/.test(e.message));
  const native = await writeNative(tmpDir('conv-native'), smallNativeSpec());
  await assert.rejects(convertRigaToNative(native, path.join(tmpDir('conv'), 'y')), /is a native dataset, not RIGA's DiscRegion layout/);
});
