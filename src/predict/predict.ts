// `avap predict`: a trained run → the prediction layout that `avap evaluate` reads
// (<case>/<structure>_mean.png, <case>/<structure>_annotator<k>.png, 16-bit) plus an overlay per case.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { loadImageForModel } from '../data/pipeline';
import { resizeBilinear } from '../data/resize';
import { writePredictionCase } from '../eval/predictions';
import { readImage } from '../io/image';
import { tensor, tidy } from '../torch';
import { isSafePathComponent, resolvesInside } from '../io/paths';
import { LoadedRun } from './load';
import { finishManifest, preparePredictionFolder, weightsIdentity } from './manifest';
import { writeOverlay } from './overlay';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.tif', '.tiff']);

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
  if (!fs.existsSync(input)) throw new UserError(`--input: ${input}: no such file or folder`);
  if (fs.statSync(input).isFile()) return [checkCaseId({ id: path.parse(input).name, image: path.resolve(input) })];
  const dir = fs.existsSync(path.join(input, 'dataset.json')) && fs.existsSync(path.join(input, 'images')) ? path.join(input, 'images') : input;
  const files = fs.readdirSync(dir).filter((f) => IMAGE_EXTENSIONS.has(path.extname(f).toLowerCase())).sort();
  if (files.length === 0) throw new UserError(`--input: ${dir} holds no PNG, JPEG or TIFF images`);
  const inputs = files.map((f) => ({ id: path.parse(f).name, image: path.resolve(dir, f) }));
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

/** Predicts every input and writes its maps at the image's original size. Returns the number of cases. */
export async function predictToFolder(loaded: LoadedRun, inputs: PredictInput[], outDir: string, opts: PredictOptions = {}): Promise<number> {
  const { config, method, normalization } = loaded;
  const { size: S, channels: C } = config.input;
  const structures = config.model.structures;
  const M = config.model.annotators.length;
  const K = structures.length;
  const wanted = opts.annotators ?? Array.from({ length: M }, (_, k) => k + 1);
  for (const k of wanted) if (!Number.isInteger(k) || k < 1 || k > M) throw new UserError(`--annotators: ${k} is not an annotator of this model (1..${M})`);
  const batchSize = opts.batchSize ?? 4;
  for (const c of inputs) {
    checkCaseId(c);
    if (!resolvesInside(outDir, path.join(outDir, c.id))) throw new UserError(`--out: ${path.join(outDir, c.id)} leads outside ${outDir} (a symbolic link?); predictions stay inside --out`);
  }
  const manifest = preparePredictionFolder(outDir, {
    version: 1, model: path.resolve(loaded.run.dir), weights: weightsIdentity(loaded.run.modelFile), structures, annotators: wanted, annotatorCount: M,
    cases: inputs.map((c) => c.id), complete: false, time: new Date().toISOString(),
  }, opts.replace);
  method.model.eval();
  let done = 0;
  for (let start = 0; start < inputs.length; start += batchSize) {
    const chunk = inputs.slice(start, start + batchSize);
    const prepared = await Promise.all(chunk.map((c) => loadImageForModel(c.image, S, normalization, C)));
    const batch = new Float32Array(chunk.length * C * S * S);
    prepared.forEach((p, i) => batch.set(p.input, i * C * S * S));
    const { mean, annotators } = tidy(() => {
      const p = method.predict(tensor(batch, [chunk.length, C, S, S]));
      return { mean: p.mean.data() as Float32Array, annotators: p.annotators.data() as Float32Array };
    });
    const plane = S * S;
    for (let i = 0; i < chunk.length; i++) {
      const { originalWidth: W, originalHeight: H } = prepared[i];
      const meanMaps = structures.map((_, s) => resizeBilinear(mean.subarray((i * K + s) * plane, (i * K + s + 1) * plane), S, S, 1, W, H));
      const annotatorMaps = structures.map((_, s) => wanted.map((k) => {
        const at = ((i * M + (k - 1)) * K + s) * plane;
        return resizeBilinear(annotators.subarray(at, at + plane), S, S, 1, W, H);
      }));
      await writePredictionCase(outDir, chunk[i].id, structures, meanMaps, annotatorMaps, W, H, wanted);
      if (opts.overlay ?? true) await writeOverlay(path.join(outDir, chunk[i].id, 'overlay.png'), await readImage(chunk[i].image), meanMaps);
      done++;
      opts.onProgress?.(done, inputs.length);
    }
  }
  finishManifest(outDir, manifest);
  return done;
}
