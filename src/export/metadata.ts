// What an exported model says about itself in its ONNX metadata_props (key → JSON string), so that a
// consumer — `avap predict --engine onnx`, the browser viewer, someone's PACS plug-in — needs nothing
// but the file:
//   avap.format         "1"
//   avap.method         the method's registry name (avap, mv-unet, …)
//   avap.input          {name, size, channels, range: [0, 1], normalization: "in-graph"}
//   avap.structures     structure names, in output order
//   avap.annotators     every annotator name of the training data (1-based numbers index it)
//   avap.outputs        [{name, structure, annotator}]: annotator null for the calibrated map
//   avap.config         the run's config.json, its paths (data root, --pretrained) cut to their base names
//   avap.normalization  the run's normalization.json (already applied inside the graph)
//   avap.intensity      the run's intensity.json, when it has one: how a NIfTI image's raw intensities
//                       become the graph's input (CT statistics), applied before the graph as for training
import { onnx } from 'onnx-proto';
import { z } from 'zod';
import { UserError } from '../errors';
import { checkNames } from '../io/names';
import { MiB, readBounded } from '../io/readBounded';
import { intensitySchema } from '../data/intensity';
import { MAX_INPUT_SIZE } from '../models/inputSize';

export const METADATA_FORMAT = '1';

const inputSchema = z.object({
  name: z.string(),
  size: z.number().int().positive(),
  channels: z.number().int().positive(),
  range: z.tuple([z.number(), z.number()]),
  normalization: z.literal('in-graph'),
});

const outputSchema = z.object({ name: z.string(), structure: z.string(), annotator: z.number().int().positive().nullable() });

export const modelInfoSchema = z.object({
  format: z.literal(METADATA_FORMAT),
  method: z.string(),
  input: inputSchema,
  structures: z.array(z.string()).min(1),
  annotators: z.array(z.string()).min(1),
  outputs: z.array(outputSchema).min(1),
  config: z.unknown(),
  normalization: z.unknown(),
  intensity: intensitySchema.optional(),
});

/** An exported model's self-description (the metadata above, parsed). */
export type ModelInfo = z.infer<typeof modelInfoSchema>;
export type OutputInfo = z.infer<typeof outputSchema>;

const KEYS = ['format', 'method', 'input', 'structures', 'annotators', 'outputs', 'config', 'normalization', 'intensity'] as const;
/** Keys a model may lack: a run without CT channels records no intensity rules. */
const OPTIONAL_KEYS: readonly string[] = ['intensity'];

/** ModelInfo → metadata_props entries (every value a string; `format` and `method` unquoted). */
export function metadataProps(info: ModelInfo): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of KEYS) {
    const v = info[k];
    if (v === undefined) continue;
    out[`avap.${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

/** The 1-based annotator numbers the file has an output for. */
export function exportedAnnotators(info: ModelInfo): number[] {
  return [...new Set(info.outputs.flatMap((o) => (o.annotator === null ? [] : [o.annotator])))].sort((a, b) => a - b);
}

/** Parses the metadata of an encoded model; `source` names the file in errors. */
export function modelInfoFromBytes(bytes: Uint8Array, source: string): ModelInfo {
  let model: onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new UserError(`${source}: not an ONNX model (${(err as Error).message})`);
  }
  const props = new Map(model.metadataProps.map((p) => [p.key, p.value ?? '']));
  if (!props.has('avap.format')) throw new UserError(`${source}: an ONNX model, but not one exported by avap (no avap.format metadata)`);
  const raw: Record<string, unknown> = {};
  for (const k of KEYS) {
    const text = props.get(`avap.${k}`);
    if (text === undefined && OPTIONAL_KEYS.includes(k)) continue;
    if (text === undefined) throw new UserError(`${source}: metadata avap.${k} is missing`);
    try {
      raw[k] = k === 'format' || k === 'method' ? text : JSON.parse(text);
    } catch (err) {
      throw new UserError(`${source}: metadata avap.${k} is not valid JSON (${(err as Error).message})`);
    }
  }
  const r = modelInfoSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new UserError(`${source}: metadata avap.${issue.path.join('.')}: ${issue.message}${raw.format !== METADATA_FORMAT ? ` (this avap reads format ${METADATA_FORMAT})` : ''}`);
  }
  // Structure names become prediction file names: the same rule as a dataset's, whoever wrote the file.
  checkNames(source, 'metadata avap.structures', r.data.structures);
  checkNames(source, 'metadata avap.annotators', r.data.annotators);
  checkGraph(model.graph, r.data, source);
  return r.data;
}

/** The dimensions of a graph input or output; null for one without a fixed value. */
function dims(v: onnx.IValueInfoProto): (number | null)[] {
  return (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimValue === undefined || d.dimValue === null ? null : Number(d.dimValue)));
}

/**
 * The metadata must describe the graph it travels with: its input (name, channels, size) and its
 * outputs by name. A file edited by hand that disagrees would otherwise fail inside onnxruntime, or
 * have a caller allocate images of the size the metadata claims.
 */
function checkGraph(graph: onnx.IGraphProto | null | undefined, info: ModelInfo, source: string): void {
  const fail = (problem: string): never => {
    throw new UserError(`${source}: metadata avap.${problem}`);
  };
  const input = graph?.input?.find((v) => v.name === info.input.name);
  if (!input) fail(`input names '${info.input.name}', which is not an input of the graph (${(graph?.input ?? []).map((v) => `'${v.name}'`).join(', ') || 'none'})`);
  const [, c, h, w] = dims(input!);
  if (c !== null && c !== undefined && c !== info.input.channels) fail(`input says ${info.input.channels} channels, the graph's input has ${c}`);
  for (const d of [h, w]) if (d !== null && d !== undefined && d !== info.input.size) fail(`input says size ${info.input.size}, the graph's input is ${h}×${w}`);
  if (info.input.size > MAX_INPUT_SIZE) fail(`input says size ${info.input.size}, above the largest avap trains (${MAX_INPUT_SIZE})`);
  const outputs = new Set((graph?.output ?? []).map((v) => v.name));
  const missing = info.outputs.find((o) => !outputs.has(o.name));
  if (missing) fail(`outputs names '${missing.name}', which is not an output of the graph`);
  const structures = new Set(info.structures);
  const stray = info.outputs.find((o) => !structures.has(o.structure) || (o.annotator !== null && o.annotator > info.annotators.length));
  if (stray) fail(`outputs: '${stray.name}' is for ${stray.annotator === null ? '' : `annotator ${stray.annotator} of `}structure '${stray.structure}', not among the ${info.structures.length} structures and ${info.annotators.length} annotators the metadata lists`);
}

/**
 * An ONNX file holds at most 2 GiB (protobuf's own limit; larger models keep their weights in
 * external files, which avap neither writes nor reads).
 */
export const ONNX_LIMIT = 2 * 1024 * MiB;

export function readModelInfo(file: string): { bytes: Uint8Array; info: ModelInfo } {
  const bytes = readBounded(file, ONNX_LIMIT, 'an ONNX model');
  return { bytes, info: modelInfoFromBytes(bytes, file) };
}
