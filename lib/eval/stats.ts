/** Summary statistics used by every evaluation result, and the random pairs of networks the pairwise measures use. */

import type { Rng } from '../util/rng.js';

/** Mean, standard deviation (population, ddof = 0, as numpy's default), min and max of `n` values. */
export interface Summary {
  readonly mean: number;
  readonly std: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
}

/**
 * Summarises values (f64 accumulation, two-pass variance). An empty input gives NaN mean/std/min/max and n = 0.
 * @param values any numeric array
 */
export function summarize(values: ArrayLike<number>): Summary {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN, min: NaN, max: NaN, n: 0 };
  let s = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    s += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = s / n;
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = values[i]! - mean;
    ss += d * d;
  }
  return { mean, std: Math.sqrt(ss / n), min, max, n };
}

/**
 * Pairs (a, b), a < b, of n items: all n(n−1)/2 of them in order when there are at most `count`, else `count`
 * distinct ones drawn uniformly (two draws of `rng.int(n)` per try; a repeat or a pair already drawn is tried again).
 * @returns Int32Array of length 2·pairs, and whether the pairs are a random subset
 */
export function distinctPairs(n: number, count: number, rng: Rng): { pairs: Int32Array; subsampled: boolean } {
  const total = (n * (n - 1)) / 2;
  const subsampled = total > count;
  const m = subsampled ? count : total;
  const pairs = new Int32Array(2 * m);
  if (!subsampled) {
    let k = 0;
    for (let a = 0; a < n; a++) {
      for (let b = a + 1; b < n; b++) {
        pairs[k++] = a;
        pairs[k++] = b;
      }
    }
    return { pairs, subsampled };
  }
  const seen = new Set<number>();
  for (let k = 0; k < m; ) {
    const i = rng.int(n);
    const j = rng.int(n);
    const a = Math.min(i, j);
    const b = Math.max(i, j);
    if (i === j || seen.has(a * n + b)) continue;
    seen.add(a * n + b);
    pairs[2 * k] = a;
    pairs[2 * k + 1] = b;
    k++;
  }
  return { pairs, subsampled };
}
