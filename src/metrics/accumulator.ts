/**
 * A small MONAI-style accumulator: per-case metric vectors go in with `add`, `aggregate` gives
 * the mean over cases of each entry. NaN marks "not defined for this case" (e.g. a missing
 * annotation) and is skipped, so each entry is averaged over the cases where it exists; an entry
 * that never received a value aggregates to NaN (written as null in JSON).
 */
export class NanMeanAccumulator {
  private readonly sums: Float64Array;
  private readonly counts: Float64Array;
  private cases = 0;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 0) throw new RangeError(`NanMeanAccumulator: bad size ${size}`);
    this.sums = new Float64Array(size);
    this.counts = new Float64Array(size);
  }

  /** Adds one case's vector (length `size`). NaN entries are skipped. */
  add(values: ArrayLike<number>): this {
    if (values.length !== this.size) throw new RangeError(`NanMeanAccumulator: got ${values.length} values, expected ${this.size}`);
    for (let i = 0; i < this.size; i++) {
      const v = values[i];
      if (!Number.isNaN(v)) {
        this.sums[i] += v;
        this.counts[i]++;
      }
    }
    this.cases++;
    return this;
  }

  /** Mean of each entry over the cases where it was defined; NaN where it never was. */
  aggregate(): number[] {
    return Array.from(this.sums, (s, i) => (this.counts[i] > 0 ? s / this.counts[i] : NaN));
  }

  /** How many cases defined each entry. */
  countPerEntry(): number[] {
    return Array.from(this.counts);
  }

  /** How many vectors were added. */
  get caseCount(): number {
    return this.cases;
  }

  reset(): void {
    this.sums.fill(0);
    this.counts.fill(0);
    this.cases = 0;
  }
}

/** Mean of the non-NaN values; NaN when there are none. */
export function nanMean(values: ArrayLike<number>): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isNaN(v)) {
      sum += v;
      n++;
    }
  }
  return n > 0 ? sum / n : NaN;
}
