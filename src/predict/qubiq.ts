/**
 * `avap predict --format qubiq`: the QUBIQ submission tree, one continuous map per case and task,
 *
 *   OUT/<dataset>/<case>/taskTT.nii.gz
 *
 * each with the header of its case's image (qform, sform, voxel sizes), so it lines up voxel for voxel.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { CaseRecord, Dataset, openDataset, selectCases } from '../data/dataset';
import { planeShape } from '../data/niftiImage';
import { resizeBilinear } from '../data/resize';
import { DEFAULT_SLICE_AXIS, volumeCasesOf } from '../data/volumes';
import { isNiftiPath, readNifti, readNiftiHeader, writeNifti } from '../io/nifti';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import { checkStaysInside } from '../io/confine';
import { checkNotRunFiles } from '../train/run';
import type { PrecisionChoice } from '../torch/precision';
import type { DeviceChoice } from '../torch/device';
import { LoadedRun, checkTorchDevice, loadRunOn } from '../train/loadRun';
import { EngineName, openOnnxModel, PredictionEngine, torchEngine } from './engine';
import { forEachPrediction } from './predict';
import { predictVolume } from './volumes';

const TASK_NAME = /^task\d+$/;

/** The submission file of a case and task (the task's structure name is `taskTT`). */
export function submissionFile(submission: string, ds: Pick<Dataset, 'name'>, c: CaseRecord, task: string): string {
  return path.join(submission, ds.name, c.name ?? c.id, `${task}.nii.gz`);
}

/** Predicts `cases` of a QUBIQ-layout dataset into a submission tree under `outDir`. Returns the number of cases. */
export async function predictQubiqSubmission(source: LoadedRun | PredictionEngine, ds: Dataset, selected: CaseRecord[], outDir: string, opts: { batchSize?: number; sliceAxis?: number; onProgress?: (done: number, total: number) => void } = {}): Promise<number> {
  const engine = 'method' in source ? torchEngine(source) : source;
  // 3D volumes: one map per volume, cut across the axis the run was trained on unless one is named.
  const cases = volumeCasesOf(ds, selected);
  const sliceAxis = opts.sliceAxis ?? ('method' in source ? source.config.data.sliceAxis : undefined) ?? DEFAULT_SLICE_AXIS;
  const { size: S, structures } = engine;
  const notTasks = structures.filter((s) => !TASK_NAME.test(s));
  if (notTasks.length > 0) throw new UserError(`--format qubiq: the model's structures (${structures.join(', ')}) are not QUBIQ tasks (task01, task02, …); it was not trained on QUBIQ data`);
  const seen = new Map<string, string>();
  for (const c of cases) {
    if (!isNiftiPath(c.image)) throw new UserError(`${c.image}: --format qubiq writes NIfTI maps with the image's geometry, so the images must be NIfTI`);
    const name = c.name ?? c.id;
    const prev = seen.get(name);
    if (prev !== undefined) throw new UserError(`--format qubiq: cases ${prev} and ${c.id} would both be written to ${ds.name}/${name}/; pick one split with --split`);
    seen.set(name, c.id);
    // The dataset's and the case's folder names become submission folders: they must stay inside --out.
    checkStaysInside('--out', outDir, path.join(outDir, ds.name, name));
  }
  let done = 0;
  if (ds.volumes) {
    for (const c of cases) {
      const header = await readNiftiHeader(c.image);
      const maps = await predictVolume(engine, c, sliceAxis, opts.batchSize ?? 4);
      // The map has the image's axes without its channel axis.
      const shape = c.volume!.channels > 1 ? c.volume!.shape : header.shape;
      fs.mkdirSync(path.join(outDir, ds.name, c.name ?? c.id), { recursive: true });
      structures.forEach((task, s) => writeNifti(submissionFile(outDir, ds, c, task), header, shape, maps[s]));
      done++;
      opts.onProgress?.(done, cases.length);
    }
    return done;
  }
  await forEachPrediction(engine, cases.map((c) => c.image), opts.batchSize ?? 4, async (index, out, i) => {
    const c = cases[index];
    const image = await readNifti(c.image);
    const { width: W, height: H, channels } = planeShape(c.image, image.shape);
    // The map has the image's axes without its channel axis (an X×Y×1 image gives an X×Y×1 map).
    const shape = channels > 1 ? image.shape.filter((n, axis) => axis < 2 || n !== channels) : image.shape;
    fs.mkdirSync(path.join(outDir, ds.name, c.name ?? c.id), { recursive: true });
    structures.forEach((task, s) => {
      const map = resizeBilinear(out.calibrated(i, s), S, S, 1, W, H);
      const probs = new Float32Array(W * H);
      for (let p = 0; p < probs.length; p++) probs[p] = Math.min(1, Math.max(0, map[p]));
      writeNifti(submissionFile(outDir, ds, c, task), image, shape, probs);
    });
    done++;
    opts.onProgress?.(done, cases.length);
  });
  return done;
}

export interface QubiqPredictRequest {
  model: string;
  engine?: EngineName;
  precision?: PrecisionChoice;
  device?: DeviceChoice;
  /** A QUBIQ dataset folder (or the challenge folder holding one dataset). */
  input: string;
  split?: string;
  out: string;
  /** 3D volumes: the axis to slice across (default: the run's, else z). */
  sliceAxis?: number;
  onProgress?: (done: number, total: number) => void;
}

/** `avap predict --format qubiq`: the selected cases of a QUBIQ dataset through a run, as a submission tree. */
export async function predictQubiq(request: QubiqPredictRequest): Promise<{ cases: number; dataset: string }> {
  checkOutputFolder('--out', request.out);
  checkNotRunFiles('--out', request.out);
  const ds = await openDataset(request.input);
  if (ds.challengeScore !== 'qubiq') throw new UserError(`--input: ${request.input} is a ${ds.layout} dataset; --format qubiq predicts a QUBIQ-layout dataset`);
  const cases = selectCases(ds, { split: request.split });
  if (cases.length === 0) throw new UserError(`--input: ${request.input} has no case to predict${request.split ? ` in split '${request.split}'` : ''}`);
  const run = async (source: LoadedRun | PredictionEngine) => withOutputRollback(request.out, () => predictQubiqSubmission(source, ds, cases, request.out, { sliceAxis: request.sliceAxis, onProgress: request.onProgress }));
  if (request.engine === 'onnx') {
    if (request.precision === 'bf16') throw new UserError('--precision bf16 applies to --engine torch; onnxruntime runs the exported float32 model');
    checkTorchDevice(request.engine, request.device);
    const onnx = await openOnnxModel(request.model);
    try {
      return { cases: await run(onnx), dataset: ds.name };
    } finally {
      await onnx.dispose();
    }
  }
  const loaded = loadRunOn(request.model, request);
  try {
    return { cases: await run(loaded), dataset: ds.name };
  } finally {
    loaded.method.model.dispose();
  }
}
