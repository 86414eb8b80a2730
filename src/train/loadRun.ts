// Rebuilding a trained model from its run folder.
import * as fs from 'node:fs';
import { UserError } from '../errors';
import type { Intensity } from '../data/intensity';
import { Normalization } from '../data/normalization';
import { Method } from '../methods/method';
import { buildMethod } from '../methods/registry';
import { RunConfig, RunDir } from './run';
import { loadWeights } from './checkpoint';
import { Precision } from '../torch/precision';
import { checkFiniteWeights } from './finiteWeights';
import { hasEntry } from '../io/readBounded';

export interface LoadedRun {
  run: RunDir;
  config: RunConfig;
  method: Method;
  normalization: Normalization;
  intensity?: Intensity;
}

/**
 * config.json → the method's model with model.safetensors loaded, in eval mode, computing in `precision`.
 * The caller disposes method.model.
 */
export function loadRun(dir: string, precision: Precision = 'fp32'): LoadedRun {
  const run = new RunDir(dir);
  if (!fs.existsSync(dir)) throw new UserError(`--model: ${dir}: folder not found`);
  const config = run.readConfig();
  const normalization = run.readNormalization();
  const intensity = run.readIntensity();
  if (!hasEntry(run.modelFile)) throw new UserError(`--model: ${dir} has no model.safetensors yet (no epoch completed)`);
  const method = buildMethod(config.model);
  try {
    loadWeights(method.model, run.modelFile);
    checkFiniteWeights(method.model, run.modelFile);
  } catch (err) {
    method.model.dispose();
    throw err;
  }
  method.model.eval().setPrecision(precision);
  return { run, config, method, normalization, intensity };
}
