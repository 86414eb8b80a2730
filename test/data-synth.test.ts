import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkDataset } from '../src/data/check';
import { openDataset } from '../src/data/dataset';
import { annotatorStyles, BASE_STYLES, majorityVoteAgreement, STRONG_STYLE_CHANCE, SYNTH_JITTER, SynthSidecar, synthCase, writeSynthDataset } from '../src/data/synth';
import { readImage } from '../src/io/image';
import { runCli, tmpDir } from './data-fixtures';

function filesOf(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(path.relative(dir, p), fs.readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

test('synth is deterministic per seed: same seed, same bytes; another seed, other images', async () => {
  const opts = { cases: 5, annotators: 4, size: 64 };
  const a = path.join(tmpDir('synth'), 'a');
  const b = path.join(tmpDir('synth'), 'b');
  const c = path.join(tmpDir('synth'), 'c');
  await writeSynthDataset({ out: a, seed: 3, ...opts });
  await writeSynthDataset({ out: b, seed: 3, ...opts });
  await writeSynthDataset({ out: c, seed: 4, ...opts });
  const fa = filesOf(a);
  const fb = filesOf(b);
  assert.equal(fa.size, 1 + 1 + 5 + 5 * 4, 'dataset.json, synth.json, 5 images, 20 label maps');
  assert.deepEqual([...fa.keys()].sort(), [...fb.keys()].sort());
  for (const [k, v] of fa) assert.ok(v.equals(fb.get(k)!), `${k} differs between two runs with seed 3`);
  assert.ok(!fa.get(path.join('images', 'case000.png'))!.equals(filesOf(c).get(path.join('images', 'case000.png'))!));
});

test('case i does not depend on how many cases are generated', () => {
  const styles = annotatorStyles(3, 9);
  const x = synthCase(2, 9, 48, styles);
  const y = synthCase(2, 9, 48, annotatorStyles(3, 9));
  assert.deepEqual(x.image, y.image);
  assert.deepEqual(x.labels, y.labels);
});

test('synth writes a valid native dataset with train/test splits and a sidecar that matches the label maps', async () => {
  const out = path.join(tmpDir('synth'), 'd');
  await writeSynthDataset({ out, cases: 10, annotators: 6, size: 64, seed: 0 });
  const ds = await openDataset(out);
  assert.deepEqual(ds.annotators, ['A1', 'A2', 'A3', 'A4', 'A5', 'A6']);
  assert.deepEqual(ds.structures.map((s) => [s.name, s.values]), [['disc', [128, 255]], ['cup', [255]]]);
  // Without --train: up to 30 training cases, at least one test case.
  assert.equal(ds.splits.train.length, 9);
  assert.equal(ds.splits.test.length, 1);
  assert.ok((await checkDataset(out)).ok);

  const side = JSON.parse(fs.readFileSync(path.join(out, 'synth.json'), 'utf8')) as SynthSidecar;
  assert.equal(side.cases.length, 10);
  // Each annotator's habit and noise level are documented.
  assert.deepEqual(side.annotators.map((s) => [s.cupScale, s.noise]), BASE_STYLES.map((s) => [s.cupScale, s.noise]));
  // The areas in the sidecar are those of the written label maps.
  const c = side.cases[4];
  const label = await readImage(path.join(out, 'labels', `${c.id}_A2.png`));
  const cup = label.data.filter((v) => v === 255).length;
  const disc = label.data.filter((v) => v > 0).length;
  assert.equal(c.annotators[1].cupArea, cup);
  assert.equal(c.annotators[1].discArea, disc);
  assert.ok([...label.data].every((v) => v === 0 || v === 128 || v === 255));
  // Latent cup lies inside the latent disc (centre within the disc's smaller semi-axis).
  assert.ok(Math.hypot(c.cup.cx - c.disc.cx, c.cup.cy - c.disc.cy) < Math.min(c.disc.rx, c.disc.ry));
  // The agreement measured from the written label maps is the generator's.
  const written = await Promise.all(side.cases.map((k) => Promise.all(ds.annotators.map(async (a) => (await readImage(path.join(out, 'labels', `${k.id}_${a}.png`))).data))));
  const styles = annotatorStyles(6, 0);
  assert.deepEqual(majorityVoteAgreement(written), majorityVoteAgreement(side.cases.map((_, i) => synthCase(i, 0, 64, styles).labels)));
});

test('agreement with the majority vote: Dice per annotator, ties are not a majority, a case without the structure agrees fully', () => {
  const [o, d, c] = [0, 128, 255];
  // 1×4 maps, three annotators. Disc majority: pixels 0–2; cup majority: pixel 0 only (pixel 1 has one vote of three).
  const labels = [Uint8Array.from([c, c, d, o]), Uint8Array.from([c, d, d, o]), Uint8Array.from([c, d, o, d])];
  const a = majorityVoteAgreement([labels]);
  assert.deepEqual(a.disc.map((x) => +x.toFixed(4)), [100, 100, 100 * (2 * 2) / (3 + 3)].map((x) => +x.toFixed(4)));
  assert.deepEqual(a.cup.map((x) => +x.toFixed(4)), [100 * 2 / 3, 100, 100].map((x) => +x.toFixed(4)));
  // Two annotators split 1:1 on every pixel: no majority anywhere. Averaged with a case where nobody marks anything.
  const split = majorityVoteAgreement([[Uint8Array.from([c, o]), Uint8Array.from([o, c])], [Uint8Array.from([o, o]), Uint8Array.from([o, o])]]);
  assert.deepEqual(split, { disc: [50, 50], cup: [50, 50] });
  assert.throws(() => majorityVoteAgreement([]), /no cases/);
});

test('the annotators agree with the majority vote as on a real RIGA-like set: discs closely, ordinary cups at 84–93, A4 far below', () => {
  const styles = annotatorStyles(6, 0);
  const cases = Array.from({ length: 40 }, (_, i) => synthCase(i, 0, 128, styles).labels);
  const { disc, cup } = majorityVoteAgreement(cases);
  const show = `disc ${disc.map((x) => x.toFixed(1))}, cup ${cup.map((x) => x.toFixed(1))}`;
  for (const x of disc) assert.ok(x >= 96 && x <= 99.5, show);
  for (const m of [0, 1, 2, 4, 5]) assert.ok(cup[m] >= 84 && cup[m] <= 93, `A${m + 1}: ${show}`);
  assert.ok(cup[3] < 78, `A4: ${show}`);
  // Careful annotators (A1, A5) agree better than the sloppiest (A3).
  assert.ok(cup[0] > cup[2] + 1.5 && cup[4] > cup[2] + 1.5, show);
});

test('ordinary annotators depart from the others mostly by per-image noise; A4 by a consistent, larger cup', () => {
  const styles = annotatorStyles(6, 0);
  const N = 40;
  const departures: number[][] = styles.map(() => []);
  const discArea = new Array(6).fill(0);
  for (let i = 0; i < N; i++) {
    const c = synthCase(i, 0, 128, styles);
    const sorted = c.drawn.map((d) => d.cupArea).sort((a, b) => a - b);
    const median = (sorted[2] + sorted[3]) / 2;
    c.drawn.forEach((d, m) => {
      departures[m].push(Math.log(d.cupArea / median));
      discArea[m] += d.discArea / N;
    });
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = (xs: number[]) => Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1));
  const show = departures.map((d, m) => `A${m + 1} ${mean(d).toFixed(3)} ± ${std(d).toFixed(3)}`).join(', ');
  // Log cup area against the case's median: the systematic part (mean) is small next to the per-image part (std)...
  for (const m of [0, 1, 2, 4, 5]) assert.ok(Math.abs(mean(departures[m])) < 0.75 * std(departures[m]), show);
  // ...except for A4, whose cup is larger on average by far more than it varies (+30% linear ≈ +0.5 in log area).
  assert.ok(mean(departures[3]) > 0.35 && mean(departures[3]) > 1.5 * std(departures[3]), show);
  // Discs nearly agree.
  const spread = (xs: number[]) => Math.max(...xs) / Math.min(...xs);
  assert.ok(spread(discArea) < 1.05, `disc area spread ${spread(discArea)}`);
});

test('each annotator\'s per-case jitter is SYNTH_JITTER times their noise level', () => {
  const styles = annotatorStyles(6, 0);
  const relativeScale: number[][] = styles.map(() => []);
  const N = 300;
  for (let i = 0; i < N; i++) {
    const c = synthCase(i, 0, 32, styles); // the drawn ellipses do not depend on the image size
    const latentRadius = Math.sqrt(c.latent.cup.rx * c.latent.cup.ry);
    c.drawn.forEach((d, m) => relativeScale[m].push(Math.sqrt(d.cup.rx * d.cup.ry) / (latentRadius * styles[m].cupScale)));
  }
  relativeScale.forEach((xs, m) => {
    const mu = xs.reduce((a, b) => a + b, 0) / N;
    const sd = Math.sqrt(xs.reduce((a, x) => a + (x - mu) ** 2, 0) / (N - 1));
    const expected = styles[m].noise * SYNTH_JITTER.cupScale;
    assert.ok(Math.abs(sd / expected - 1) < 0.15, `A${m + 1}: cup scale jitter ${sd.toFixed(4)}, expected ${expected.toFixed(4)}`);
  });
});

test('A4\'s temporal offset follows the eye: over many cases A4\'s cup sits temporal of the others\', left or right', () => {
  const styles = annotatorStyles(6, 0);
  let temporalShift = 0;
  const sides = new Set<number>();
  const N = 30;
  for (let i = 0; i < N; i++) {
    const c = synthCase(i, 0, 128, styles);
    sides.add(c.latent.temporal);
    const others = [0, 1, 2, 4, 5].reduce((a, m) => a + c.drawn[m].cup.cx, 0) / 5;
    temporalShift += (c.latent.temporal * (c.drawn[3].cup.cx - others)) / N;
  }
  assert.deepEqual([...sides].sort(), [-1, 1], 'both eyes occur');
  // 0.15 of the cup's radius (~14 px at 128²): ~2 px.
  assert.ok(temporalShift > 1, `mean temporal shift of A4 against the others: ${temporalShift} px`);
});

test('the cup is hard to see: inside the disc, the cup is only a few percent brighter than the rim around it', () => {
  const styles = annotatorStyles(1, 0);
  const S = 128;
  let ratio = 0;
  const N = 20;
  for (let i = 0; i < N; i++) {
    const c = synthCase(i, 0, S, styles);
    let cup = 0, nCup = 0, rim = 0, nRim = 0;
    for (let j = 0; j < S * S; j++) {
      const v = c.image[3 * j] + c.image[3 * j + 1] + c.image[3 * j + 2];
      if (c.labels[0][j] === 255) { cup += v; nCup++; } else if (c.labels[0][j] === 128) { rim += v; nRim++; }
    }
    ratio += cup / nCup / (rim / nRim) / N;
  }
  // The old generator's cup was ~25% brighter than the rim; a fundus cup's pallor is subtle.
  assert.ok(ratio > 1 && ratio < 1.12, `cup/rim brightness ${ratio}`);
});

test('any M works: annotators beyond the six base ones are drawn from the seed by the same recipe', () => {
  const s8 = annotatorStyles(8, 1);
  assert.equal(s8.length, 8);
  assert.deepEqual(s8.slice(0, 6).map((s) => [s.cupScale, s.noise]), BASE_STYLES.map((s) => [s.cupScale, s.noise]));
  assert.deepEqual(annotatorStyles(8, 1), s8);
  assert.notDeepEqual(annotatorStyles(8, 2).slice(6), s8.slice(6));
  assert.deepEqual(annotatorStyles(2, 0).map((s) => s.name), ['A1', 'A2']);
  // Over many seeds: mostly noise with a weak habit, now and then a strong style with ordinary noise.
  let strong = 0;
  let drawn = 0;
  for (let seed = 0; seed < 100; seed++) {
    for (const s of annotatorStyles(10, seed).slice(6)) {
      drawn++;
      assert.ok(s.discScale >= 0.99 && s.discScale <= 1.01, JSON.stringify(s));
      if (s.description.includes('strong style')) {
        strong++;
        assert.ok((s.cupScale >= 1.25 && s.cupScale <= 1.4) || (s.cupScale >= 0.7 && s.cupScale <= 0.78), JSON.stringify(s));
        assert.ok(s.noise >= 0.8 && s.noise <= 1.2, JSON.stringify(s));
      } else {
        assert.ok(Math.abs(s.cupScale - 1) <= 0.04 + 1e-9 && Math.hypot(...s.cupOffset) <= 0.08 + 1e-9 && s.cupRoundness <= 0.4, JSON.stringify(s));
        assert.ok(s.noise >= 0.7 && s.noise <= 1.3, JSON.stringify(s));
      }
    }
  }
  assert.ok(Math.abs(strong / drawn - STRONG_STYLE_CHANCE) < 0.06, `${strong} of ${drawn} drawn annotators have a strong style`);
});

const flags: { args: string[]; message: string }[] = [
  { args: ['--cases', 'abc'], message: "avap: --cases must be a positive integer, got 'abc'" },
  { args: ['--cases', '0'], message: "avap: --cases must be in 1..100000, got '0'" },
  { args: ['--annotators', '2.5'], message: "avap: --annotators must be a positive integer, got '2.5'" },
  { args: ['--size', '16'], message: "avap: --size must be in 32..4096, got '16'" },
  { args: ['--seed', '-1'], message: "avap: --seed must be a non-negative integer, got '-1'" },
];
for (const f of flags) {
  test(`avap synth ${f.args.join(' ')} → one-line error`, async () => {
    const out = path.join(tmpDir('synth-flags'), 'x');
    const r = await runCli(['synth', '--out', out, ...f.args]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), f.message);
    assert.ok(!fs.existsSync(out), 'nothing written');
  });
}

test('avap synth into a non-empty folder is refused; a fresh one works', async () => {
  const dir = tmpDir('synth-cli');
  fs.writeFileSync(path.join(dir, 'x'), '');
  const refused = await runCli(['synth', '--out', dir, '--cases', '2', '--size', '32']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /already exists and is not an empty folder/);
  const ok = await runCli(['synth', '--out', path.join(dir, 'new'), '--cases', '3', '--size', '32', '--annotators', '2']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^wrote 3 synthetic cases \(train 2, test 1\), 2 annotators, 32x32, seed 0 to /);
});
