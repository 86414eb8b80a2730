// `avap evaluate --model RUN`: predict the selected cases, then score them exactly as saved predictions are scored.
import * as path from 'node:path';
import { CaseRecord, Dataset } from '../data/dataset';
import { EvaluateOptions, EvaluationSummary, evaluatePredictions, referenceFromDataset } from '../eval/evaluate';
import { loadRun } from './load';
import { predictToFolder } from './predict';

export async function evaluateModel(runDir: string, ds: Dataset, cases: CaseRecord[], outDir: string, options: EvaluateOptions = {}): Promise<EvaluationSummary> {
  const loaded = loadRun(runDir);
  try {
    const predictions = path.join(outDir, 'predictions');
    await predictToFolder(loaded, cases.map((c) => ({ id: c.id, image: c.image })), predictions, { overlay: false, replace: true });
    return await evaluatePredictions(referenceFromDataset(ds, cases), predictions, outDir, { label: options.label ?? path.basename(path.resolve(runDir)), ...options });
  } finally {
    loaded.method.model.dispose();
  }
}
