// Strict parsing of user-given text (flags, lists): every bad value becomes a one-line UserError naming
// the flag and echoing the value.
import * as os from 'node:os';
import { UserError } from '../errors';

/**
 * Parses an integer flag strictly (digits only: no '1e3', '12abc' or '+5'). The message names the flag
 * and echoes what was given, e.g. "--cases must be a positive integer, got 'abc'".
 */
export function parseIntFlag(flag: string, raw: string, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  const kind = min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer >= ${min}`;
  const text = raw.trim();
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) throw new UserError(`${flag} must be ${kind}, got '${raw}'`);
  if (value < min || value > max) throw new UserError(`${flag} must be ${max === Number.MAX_SAFE_INTEGER ? kind : `in ${min}..${max}`}, got '${raw}'`);
  return value;
}

export function parseFloatFlag(flag: string, raw: string, min = -Infinity, max = Infinity): number {
  const value = Number(raw.trim());
  if (raw.trim() === '' || !Number.isFinite(value)) throw new UserError(`${flag} must be a number, got '${raw}'`);
  if (value < min || value > max) throw new UserError(`${flag} must be in ${min}..${max}, got '${raw}'`);
  return value;
}

export function parseChoice<T extends string>(flag: string, raw: string, choices: readonly T[]): T {
  if (!(choices as readonly string[]).includes(raw)) throw new UserError(`${flag} must be one of ${choices.join(', ')}, got '${raw}'`);
  return raw as T;
}

/** 'a, b,,c' → ['a', 'b', '', 'c']: the parts of a comma-separated list, trimmed, empty ones kept for the caller to reject. */
export function splitList(raw: string): string[] {
  return raw.split(',').map((s) => s.trim());
}

export function parseNumberList(flag: string, raw: string): number[] {
  return splitList(raw).map((x) => parseFloatFlag(flag, x));
}

/** `--subset a,b --subset c` → [a, b, c] (commander's collector for a repeatable list flag). */
export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, ...splitList(value).filter(Boolean)];
}

/** `--steps 300,1000` → [300, 1000]: integers in min..max, in the order given, each at most once. */
export function parseIntList(flag: string, raw: string, min = 1, max = Number.MAX_SAFE_INTEGER): number[] {
  const list = splitList(raw).map((x) => parseIntFlag(flag, x, min, max));
  const repeated = list.find((x, i) => list.indexOf(x) !== i);
  if (repeated !== undefined) throw new UserError(`${flag} lists ${repeated} twice: '${raw}'`);
  return list;
}

/** `--annotators all|1,3` → undefined (all) or the 1-based numbers, each at most once. */
export function parseAnnotatorList(raw: string): number[] | undefined {
  if (raw === 'all') return undefined;
  const list = splitList(raw).map((x) => parseIntFlag('--annotators', x, 1, 1024));
  if (new Set(list).size !== list.length) throw new UserError(`--annotators lists an annotator twice: '${raw}'`);
  return list;
}

/** `--threads N`: torch's thread count (loads the engine only when given). */
export async function setThreadsFlag(raw: string | undefined): Promise<void> {
  if (raw !== undefined) (await import('../torch')).setNumThreads(parseThreads(raw));
}

/**
 * `--threads N` within the cores this process may use: more threads than cores take turns at every
 * synchronisation point of libtorch's and onnxruntime's spinning thread pools, and a step never ends.
 */
export function parseThreads(raw: string): number {
  const n = parseIntFlag('--threads', raw, 1, 1024);
  const cores = os.availableParallelism();
  if (n > cores) throw new UserError(`--threads ${n} is more than the ${cores} core${cores === 1 ? '' : 's'} this process may use; give ${cores} or fewer`);
  return n;
}
