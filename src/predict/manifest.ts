// PRED_DIR/predictions.json: which model wrote a prediction folder, for which annotators and cases,
// and whether it finished. A folder holds one model's predictions only: writing another model's
// predictions over them would leave a mix that `evaluate` would score as one model.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { readJsonFile } from '../io/jsonFile';
import { checkOutputFolder } from '../io/outputFolder';
import { isSafePathComponent, resolvesInside } from '../io/paths';
import { fileNameSchema, safeNameSchema } from '../io/names';
import { predictionFiles } from './folder';
import { CHECKSUM_KEY, readSafetensorsMetadata } from '../torch/safetensors';

export const MANIFEST_FILE = 'predictions.json';

const manifestSchema = z.object({
  version: z.literal(1),
  /** The run folder, and its model.safetensors checksum (or size and time for a file without one). */
  model: z.string(),
  weights: z.string(),
  /** Names of the files removed when another model's predictions replace these: the same rule as everywhere. */
  structures: z.array(safeNameSchema),
  /** 1-based annotator numbers written, out of `annotatorCount`. */
  annotators: z.array(z.number().int().positive()),
  annotatorCount: z.number().int().positive(),
  cases: z.array(fileNameSchema),
  complete: z.boolean(),
  time: z.string(),
});
export type PredictionManifest = z.infer<typeof manifestSchema>;

/** The identity of a run's weights: their stored checksum, or size and modification time. */
export function weightsIdentity(modelFile: string): string {
  const sum = readSafetensorsMetadata(modelFile)[CHECKSUM_KEY];
  if (sum) return `sha256:${sum}`;
  const st = fs.statSync(modelFile);
  return `size:${st.size},mtime:${st.mtimeMs}`;
}

export function readManifest(dir: string): PredictionManifest | null {
  return readJsonFile(path.join(dir, MANIFEST_FILE), manifestSchema, 'prediction manifest');
}

export function writeManifest(dir: string, manifest: PredictionManifest): void {
  writeFileAtomic(path.join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
}

const describe = (m: PredictionManifest) => `model ${m.model}, annotators ${m.annotators.join(',')}`;

/** Removes the files a manifest lists (and their case folders when that leaves them empty), then the manifest. */
function removePredictions(dir: string, old: PredictionManifest): void {
  for (const id of old.cases.filter(isSafePathComponent)) {
    const caseDir = path.join(dir, id);
    if (!resolvesInside(dir, caseDir)) continue;
    for (const ref of predictionFiles(dir, id, old.structures, old.annotatorCount)) fs.rmSync(ref.file, { force: true });
    fs.rmSync(path.join(caseDir, 'overlay.png'), { force: true });
    if (fs.existsSync(caseDir) && fs.readdirSync(caseDir).length === 0) fs.rmdirSync(caseDir);
  }
  fs.rmSync(path.join(dir, MANIFEST_FILE), { force: true });
}

/**
 * Makes `dir` ready for `next`'s predictions: a new or empty folder, or one holding the same model's
 * predictions for the same annotators (rewritten). Another model's predictions are refused — or, with
 * `replace`, removed first. A non-empty folder without a manifest is refused: it is not ours to fill.
 * Writes the manifest, marked incomplete until `finishManifest`, and returns it (a rewritten folder's
 * manifest lists its earlier cases too).
 */
export function preparePredictionFolder(dir: string, next: PredictionManifest, replace = false): PredictionManifest {
  checkOutputFolder('--out', dir);
  let manifest = next;
  if (fs.existsSync(dir)) {
    const old = readManifest(dir);
    if (old) {
      const same = old.model === next.model && old.weights === next.weights && old.annotators.join(',') === next.annotators.join(',');
      if (!same && !replace) {
        const what = old.model === next.model && old.weights === next.weights ? 'the same model for other annotators' : 'another model';
        throw new UserError(`--out: ${dir} holds predictions of ${what} (${describe(old)}); choose another folder, or remove it first`);
      }
      if (!same) removePredictions(dir, old);
      else manifest = { ...next, cases: [...new Set([...old.cases, ...next.cases])] };
    } else if (fs.readdirSync(dir).length > 0) {
      throw new UserError(`--out: ${dir} is not empty and holds no ${MANIFEST_FILE}; predictions go to a new or empty folder, or one predict wrote before`);
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  writeManifest(dir, { ...manifest, complete: false });
  return manifest;
}

export function finishManifest(dir: string, manifest: PredictionManifest): void {
  writeManifest(dir, { ...manifest, complete: true, time: new Date().toISOString() });
}

/**
 * What `evaluate --predictions` needs of a folder predict wrote: finished, and holding every
 * annotator. A folder without a manifest (another tool's output) is taken as it is.
 */
export function checkPredictionsForEvaluation(dir: string, annotatorCount: number): void {
  const m = readManifest(dir);
  if (!m) return;
  if (!m.complete) throw new UserError(`--predictions: ${dir} holds unfinished predictions (${describe(m)}): predict was interrupted; run it again`);
  if (m.annotatorCount !== annotatorCount) {
    throw new UserError(`--predictions: ${dir} holds predictions of a model with ${m.annotatorCount} annotators, but --data has ${annotatorCount}; evaluate them on the data the model was trained for`);
  }
  if (m.annotators.length !== annotatorCount) {
    throw new UserError(`--predictions: ${dir} holds predictions for annotators ${m.annotators.join(',')} of ${m.annotatorCount}; evaluation needs all ${annotatorCount} (predict without --annotators)`);
  }
}
