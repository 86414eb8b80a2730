// `avap export`: a trained method → one ONNX file. The file is made by running the method's own predict()
// once under a trace (src/torch/trace.ts), so it is the TypeScript model itself, op for op, with its
// parameters as initializers — including AVAP's dynamic head, whose convolution weights stay the
// controller's output inside the graph.
//
// Input:   "image" [1, C, S, S] float32: the image resized to S×S as `avap predict` resizes it, values in
//          [0, 1] (8-bit / 255, 16-bit / 65535). The run's normalisation is folded into the graph, so a
//          consumer never re-implements it.
// Outputs: "<structure>_mean" [1, S, S], the calibrated map of each structure, and
//          "<structure>_<annotator>" [1, S, S] for each exported annotator, all probabilities in [0, 1].
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Intensity } from '../data/intensity';
import { Normalization, Normalizer } from '../data/normalization';
import { UserError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { Method } from '../methods/method';
import { loadRun } from '../train/loadRun';
import { Tensor, tensor, tidy } from '../torch';
import { traceOps } from '../torch/trace';
import { RunConfig } from '../train/run';
import { Rng } from '../util/random';
import { METADATA_FORMAT, ModelInfo, OutputInfo, metadataProps, readModelInfo } from './metadata';
import { DEFAULT_OPSET, OPSET_RANGE, traceToOnnx } from './onnx';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const PACKAGE_VERSION: string = require('../../../package.json').version;

export const INPUT_NAME = 'image';

export interface ExportOptions {
  opset?: number;
  /** 1-based annotator numbers to give outputs; default all. */
  annotators?: number[];
}

export interface ExportedModel {
  bytes: Uint8Array;
  info: ModelInfo;
}

/** What of a run the file describes besides the model. */
export interface RunDescription {
  config: RunConfig;
  normalization: Normalization;
  /** The run's NIfTI intensity rules (intensity.json), when it has any. */
  intensity?: Intensity;
}

/** Output names from the structure and annotator names, kept to characters every ONNX consumer accepts. */
export function outputName(structure: string, annotator: string | null): string {
  const clean = (s: string) => s.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${clean(structure)}_${annotator === null ? 'mean' : clean(annotator)}`;
}

/**
 * The run config as a shared file may carry it: the training data's folder and the --pretrained file
 * by base name only, so a model handed on does not tell where things lie on the machine that made it.
 */
export function portableConfig(config: RunConfig): RunConfig {
  return {
    ...config,
    data: { ...config.data, root: path.basename(config.data.root) },
    pretrained: config.pretrained === null ? null : path.basename(config.pretrained),
  };
}

/** Traces `method.predict` on an example image and encodes the graph. The model is left in eval mode. */
export function exportMethod(method: Method, run: RunDescription, opts: ExportOptions = {}): ExportedModel {
  const opset = opts.opset ?? DEFAULT_OPSET;
  if (!Number.isInteger(opset) || opset < OPSET_RANGE[0] || opset > OPSET_RANGE[1]) {
    throw new UserError(`--opset must be an integer in ${OPSET_RANGE[0]}..${OPSET_RANGE[1]}, got ${opset}`);
  }
  const { size: S, channels: C } = run.config.input;
  const { structures, annotators } = run.config.model;
  const wanted = opts.annotators ?? annotators.map((_, k) => k + 1);
  for (const k of wanted) if (!Number.isInteger(k) || k < 1 || k > annotators.length) throw new UserError(`--annotators: ${k} is not an annotator of this model (1..${annotators.length})`);

  // Per structure: the calibrated map, then each wanted annotator's.
  const plan = structures.flatMap((structure, s) => [null, ...wanted].map((k) => ({
    s, info: { name: outputName(structure, k === null ? null : annotators[k - 1]), structure, annotator: k } as OutputInfo,
  })));
  const seen = new Set<string>();
  for (const { info: o } of plan) {
    if (seen.has(o.name)) throw new UserError(`export: two outputs would both be named '${o.name}' (structure and annotator names must differ after replacing characters other than A-Z a-z 0-9 _ . -)`);
    seen.add(o.name);
  }

  method.model.eval();
  const normalizer = new Normalizer(run.normalization, C, S);
  const perPixel = run.normalization.kind === 'per-pixel';
  const normShape = perPixel ? [1, C, S, S] : [1, C, 1, 1];
  const perChannel = (v: Float32Array) => (perPixel ? v : Float32Array.from({ length: C }, (_, c) => v[c * S * S]));
  const rng = new Rng(0);
  const example = tensor(Float32Array.from({ length: C * S * S }, () => rng.next()), [1, C, S, S]);
  const params: [string, Tensor][] = [...method.model.namedParameters(), ...method.model.namedBuffers()];
  try {
    const { trace, result } = traceOps(params, (t) => tidy(() => {
      t.input(INPUT_NAME, example);
      const normalised = example.sub(tensor(perChannel(normalizer.mean), normShape)).mul(tensor(perChannel(normalizer.invStd), normShape));
      const p = method.predict(normalised);
      return plan.map(({ s, info: o }) => (o.annotator === null ? p.calibrated.select(1, s) : p.annotators.select(1, o.annotator - 1).select(1, s)));
    }));
    const info: ModelInfo = {
      format: METADATA_FORMAT,
      method: method.name,
      input: { name: INPUT_NAME, size: S, channels: C, range: [0, 1], normalization: 'in-graph' },
      structures,
      annotators,
      outputs: plan.map((o) => o.info),
      config: portableConfig(run.config),
      normalization: run.normalization,
      ...(run.intensity ? { intensity: run.intensity } : {}),
    };
    try {
      const bytes = traceToOnnx(trace, plan.map((o, i) => ({ name: o.info.name, value: trace.valueOf(result[i]) })), {
        opset, graphName: `avap_${method.name}`, producerVersion: PACKAGE_VERSION, metadata: metadataProps(info),
        docString: `${method.name} exported by avap ${PACKAGE_VERSION}. Input '${INPUT_NAME}' [1, ${C}, ${S}, ${S}]: the image resized to ${S}×${S}, `
          + 'values in [0, 1]; normalisation is inside the graph. Outputs: <structure>_mean (calibrated map) and <structure>_<annotator>, '
          + `[1, ${S}, ${S}] probabilities. Metadata avap.* describes them.`,
      });
      return { bytes, info };
    } finally {
      for (const t of result) t.dispose();
    }
  } finally {
    example.dispose();
  }
}

export interface RunExport extends ExportedModel {
  seconds: number;
}

/** Exports a run folder's model; writes the file atomically when `outFile` is given. */
export function exportRun(runDir: string, outFile: string | null, opts: ExportOptions = {}): RunExport {
  const started = process.hrtime.bigint();
  const loaded = loadRun(runDir);
  try {
    const exported = exportMethod(loaded.method, loaded, opts);
    if (outFile !== null) writeFileAtomic(outFile, exported.bytes);
    return { ...exported, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
  } finally {
    loaded.method.model.dispose();
  }
}

/** `--model X` of the ONNX consumers: an exported .onnx file, or a run folder exported in memory. */
export function openExportedModel(model: string): ExportedModel {
  let st: fs.Stats | undefined | null;
  try {
    st = fs.statSync(model, { throwIfNoEntry: false });
  } catch {
    st = null; // a symbolic link loop: the reader below names it
  }
  if (st === undefined) throw new UserError(`--model: ${model}: no such file or folder`);
  if (st?.isDirectory()) return exportRun(model, null);
  try {
    return readModelInfo(model);
  } catch (err) {
    throw err instanceof UserError ? new UserError(`--model: ${err.message}`) : err;
  }
}
