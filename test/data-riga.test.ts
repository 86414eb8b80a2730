import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { openDataset, readAnnotations, selectCases } from '../src/data/dataset';
import { parseCsv, rigaCaseId } from '../src/data/riga';
import { rigaMask, rigaMaskName, RigaImage, tmpDir, writeRiga } from './data-fixtures';

const S = 8;

/** Three images over two subsets; 6 raters + FinalLabel; the second image has no row for rater 3. */
function fixture(): RigaImage[] {
  const masks = (cups: number[]) => [rigaMask(S, 3, 1), ...cups.map((c) => rigaMask(S, 3, c))];
  const second = masks([1, 1, 1, 1, 2, 1]) as (number[] | null)[];
  second[3] = null;
  return [
    { subset: 'BinRushed', imgName: 'BinRushed\\BinRushed1\\image1.png', width: S, height: S, masks: masks([1, 2, 1, 1, 1, 1]) },
    { subset: 'BinRushed', imgName: 'BinRushed\\BinRushed1\\image2.png', width: S, height: S, masks: second },
    { subset: 'Magrabia', imgName: 'Magrabia\\MagrabiaMale\\image1.png', width: S, height: S, masks: masks([1, 1, 1, 1, 1, 1]) },
  ];
}

test('RIGA layout: subsets, backslash paths, rater 0 is not an annotator, a missing rater row is a missing annotation', async () => {
  const dir = await writeRiga(tmpDir('riga'), fixture(), { crlf: true });
  const ds = await openDataset(dir);
  assert.equal(ds.layout, 'riga');
  assert.deepEqual(ds.annotators, ['A1', 'A2', 'A3', 'A4', 'A5', 'A6'], 'M = 6 from the rater column, FinalLabel excluded');
  assert.deepEqual(ds.structures.map((s) => s.name), ['disc', 'cup']);
  assert.deepEqual(ds.cases.map((c) => [c.id, c.subset]), [
    ['BinRushed_BinRushed1_image1', 'BinRushed'],
    ['BinRushed_BinRushed1_image2', 'BinRushed'],
    ['Magrabia_MagrabiaMale_image1', 'Magrabia'],
  ]);
  const c = ds.cases[1];
  assert.equal(c.image, path.join(dir, 'BinRushed', 'BinRushed1', 'image2.png'));
  assert.equal(c.fused, path.join(dir, 'BinRushed', 'BinRushed1', 'image2-0.png'));
  assert.equal(c.labels[0], path.join(dir, ...rigaMaskName('BinRushed\\BinRushed1\\image2.png', 1).split('\\')));
  assert.equal(c.labels[2], null, 'rater 3 has no row');
  assert.deepEqual(c.labels.map((l) => l !== null), [true, true, false, true, true, true]);
  // Subsets are splits, plus the paper's split (train = BinRushed + MESSIDOR, test = Magrabia).
  assert.deepEqual(Object.keys(ds.splits), ['BinRushed', 'Magrabia', 'train', 'test']);
  assert.deepEqual(ds.splits.train, ['BinRushed_BinRushed1_image1', 'BinRushed_BinRushed1_image2']);
  assert.deepEqual(selectCases(ds, { subsets: ['Magrabia'] }).map((x) => x.id), ['Magrabia_MagrabiaMale_image1']);
});

test('M comes from the data: a RIGA-style export with 3 raters has 3 annotators', async () => {
  const dir = await writeRiga(tmpDir('riga3'), [{ subset: 'MESSIDOR', imgName: 'MESSIDOR\\a.png', width: S, height: S, masks: [rigaMask(S, 3, 1), rigaMask(S, 3, 1), rigaMask(S, 3, 1), rigaMask(S, 3, 2)] }]);
  const ds = await openDataset(dir);
  assert.deepEqual(ds.annotators, ['A1', 'A2', 'A3']);
  assert.deepEqual(Object.keys(ds.splits), ['MESSIDOR', 'train']);
});

test('RIGA mask rule: disc = value > 0, cup = value 255 exactly (rim ~128 and near-white 254 are disc only)', async () => {
  // One row of pixels: 0, 1, 127, 128, 130, 254, 255, 0.
  const values = [0, 1, 127, 128, 130, 254, 255, 0];
  const dir = await writeRiga(tmpDir('riga-rule'), [{ subset: 'BinRushed', imgName: 'BinRushed\\x.png', width: 8, height: 1, masks: [values, values] }]);
  const ds = await openDataset(dir);
  const a = await readAnnotations(ds, ds.cases[0]);
  assert.deepEqual([...a.masks[0][0]], [0, 1, 1, 1, 1, 1, 1, 0]);
  assert.deepEqual([...a.masks[0][1]], [0, 0, 0, 0, 0, 0, 1, 0]);
});

test('parseCsv: quoted fields, escaped quotes, CRLF, BOM and blank lines', () => {
  const text = '\ufeffa,b,c\r\n1,"x, y","say ""hi"""\r\n\r\n2,,"multi\nline"\n';
  assert.deepEqual(parseCsv(text).map((r) => [r.line, r.fields]), [
    [1, ['a', 'b', 'c']],
    [2, ['1', 'x, y', 'say "hi"']],
    [4, ['2', '', 'multi\nline']],
  ]);
});

const ids: [string, string][] = [
  ['BinRushed\\BinRushed1\\image1prime.jpg', 'BinRushed_BinRushed1_image1prime'],
  ['MESSIDOR/image 12.tif', 'MESSIDOR_image_12'],
  ['.\\Magrabia\\a.b.png', 'Magrabia_a.b'],
];
for (const [imgName, id] of ids) {
  test(`rigaCaseId(${JSON.stringify(imgName)}) = ${id}`, () => assert.equal(rigaCaseId(imgName), id));
}
