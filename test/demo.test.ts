import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runDemo, DEMO_PROFILES, identifiedAnnotators } from '../src/demo/demo';
import { readImage } from '../src/io/image';
import { setNumThreads } from '../src/torch';

test('the demo runs end to end on a tiny profile and writes its summary, report and figure', async () => {
  setNumThreads(1);
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-demo-'));
  const lines: string[] = [];
  const r = await runDemo({
    out, quick: true, print: (l) => lines.push(l),
    profile: { ...DEMO_PROFILES.quick, cases: 16, train: 10, annotators: 3, size: 32, variationSteps: 1, preferenceSteps: 1, encoder: 'resnet18' },
  });
  assert.equal(r.profile, 'custom');
  const testSplit = JSON.parse(fs.readFileSync(path.join(out, 'data', 'dataset.json'), 'utf8')).splits.test;
  assert.equal(r.test_cases, testSplit.length, 'evaluated on the test split only');
  assert.match(r.line, /^AVAP \(synthetic, \d+ test cases, soft Dice % disc, cup\): A1 [\d.]+, [\d.]+ \| A2 .* \| Average [\d.]+, [\d.]+ \| Mean Voting [\d.]+, [\d.]+$/);
  for (const s of ['disc', 'cup']) {
    assert.ok(r.calibrated_for_every_annotator.average[s] >= 0 && r.calibrated_for_every_annotator.average[s] <= 1);
    assert.ok(r.identified[s].count >= 0 && r.identified[s].count <= 3);
    assert.equal(r.identified[s].of, 3);
  }
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.deepEqual(summary.line, r.line);
  assert.match(fs.readFileSync(path.join(out, 'report.md'), 'utf8'), /\| AVAP \| .* \|\n\| calibrated map for every annotator \|/);
  const figure = await readImage(path.join(out, 'figure.png'));
  // Two cases, each a row of image + calibrated map + 3 annotators at 160 px plus a caption strip.
  assert.deepEqual([figure.width, figure.height, figure.channels], [5 * 160, 2 * (160 + 22), 3]);
  assert.ok(lines.some((l) => l.startsWith('[3/3] evaluating')));
});

test('an annotator counts as identified only when the prediction made for them scores best on their own masks', () => {
  const cases: [(number | null)[][], number][] = [
    [[[0.9, 0.8], [0.7, 0.95]], 2],
    [[[0.8, 0.9], [0.7, 0.95]], 1], // row 1 peaks at annotator 2
    [[[0.9, 0.9], [0.95, 0.95]], 0], // ties are not identification
    [[[0.9, null], [null, null]], 0], // a missing diagonal is not counted, nor a row with no other annotation to beat
    [[[0.9, null, 0.8], [null, null, null], [0.7, null, 0.8]], 2], // missing columns are ignored
    [[], 0],
  ];
  for (const [cross, count] of cases) assert.deepEqual(identifiedAnnotators(cross), { count, of: cross.length }, JSON.stringify(cross));
});
