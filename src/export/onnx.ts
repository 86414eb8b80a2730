// A recorded trace → an encoded ONNX model: each op through the exporter's table, then only what the
// named outputs need.
import { Trace, TraceValue } from '../torch/trace';
import { GraphBuilder, ModelOptions, encodeModel } from './graph';
import { emitNode } from './ops';

export const DEFAULT_OPSET = 17;
/** Opsets the op table is written for: 13 put Squeeze/Slice/ReduceSum axes into inputs, 18 the other reductions'. */
export const OPSET_RANGE = [13, 21] as const;

export function traceToOnnx(trace: Trace, outputs: { name: string; value: TraceValue }[], o: ModelOptions & { graphName: string }): Uint8Array {
  const b = new GraphBuilder(o.opset);
  for (const n of trace.nodes) emitNode(b, n);
  return encodeModel(b.graph(o.graphName, trace.inputs, outputs), o);
}
