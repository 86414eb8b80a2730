/**
 * `avap evaluate --format qubiq`: a QUBIQ submission tree scored against a QUBIQ-layout dataset:
 *
 *   SUB/<dataset>/<case>/taskTT.nii.gz   one continuous map in [0, 1] per case and task
 *
 * with the challenge's score (src/metrics/qubiq.ts) per task and overall, beside the paper's soft Dice
 * of each map against the raters' mean vote.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { CaseRecord, Dataset, displayPath, openDataset, readAnnotations, selectCases, structureMasks } from '../data/dataset';
import { planeShape } from '../data/niftiImage';
import { volumeCasesOf, volumeShape } from '../data/volumes';
import { readNifti } from '../io/nifti';
import { softDice } from '../metrics/dice';
import { meanVote } from '../metrics/plain';
import { QubiqAccumulator, qubiqCaseScore, QubiqScore } from '../metrics/qubiq';
import { NanMeanAccumulator } from '../metrics/accumulator';
import { meanPredictionFile, readPredictionMap } from '../predict/folder';
import { predictQubiq, predictQubiqSubmission, submissionFile } from '../predict/qubiq';
import { writeFileAtomic } from '../io/atomic';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import { checkNotRunFiles } from '../train/run';
import { loadRunOn } from '../train/loadRun';
import type { DeviceChoice } from '../torch/device';
import { csvField } from './report';

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
      const raters = structureMasks(a, k);
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

export interface QubiqEvaluateRequest {
  data: string;
  split?: string;
  /** A submission tree (SUB/<dataset>/<case>/taskTT.nii.gz), or … */
  predictions?: string;
  /** … a trained run, whose submission is written to OUT/submission first. */
  model?: string;
  out: string;
  label?: string;
  /** Where the run computes with --model (default 'auto'). */
  device?: DeviceChoice;
}

export const QUBIQ_SUMMARY_FILE = 'qubiq.json';
export const QUBIQ_PER_CASE_FILE = 'qubiq_per_case.csv';
export const QUBIQ_REPORT_FILE = 'qubiq.md';

/** `avap evaluate --format qubiq`: QUBIQ's score and the soft Dice of a submission (or of a run's), written to OUT. */
export async function evaluateQubiq(request: QubiqEvaluateRequest): Promise<QubiqEvaluation & { files: string[] }> {
  if ((request.predictions === undefined) === (request.model === undefined)) throw new UserError('evaluate --format qubiq: give exactly one of --predictions SUBMISSION or --model RUN');
  const ds = await openDataset(request.data);
  if (ds.challengeScore !== 'qubiq') throw new UserError(`--data: ${request.data} is a ${ds.layout} dataset; --format qubiq scores QUBIQ-layout data`);
  const cases = selectCases(ds, { split: request.split });
  checkOutputFolder('--out', request.out);
  checkNotRunFiles('--out', request.out);
  return withOutputRollback(request.out, async () => {
    fs.mkdirSync(request.out, { recursive: true });
    let submission = request.predictions!;
    if (request.model !== undefined) {
      submission = path.join(request.out, 'submission');
      await predictQubiq({ model: request.model, input: request.data, split: request.split, out: submission, device: request.device });
    }
    const e = await scoreQubiqSubmission(ds, cases, submission);
    const files = writeQubiqEvaluation(e, request.out, request.label ?? path.basename(path.resolve(request.model ?? submission)), request.split);
    return { ...e, files };
  });
}

/** qubiq.json, qubiq_per_case.csv and qubiq.md in `out`; returns their paths. */
export function writeQubiqEvaluation(e: QubiqEvaluation, out: string, label: string, split?: string): string[] {
  const summary = {
    dataset: e.dataset, split: split ?? null, cases: e.rows.length / Math.max(1, e.tasks.length), unscored: e.unscored,
    qubiq: { overall: e.qubiq.overall, per_task: Object.fromEntries(e.tasks.map((t, k) => [t, e.qubiq.perTask[k]])) },
    soft_dice: Object.fromEntries(e.tasks.map((t, k) => [t, e.softDice[k]])),
  };
  const files = [QUBIQ_SUMMARY_FILE, QUBIQ_PER_CASE_FILE, QUBIQ_REPORT_FILE].map((f) => path.join(out, f));
  // The summary last: its presence says the evaluation is complete.
  writeFileAtomic(files[1], `case,task,qubiq,soft_dice\n${e.rows.map((r) => `${csvField(r.case)},${csvField(r.task)},${r.qubiq},${r.softDice}`).join('\n')}\n`);
  writeFileAtomic(files[2], `# QUBIQ score and soft Dice (%), ${e.dataset}${split ? `, split ${split}` : ''}\n\n${formatQubiqTable(e, label)}\n`);
  writeFileAtomic(files[0], `${JSON.stringify(summary, null, 2)}\n`);
  return files;
}

/** A trained run's QUBIQ submission for `cases` (into OUT/submission) and its score, written to `out`. */
export async function scoreRunQubiq(runDir: string, ds: Dataset, cases: CaseRecord[], out: string, label: string, device: DeviceChoice = 'auto'): Promise<QubiqEvaluation> {
  const submission = path.join(out, 'submission');
  fs.rmSync(submission, { recursive: true, force: true }); // an interrupted earlier attempt's maps
  fs.mkdirSync(submission, { recursive: true });
  const loaded = loadRunOn(runDir, { device });
  try {
    await predictQubiqSubmission(loaded, ds, cases, submission);
  } finally {
    loaded.method.model.dispose();
  }
  const e = await scoreQubiqSubmission(ds, cases, submission);
  writeQubiqEvaluation(e, out, label);
  return e;
}
