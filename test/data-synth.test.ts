import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkDataset } from '../src/data/check';
import { openDataset } from '../src/data/dataset';
import { annotatorStyles, BASE_STYLES, SynthSidecar, synthCase, writeSynthDataset } from '../src/data/synth';
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
  assert.deepEqual(side.annotators.map((s) => s.cupScale), BASE_STYLES.map((s) => s.cupScale));
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
});

test('annotators really differ as their styles say: cup areas ordered by cup scale, discs nearly agree', () => {
  const styles = annotatorStyles(6, 0);
  const N = 40;
  const cup = new Array(6).fill(0);
  const disc = new Array(6).fill(0);
  for (let i = 0; i < N; i++) {
    synthCase(i, 0, 128, styles).drawn.forEach((d, m) => {
      cup[m] += d.cupArea / N;
      disc[m] += d.discArea / N;
    });
  }
  // A1 (+20%) > A5 (+8%) > A6 (neutral) > A2 (-20%).
  assert.ok(cup[0] > cup[4] && cup[4] > cup[5] && cup[5] > cup[1], `cup areas ${cup.map(Math.round)}`);
  // Area scales with the square of the linear scale: (1.2 / 0.8)² = 2.25; clipping to the disc and jitter cost a little.
  assert.ok(cup[0] / cup[1] > 1.9, `A1/A2 cup area ratio ${cup[0] / cup[1]}`);
  // Rounder (A3) and offset (A4) keep the cup's area: within 8% of neutral A6 (a large cup made round
  // or moved loses a little where the annotator's own disc clips it).
  for (const m of [2, 3]) assert.ok(Math.abs(cup[m] / cup[5] - 1) < 0.08, `A${m + 1} cup ${cup[m]} vs A6 ${cup[5]}`);
  // Disc disagreement is small (styles ±2%, in area ±4%), cup disagreement large.
  const spread = (xs: number[]) => Math.max(...xs) / Math.min(...xs);
  assert.ok(spread(disc) < 1.08, `disc spread ${spread(disc)}`);
  assert.ok(spread(cup) > 1.9);
});

test('the A3 and A4 styles change shape and position, not size', () => {
  const styles = annotatorStyles(6, 0);
  const c = synthCase(0, 0, 128, styles);
  const a3 = c.drawn[2].cup;
  const a4 = c.drawn[3].cup;
  const latent = c.latent.cup;
  const elong = (e: { rx: number; ry: number }) => Math.max(e.rx, e.ry) / Math.min(e.rx, e.ry);
  assert.ok(elong(a3) < 1.0001, 'A3 draws circles');
  assert.ok(elong(latent) > 1.0001);
  const meanR = Math.sqrt(latent.rx * latent.ry);
  // A4 shifts the cup towards the temporal side by 0.3 of its radius (plus per-case jitter).
  assert.ok(Math.abs((c.latent.temporal * (a4.cx - latent.cx)) / meanR - 0.3) < 0.2);
  assert.ok(Math.abs((a4.cy - latent.cy) / meanR) < 0.2);
});

test('the temporal offset follows the eye: over many cases A4 sits temporal of the others, left or right', () => {
  const styles = annotatorStyles(6, 0);
  let temporalShift = 0;
  const sides = new Set<number>();
  for (let i = 0; i < 30; i++) {
    const c = synthCase(i, 0, 64, styles);
    sides.add(c.latent.temporal);
    temporalShift += c.latent.temporal * (c.drawn[3].cup.cx - c.drawn[5].cup.cx);
  }
  assert.deepEqual([...sides].sort(), [-1, 1], 'both eyes occur');
  assert.ok(temporalShift / 30 > 0.5, `mean temporal shift of A4 against A6: ${temporalShift / 30} px`);
});

test('the annotators disagree about as much as RIGA\'s: the majority vote scores disc ≈ 97–99, cup ≈ 83–88 soft Dice against them', () => {
  const styles = annotatorStyles(6, 0);
  const S = 96;
  const dice = [0, 0];
  const N = 30;
  for (let i = 0; i < N; i++) {
    const c = synthCase(i, 0, S, styles);
    [(v: number) => v > 0, (v: number) => v === 255].forEach((inside, s) => {
      const masks = c.labels.map((l) => Uint8Array.from(l, (v) => (inside(v) ? 1 : 0)));
      const majority = new Uint8Array(S * S).map((_, j) => (masks.reduce((a, m) => a + m[j], 0) / masks.length > 0.5 ? 1 : 0));
      for (const m of masks) {
        let inter = 0, a = 0, b = 0;
        for (let j = 0; j < S * S; j++) { inter += majority[j] & m[j]; a += majority[j]; b += m[j]; }
        dice[s] += (2 * inter) / (a + b) / (N * masks.length);
      }
    });
  }
  assert.ok(dice[0] > 0.97 && dice[0] < 0.99, `disc ${dice[0]}`);
  assert.ok(dice[1] > 0.83 && dice[1] < 0.88, `cup ${dice[1]}`);
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

test('any M works: styles beyond the six base ones are drawn from the seed', () => {
  const s8 = annotatorStyles(8, 1);
  assert.equal(s8.length, 8);
  assert.deepEqual(s8.slice(0, 6).map((s) => s.cupScale), BASE_STYLES.map((s) => s.cupScale));
  assert.deepEqual(annotatorStyles(8, 1), s8);
  assert.notDeepEqual(annotatorStyles(8, 2).slice(6), s8.slice(6));
  for (const s of s8.slice(6)) assert.ok(s.cupScale >= 0.8 && s.cupScale <= 1.2 && s.discScale >= 0.98 && s.discScale <= 1.02);
  assert.deepEqual(annotatorStyles(2, 0).map((s) => s.name), ['A1', 'A2']);
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
