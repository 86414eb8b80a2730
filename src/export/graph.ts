// An ONNX graph under construction, and its encoding as a ModelProto with the onnx-proto schema.
// Values are named once: graph inputs and parameters by their own names (the module's state-dict names,
// so a reader of the file recognises backbone.encoder.conv1.weight), everything else t<N> or c<N>.
import { onnx } from 'onnx-proto';
import { DType, TypedData } from '../torch';
import { TraceValue } from '../torch/trace';

/** ONNX TensorProto.DataType codes of the dtypes the tensor layer has. */
export const ONNX_DTYPE: Record<DType, number> = { float32: 1, uint8: 2, int32: 6, int64: 7, bool: 9, float64: 11, bfloat16: 16 };

export type Attribute = { i: number } | { ints: number[] } | { f: number } | { s: string };
export const int = (i: number): Attribute => ({ i });
export const ints = (values: number[]): Attribute => ({ ints: values });
export const float = (f: number): Attribute => ({ f });
export const str = (s: string): Attribute => ({ s });

/** Constants this small are shared between the nodes that use the same values (shapes, axes, scalars). */
const SHARED_CONSTANT_BYTES = 256;

export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  private readonly initializers = new Map<string, onnx.ITensorProto>();
  private readonly names = new Map<number, string>();
  private readonly shared = new Map<string, string>();
  private counter = 0;

  constructor(readonly opset: number) {}

  /** A new, unused value name. */
  fresh(prefix = 't'): string {
    return `${prefix}${this.counter++}`;
  }

  /** The name of a traced value; inputs, parameters and constants get theirs (and their initializer) on first use. */
  nameOf(v: TraceValue): string {
    const known = this.names.get(v.id);
    if (known !== undefined) return known;
    const s = v.source;
    let name: string;
    if (s.kind === 'input') name = s.name;
    else if (s.kind === 'parameter') name = this.initializer(s.name, v.dtype, v.shape, s.data);
    else if (s.kind === 'constant') name = this.constant(v.dtype, v.shape, s.data);
    else throw new Error(`GraphBuilder: value ${v.id} is used before the node that computes it`);
    this.names.set(v.id, name);
    return name;
  }

  /** Makes `v` another name for an existing value (ops that only change what the tensor layer sees: contiguous, detach). */
  bind(v: TraceValue, name: string): void {
    this.names.set(v.id, name);
  }

  initializer(name: string, dtype: DType, dims: number[], data: TypedData): string {
    if (this.initializers.has(name)) throw new Error(`GraphBuilder: initializer '${name}' defined twice`);
    this.initializers.set(name, { name, dims, dataType: ONNX_DTYPE[dtype], rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
    return name;
  }

  /** A constant tensor; small ones with equal values are shared. */
  constant(dtype: DType, dims: number[], data: TypedData): string {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength > SHARED_CONSTANT_BYTES) return this.initializer(this.fresh('c'), dtype, dims, data);
    const key = `${dtype}[${dims.join(',')}]${Buffer.from(bytes).toString('base64')}`;
    let name = this.shared.get(key);
    if (name === undefined) {
      name = this.initializer(this.fresh('c'), dtype, dims, data.slice());
      this.shared.set(key, name);
    }
    return name;
  }

  /** A 1-D int64 constant (shapes, axes, slice bounds). */
  int64s(values: number[]): string {
    return this.constant('int64', [values.length], BigInt64Array.from(values, (v) => BigInt(v)));
  }

  /** A 0-D constant of the given dtype. */
  scalar(dtype: DType, value: number): string {
    return this.constant(dtype, [], typedArrayOf(dtype, [value]));
  }

  /** Appends a node; returns its output names (fresh ones unless given). */
  node(opType: string, inputs: string[], attrs: Record<string, Attribute> = {}, outputs: number | string[] = 1): string[] {
    const names = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh()) : outputs;
    const attribute = Object.entries(attrs).map(([name, a]) => attributeProto(name, a));
    // Trailing absent optional inputs are left out; absent ones in between are the empty name.
    let last = inputs.length;
    while (last > 0 && inputs[last - 1] === '') last--;
    this.nodes.push({ opType, input: inputs.slice(0, last), output: names, attribute, name: `${opType}_${this.nodes.length}` });
    return names;
  }

  /** Shorthand for a single-output node. */
  op(opType: string, inputs: string[], attrs: Record<string, Attribute> = {}): string {
    return this.node(opType, inputs, attrs)[0];
  }

  /**
   * The graph with only what the outputs need: nodes of values no output depends on (an annotator that
   * is not exported, a constant made but unused) and their initializers are dropped.
   */
  graph(name: string, inputs: TraceValue[], outputs: { name: string; value: TraceValue }[]): onnx.IGraphProto {
    const nodes: onnx.INodeProto[] = [];
    for (const o of outputs) nodes.push({ opType: 'Identity', input: [this.nameOf(o.value)], output: [o.name], name: `output_${o.name}` });
    const all = [...this.nodes, ...nodes];
    const needed = new Set(outputs.map((o) => o.name));
    const kept: onnx.INodeProto[] = [];
    for (let i = all.length - 1; i >= 0; i--) {
      const n = all[i];
      if (!n.output!.some((o) => needed.has(o))) continue;
      kept.push(n);
      for (const x of n.input!) if (x !== '') needed.add(x);
    }
    kept.reverse();
    return {
      name,
      node: kept,
      initializer: [...this.initializers.values()].filter((t) => needed.has(t.name!)),
      input: inputs.map((v) => valueInfo(this.nameOf(v), v)),
      output: outputs.map((o) => valueInfo(o.name, o.value)),
    };
  }
}

function attributeProto(name: string, a: Attribute): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ('i' in a) return { name, type: T.INT, i: a.i };
  if ('ints' in a) return { name, type: T.INTS, ints: a.ints };
  if ('f' in a) return { name, type: T.FLOAT, f: a.f };
  return { name, type: T.STRING, s: Buffer.from(a.s, 'utf8') };
}

function valueInfo(name: string, v: { shape: number[]; dtype: DType }): onnx.IValueInfoProto {
  return { name, type: { tensorType: { elemType: ONNX_DTYPE[v.dtype], shape: { dim: v.shape.map((d) => ({ dimValue: d })) } } } };
}

function typedArrayOf(dtype: DType, values: number[]): TypedData {
  switch (dtype) {
    case 'float32':
    case 'bfloat16': return Float32Array.from(values);
    case 'float64': return Float64Array.from(values);
    case 'int32': return Int32Array.from(values);
    case 'int64': return BigInt64Array.from(values, (v) => BigInt(Math.trunc(v)));
    case 'uint8':
    case 'bool': return Uint8Array.from(values);
  }
}

/** The IR version each opset was released with (older runtimes refuse newer IR versions). */
export function irVersionFor(opset: number): number {
  if (opset <= 17) return 8;
  if (opset <= 20) return 9;
  return 10;
}

export interface ModelOptions {
  opset: number;
  producerVersion: string;
  docString: string;
  metadata: Record<string, string>;
}

/** The encoded ModelProto. */
export function encodeModel(graph: onnx.IGraphProto, o: ModelOptions): Uint8Array {
  return onnx.ModelProto.encode({
    irVersion: irVersionFor(o.opset),
    opsetImport: [{ domain: '', version: o.opset }],
    producerName: 'avap',
    producerVersion: o.producerVersion,
    docString: o.docString,
    graph,
    metadataProps: Object.entries(o.metadata).map(([key, value]) => ({ key, value })),
  }).finish();
}
