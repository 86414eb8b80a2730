// State dicts <-> safetensors files: the checkpoint format PyTorch and Hugging Face tools read.
import { UserError } from '../errors';
import { tensor } from './creation';
import { StateDict } from './nn/module';
import { SafeDType, SafeTensor, loadSafetensors, saveSafetensors } from './safetensors';
import { DType, Tensor } from './tensor';

const TO_SAFE: Partial<Record<DType, SafeDType>> = { float32: 'F32', float64: 'F64', int64: 'I64', int32: 'I32', uint8: 'U8', bool: 'BOOL' };
const FROM_SAFE: Partial<Record<SafeDType, DType>> = { F32: 'float32', F64: 'float64', I64: 'int64', I32: 'int32', U8: 'uint8', BOOL: 'bool' };

export function toSafeTensor(t: Tensor): SafeTensor {
  const dtype = TO_SAFE[t.dtype];
  if (!dtype) throw new Error(`toSafeTensor: dtype ${t.dtype} has no safetensors equivalent`);
  const values = t.data();
  return { dtype, shape: t.shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

export function fromSafeTensor(name: string, s: SafeTensor, source: string): Tensor {
  const dtype = FROM_SAFE[s.dtype] as Exclude<DType, 'bfloat16'> | undefined;
  if (!dtype) throw new UserError(`${source}: tensor '${name}' has dtype ${s.dtype}, which avap cannot load (F32, F64, I64, I32, U8, BOOL)`);
  const bytes = s.data.byteOffset % 8 === 0 ? s.data : s.data.slice();
  const view = {
    float32: () => new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
    float64: () => new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8),
    int64: () => new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8),
    int32: () => new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4),
    uint8: () => bytes,
    bool: () => bytes,
  }[dtype]();
  return tensor(view, s.shape, dtype);
}

/** Writes a state dict as safetensors, atomically. */
export function saveStateDict(file: string, state: StateDict, metadata?: Record<string, string>): void {
  const out: Record<string, SafeTensor> = {};
  for (const [name, t] of Object.entries(state)) out[name] = toSafeTensor(t);
  saveSafetensors(file, out, metadata);
}

/** Reads a safetensors file into tensors (the caller disposes them, or loads them into a module inside tidy()). */
export function loadStateDict(file: string): { state: StateDict; metadata: Record<string, string> } {
  const { tensors, metadata } = loadSafetensors(file);
  const state: StateDict = {};
  for (const [name, s] of Object.entries(tensors)) state[name] = fromSafeTensor(name, s, file);
  return { state, metadata };
}
