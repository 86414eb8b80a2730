// How numbers read in tables and status lines: fractions as percent with two decimals, a dash where a
// value is undefined, one value per structure as a 'disc, cup' pair.

const DASH = '–';

/** 0.8512 → '85.12'; null, undefined or NaN → '–'. */
export function percent(x: number | null | undefined, digits = 2): string {
  return x === null || x === undefined || !Number.isFinite(x) ? DASH : (100 * x).toFixed(digits);
}

/** A fixed-point number, or '–' where undefined. */
export function fixed(x: number | null | undefined, digits = 4): string {
  return x === null || x === undefined || !Number.isFinite(x) ? DASH : x.toFixed(digits);
}

/** One value per structure, in the structures' order: '97.15, 88.21'. */
export function perStructure(structures: readonly string[], value: (structure: string) => number | null | undefined, format: (x: number | null | undefined) => string = percent): string {
  return structures.map((s) => format(value(s))).join(', ');
}

/** 1 → '1 case', 3 → '3 cases'. */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
