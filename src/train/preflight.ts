// Before a new run creates its folder: everything about its options that can be checked without
// training. And if the start fails anyway (a label value found bad in the first epoch, a full disk),
// the folder is removed again, so that the rerun is not blocked by a stub that "already holds a run".
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import type { Dataset } from '../data/dataset';
import type { Stage } from '../methods/method';
import { loadSafetensors } from '../torch/safetensors';
import type { TrainOptions } from './trainer';

/** Throws a UserError naming the flag for options that cannot make a run on this dataset. */
export function checkNewRun(opts: TrainOptions, ds: Dataset): void {
  checkOutputFolder('--out', opts.out);
  if (opts.variationEpochs === 0 && opts.preferenceEpochs === 0) {
    throw new UserError('--variation-epochs 0 and --preference-epochs 0: nothing to train (give a stage at least one epoch)');
  }
  if (opts.jointWeights) {
    if (opts.strategy !== 'joint') throw new UserError(`--joint-weights only applies to --strategy joint (got --strategy ${opts.strategy})`);
    const K = ds.structures.length;
    if (opts.jointWeights.length !== K + 1) {
      throw new UserError(`--joint-weights: expected ${K + 1} values (one per structure: ${ds.structures.map((s) => s.name).join(', ')}; then the APM's), got ${opts.jointWeights.length}: '${opts.jointWeights.join(',')}'`);
    }
    if (opts.jointWeights.some((w) => w < 0) || opts.jointWeights.every((w) => w === 0)) {
      throw new UserError(`--joint-weights: weights must be non-negative and not all zero, got '${opts.jointWeights.join(',')}'`);
    }
  }
  if (opts.pretrained) {
    if (!fs.existsSync(opts.pretrained)) throw new UserError(`--pretrained: ${opts.pretrained}: file not found`);
    // Reads and validates the whole file (complete, well-formed, checksum when it has one).
    loadSafetensors(opts.pretrained);
  }
}

/** A method whose every stage has zero epochs would end with a summary and no model. */
export function checkSomethingToTrain(method: string, stages: Stage[]): void {
  if (stages.every((s) => s.epochs === 0)) {
    throw new UserError(`nothing to train: every stage of ${method} has 0 epochs (${stages.map((s) => s.name).join(', ')}); give a stage at least one epoch`);
  }
}

/**
 * Runs a new run's training; when it fails before its first checkpoint (there is nothing to resume),
 * removes what it created in `out` and rethrows.
 */
export function removeFailedStart<T>(out: string, work: () => Promise<T>): Promise<T> {
  return withOutputRollback(out, work, () => fs.existsSync(path.join(out, 'checkpoint', 'state.json')));
}
