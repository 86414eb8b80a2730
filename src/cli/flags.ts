// Strict flag parsing: every bad value becomes a one-line UserError naming the flag and echoing the value.
import { UserError } from '../errors';

export { parseIntFlag } from './data';

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

export function parseNumberList(flag: string, raw: string): number[] {
  return raw.split(',').map((x) => parseFloatFlag(flag, x));
}

/** `--subset a,b --subset c` → [a, b, c]. */
export function collectList(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}
