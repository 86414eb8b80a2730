/**
 * A small seeded pseudo-random generator (xoshiro128**, seeded through splitmix32) plus the
 * distributions the project needs. Everything that must be reproducible "under a seed" (synthetic
 * data, augmentation, shuffling, weight init) draws from an `Rng`, never from Math.random.
 *
 * Streams are derived by hashing, not by consuming a parent stream: `Rng.from(seed, epoch, caseIndex)`
 * gives the same numbers whatever was drawn before, so results do not depend on the order in which
 * asynchronous work (prefetching, parallel decoding) happens to run.
 */

const TWO_POW_32 = 4294967296;

/** murmur3's 32-bit finaliser: a cheap, well-mixing bijection on uint32. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function hashString(s: string): number {
  // FNV-1a over UTF-16 code units, then finalised so short strings still spread over all bits.
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h >>> 0);
}

function hashNumber(x: number): number {
  if (Number.isInteger(x) && Math.abs(x) < 2 ** 53) {
    // Split into two 32-bit halves so large integers (e.g. 2^40) do not collide with small ones.
    const lo = x >>> 0;
    const hi = Math.floor(x / TWO_POW_32) >>> 0;
    return fmix32(fmix32(lo ^ 0x9e3779b9) ^ hi);
  }
  return hashString(`num:${x}`);
}

/** Combines any mix of numbers and strings into one 32-bit seed; order matters. */
export function hashSeed(...parts: (number | string)[]): number {
  let h = 0x243f6a88;
  for (const p of parts) {
    const v = typeof p === 'number' ? hashNumber(p) : hashString(p);
    h = fmix32((h ^ v) + 0x9e3779b9);
  }
  return h;
}

/** Seeded generator. Not cryptographic; period 2^128 - 1. */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spareNormal: number | null = null;

  constructor(seed: number) {
    // splitmix32 expands one 32-bit seed into the 128-bit state (never all zero).
    let x = hashNumber(seed);
    const next = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
      z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
      return (z ^ (z >>> 15)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** A generator for the stream named by `parts` (e.g. `Rng.from(seed, 'shuffle', epoch)`). */
  static from(...parts: (number | string)[]): Rng {
    return new Rng(hashSeed(...parts));
  }

  /** Next raw 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1), 53 bits of resolution. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n), without modulo bias. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > TWO_POW_32) throw new RangeError(`Rng.int: n must be an integer in 1..2^32, got ${n}`);
    const limit = TWO_POW_32 - (TWO_POW_32 % n);
    for (;;) {
      const r = this.nextU32();
      if (r < limit) return r % n;
    }
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.next() < p;
  }

  /** Normal sample (Box–Muller; the second value of each pair is kept for the next call). */
  normal(mean = 0, std = 1): number {
    if (this.spareNormal !== null) {
      const z = this.spareNormal;
      this.spareNormal = null;
      return mean + std * z;
    }
    let u = 0;
    while (u === 0) u = this.next(); // log(0) would be -Infinity
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = r * Math.sin(2 * Math.PI * v);
    return mean + std * r * Math.cos(2 * Math.PI * v);
  }

  /** Fisher–Yates shuffle, in place; returns the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
