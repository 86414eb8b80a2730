// Before a new run creates its folder: everything about its options that can be checked without
// training. And if the start fails anyway (a label value found bad in the first round, a full disk),
// the folder is removed again, so that the rerun is not blocked by a stub that "already holds a run".
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UserError } from '../errors';
import { checkOutputFolder, withOutputRollback } from '../io/outputFolder';
import { isInside, realLocation } from '../io/paths';
import type { Dataset } from '../data/dataset';
import type { Stage } from '../methods/method';
import { resolveDevice } from '../torch/device';
import { resolvePrecision } from '../torch/precision';
import { loadSafetensors } from '../torch/safetensors';
import type { RunRequest } from './setup';
import { hasEntry } from '../io/readBounded';

/** Throws a UserError naming the flag for options that cannot make a run on this dataset. */
export function checkNewRun(opts: RunRequest, ds: Dataset): void {
  void ds;
  checkOutputFolder('--out', opts.out);
  if (!(Number.isInteger(opts.steps) && opts.steps >= 1)) throw new UserError(`--steps must be a positive integer (the optimiser steps of the main stage), got ${opts.steps}`);
  resolvePrecision(opts.precision, resolveDevice(opts.device));
  if (opts.pretrained) {
    if (!hasEntry(opts.pretrained)) throw new UserError(`--pretrained: ${opts.pretrained}: file not found`);
    // Reads and validates the whole file (a regular file, complete, well-formed, checksum when it has one).
    try {
      loadSafetensors(opts.pretrained);
    } catch (err) {
      throw err instanceof UserError ? new UserError(`--pretrained: ${err.message}`) : err;
    }
  }
}

/** A run folder and the dataset it trains on never share files: run files would mix with the data, or data with the run. */
export function checkRunOutsideData(data: string, out: string): void {
  const [d, o] = [realLocation(data), realLocation(out)];
  const relation = d === o ? 'is the dataset folder' : isInside(d, o) ? 'is inside the dataset folder' : isInside(o, d) ? 'contains the dataset folder' : null;
  if (relation) throw new UserError(`--out: ${out} ${relation} ${data}; a run goes in a folder of its own, outside --data`);
}

/** A method whose every stage has zero steps would end with a summary and no model. */
export function checkSomethingToTrain(method: string, stages: Stage[]): void {
  if (stages.every((s) => s.steps === 0)) {
    throw new UserError(`nothing to train: every stage of ${method} has 0 steps (${stages.map((s) => s.name).join(', ')}); give a stage at least one step`);
  }
}

/**
 * Runs a new run's training; when it fails before its first checkpoint (there is nothing to resume),
 * removes what it created in `out` and rethrows.
 */
export function removeFailedStart<T>(out: string, work: () => Promise<T>): Promise<T> {
  return withOutputRollback(out, work, () => fs.existsSync(path.join(out, 'checkpoint', 'state.json')));
}
