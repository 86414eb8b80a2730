// The precision a network's convolutions compute in: float32, or bfloat16 under autocast on CPUs with
// bf16 arithmetic and on GPUs. Parameters, batch-norm statistics, losses and the optimiser stay float32.
import * as fs from 'node:fs';
import { UserError } from '../errors';
import { Tensor, autocast } from './tensor';
import { isTracing } from './trace';

export type Precision = 'fp32' | 'bf16';
export const PRECISION_CHOICES = ['auto', 'fp32', 'bf16'] as const;
export type PrecisionChoice = (typeof PRECISION_CHOICES)[number];

/** This CPU's bf16 instructions, from /proc/cpuinfo (elsewhere none is assumed). */
export function cpuBf16Support(cpuinfo = readCpuinfo()): { avx512bf16: boolean; amx: boolean } {
  const flags = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
  return { avx512bf16: flags.has('avx512_bf16'), amx: flags.has('amx_bf16') && flags.has('amx_tile') };
}

/** Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower. */
export function hasBf16Arithmetic(support = cpuBf16Support()): boolean {
  return support.avx512bf16 || support.amx;
}

function readCpuinfo(): string {
  try {
    return fs.readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return '';
  }
}

/**
 * 'auto' is bf16 where the CPU multiplies bf16 natively (AVX512-BF16 or AMX: oneDNN's bf16 convolutions
 * then ran AVAP's training step in 0.6–0.7× the float32 time, README "Speed") and on a GPU (bf16 tensor
 * cores, PyTorch's usual autocast dtype), float32 on other CPUs, where bf16 would be emulated and slower.
 */
export function resolvePrecision(choice: PrecisionChoice, device = 'cpu', support = cpuBf16Support()): Precision {
  const onGpu = device.startsWith('cuda');
  const native = onGpu || hasBf16Arithmetic(support);
  if (choice === 'auto') return native ? 'bf16' : 'fp32';
  if (choice === 'bf16' && !onGpu && device !== 'cpu') throw new UserError(`--precision bf16 runs on the CPU or a CUDA GPU (the device is ${device}); use fp32 or auto`);
  if (choice === 'bf16' && !native) throw new UserError('--precision bf16 needs a CPU with AVX512-BF16 or AMX, and this one has neither; use fp32 or auto');
  return choice;
}

/** One line for logs: what runs, and why when 'auto' chose it. */
export function describePrecision(choice: PrecisionChoice, precision: Precision, support = cpuBf16Support(), device = 'cpu'): string {
  const why = choice !== 'auto' ? '' : precision === 'bf16'
    ? (device.startsWith('cuda') ? ' (auto: a CUDA GPU)' : ` (auto: this CPU has ${support.amx ? 'AMX' : 'AVX512-BF16'})`)
    : ' (auto: this CPU has no bf16 arithmetic)';
  return precision === 'bf16' ? `precision: bf16 convolutions, fp32 weights, batch-norm statistics, losses and optimiser${why}` : `precision: fp32${why}`;
}

/**
 * Runs a stack of convolutions in `precision` and returns float32, so what follows (a loss, a softmax,
 * another module) sees the dtype it would in float32. `device` is where the inputs are (autocast is per
 * device type). A trace always records float32.
 */
export function inPrecision(precision: Precision, fn: () => Tensor, device = 'cpu'): Tensor {
  if (precision === 'fp32' || isTracing()) return fn();
  return autocast('bfloat16', fn, device).float();
}
