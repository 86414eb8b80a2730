/**
 * Metrics benchmark: 95 images × 2 structures × 7 maps (calibrated + 6 annotators) at
 * 256², scored with everything `avap evaluate` computes (Mean Voting, Average, cross table, GED,
 * ECE, identifiability, hard Dice, IoU). Target: under 2 s for the metrics.
 *
 * With --plain, also times the plain pair-by-pair implementation (same results, ~20× slower);
 * unless --no-io, also the whole `evaluatePredictions` from 16-bit PNG files (decoding included).
 * Last line: one JSON object.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { evaluatePredictions, ReferenceSource } from '../src/eval/evaluate';
import { writePredictionCase } from '../src/predict/folder';
import { CaseStructureInput, evaluateCaseStructure, evaluateCaseStructurePlain } from '../src/metrics/multiAnnotator';

const IMAGES = 95;
const STRUCTURES = ['disc', 'cup'];
const M = 6;
const SIZE = 256;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

interface BenchCase {
  id: string;
  /** [structure][annotator] */
  masks: Uint8Array[][];
  /** [structure] */
  mean: Float32Array[];
  /** [structure][annotator] */
  annot: Float32Array[][];
}

/** [structure][annotator] → [annotator][structure], the order of annotations and prediction folders. */
function transpose<T>(rows: T[][]): T[][] {
  return (rows[0] ?? []).map((_, k) => rows.map((row) => row[k]));
}

function makeCase(r: () => number, id: string): BenchCase {
  const cx = SIZE * (0.4 + 0.2 * r());
  const cy = SIZE * (0.4 + 0.2 * r());
  const radii = [SIZE * 0.3, SIZE * 0.15]; // disc, cup
  const N = SIZE * SIZE;
  const dist = (dx: number, dy: number, i: number): number => {
    const x = (i % SIZE) - cx - dx;
    const y = ((i / SIZE) | 0) - cy - dy;
    return Math.sqrt(x * x + y * y);
  };
  const disk = (rad: number, dx: number, dy: number): Uint8Array => {
    const m = new Uint8Array(N);
    for (let i = 0; i < N; i++) m[i] = dist(dx, dy, i) < rad ? 1 : 0;
    return m;
  };
  // A sigmoid edge of the given width around the circle, quantised to 16 bits like a saved file.
  const soft = (rad: number, dx: number, dy: number, width: number): Float32Array => {
    const p = new Float32Array(N);
    for (let i = 0; i < N; i++) p[i] = Math.round((1 / (1 + Math.exp((dist(dx, dy, i) - rad) / width))) * 65535) / 65535;
    return p;
  };
  const masks: Uint8Array[][] = [];
  const mean: Float32Array[] = [];
  const annot: Float32Array[][] = [];
  radii.forEach((rad) => {
    const offs = Array.from({ length: M }, () => [rad * (0.9 + 0.2 * r()), 4 * (r() - 0.5), 4 * (r() - 0.5)]);
    masks.push(offs.map(([rr, dx, dy]) => disk(rr, dx, dy)));
    mean.push(soft(rad, 0, 0, 4));
    annot.push(offs.map(([rr, dx, dy]) => soft(rr * (0.97 + 0.06 * r()), dx, dy, 2)));
  });
  return { id, masks, mean, annot };
}

function inputsOf(c: BenchCase): CaseStructureInput[] {
  return STRUCTURES.map((_, s) => ({ meanPrediction: c.mean[s], annotatorPredictions: c.annot[s], annotations: c.masks[s] }));
}

function time(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function main(): Promise<void> {
  const noIo = process.argv.includes('--no-io');
  const plain = process.argv.includes('--plain');
  const r = rng(42);
  const t0 = Date.now();
  const cases = Array.from({ length: IMAGES }, (_, i) => makeCase(r, `case${String(i + 1).padStart(3, '0')}`));
  const inputs = cases.flatMap(inputsOf);
  console.log(`data: ${IMAGES} images × ${STRUCTURES.length} structures × ${M + 1} maps at ${SIZE}² (generated in ${Date.now() - t0} ms)`);

  const runFused = (): void => {
    for (const input of inputs) evaluateCaseStructure(input);
  };
  runFused(); // warm-up (JIT)
  const runs = [time(runFused), time(runFused), time(runFused)].sort((a, b) => a - b);
  const evalMs = runs[1];
  console.log(`metrics (fused): median ${evalMs.toFixed(1)} ms of 3 runs (${runs.map((x) => x.toFixed(1)).join(', ')}); ${(evalMs / IMAGES).toFixed(2)} ms per image`);

  let plainMs: number | null = null;
  if (plain) {
    plainMs = time(() => {
      for (const input of inputs) evaluateCaseStructurePlain(input);
    });
    console.log(`metrics (plain pair-by-pair, same results): ${plainMs.toFixed(1)} ms`);
  }

  let endToEndMs: number | null = null;
  if (!noIo) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'avap-bench-metrics-'));
    try {
      const pred = path.join(dir, 'pred');
      const tw = Date.now();
      for (const c of cases) await writePredictionCase(pred, c.id, STRUCTURES, c.mean, transpose(c.annot), SIZE, SIZE);
      console.log(`wrote ${IMAGES * STRUCTURES.length * (M + 1)} 16-bit PNGs in ${Date.now() - tw} ms`);
      const reference: ReferenceSource = {
        structures: STRUCTURES,
        annotators: Array.from({ length: M }, (_, k) => `A${k + 1}`),
        cases: cases.map((c) => ({
          id: c.id,
          load: async () => ({ width: SIZE, height: SIZE, available: new Array<boolean>(M).fill(true), masks: transpose(c.masks) }),
          size: async () => ({ width: SIZE, height: SIZE }),
        })),
      };
      const te = process.hrtime.bigint();
      const summary = await evaluatePredictions(reference, pred, path.join(dir, 'out'), {});
      endToEndMs = Number(process.hrtime.bigint() - te) / 1e6;
      console.log(`evaluatePredictions (check headers + decode PNGs + metrics + write outputs): ${endToEndMs.toFixed(1)} ms`);
      console.log(`  Mean Voting (disc, cup): ${STRUCTURES.map((s) => ((summary.mean_voting[s] ?? NaN) * 100).toFixed(2)).join(', ')}; Average: ${STRUCTURES.map((s) => ((summary.average[s] ?? NaN) * 100).toFixed(2)).join(', ')}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  console.log(`target: metrics under 2000 ms — ${evalMs < 2000 ? 'met' : 'MISSED'}`);
  console.log(
    JSON.stringify({
      eval_ms: Math.round(evalMs * 10) / 10,
      images: IMAGES,
      structures: STRUCTURES.length,
      maps: M + 1,
      size: SIZE,
      plain_ms: plainMs === null ? null : Math.round(plainMs),
      end_to_end_ms: endToEndMs === null ? null : Math.round(endToEndMs),
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
