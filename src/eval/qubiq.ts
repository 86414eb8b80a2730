/**
 * Scoring a QUBIQ submission tree against a QUBIQ-layout dataset:
 *
 *   SUB/<dataset>/<case>/taskTT.nii.gz   one continuous map in [0, 1] per case and task
 *
 * with the challenge's score (src/metrics/qubiq.ts) per task and overall, beside the paper's soft Dice
 * of each map against the raters' mean vote.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { CaseRecord, Dataset, displayPath, readAnnotations } from '../data/dataset';
import { planeShape } from '../data/niftiImage';
import { volumeCasesOf, volumeShape } from '../data/volumes';
import { readNifti } from '../io/nifti';
import { softDice } from '../metrics/dice';
import { meanVote } from '../metrics/plain';
import { QubiqAccumulator, qubiqCaseScore, QubiqScore } from '../metrics/qubiq';
import { NanMeanAccumulator } from '../metrics/accumulator';
import { meanPredictionFile, readPredictionMap } from './predictions';

/** The submission file of a case and task (the task's structure name is `taskTT`). */
export function submissionFile(submission: string, ds: Pick<Dataset, 'name'>, c: CaseRecord, task: string): string {
  return path.join(submission, ds.name, c.name ?? c.id, `${task}.nii.gz`);
}

/** A submitted map: finite values in [0, 1], the size of the case's image. */
export async function readSubmittedMap(file: string, width: number, height: number): Promise<Float32Array> {
  if (!fs.existsSync(file)) throw new UserError(`${file}: file not found (a submission holds <dataset>/<case>/taskTT.nii.gz for every case and task)`);
  const vol = await readNifti(file);
  const shape = planeShape(file, vol.shape);
  if (shape.channels !== 1 || shape.width !== width || shape.height !== height) {
    throw new UserError(`${file}: the map is ${vol.shape.join('×')} but the case's image is ${width}×${height}`);
  }
  return checkedProbabilities(file, Float32Array.from(vol.data));
}

export interface QubiqCaseRow {
  case: string;
  task: string;
  qubiq: number;
  softDice: number;
}

export interface QubiqEvaluation {
  dataset: string;
  tasks: string[];
  qubiq: QubiqScore;
  /** Per task, the paper's soft Dice of the map against the raters' mean vote, averaged over cases. */
  softDice: number[];
  rows: QubiqCaseRow[];
  /** Cases without any rater's mask (e.g. Testing), which cannot be scored. */
  unscored: string[];
}

/** Scores every annotated case of `cases` from the submission tree in `submission`. */
export async function scoreQubiqSubmission(ds: Dataset, cases: CaseRecord[], submission: string): Promise<QubiqEvaluation> {
  const folder = path.join(submission, ds.name);
  if (!fs.existsSync(folder) || !fs.statSync(folder).isDirectory()) {
    throw new UserError(`${submission}: no folder ${ds.name}/ (a QUBIQ submission holds <dataset>/<case>/taskTT.nii.gz)`);
  }
  return scoreQubiq(ds, volumeCasesOf(ds, cases), (c, task, width, height) => (c.volume ? readSubmittedVolume(submissionFile(submission, ds, c, task), c.volume.shape) : readSubmittedMap(submissionFile(submission, ds, c, task), width, height)));
}

/** A submitted map of a 3D volume case: x × y × z (trailing size-1 axes aside), finite values in [0, 1]. */
export async function readSubmittedVolume(file: string, shape: [number, number, number]): Promise<Float32Array> {
  if (!fs.existsSync(file)) throw new UserError(`${file}: file not found (a submission holds <dataset>/<case>/taskTT.nii.gz for every case and task)`);
  const vol = await readNifti(file);
  const got = volumeShape(file, vol.shape);
  if (got.channels !== 1 || got.shape.some((n, i) => n !== shape[i])) throw new UserError(`${file}: the map is ${vol.shape.join('×')} but the case's image is ${shape.join('×')}`);
  return checkedProbabilities(file, Float32Array.from(vol.data));
}

function checkedProbabilities(file: string, out: Float32Array): Float32Array {
  const bad = out.findIndex((v) => !(v >= 0 && v <= 1));
  if (bad >= 0) throw new UserError(`${file}: voxel ${bad} holds ${out[bad]} (a submitted map holds probabilities in [0, 1])`);
  return out;
}

/** Scores the calibrated maps of an `avap predict` folder (<case>/<task>_mean.png) the QUBIQ way. */
export async function scoreQubiqPredictions(ds: Dataset, cases: CaseRecord[], predictions: string): Promise<QubiqEvaluation> {
  return scoreQubiq(ds, cases, async (c, task, width, height) => (await readPredictionMap(meanPredictionFile(predictions, c.id, task), [{ width, height }])).data);
}

/** Scores every annotated case of `cases`, each task's map read by `readMap` at the image's size. */
async function scoreQubiq(ds: Dataset, cases: CaseRecord[], readMap: (c: CaseRecord, task: string, width: number, height: number) => Promise<Float32Array>): Promise<QubiqEvaluation> {
  const tasks = ds.structures.map((s) => s.name);
  const acc = new QubiqAccumulator(tasks.length);
  const soft = new NanMeanAccumulator(tasks.length);
  const rows: QubiqCaseRow[] = [];
  const unscored: string[] = [];
  for (const c of cases) {
    if (c.labels.every((l) => l === null)) {
      unscored.push(c.id);
      continue;
    }
    const a = await readAnnotations(ds, c);
    const scores: number[] = [];
    const softs: number[] = [];
    for (let k = 0; k < tasks.length; k++) {
      const map = await readMap(c, tasks[k], a.width, a.height);
      const raters = a.masks[k].map((m, r) => (a.available[r] ? m : null));
      const q = qubiqCaseScore(map, raters);
      const s = softDice(map, meanVote(raters));
      scores.push(q);
      softs.push(s);
      rows.push({ case: c.id, task: tasks[k], qubiq: q, softDice: s });
    }
    acc.add(scores);
    soft.add(softs);
  }
  if (rows.length === 0) throw new UserError(`${displayPath(ds.root)}: none of the ${cases.length} selected cases has a rater's mask, so nothing can be scored`);
  return { dataset: ds.name, tasks, qubiq: acc.result(), softDice: soft.aggregate(), rows, unscored };
}

const pct = (v: number) => (Number.isNaN(v) ? '-' : (100 * v).toFixed(2));

/** The table printed and written as report.md: QUBIQ score and soft Dice per task, and overall. */
export function formatQubiqTable(e: QubiqEvaluation, label: string): string {
  const head = `| method | ${e.tasks.map((t) => `${t} QUBIQ`).join(' | ')} | QUBIQ | ${e.tasks.map((t) => `${t} soft Dice`).join(' | ')} |`;
  const rule = `|${'---|'.repeat(2 * e.tasks.length + 2)}`;
  const row = `| ${label} | ${e.qubiq.perTask.map(pct).join(' | ')} | ${pct(e.qubiq.overall)} | ${e.softDice.map(pct).join(' | ')} |`;
  return [head, rule, row].join('\n');
}
