/**
 * Time distributions for flow-matching training: `'beta'` is Beta(1, 2) (density 2(1 − t), more samples near the
 * prior end, as the thesis), drawn by the inverse CDF t = 1 − √(1 − u); `'uniform'` is U(0, 1).
 */
import type { Rng } from '../util/rng.js';

/** A training-time distribution. */
export type TimeDistribution = 'beta' | 'uniform';

/** Fills `out` with draws of the distribution. */
export function sampleTimes(rng: Rng, dist: TimeDistribution, out: Float32Array): Float32Array {
  for (let i = 0; i < out.length; i++) {
    const u = rng.uniform();
    out[i] = dist === 'beta' ? 1 - Math.sqrt(1 - u) : u;
  }
  return out;
}

/**
 * The sampling time grid. Corrected semantics: `steps + 1` points 0, 1/steps, …, 1 (`steps` solver steps).
 * Reference semantics: `linspace(0, 1, steps)` — `steps` grid points, so `steps − 1` steps (METHOD.md §6.2).
 */
export function timeGrid(steps: number, semantics: 'corrected' | 'reference'): Float64Array {
  const n = semantics === 'reference' ? steps : steps + 1;
  const g = new Float64Array(n);
  for (let i = 0; i < n; i++) g[i] = n === 1 ? 0 : i / (n - 1);
  return g;
}
