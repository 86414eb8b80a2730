import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { UserError } from '../src/errors';
import { resizeBilinear, resizeNearest } from '../src/data/resize';
import { CaseAnnotations } from '../src/data/dataset';
import { evaluatePredictions, ReferenceSource } from '../src/eval/evaluate';
import { EvaluationSummary } from '../src/results/summary';
import {
  annotatorPredictionFile,
  checkPredictions,
  meanPredictionFile,
  readPredictionCase,
  readPredictionMap,
  writePredictionCase,
} from '../src/predict/folder';
import { evaluateCaseStructurePlain, Mask } from '../src/metrics/multiAnnotator';

/** [structure][annotator] → [annotator][structure], the order of annotations and prediction folders. */
const transpose = <T>(rows: T[][]): T[][] => (rows[0] ?? []).map((_, k) => rows.map((row) => row[k]));

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'avap-evaluate-'));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const STRUCTURES = ['disc', 'cup'];
const ANNOTATORS = ['r1', 'r2', 'r3'];
const M = ANNOTATORS.length;

interface Fixture {
  reference: ReferenceSource;
  annotations: Map<string, CaseAnnotations>;
  /** [case] -> [structure] mean map, [k][structure] annotator maps */
  predictions: Map<string, { mean: Float32Array[]; annot: Float32Array[][] }>;
  sizes: Map<string, { width: number; height: number }>;
}

/** Three cases of different sizes; case b lacks annotator 2. Disc ⊃ cup blobs with noise. */
function fixture(seed = 1): Fixture {
  const r = rng(seed);
  const sizes: [string, number, number][] = [
    ['a', 12, 9],
    ['b', 10, 10],
    ['c', 7, 13],
  ];
  const annotations = new Map<string, CaseAnnotations>();
  const predictions = new Map<string, { mean: Float32Array[]; annot: Float32Array[][] }>();
  for (const [id, w, h] of sizes) {
    const n = w * h;
    const blob = (rad: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (Math.hypot((i % w) - w / 2, Math.floor(i / w) - h / 2) + (r() - 0.5) * 2 < rad ? 1 : 0));
    const prob = (rad: number): Float32Array => Float32Array.from({ length: n }, (_, i) => {
      const d = Math.hypot((i % w) - w / 2, Math.floor(i / w) - h / 2) - rad;
      return r() < 0.1 ? [0.1, 0.5, 0.9][Math.floor(r() * 3)] : 1 / (1 + Math.exp(d + (r() - 0.5)));
    });
    const available = ANNOTATORS.map((_, k) => !(id === 'b' && k === 1));
    const masks = transpose(STRUCTURES.map((_, s) => ANNOTATORS.map((__, k) => (available[k] ? blob((s === 0 ? 4 : 2) + r()) : new Uint8Array(n)))));
    annotations.set(id, { width: w, height: h, available, masks });
    predictions.set(id, {
      mean: STRUCTURES.map((_, s) => prob(s === 0 ? 4 : 2)),
      annot: transpose(STRUCTURES.map((_, s) => ANNOTATORS.map(() => prob((s === 0 ? 4 : 2) + r())))),
    });
  }
  const reference: ReferenceSource = {
    structures: STRUCTURES,
    annotators: ANNOTATORS,
    cases: sizes.map(([id]) => ({ id, load: async () => annotations.get(id)! })),
  };
  return { reference, annotations, predictions, sizes: new Map(sizes.map(([id, w, h]) => [id, { width: w, height: h }])) };
}

async function writeAll(f: Fixture, dir: string): Promise<void> {
  for (const [id, p] of f.predictions) {
    const { width, height } = f.sizes.get(id)!;
    await writePredictionCase(dir, id, STRUCTURES, p.mean, p.annot, width, height);
  }
}

/** The value a 16-bit file gives back. */
const q16 = (p: number): number => Math.fround(Math.round(Math.min(1, Math.max(0, p)) * 65535) / 65535);

function close(actual: number | null, expected: number, tol = 1e-12, what = ''): void {
  if (Number.isNaN(expected)) {
    assert.equal(actual, null, `${what}: expected null`);
    return;
  }
  assert.ok(actual !== null && Math.abs(actual - expected) <= tol, `${what}: expected ${expected}, got ${actual}`);
}

/** Expected summary, computed independently of evaluate.ts's aggregation: plain metrics and explicit loops. */
function expectedSummary(f: Fixture, evalSize?: number): Record<string, { mv: number; pa: number[]; avg: number; cross: number[][]; ged: number; ece: number }> {
  const out: Record<string, { mv: number; pa: number[]; avg: number; cross: number[][]; ged: number; ece: number }> = {};
  STRUCTURES.forEach((name, s) => {
    const per = [...f.predictions.keys()].map((id) => {
      const a = f.annotations.get(id)!;
      const p = f.predictions.get(id)!;
      const W = evalSize ?? a.width;
      const H = evalSize ?? a.height;
      const fit = (m: Float32Array): Float32Array => {
        const qm = Float32Array.from(m, q16);
        return evalSize ? resizeBilinear(qm, a.width, a.height, 1, W, H) : qm;
      };
      const anns: (Mask | null)[] = a.available.map((ok, k) => (ok ? (evalSize ? resizeNearest(a.masks[k][s], a.width, a.height, W, H) : a.masks[k][s]) : null));
      return evaluateCaseStructurePlain({ meanPrediction: fit(p.mean[s]), annotatorPredictions: p.annot.map((perStructure) => fit(perStructure[s])), annotations: anns });
    });
    const mean = (xs: number[]): number => {
      const ok = xs.filter((x) => !Number.isNaN(x));
      return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
    };
    const pa = ANNOTATORS.map((_, k) => mean(per.map((m) => m.per_annotator[k])));
    out[name] = {
      mv: mean(per.map((m) => m.mean_voting)),
      pa,
      avg: mean(pa),
      cross: ANNOTATORS.map((_, i) => ANNOTATORS.map((__, j) => mean(per.map((m) => m.cross[i][j])))),
      ged: mean(per.map((m) => m.ged)),
      ece: mean(per.map((m) => m.ece)),
    };
  });
  return out;
}

function checkAgainst(summary: EvaluationSummary, exp: ReturnType<typeof expectedSummary>): void {
  for (const s of STRUCTURES) {
    close(summary.mean_voting[s], exp[s].mv, 1e-12, `${s} mean_voting`);
    close(summary.average[s], exp[s].avg, 1e-12, `${s} average`);
    exp[s].pa.forEach((v, k) => close(summary.per_annotator[s][k], v, 1e-12, `${s} per_annotator[${k}]`));
    exp[s].cross.forEach((row, i) => row.forEach((v, j) => close(summary.cross[s][i][j], v, 1e-12, `${s} cross[${i}][${j}]`)));
    close(summary.ged[s], exp[s].ged, 1e-12, `${s} ged`);
    close(summary.ece[s], exp[s].ece, 1e-9, `${s} ece`);
  }
}

// ---------------------------------------------------------------- prediction files

test('writePredictionCase / readPredictionCase: 16-bit round trip, clamped, exact quantisation', async () => {
  const dir = tmp();
  const w = 5;
  const h = 3;
  const values = [0, 1, 0.5, 0.1, 0.3, 0.7, 0.9, -0.2, 1.3, 1 / 3, 2 / 3, 0.25, 0.75, 1e-6, 1 - 1e-6];
  const maps = [Float32Array.from(values), Float32Array.from(values.map((v) => 1 - v))];
  const files = await writePredictionCase(dir, 'case1', ['disc'], [maps[0]], [[maps[1]], [maps[0]]], w, h);
  assert.deepEqual(files.map((f) => path.relative(dir, f)), ['case1/disc_mean.png', 'case1/disc_annotator1.png', 'case1/disc_annotator2.png']);
  const meta = await sharp(files[0]).metadata();
  assert.equal(meta.depth, 'ushort');
  assert.equal(meta.channels, 1);
  const back = await readPredictionCase(dir, 'case1', ['disc'], 2, { width: w, height: h });
  assert.equal(back.width, w);
  assert.equal(back.height, h);
  // The maps hold float32 values: quantise those (fround(0.7)·65535 = 45874.4999…, not 45874.5).
  assert.deepEqual(Array.from(back.calibrated[0]), Array.from(maps[0], q16));
  assert.deepEqual(Array.from(back.annotators[0][0]), Array.from(maps[1], q16));
  assert.deepEqual(Array.from(back.annotators[1][0]), Array.from(maps[0], q16));
  assert.equal(back.calibrated[0][2], Math.fround(32768 / 65535)); // 0.5 is stored as 32768
  // No leftover temp files from the atomic writes.
  assert.deepEqual(fs.readdirSync(path.join(dir, 'case1')).sort(), ['disc_annotator1.png', 'disc_annotator2.png', 'disc_mean.png']);
  await assert.rejects(writePredictionCase(dir, 'case2', ['disc'], [Float32Array.from([NaN])], [[Float32Array.from([0])]], 1, 1), /NaN/);
  await assert.rejects(readPredictionCase(dir, 'case1', ['disc'], 2, { width: 4, height: 3 }), (e: unknown) => e instanceof UserError && /disc_mean\.png: is 5x3, expected 4x3/.test(e.message));
});

test('readPredictionMap: 8-bit files are read as v / 255', async () => {
  const dir = tmp();
  const file = path.join(dir, 'p.png');
  const bytes = Uint8Array.from([0, 51, 128, 255]);
  await sharp(bytes, { raw: { width: 2, height: 2, channels: 1 } }).toColourspace('b-w').png().toFile(file);
  assert.equal((await sharp(file).metadata()).depth, 'uchar');
  const m = await readPredictionMap(file);
  assert.deepEqual(Array.from(m.data), Array.from(bytes, (v) => Math.fround(v / 255)));
});

// ---------------------------------------------------------------- evaluatePredictions

test('evaluatePredictions: summary.json matches an independent computation; outputs written', async () => {
  const f = fixture(3);
  const dir = tmp();
  const pred = path.join(dir, 'pred');
  const out = path.join(dir, 'out');
  await writeAll(f, pred);
  const summary = await evaluatePredictions(f.reference, pred, out, { label: 'TestNet' });
  checkAgainst(summary, expectedSummary(f));

  const json = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  for (const key of ['mean_voting', 'average', 'per_annotator', 'cross', 'ged', 'ece', 'cases', 'thresholds', 'rule']) assert.ok(key in json, `summary.json lacks ${key}`);
  for (const key of ['identifiability', 'per_case', 'hard_dice', 'iou']) assert.ok(key in json, `summary.json lacks ${key}`);
  assert.equal(json.cases, 3);
  assert.deepEqual(json.thresholds, [0.1, 0.3, 0.5, 0.7, 0.9]);
  assert.equal(json.rule, 'gt');
  assert.deepEqual(Object.keys(json.mean_voting), STRUCTURES);
  assert.equal(json.per_annotator.disc.length, M);
  assert.equal(json.cross.cup.length, M);
  assert.equal(json.cross.cup[0].length, M);
  for (const s of STRUCTURES) for (const v of [json.mean_voting[s], json.average[s], ...json.per_annotator[s], ...json.cross[s].flat()]) assert.ok(v >= 0 && v <= 1);
  // Case b has no annotator 2: its per-case entry says so with null.
  const b = json.per_case.find((c: { case: string }) => c.case === 'b');
  assert.equal(b.metrics.disc.per_annotator[1], null);
  assert.equal(b.width, 10);

  const csv = fs.readFileSync(path.join(out, 'per_case.csv'), 'utf8').trim().split('\n');
  assert.equal(csv.length, 4);
  assert.ok(csv[0].startsWith('case,width,height,disc_mean_voting,disc_average,disc_A1,disc_A2,disc_A3,disc_ged,disc_ece,disc_hard_dice,disc_iou,cup_mean_voting'));
  assert.match(csv[2], /^b,10,10,[0-9.]+,[0-9.]+,[0-9.]+,,[0-9.]+,/);

  const md = fs.readFileSync(path.join(out, 'report.md'), 'utf8');
  const pct = (x: number | null): string => ((x ?? NaN) * 100).toFixed(2);
  assert.ok(md.includes('| Method | A1 | A2 | A3 | Average | Mean Voting |'), md);
  const row = `| TestNet | ${[0, 1, 2].map((k) => `${pct(summary.per_annotator.disc[k])}, ${pct(summary.per_annotator.cup[k])}`).join(' | ')} | ${pct(summary.average.disc)}, ${pct(summary.average.cup)} | ${pct(summary.mean_voting.disc)}, ${pct(summary.mean_voting.cup)} |`;
  assert.ok(md.includes(row), `report.md lacks the row ${row}\n${md}`);
  assert.ok(md.includes(`| P1 | **${pct(summary.cross.disc[0][0])}, ${pct(summary.cross.cup[0][0])}** | ${pct(summary.cross.disc[0][1])}, ${pct(summary.cross.cup[0][1])} |`), md);
  assert.deepEqual(fs.readdirSync(out).sort(), ['per_case.csv', 'report.md', 'summary.json']);
});

test('evaluatePredictions: --rule ge and other thresholds', async () => {
  const f = fixture(5);
  const dir = tmp();
  const pred = path.join(dir, 'pred');
  await writeAll(f, pred);
  const summary = await evaluatePredictions(f.reference, pred, path.join(dir, 'out'), { rule: 'ge', thresholds: [0.5, 0.25] });
  assert.equal(summary.rule, 'ge');
  assert.deepEqual(summary.thresholds, [0.5, 0.25]);
  const r = f.reference.cases[0];
  const a = await r.load();
  const p = f.predictions.get(r.id)!;
  const m = evaluateCaseStructurePlain(
    { meanPrediction: Float32Array.from(p.mean[0], q16), annotatorPredictions: p.annot.map((x) => Float32Array.from(x[0], q16)), annotations: a.masks.map((x) => x[0]) },
    { rule: 'ge', thresholds: [0.5, 0.25] },
  );
  close(summary.per_case[0].metrics.disc.mean_voting, m.mean_voting, 1e-12, 'case a mean voting');
  await assert.rejects(evaluatePredictions(f.reference, pred, path.join(dir, 'out2'), { thresholds: [0.5, 1] }), (e: unknown) => e instanceof UserError && /--thresholds/.test(e.message));
});

test('evaluatePredictions: --eval-size resizes predictions (bilinear) and annotations (nearest)', async () => {
  const f = fixture(9);
  const dir = tmp();
  const pred = path.join(dir, 'pred');
  await writeAll(f, pred);
  const summary = await evaluatePredictions(f.reference, pred, path.join(dir, 'out'), { evalSize: 8 });
  assert.equal(summary.eval_size, 8);
  checkAgainst(summary, expectedSummary(f, 8));
  // Predictions already at N×N are accepted too.
  const pred8 = path.join(dir, 'pred8');
  for (const [id, p] of f.predictions) {
    const { width, height } = f.sizes.get(id)!;
    const fit = (m: Float32Array): Float32Array => resizeBilinear(m, width, height, 1, 8, 8);
    await writePredictionCase(pred8, id, STRUCTURES, p.mean.map(fit), p.annot.map((row) => row.map(fit)), 8, 8);
  }
  const s8 = await evaluatePredictions(f.reference, pred8, path.join(dir, 'out8'), { evalSize: 8 });
  assert.equal(s8.cases, 3);
});

test('evaluatePredictions: every problem of a bad predictions folder in one error, nothing written', async () => {
  const f = fixture(11);
  const dir = tmp();
  const pred = path.join(dir, 'pred');
  const out = path.join(dir, 'out');
  await writeAll(f, pred);
  fs.rmSync(path.join(pred, 'c'), { recursive: true }); // whole case missing
  fs.rmSync(annotatorPredictionFile(pred, 'a', 'cup', 2)); // one file missing
  await writePredictionCase(path.join(dir, 'wrong'), 'a', ['disc'], [new Float32Array(20)], [[new Float32Array(20)], [new Float32Array(20)], [new Float32Array(20)]], 5, 4);
  fs.copyFileSync(meanPredictionFile(path.join(dir, 'wrong'), 'a', 'disc'), meanPredictionFile(pred, 'a', 'disc')); // 5x4, expected 12x9
  await sharp(new Uint8Array(10 * 10 * 3), { raw: { width: 10, height: 10, channels: 3 } }).png().toFile(annotatorPredictionFile(pred, 'b', 'disc', 1)); // RGB
  fs.writeFileSync(annotatorPredictionFile(pred, 'b', 'cup', 3), 'not a png'); // undecodable
  await assert.rejects(evaluatePredictions(f.reference, pred, out), (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    const msg = e.message;
    assert.ok(!msg.includes('\n'), 'one line');
    assert.match(msg, /5 problems/);
    assert.match(msg, /c\/: prediction folder missing/);
    assert.match(msg, /a\/cup_annotator2\.png: missing/);
    assert.match(msg, /a\/disc_mean\.png: is 5x4, expected 12x9/);
    assert.match(msg, /b\/disc_annotator1\.png: expected a single-channel greyscale image, got 3 channels/);
    assert.match(msg, /b\/cup_annotator3\.png: cannot decode/);
    return true;
  });
  assert.equal(fs.existsSync(out), false, 'no output folder after a failed check');
});

test('evaluatePredictions: many problems are listed as the first 10 and a count', async () => {
  const f = fixture(13);
  const dir = tmp();
  const pred = path.join(dir, 'pred');
  await writeAll(f, pred);
  for (const id of ['a', 'b']) for (const s of STRUCTURES) for (let k = 1; k <= M; k++) fs.rmSync(annotatorPredictionFile(pred, id, s, k));
  const problems = await checkPredictions(pred, [{ id: 'a', sizes: [{ width: 12, height: 9 }] }, { id: 'b', sizes: [{ width: 10, height: 10 }] }], STRUCTURES, M);
  assert.equal(problems.length, 12);
  await assert.rejects(evaluatePredictions(f.reference, pred, path.join(dir, 'out')), (e: unknown) => e instanceof UserError && /12 problems/.test(e.message) && /and 2 more/.test(e.message));
});

test('evaluatePredictions: missing predictions folder, empty selection', async () => {
  const f = fixture(17);
  const dir = tmp();
  await assert.rejects(evaluatePredictions(f.reference, path.join(dir, 'nope'), path.join(dir, 'out')), (e: unknown) => e instanceof UserError && /nope: predictions folder not found/.test(e.message));
  await assert.rejects(evaluatePredictions({ ...f.reference, cases: [] }, dir, path.join(dir, 'out')), (e: unknown) => e instanceof UserError && /no cases/.test(e.message));
});

test('evaluatePredictions: annotations disagreeing with their declared size are a clear error', async () => {
  const f = fixture(19);
  const dir = tmp();
  const pred = path.join(dir, 'pred');
  await writeAll(f, pred);
  const ref: ReferenceSource = { ...f.reference, cases: f.reference.cases.map((c) => ({ ...c, size: async () => f.sizes.get(c.id)! })) };
  const bad = f.annotations.get('a')!;
  ref.cases[0] = { ...ref.cases[0], load: async () => ({ ...bad, width: 9, height: 12 }) };
  await assert.rejects(evaluatePredictions(ref, pred, path.join(dir, 'out')), (e: unknown) => e instanceof UserError && /case a: annotations are 9x12/.test(e.message));
});
