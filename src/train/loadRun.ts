// Rebuilding a trained model from its run folder.
import * as fs from 'node:fs';
import { UserError } from '../errors';
import type { Intensity } from '../data/intensity';
import { Normalization } from '../data/normalization';
import { Method } from '../methods/method';
import { buildMethod } from '../methods/registry';
import { RunConfig, RunDir } from './run';
import { loadWeights } from './checkpoint';
import type { Device } from '../torch/tensor';
import { DeviceChoice, resolveDevice } from '../torch/device';
import { Precision, PrecisionChoice, resolvePrecision } from '../torch/precision';
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
 * config.json → the method's model with model.safetensors loaded, in eval mode, on `device`, computing
 * in `precision`. The caller disposes method.model.
 */
export function loadRun(dir: string, precision: Precision = 'fp32', device: Device = 'cpu'): LoadedRun {
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
  method.model.eval().setPrecision(precision).to(device);
  return { run, config, method, normalization, intensity };
}

/** What a command that runs a model was asked to compute on: --device and --precision as given. */
export interface ComputeChoice {
  /** Default 'auto': a GPU when libtorch sees one. */
  device?: DeviceChoice;
  /** Default 'fp32': the exported ONNX model's numbers. */
  precision?: PrecisionChoice;
}

/** loadRun on the device and in the precision `choice` asks for, both checked before anything is read. */
export function loadRunOn(dir: string, choice: ComputeChoice = {}): LoadedRun {
  const device = resolveDevice(choice.device ?? 'auto');
  return loadRun(dir, resolvePrecision(choice.precision ?? 'fp32', device), device);
}

/** --device given with an engine other than libtorch. */
export function checkTorchDevice(engine: string | undefined, device: DeviceChoice | undefined): void {
  if (engine === 'onnx' && device === 'cuda') throw new UserError('--device cuda applies to --engine torch; onnxruntime runs on the CPU here');
}
