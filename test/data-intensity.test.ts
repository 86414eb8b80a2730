import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../src/errors';
import type { CaseRecord, Dataset } from '../src/data/dataset';
import { ctRule, normalizeChannel, parseIntensity, percentile } from '../src/data/intensity';
import { computeIntensity } from '../src/data/intensityStats';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} ≠ ${b}`);

test('percentile interpolates linearly between ranks (numpy default)', () => {
  const cases: [number[], number, number][] = [
    [[0, 10], 50, 5],
    [[0, 10], 0.5, 0.05],
    [[0, 10], 99.5, 9.95],
    [[-1000, 0, 1000], 0.5, -990], // rank 0.01 → −1000 + 0.01·1000
    [[-1000, 0, 1000], 99.5, 990],
    [[7], 0.5, 7],
  ];
  for (const [sorted, p, want] of cases) close(percentile(sorted, p), want, `p${p} of [${sorted}]`);
});

test('the CT rule: clip to the foreground 0.5/99.5 percentiles, z-score with the unclipped foreground mean and sd', () => {
  // Foreground [-1000, 0, 1000] (in any order): clip [-990, 990], mean 0, sd sqrt(2e6/3).
  const rule = ctRule([1000, -1000, 0], 'data');
  assert.equal(rule.modality, 'CT');
  if (rule.modality !== 'CT') return;
  close(rule.clip[0], -990, 'lower clip');
  close(rule.clip[1], 990, 'upper clip');
  close(rule.mean, 0, 'mean');
  const sd = Math.sqrt(2e6 / 3);
  close(rule.sd, sd, 'sd');
  // Applied to an image: −2000 clips to −990, 500 passes, 5000 clips to 990, NaN becomes 0.
  const out = normalizeChannel([-2000, 500, 5000, NaN], rule, 'img.nii', 0);
  const want = [-990 / sd, 500 / sd, 990 / sd, 0];
  want.forEach((w, i) => close(out[i], w, `value ${i}`));
});

test('the CT rule uses the same numbers for every image; per-image z-scores each image by itself', () => {
  const rule = { modality: 'CT' as const, clip: [0, 100] as [number, number], mean: 40, sd: 20 };
  assert.deepEqual([...normalizeChannel([40, 60], rule, 'a', 0)], [0, 1]);
  assert.deepEqual([...normalizeChannel([40, 60, 1000], rule, 'b', 0)], [0, 1, 3]); // 1000 clipped to 100
  // Per-image: [40, 60] → mean 50, sd 10; [140, 160] the same after its own z-score.
  assert.deepEqual([...normalizeChannel([40, 60], { modality: 'per-image' }, 'a', 0)], [-1, 1]);
  assert.deepEqual([...normalizeChannel([140, 160], { modality: 'per-image' }, 'b', 0)], [-1, 1]);
});

test('a constant CT foreground gets sd 1, not a division by zero', () => {
  const rule = ctRule([30, 30, 30], 'data');
  assert.deepEqual(rule, { modality: 'CT', clip: [30, 30], mean: 30, sd: 1 });
});

test('no foreground, or a bad recorded rule, is one line naming the source and field', () => {
  assert.throws(() => ctRule([], '/d/kidney'), (e: unknown) => e instanceof UserError && /^\/d\/kidney: no rater marks any voxel/.test(e.message));
  assert.throws(() => parseIntensity([{ modality: 'CT', clip: [1, 0], mean: 0, sd: 1 }], 'run/intensity.json'),
    (e: unknown) => e instanceof UserError && /^run\/intensity\.json: invalid intensity rule at \[0\]\.clip/.test(e.message));
  assert.throws(() => parseIntensity([{ modality: 'CT', clip: [0, 1], mean: 0, sd: 0 }], 'run/intensity.json'),
    (e: unknown) => e instanceof UserError && /at \[0\]\.sd/.test(e.message));
  assert.deepEqual(parseIntensity([{ modality: 'per-image' }], 'x'), [{ modality: 'per-image' }]);
});

test('a CT channel declared on PNG images is refused in one line naming an image; no CT channel records nothing', async () => {
  const ds = { root: '/d', channels: 1, modalities: ['ct'] } as unknown as Dataset;
  const cases = [{ id: 'a', image: '/d/images/a.png', labels: ['/d/labels/a_A.png'] }] as CaseRecord[];
  await assert.rejects(computeIntensity(ds, cases), (e: unknown) => e instanceof UserError && /^\/d\/images\/a\.png: the dataset declares a CT channel/.test(e.message));
  assert.equal(await computeIntensity({ ...ds, modalities: ['MR'] }, cases), undefined);
  assert.equal(await computeIntensity({ ...ds, modalities: undefined }, cases), undefined);
});
