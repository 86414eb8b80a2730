import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { writePredictionCase } from '../src/predict/folder';
import { evaluateCaseStructurePlain } from '../src/metrics/multiAnnotator';

const CLI = path.join(__dirname, '..', 'src', 'cli', 'main.js');
const ANNOTATORS = ['r1', 'r2', 'r3'];
const CASES: [string, number, number][] = [
  ['a', 12, 9],
  ['b', 10, 10],
  ['c', 8, 11],
];

function avap(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

async function grey8(file: string, data: Uint8Array, width: number, height: number): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp(data, { raw: { width, height, channels: 1 } }).toColourspace('b-w').png().toFile(file);
}

/**
 * A native-layout dataset (dataset.json + images/<case>.png + labels/<case>_<annotator>.png, label
 * values 0 background, 128 disc rim, 255 cup; disc contains cup) and predictions for it. Case c has
 * no label from annotator r2.
 */
async function fixture(): Promise<{ root: string; data: string; pred: string; labels: Map<string, Uint8Array[]>; probs: Map<string, Float32Array[][]> }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-evaluate-cli-'));
  const data = path.join(root, 'data');
  fs.mkdirSync(data, { recursive: true });
  fs.writeFileSync(
    path.join(data, 'dataset.json'),
    JSON.stringify({
      name: 'tiny',
      annotators: ANNOTATORS,
      structures: [
        { name: 'disc', values: [128], contains: ['cup'] },
        { name: 'cup', values: [255] },
      ],
      channels: 1,
      splits: { test: ['a', 'b'] },
      subsets: { S1: ['a'], S2: ['b', 'c'] },
    }),
  );
  const labels = new Map<string, Uint8Array[]>();
  const probs = new Map<string, Float32Array[][]>();
  let seed = 7;
  const r = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 4294967296;
  };
  for (const [id, w, h] of CASES) {
    const n = w * h;
    const dist = (i: number): number => Math.hypot((i % w) - w / 2, Math.floor(i / w) - h / 2);
    await grey8(path.join(data, 'images', `${id}.png`), Uint8Array.from({ length: n }, () => Math.floor(r() * 256)), w, h);
    const maps: Uint8Array[] = [];
    for (const [k, a] of ANNOTATORS.entries()) {
      const disc = 3.5 + r();
      const cup = 1.5 + r();
      const label = Uint8Array.from({ length: n }, (_, i) => (dist(i) < cup ? 255 : dist(i) < disc ? 128 : 0));
      maps.push(label);
      if (id === 'c' && k === 1) continue; // not annotated
      await grey8(path.join(data, 'labels', `${id}_${a}.png`), label, w, h);
    }
    labels.set(id, maps);
    const soft = (rad: number): Float32Array => Float32Array.from({ length: n }, (_, i) => 1 / (1 + Math.exp(dist(i) - rad + (r() - 0.5))));
    const perStructure = [4, 2].map((rad) => [soft(rad), ...ANNOTATORS.map(() => soft(rad + r() - 0.5))]);
    probs.set(id, perStructure);
  }
  const pred = path.join(root, 'pred');
  for (const [id, w, h] of CASES) {
    const p = probs.get(id)!;
    await writePredictionCase(pred, id, ['disc', 'cup'], p.map((x) => x[0]), ANNOTATORS.map((_, k) => p.map((x) => x[k + 1])), w, h);
  }
  return { root, data, pred, labels, probs };
}

const q16 = (p: number): number => Math.fround(Math.round(Math.min(1, Math.max(0, p)) * 65535) / 65535);

test('avap evaluate: end to end on a native-layout dataset', async () => {
  const f = await fixture();
  const out = path.join(f.root, 'out');
  const r = avap('evaluate', '--data', f.data, '--predictions', f.pred, '--out', out, '--label', 'Tiny');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /3 cases evaluated/);
  assert.match(r.stdout, /Mean Voting: \d+\.\d\d, \d+\.\d\d/);
  const summary = JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.cases, 3);
  assert.deepEqual(summary.structures, ['disc', 'cup']);
  assert.deepEqual(summary.annotators, ANNOTATORS);
  // Case a, structure disc, recomputed from the label maps (disc = values 128 and 255).
  for (const [s, inS] of [[0, (v: number) => v === 128 || v === 255], [1, (v: number) => v === 255]] as const) {
    const masks = f.labels.get('a')!.map((l) => Uint8Array.from(l, (v) => (inS(v) ? 1 : 0)));
    const p = f.probs.get('a')![s].map((m) => Float32Array.from(m, q16));
    const m = evaluateCaseStructurePlain({ meanPrediction: p[0], annotatorPredictions: p.slice(1), annotations: masks });
    const got = summary.per_case.find((c: { case: string }) => c.case === 'a').metrics[s === 0 ? 'disc' : 'cup'];
    assert.ok(Math.abs(got.mean_voting - m.mean_voting) < 1e-12);
    assert.ok(Math.abs(got.average - m.average) < 1e-12);
  }
  // Case c has no r2 label: null in its per-case entry.
  assert.equal(summary.per_case.find((c: { case: string }) => c.case === 'c').metrics.cup.per_annotator[1], null);
  assert.ok(fs.readFileSync(path.join(out, 'report.md'), 'utf8').includes('| Tiny |'));
  assert.equal(fs.readFileSync(path.join(out, 'per_case.csv'), 'utf8').trim().split('\n').length, 4);
});

test('avap evaluate: --subset (repeatable or comma list), --split, --rule, --thresholds, --eval-size', async () => {
  const f = await fixture();
  const run = (...extra: string[]): { cases: number; rule: string; thresholds: number[]; eval_size: number | null } => {
    const out = path.join(f.root, `out-${extra.join('_').replace(/[^a-z0-9]/gi, '')}`);
    const r = avap('evaluate', '--data', f.data, '--predictions', f.pred, '--out', out, ...extra);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(fs.readFileSync(path.join(out, 'summary.json'), 'utf8'));
  };
  assert.equal(run('--subset', 'S2').cases, 2);
  assert.equal(run('--subset', 'S1,S2').cases, 3);
  assert.equal(run('--subset', 'S1', '--subset', 'S2').cases, 3);
  assert.equal(run('--split', 'test').cases, 2);
  const ge = run('--rule', 'ge', '--thresholds', '0.25,0.5,0.75');
  assert.equal(ge.rule, 'ge');
  assert.deepEqual(ge.thresholds, [0.25, 0.5, 0.75]);
  assert.equal(run('--eval-size', '8').eval_size, 8);
});

test('avap evaluate: bad input is one line on stderr naming the flag or file, exit 1', async () => {
  const f = await fixture();
  const out = path.join(f.root, 'out');
  const base = ['evaluate', '--data', f.data, '--predictions', f.pred, '--out', out];
  const cases: [string[], RegExp][] = [
    [[...base, '--rule', 'gte'], /--rule: expected 'gt'/],
    [[...base, '--thresholds', '0.1,x'], /--thresholds: 'x' is not a number/],
    [[...base, '--thresholds', '0.5,1'], /--thresholds: threshold 1 must be/],
    [[...base, '--eval-size', '-3'], /--eval-size/],
    [[...base, '--subset', 'Nope'], /unknown subset 'Nope'/],
    [[...base, '--split', 'nope'], /unknown split 'nope'/],
    [['evaluate', '--data', f.data, '--out', out], /pass exactly one of --predictions PRED_DIR and --model RUN/],
    [['evaluate', '--predictions', f.pred, '--out', out], /--data DIR is required/],
    [['evaluate', '--data', f.data, '--predictions', path.join(f.root, 'none'), '--out', out], /none: predictions folder not found/],
  ];
  for (const [args, pattern] of cases) {
    const r = avap(...args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  fs.rmSync(path.join(f.pred, 'b', 'cup_annotator3.png'));
  const r = avap(...base);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /1 problem with the predictions: .*b\/cup_annotator3\.png: missing/);
  assert.equal(fs.existsSync(out), false);
});
