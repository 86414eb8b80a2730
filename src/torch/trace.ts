// Tracing: while a trace is active, every op of the tensor layer reports itself through record(), so a
// forward pass written once in TypeScript can also be written out as a graph (src/export builds ONNX from
// it). Outside a trace record() only returns its output: one comparison per op.
import { UserError } from '../errors';
import type { DType, Tensor, TypedData } from './tensor';

/** Op arguments that are not tensors (dims, strides, flags), as the op received them after validation. */
export type TraceAttrs = Record<string, unknown>;

/** Where a traced value comes from. */
export type TraceSource =
  | { kind: 'input'; name: string }
  /** A parameter or buffer of the traced module, by its state-dict name; its values are read when first used. */
  | { kind: 'parameter'; name: string; data: TypedData }
  /** A tensor created inside the trace from JavaScript values (zeros, arange, tensor(...)): fixed data. */
  | { kind: 'constant'; data: TypedData }
  | { kind: 'op' };

export interface TraceValue {
  id: number;
  shape: number[];
  dtype: DType;
  source: TraceSource;
}

/** One recorded op: tensor operands as values, scalar operands as numbers, absent optional operands as null. */
export interface TraceNode {
  op: string;
  inputs: (TraceValue | number | null)[];
  attrs: TraceAttrs;
  outputs: TraceValue[];
}

export type TraceOperand = Tensor | number | null | undefined;

/**
 * Why a function cannot be traced. A UserError: `avap export` reports it in one line, since it says
 * what the model's code does that no graph can hold.
 */
export class TraceError extends UserError {
  constructor(message: string) {
    super(`trace: ${message}`);
    this.name = 'TraceError';
  }
}

export class Trace {
  readonly nodes: TraceNode[] = [];
  readonly inputs: TraceValue[] = [];
  private readonly values = new Map<Tensor, TraceValue>();
  private readonly parameters = new Map<Tensor, string>();
  private nextId = 0;

  /** parameters: the module's named parameters and buffers (they become the graph's weights). */
  constructor(parameters: Iterable<[string, Tensor]>) {
    for (const [name, t] of parameters) this.parameters.set(t, name);
  }

  /** Declares a graph input; ops on `t` (and on what they produce) are recorded from now on. */
  input(name: string, t: Tensor): TraceValue {
    const v = this.newValue(t, { kind: 'input', name });
    this.inputs.push(v);
    return v;
  }

  /** The traced value a tensor currently holds; throws when no recorded op produced it. */
  valueOf(t: Tensor, op = 'output'): TraceValue {
    const known = this.values.get(t);
    if (known) return known;
    const name = this.parameters.get(t);
    if (name !== undefined) return this.newValue(t, { kind: 'parameter', name, data: t.handle.data() });
    throw new TraceError(`${op} reads a tensor of shape [${t.shape.join(', ')}] that is neither an input, a parameter of the traced module nor the `
      + 'result of a recorded op (an op without a trace hook made it)');
  }

  add(op: string, operands: readonly TraceOperand[], attrs: TraceAttrs, output: Tensor | Tensor[] | undefined): void {
    // Three pseudo-ops: a random draw (a graph would freeze one draw), a read of values into JavaScript
    // (what the program does next may depend on them) and a tensor made from JavaScript values (kept as data).
    if (op === 'random') throw new TraceError(`the traced function draws random numbers (${String(attrs.fn)}); a graph would freeze one draw`);
    if (op === 'read') {
      const v = this.valueOf(operands[0] as Tensor, String(attrs.fn));
      if (v.source.kind === 'op' || v.source.kind === 'input') {
        throw new TraceError(`the traced function reads a computed tensor's values into JavaScript (${String(attrs.fn)}), so what it does next may depend on the input`);
      }
      return;
    }
    if (op === 'constant') {
      const t = output as Tensor;
      this.newValue(t, { kind: 'constant', data: t.handle.data() });
      return;
    }
    // Operands first: an in-place op's output is its own input, which must still name the old value.
    const inputs = operands.map((x) => (x === null || x === undefined ? null : typeof x === 'number' ? x : this.valueOf(x, op)));
    const outputs = (Array.isArray(output) ? output : output ? [output] : []).map((t) => this.newValue(t, { kind: 'op' }));
    this.nodes.push({ op, inputs, attrs, outputs });
  }

  private newValue(t: Tensor, source: TraceSource): TraceValue {
    const v: TraceValue = { id: this.nextId++, shape: [...t.shape], dtype: t.dtype, source };
    this.values.set(t, v);
    return v;
  }
}

let active: Trace | null = null;

/** Whether a trace is recording (an exported graph computes in float32, whatever the model's precision). */
export function isTracing(): boolean {
  return active !== null;
}

/**
 * Reports one op to the active trace (if any) and returns its output unchanged, so that an op's body
 * reads `return record('add', [this, other], {}, new Tensor(...))`. `output` is undefined for reads.
 */
export function record<T extends Tensor | Tensor[] | undefined>(op: string, operands: readonly TraceOperand[], attrs: TraceAttrs, output: T): T {
  if (active !== null) active.add(op, operands, attrs, output);
  return output;
}

/**
 * Runs `fn` with a new trace active and returns the trace and fn's result. `fn` must be synchronous
 * (as inside tidy()); traces do not nest.
 */
export function traceOps<T>(parameters: Iterable<[string, Tensor]>, fn: (trace: Trace) => T): { trace: Trace; result: T } {
  if (active !== null) throw new TraceError('a trace is already active');
  const trace = new Trace(parameters);
  active = trace;
  try {
    const result = fn(trace);
    if (result instanceof Promise) throw new TraceError('the traced function must be synchronous (it returned a Promise)');
    return { trace, result };
  } finally {
    active = null;
  }
}
