import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkDataset, formatCheckReport } from '../src/data/check';
import { rigaMask, RigaImage, runCli, smallNativeSpec, tmpDir, writeGrey, writeNative, writeRiga } from './data-fixtures';

const S = 8;
function rigaImages(): RigaImage[] {
  const masks = () => [rigaMask(S, 3, 1), ...Array.from({ length: 6 }, () => rigaMask(S, 3, 1))];
  return [
    { subset: 'BinRushed', imgName: 'BinRushed\\img1.png', width: S, height: S, masks: masks() },
    { subset: 'Magrabia', imgName: 'Magrabia\\img2.png', width: S, height: S, masks: masks() },
  ];
}

test('a good native dataset: summary with subsets, splits, missing annotations and hand-computed mean areas', async () => {
  const dir = await writeNative(tmpDir('check-ok'), smallNativeSpec());
  const r = await checkDataset(dir);
  assert.ok(r.ok, JSON.stringify(r.problems));
  assert.deepEqual(r.problems, []);
  const s = r.summary!;
  assert.equal(s.layout, 'native');
  assert.equal(s.cases, 3);
  assert.deepEqual(s.splits, { train: 2, test: 1 });
  assert.deepEqual(s.missing, [{ caseId: 'case2', annotator: 'A2' }]);
  assert.deepEqual(s.imageSizes, [{ width: 4, height: 4, cases: 3 }]);
  assert.deepEqual(s.imageFormats, [{ channels: 3, alpha: false, bitDepth: 8, cases: 3 }]);
  // A1 annotated case1 (a1: disc 4/16, cup 1/16), case2 (a2: disc 12/16, cup 4/16), case10 (a1).
  // A2 annotated case1 (a2) and case10 (a1).
  const a1 = s.annotators[0];
  const a2 = s.annotators[1];
  assert.equal(a1.annotated, 3);
  assert.equal(a2.annotated, 2);
  assert.ok(Math.abs(a1.meanArea[0] - (4 + 12 + 4) / 16 / 3) < 1e-12);
  assert.ok(Math.abs(a1.meanArea[1] - (1 + 4 + 1) / 16 / 3) < 1e-12);
  assert.ok(Math.abs(a2.meanArea[0] - (12 + 4) / 16 / 2) < 1e-12);
  assert.ok(Math.abs(a2.meanArea[1] - (4 + 1) / 16 / 2) < 1e-12);
  const text = formatCheckReport(r);
  assert.match(text, /cases {7}3; splits: train 2, test 1/);
  assert.match(text, /missing 1: case2\/A2/);
  assert.match(text, /\nA1 +3 +41\.67 +12\.50\nA2 +2 +50\.00 +15\.63\n/);
  assert.match(text, /OK: .* passes every check/);
});

test('a good RIGA folder: subsets and the paper split in the summary', async () => {
  const dir = await writeRiga(tmpDir('check-riga'), rigaImages());
  const r = await checkDataset(dir);
  assert.ok(r.ok, JSON.stringify(r.problems));
  assert.deepEqual(r.summary!.subsets, { BinRushed: 1, Magrabia: 1 });
  assert.deepEqual(r.summary!.splits, { train: 1, test: 1 });
  assert.equal(r.summary!.annotators.length, 6);
});

/** Each bad input, the file the problem must name, and what it must say. */
const bad: { name: string; make: () => Promise<string>; file: (dir: string) => string; message: RegExp }[] = [
  {
    name: 'non-existent path',
    make: async () => path.join(tmpDir('check-missing'), 'nope'),
    file: (d) => d,
    message: /^no such file or directory$/,
  },
  {
    name: 'empty folder',
    make: async () => tmpDir('check-empty'),
    file: (d) => d,
    message: /^folder is empty/,
  },
  {
    name: 'truncated image',
    make: async () => {
      const d = await writeNative(tmpDir('check-trunc'), smallNativeSpec());
      const f = path.join(d, 'images', 'case1.png');
      const bytes = fs.readFileSync(f);
      fs.writeFileSync(f, bytes.subarray(0, bytes.length - 20));
      return d;
    },
    file: (d) => path.join(d, 'images', 'case1.png'),
    message: /^cannot decode image/,
  },
  {
    name: 'corrupt image',
    make: async () => {
      const d = await writeNative(tmpDir('check-corrupt'), smallNativeSpec());
      fs.writeFileSync(path.join(d, 'images', 'case2.png'), 'this is not a PNG');
      return d;
    },
    file: (d) => path.join(d, 'images', 'case2.png'),
    message: /^cannot decode image/,
  },
  {
    name: 'mask of the wrong size',
    make: async () => {
      const d = await writeNative(tmpDir('check-size'), smallNativeSpec());
      await writeGrey(path.join(d, 'labels', 'case10_A2.png'), 3, 3, Array(9).fill(0));
      return d;
    },
    file: (d) => path.join(d, 'labels', 'case10_A2.png'),
    message: /^label map is 3x3 but its image .*case10\.png is 4x4$/,
  },
  {
    name: 'unknown label values',
    make: async () => {
      const d = await writeNative(tmpDir('check-values'), smallNativeSpec());
      await writeGrey(path.join(d, 'labels', 'case1_A2.png'), 4, 4, [0, 5, 5, 0, 1, 2, 2, 1, 1, 2, 2, 1, 0, 9, 1, 0]);
      return d;
    },
    file: (d) => path.join(d, 'labels', 'case1_A2.png'),
    message: /^undeclared label values 5, 9 in 3 pixels \(declared: 0 \(background\); disc: values 1, 2; contains cup; cup: value 2\)$/,
  },
  {
    name: 'colour label map',
    make: async () => {
      const d = await writeNative(tmpDir('check-colour'), smallNativeSpec());
      const { writeRgb } = await import('./data-fixtures');
      await writeRgb(path.join(d, 'labels', 'case1_A1.png'), 4, 4, (i) => (i === 5 ? [1, 0, 0] : [0, 0, 0]));
      return d;
    },
    file: (d) => path.join(d, 'labels', 'case1_A1.png'),
    message: /^label map is colour \(pixel 1,1 is 1,0,0\)/,
  },
  {
    name: 'missing image file referenced by the RIGA CSV',
    make: async () => {
      const d = await writeRiga(tmpDir('check-riga-missing'), rigaImages());
      fs.rmSync(path.join(d, 'Magrabia', 'img2-4.png'));
      return d;
    },
    file: (d) => path.join(d, 'Magrabia', 'img2-4.png'),
    message: /^file not found$/,
  },
  {
    name: 'CSV with missing columns',
    make: async () => writeRiga(tmpDir('check-csv-cols'), rigaImages(), { header: ',imgName,maskName,label,center,xmin,ymin,xmax,ymax,width,height,discFlag,raters' }),
    file: (d) => path.join(d, 'Glaucoma_multirater_BinRushed.csv'),
    message: /^missing column 'rater' \(header is ',imgName,.*,raters', expected ',imgName,maskName,label,center,xmin,ymin,xmax,ymax,width,height,discFlag,rater'\)$/,
  },
  {
    name: 'CSV with an odd number of rater rows (a rater twice)',
    make: async () => {
      const d = await writeRiga(tmpDir('check-csv-rows'), rigaImages());
      const csv = path.join(d, 'Glaucoma_multirater_BinRushed.csv');
      const lines = fs.readFileSync(csv, 'utf8').trimEnd().split('\n');
      lines.push(lines[lines.length - 1].replace(/^\d+/, '7')); // rater 6 again: 8 rows
      fs.writeFileSync(csv, lines.join('\n') + '\n');
      return d;
    },
    file: (d) => path.join(d, 'Glaucoma_multirater_BinRushed.csv'),
    message: /^lines 2–9 \(image BinRushed\\img1\.png\): 8 rows with raters 0,1,2,3,4,5,6,6 — expected rater 0 \(FinalLabel\) then raters 1\.\.M, each once, in order$/,
  },
  {
    name: 'CSV with a non-numeric rater',
    make: async () => {
      const d = await writeRiga(tmpDir('check-csv-rater'), rigaImages());
      const csv = path.join(d, 'Glaucoma_multirater_Magrabia.csv');
      fs.writeFileSync(csv, fs.readFileSync(csv, 'utf8').replace(/,3\n/, ',three\n'));
      return d;
    },
    file: (d) => path.join(d, 'Glaucoma_multirater_Magrabia.csv'),
    message: /^line 5: rater 'three' is not a whole number/,
  },
  {
    name: 'duplicate case in RIGA (one image listed by two subsets)',
    make: async () => {
      const images = rigaImages();
      images.push({ ...images[0], subset: 'MESSIDOR' });
      return writeRiga(tmpDir('check-riga-dup'), images);
    },
    file: (d) => path.join(d, 'Glaucoma_multirater_MESSIDOR.csv'),
    message: /^lines 2–8: duplicate case — image BinRushed\\img1\.png is already listed at Glaucoma_multirater_BinRushed\.csv lines 2–8/,
  },
  {
    name: 'duplicate case in the native layout (two images with one stem)',
    make: async () => {
      const d = await writeNative(tmpDir('check-dup'), smallNativeSpec());
      fs.copyFileSync(path.join(d, 'images', 'case2.png'), path.join(d, 'images', 'case2.jpg'));
      return d;
    },
    file: (d) => path.join(d, 'images', 'case2.png'),
    message: /^duplicate case 'case2': also images\/case2\.jpg$/,
  },
  {
    name: 'label file of an unknown annotator',
    make: async () => {
      const d = await writeNative(tmpDir('check-stray'), smallNativeSpec());
      await writeGrey(path.join(d, 'labels', 'case1_A3.png'), 4, 4, Array(16).fill(0));
      return d;
    },
    file: (d) => path.join(d, 'labels', 'case1_A3.png'),
    message: /^matches no case and annotator \(expected labels\/<case>_<annotator>\.png with annotators A1, A2/,
  },
  {
    name: 'image with the wrong number of channels',
    make: async () => {
      const d = await writeNative(tmpDir('check-channels'), smallNativeSpec());
      await writeGrey(path.join(d, 'images', 'case10.png'), 4, 4, Array(16).fill(9));
      return d;
    },
    file: (d) => path.join(d, 'images', 'case10.png'),
    message: /^image has 1 channel but dataset\.json declares channels 3$/,
  },
];

for (const row of bad) {
  test(`data check reports: ${row.name}`, async () => {
    const dir = await row.make();
    const r = await checkDataset(dir);
    assert.equal(r.ok, false);
    const wanted = path.resolve(row.file(dir));
    const hit = r.problems.find((p) => path.resolve(p.file) === wanted && row.message.test(p.message));
    assert.ok(hit, `expected a problem for ${wanted} matching ${row.message}; got:\n${r.problems.map((p) => `${p.file}: ${p.message}`).join('\n')}`);

    // The CLI prints it and exits non-zero, without a stack trace.
    const cli = await runCli(['data', 'check', dir]);
    assert.equal(cli.code, 1);
    const all = cli.stdout + cli.stderr;
    // The line about the file says the same (libvips' own detail in parentheses may vary between runs).
    const line = all.split('\n').find((l) => l.includes(`${wanted}: `));
    assert.ok(line && row.message.test(line.slice(line.indexOf(`${wanted}: `) + wanted.length + 2)), `CLI output lacks a line for ${wanted} matching ${row.message}:\n${all}`);
    assert.doesNotMatch(all, /\n\s+at /, 'no stack trace');
    assert.match(cli.stderr, /^avap: /);
    assert.equal(cli.stderr.trim().split('\n').length, 1, 'one line on stderr');
  });
}

test('RIGA masks with near-white values get a warning, not a problem', async () => {
  const images = rigaImages();
  images[0].masks[2] = rigaMask(S, 3, 1, 252);
  const r = await checkDataset(await writeRiga(tmpDir('check-near'), images));
  assert.ok(r.ok);
  assert.ok(r.warnings.some((w) => /mask pixels have values 200–254; by the RIGA rule/.test(w.message)), JSON.stringify(r.warnings));
});

test('data check exits 0 and prints the summary for a good dataset', async () => {
  const dir = await writeNative(tmpDir('check-cli'), smallNativeSpec());
  const cli = await runCli(['data', 'check', dir]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /dataset {5}small \(native layout\)/);
  assert.match(cli.stdout, /mean structure area per annotator/);
  assert.equal(cli.stderr, '');
});
