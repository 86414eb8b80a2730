// What runs a model for `avap predict`: libtorch on a run's TypeScript model ('torch'), or onnxruntime-node
// on an exported ONNX file ('onnx'). Both hand back the same maps, so the prediction folder (and what
// `avap evaluate` scores in it) does not depend on the engine.
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type * as Ort from 'onnxruntime-node';
import type { Intensity } from '../data/intensity';
import { inputForModel, loadImageForModel } from '../data/pipeline';
import { PreparedImage, prepareImage, prepareRawImage } from '../data/prepare';
import type { RawImage } from '../io/image';
import { openExportedModel } from '../export/export';
import { ModelInfo, exportedAnnotators } from '../export/metadata';
import { onDevice, tensor, tidy } from '../torch';
import { defaultThreadCount } from '../torch/native';
import { LoadedRun } from '../train/loadRun';
import { weightsIdentity } from './manifest';
import { AnnotatorLayout } from '../data/layout';

export const ENGINES = ['torch', 'onnx'] as const;
export type EngineName = (typeof ENGINES)[number];

/** Probability maps of one batch, each [S, S] row-major. */
export interface EngineOutput {
  /** The calibrated map of one image and structure. */
  calibrated(image: number, structure: number): Float32Array;
  /** annotator: 1-based. */
  annotator(image: number, annotator: number, structure: number): Float32Array;
}

export interface PreparedInput {
  /** [C, S, S], as the engine's model takes it. */
  input: Float32Array;
  originalWidth: number;
  originalHeight: number;
}

export interface PredictionEngine {
  readonly name: EngineName;
  readonly size: number;
  readonly channels: number;
  readonly structures: string[];
  /** 1-based numbers of the annotators the engine predicts, of the model's `annotatorCount`. */
  readonly annotators: number[];
  readonly annotatorCount: number;
  /** Which model this is, for a prediction folder's manifest: its source and a checksum of its weights. */
  readonly identity: { model: string; weights: string };
  /** The NIfTI intensity rules the model was trained with (./data/intensity.ts); absent, per-image z-score. */
  readonly intensity?: Intensity;
  loadImage(file: string): Promise<PreparedInput>;
  /** An image already decoded and normalised (a slice of a 3D volume), prepared as loadImage prepares a file's. */
  prepareDecoded(image: RawImage): PreparedInput;
  /** images: `count` inputs [C, S, S] back to back. */
  predict(images: Float32Array, count: number): Promise<EngineOutput>;
  /** Frees what the engine holds itself (a torch engine's model belongs to its caller). */
  dispose(): Promise<void>;
}

/**
 * The run's TypeScript model on libtorch; the caller keeps ownership of (and disposes) the model.
 * `wanted` (1-based): the annotators whose maps will be read; a method that can computes only theirs.
 */
export function torchEngine(loaded: LoadedRun, wanted?: number[]): PredictionEngine {
  const { config, method, normalization, intensity } = loaded;
  const { size: S, channels: C } = config.input;
  const K = config.model.structures.length;
  const M = config.model.annotators.length;
  const plane = S * S;
  return {
    name: 'torch', size: S, channels: C, structures: config.model.structures, annotators: Array.from({ length: M }, (_, k) => k + 1), annotatorCount: M,
    // Read when a prediction folder is prepared: an engine built around a model in memory has no file.
    get identity() {
      return { model: path.resolve(loaded.run.dir), weights: weightsIdentity(loaded.run.modelFile) };
    },
    intensity,
    loadImage: (file) => loadImageForModel(file, S, normalization, C, intensity),
    prepareDecoded: (image) => inputForModel(prepareRawImage(image, S, C), normalization),
    async predict(images, count) {
      method.model.eval();
      const subset = wanted && wanted.length < M && method.predictAnnotators ? wanted : null;
      const { calibrated, annotators } = tidy(() => {
        const x = onDevice(tensor(images, [count, C, S, S]), method.model.parameterDevice());
        const p = subset ? method.predictAnnotators!(x, subset.map((k) => k - 1)) : method.predict(x);
        return { calibrated: p.calibrated.data() as Float32Array, annotators: p.annotators.data() as Float32Array };
      });
      const layout = new AnnotatorLayout(subset ? subset.length : M, K, plane);
      const row = (k: number) => (subset ? subset.indexOf(k) : k - 1);
      return {
        calibrated: (i, s) => layout.structureMap(calibrated, i, s),
        annotator: (i, k, s) => layout.map(annotators, i, row(k), s),
      };
    },
    dispose: async () => undefined,
  };
}

/** What an exported model takes: the image prepared as for training, [C, S, S] scaled to [0, 1] and not normalised. */
export async function unitInput(file: string, size: number, channels: number, intensity?: Intensity): Promise<PreparedInput> {
  return unitScaled(await prepareImage(file, size, channels, intensity));
}

function unitScaled(img: PreparedImage): PreparedInput {
  const inv = 1 / img.maxValue;
  return { input: Float32Array.from(img.pixels, (v) => v * inv), originalWidth: img.originalWidth, originalHeight: img.originalHeight };
}

/** An exported model on onnxruntime-node. Its input is the resized image in [0, 1]; normalisation is in the graph. */
export async function onnxEngine(bytes: Uint8Array, info: ModelInfo, opts: { spinning?: boolean; source?: string } = {}): Promise<PredictionEngine> {
  // onnxruntime's telemetry SDK otherwise writes /tmp/mat-debug-<pid>.log and /tmp/.ses, outside every
  // folder the user named (and may try to upload); it reads this variable when its environment starts.
  process.env.ORT_DISABLE_TELEMETRY ??= '1';
  const ort: typeof Ort = await import('onnxruntime-node');
  const threads = defaultThreadCount();
  // Idle worker threads spin by default, as libtorch's do; `spinning: false` makes them sleep, which is
  // kinder to other processes sharing the cores (as OMP_WAIT_POLICY=PASSIVE is for libtorch).
  const sleepWhenIdle = { extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } };
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, ...(opts.spinning === false ? sleepWhenIdle : {}) });
  const { name: inputName, size: S, channels: C } = info.input;
  const outputOf = (s: number, annotator: number | null) => {
    const o = info.outputs.find((x) => x.structure === info.structures[s] && x.annotator === annotator);
    if (!o) throw new Error(`onnx engine: the model has no output for structure ${info.structures[s]}, annotator ${annotator}`);
    return o.name;
  };
  return {
    name: 'onnx', size: S, channels: C, structures: info.structures, annotators: exportedAnnotators(info), annotatorCount: info.annotators.length,
    identity: { model: opts.source ?? 'in memory', weights: `sha256:${createHash('sha256').update(bytes).digest('hex')}` },
    intensity: info.intensity,
    loadImage: (file) => unitInput(file, S, C, info.intensity),
    prepareDecoded: (image) => unitScaled(prepareRawImage(image, S, C)),
    async predict(images, count) {
      const results: Ort.InferenceSession.OnnxValueMapType[] = [];
      for (let i = 0; i < count; i++) {
        const input = new ort.Tensor('float32', images.subarray(i * C * S * S, (i + 1) * C * S * S), [1, C, S, S]);
        results.push(await session.run({ [inputName]: input }));
      }
      const map = (i: number, name: string) => results[i][name].data as Float32Array;
      return {
        calibrated: (i, s) => map(i, outputOf(s, null)),
        annotator: (i, k, s) => map(i, outputOf(s, k)),
      };
    },
    dispose: () => session.release(),
  };
}

/** `--engine onnx --model X`: an exported .onnx file, or a run folder exported in memory. */
export async function openOnnxModel(model: string): Promise<PredictionEngine> {
  const { bytes, info } = openExportedModel(model);
  return onnxEngine(bytes, info, { source: path.resolve(model) });
}

/** "1..M" when the engine predicts every annotator, else the list: for error messages. */
export function describeAnnotators(numbers: number[]): string {
  const contiguous = numbers.every((k, i) => k === i + 1);
  return contiguous ? `1..${numbers.length}` : numbers.join(', ');
}
