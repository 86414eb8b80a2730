// `avap predict`: a trained run → the prediction layout that `avap evaluate` reads
// (<case>/<structure>_mean.png, <case>/<structure>_annotator<k>.png, 16-bit) plus an overlay per case.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { resizeBilinear } from '../data/resize';
import { writePredictionCase } from './folder';
import { readAnyImage } from '../data/prepare';
import { isFolder, isSafePathComponent } from '../io/paths';
import { checkStaysInside, pathInside } from '../io/confine';
import { checkNotRunFiles } from '../train/run';
import { hasEntry } from '../io/readBounded';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import { EngineName, EngineOutput, PredictionEngine, PreparedInput, describeAnnotators, openOnnxModel, torchEngine } from './engine';
import type { PrecisionChoice } from '../torch/precision';
import type { DeviceChoice } from '../torch/device';
import { LoadedRun, checkTorchDevice, loadRunOn } from '../train/loadRun';
import { finishManifest, preparePredictionFolder } from './manifest';
import { writeOverlay } from './overlay';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.nii', '.gz']);

/** The case id an image file gives: its name without the extension (both of `.nii.gz`). */
function caseIdOf(file: string): string {
  return path.basename(file).replace(/\.nii\.gz$/i, '').replace(/\.[^.]*$/, '');
}

export interface PredictInput {
  id: string;
  image: string;
}

export interface PredictOptions {
  /** 1-based annotator numbers to write; default all. */
  annotators?: number[];
  overlay?: boolean;
  batchSize?: number;
  /** Remove another model's predictions found in the folder instead of refusing it. */
  replace?: boolean;
  onProgress?: (done: number, total: number) => void;
}

/** An image file, or every image in a folder (its images/ subfolder for a native dataset), as cases. */
export function listInputs(input: string): PredictInput[] {
  if (!hasEntry(input)) throw new UserError(`--input: ${input}: no such file or folder`);
  if (!isFolder(input)) return [checkCaseId({ id: caseIdOf(input), image: path.resolve(input) })];
  const dir = fs.existsSync(path.join(input, 'dataset.json')) && fs.existsSync(path.join(input, 'images')) ? path.join(input, 'images') : input;
  const files = fs.readdirSync(dir).filter((f) => IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase()) && (!f.toLowerCase().endsWith('.gz') || /\.nii\.gz$/i.test(f))).sort();
  if (files.length === 0) throw new UserError(`--input: ${dir} holds no PNG, JPEG, TIFF or NIfTI images`);
  const inputs = files.map((f) => ({ id: caseIdOf(f), image: path.resolve(dir, f) }));
  const seen = new Set<string>();
  for (const i of inputs) {
    checkCaseId(i);
    if (seen.has(i.id)) throw new UserError(`--input: ${dir} holds two images named '${i.id}' (different extensions)`);
    seen.add(i.id);
  }
  return inputs;
}

/** A case id names a folder under --out: it must be one plain path component ('...png' would give '..'). */
function checkCaseId(input: PredictInput): PredictInput {
  if (!isSafePathComponent(input.id)) {
    throw new UserError(`--input: ${input.image}: its name gives the case id '${input.id}', which cannot name a prediction folder; rename the file`);
  }
  return input;
}

/**
 * Predicts every input and writes its maps at the image's original size. Returns the number of cases.
 * `source`: a loaded run (predicted on libtorch) or any prediction engine (src/predict/engine.ts).
 */
export async function predictToFolder(source: LoadedRun | PredictionEngine, inputs: PredictInput[], outDir: string, opts: PredictOptions = {}): Promise<number> {
  const engine = 'method' in source ? torchEngine(source, opts.annotators) : source;
  const { size: S, structures } = engine;
  const wanted = opts.annotators ?? engine.annotators;
  for (const k of wanted) if (!engine.annotators.includes(k)) throw new UserError(`--annotators: ${k} is not an annotator of this model (${describeAnnotators(engine.annotators)})`);
  const batchSize = opts.batchSize ?? 4;
  for (const c of inputs) {
    checkCaseId(c);
    checkStaysInside('--out', outDir, path.join(outDir, c.id));
  }
  const manifest = preparePredictionFolder(outDir, {
    version: 1, model: engine.identity.model, weights: engine.identity.weights, structures, annotators: wanted, annotatorCount: engine.annotatorCount,
    cases: inputs.map((c) => c.id), complete: false, time: new Date().toISOString(),
  }, opts.replace);
  let done = 0;
  await forEachPrediction(engine, inputs.map((c) => c.image), batchSize, async (index, out, i, prepared) => {
    const { originalWidth: W, originalHeight: H } = prepared;
    const meanMaps = structures.map((_, s) => resizeBilinear(out.calibrated(i, s), S, S, 1, W, H));
    const annotatorMaps = wanted.map((k) => structures.map((_, s) => resizeBilinear(out.annotator(i, k, s), S, S, 1, W, H)));
    await writePredictionCase(outDir, inputs[index].id, structures, meanMaps, annotatorMaps, W, H, wanted);
    if (opts.overlay ?? true) await writeOverlay(pathInside('--out', outDir, inputs[index].id, 'overlay.png'), await readAnyImage(inputs[index].image, engine.intensity), meanMaps);
    done++;
    opts.onProgress?.(done, inputs.length);
  });
  finishManifest(outDir, manifest);
  return done;
}

/**
 * Runs `engine` on `images` in batches of `batchSize` and calls `each` for every image in order, with
 * its index in `images`, its batch's output and its row in that batch, and its prepared input.
 */
export async function forEachPrediction(engine: PredictionEngine, images: string[], batchSize: number, each: (index: number, out: EngineOutput, row: number, prepared: PreparedInput) => Promise<void>): Promise<void> {
  const { size: S, channels: C } = engine;
  for (let start = 0; start < images.length; start += batchSize) {
    const chunk = images.slice(start, start + batchSize);
    const prepared = await Promise.all(chunk.map((file) => engine.loadImage(file)));
    const batch = new Float32Array(chunk.length * C * S * S);
    prepared.forEach((p, i) => batch.set(p.input, i * C * S * S));
    const out = await engine.predict(batch, chunk.length);
    for (let i = 0; i < chunk.length; i++) await each(start + i, out, i, prepared[i]);
  }
}

export interface PredictRequest extends PredictOptions {
  /** A trained run folder (or, with engine 'onnx', an exported .onnx file). */
  model: string;
  /** What runs the model: 'torch' (libtorch, default) or 'onnx' (onnxruntime-node; a run folder is exported in memory). */
  engine?: EngineName;
  /** The torch engine's convolutions: 'fp32' (default: the exported ONNX model's numbers), 'bf16' or 'auto'. */
  precision?: PrecisionChoice;
  /** The torch engine's device: 'auto' (default: a GPU when libtorch sees one), 'cpu' or 'cuda'. */
  device?: DeviceChoice;
  /** An image, or a folder of images (a native dataset folder: its images/). */
  input: string;
  out: string;
}

/** `avap predict`: every input image of `input` through the run in `model`, written to `out`. Returns the number of images. */
export async function predict(request: PredictRequest): Promise<number> {
  checkOutputFolder('--out', request.out);
  checkNotRunFiles('--out', request.out);
  const inputs = listInputs(request.input);
  // A failure (a full disk) removes what this call added; the manifest marks the rest unfinished.
  if (request.engine === 'onnx') {
    if (request.precision === 'bf16') throw new UserError('--precision bf16 applies to --engine torch; onnxruntime runs the exported float32 model');
    checkTorchDevice(request.engine, request.device);
    const onnx = await openOnnxModel(request.model);
    try {
      return await withOutputRollback(request.out, () => predictToFolder(onnx, inputs, request.out, request));
    } finally {
      await onnx.dispose();
    }
  }
  const loaded = loadRunOn(request.model, request);
  try {
    return await withOutputRollback(request.out, () => predictToFolder(loaded, inputs, request.out, request));
  } finally {
    loaded.method.model.dispose();
  }
}
