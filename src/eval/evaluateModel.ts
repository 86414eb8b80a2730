// `avap evaluate`: saved predictions, or a trained run's predictions of the selected cases, scored
// against a dataset's annotations.
import * as path from 'node:path';
import { UserError } from '../errors';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import { pathInside } from '../io/confine';
import { checkPredictionsForEvaluation } from '../predict/manifest';
import { CaseRecord, CaseSelection, Dataset, displayPath, openDataset, selectCases } from '../data/dataset';
import { EvaluateOptions, evaluatePredictions, referenceFromDataset } from './evaluate';
import { EvaluationSummary } from '../results/summary';
import { loadRunOn } from '../train/loadRun';
import type { DeviceChoice } from '../torch/device';
import { checkNotRunFiles } from '../train/run';
import { predictToFolder } from '../predict/predict';
import { QubiqEvaluation, scoreQubiqPredictions, writeQubiqEvaluation } from './qubiq';

export async function evaluateModel(runDir: string, ds: Dataset, cases: CaseRecord[], outDir: string, options: EvaluateOptions = {}, device: DeviceChoice = 'auto'): Promise<EvaluationSummary> {
  refuseVolumes(ds);
  const loaded = loadRunOn(runDir, { device });
  try {
    const trained = loaded.config.model.annotators;
    if (trained.length !== ds.annotators.length) {
      throw new UserError(`--model: ${runDir} was trained with ${trained.length} annotators (${names(trained)}), but --data has ${ds.annotators.length} (${names(ds.annotators)}); a model is evaluated against the annotators it predicts`);
    }
    const predictions = pathInside('--out', outDir, 'predictions');
    await predictToFolder(loaded, cases.map((c) => ({ id: c.id, image: c.image })), predictions, { overlay: false, replace: true });
    return await evaluatePredictions(referenceFromDataset(ds, cases), predictions, outDir, { label: options.label ?? path.basename(path.resolve(runDir)), ...options });
  } finally {
    loaded.method.model.dispose();
  }
}

/** A list of names, the first few: a dataset may have hundreds of annotators. */
function names(xs: readonly string[]): string {
  return xs.length <= 5 ? xs.join(', ') : `${xs.slice(0, 4).join(', ')}, … ${xs[xs.length - 1]}`;
}

export interface EvaluateRequest extends EvaluateOptions {
  /** The dataset whose annotations are the reference. */
  data: string;
  /** Only these cases: a split and/or subsets (default every case). */
  split?: string;
  subsets?: string[];
  /** Exactly one of: a predictions folder (`avap predict`'s layout), or a trained run folder to predict with. */
  predictions?: string;
  model?: string;
  /** Where the run computes with --model (default 'auto'). */
  device?: DeviceChoice;
  /** Where summary.json, per_case.csv and report.md go. */
  out: string;
}

/** The cases of `data` a split and subsets select; a UserError when none is left. */
export async function selectEvaluationCases(data: string, selection: CaseSelection): Promise<{ ds: Dataset; cases: CaseRecord[] }> {
  const ds = await openDataset(data);
  const subsets = selection.subsets?.length ? selection.subsets : undefined;
  const cases = selectCases(ds, { subsets, split: selection.split });
  if (cases.length === 0) {
    const described = [subsets ? `--subset ${subsets.join(',')}` : '', selection.split ? `--split ${selection.split}` : ''].filter(Boolean).join(' ');
    throw new UserError(`${data}: the selection (${described || 'all cases'}) holds no cases`);
  }
  return { ds, cases };
}

/**
 * Scores predictions (or a run's predictions, written to OUT/predictions) and writes the evaluation
 * outputs; on data judged by a challenge score (QUBIQ), that score too (qubiq.json, …).
 */
export async function evaluate(request: EvaluateRequest): Promise<EvaluationSummary & { qubiq?: QubiqEvaluation }> {
  const { data, split, subsets, predictions, model, out, device, ...options } = request;
  if (!predictions === !model) throw new UserError('evaluate: pass exactly one of --predictions PRED_DIR and --model RUN');
  checkOutputFolder('--out', out);
  checkNotRunFiles('--out', out);
  const { ds, cases } = await selectEvaluationCases(data, { split, subsets });
  refuseVolumes(ds);
  return withOutputRollback(out, async () => {
    let summary: EvaluationSummary;
    if (model) summary = await evaluateModel(model, ds, cases, out, options, device);
    else {
      checkPredictionsForEvaluation(predictions!, ds.annotators.length);
      summary = await evaluatePredictions(referenceFromDataset(ds, cases), predictions!, out, options);
    }
    if (ds.challengeScore !== 'qubiq') return summary;
    const qubiq = await scoreQubiqPredictions(ds, cases, predictions ?? path.join(out, 'predictions'));
    writeQubiqEvaluation(qubiq, out, options.label ?? path.basename(path.resolve(model ?? predictions!)), split);
    return { ...summary, qubiq };
  });
}

/** The per-image prediction folders and their tables are 2D; 3D volumes are scored per volume, the QUBIQ way. */
function refuseVolumes(ds: Dataset): void {
  if (ds.volumes) throw new UserError(`--data: ${displayPath(ds.root)} holds 3D volumes, which are scored per volume: use avap evaluate --format qubiq (with --model RUN or --predictions SUBMISSION)`);
}
