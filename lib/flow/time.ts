/**
 * Time distributions for flow-matching training: `'beta'` is Beta(1, 2) (density 2(1 − t), more samples near the
 * prior end, as the thesis), drawn by the inverse CDF t = 1 − √(1 − u); `'uniform'` is U(0, 1); `'logit-normal'` is
 * t = σ(z), z ~ N(0, 1) (density peaked at t = 0.5, as Esser et al. 2024 use for images): more training where the
 * prediction is hardest — on MNIST the path diagnostic found the field underfit mid-path (README, issue notes).
 */
import type { Rng } from '../util/rng.js';

/** The training-time distributions, for option checks and CLI choices. */
export const TIME_DISTRIBUTIONS = ['beta', 'uniform', 'logit-normal'] as const;

/** A training-time distribution (one of {@link TIME_DISTRIBUTIONS}). */
export type TimeDistribution = (typeof TIME_DISTRIBUTIONS)[number];

/** Fills `out` with draws of the distribution. */
export function sampleTimes(rng: Rng, dist: TimeDistribution, out: Float32Array): Float32Array {
  for (let i = 0; i < out.length; i++) {
    if (dist === 'logit-normal') {
      out[i] = 1 / (1 + Math.exp(-rng.normal()));
      continue;
    }
    const u = rng.uniform();
    out[i] = dist === 'beta' ? 1 - Math.sqrt(1 - u) : u;
  }
  return out;
}

/**
 * Spacing of the sampler's time grid: `'uniform'`; `'early'` puts more steps near t = 0, where x_t is mostly noise
 * and the prediction changes fastest (t_i = s_i², s uniform); `'cosine'` puts more steps near both ends
 * (t_i = (1 − cos(π·s_i))/2).
 */
export type TimeGridKind = 'uniform' | 'early' | 'cosine';

/**
 * The sampling time grid. Corrected semantics: `steps + 1` points from 0 to 1 (`steps` solver steps), spaced by
 * `kind`. Reference semantics: `linspace(0, 1, steps)` — `steps` grid points, so `steps − 1` steps (METHOD.md
 * §6.2); only `'uniform'` exists there.
 */
export function timeGrid(steps: number, semantics: 'corrected' | 'reference', kind: TimeGridKind = 'uniform'): Float64Array {
  const n = semantics === 'reference' ? steps : steps + 1;
  const g = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const s = n === 1 ? 0 : i / (n - 1);
    g[i] = kind === 'early' ? s * s : kind === 'cosine' ? (1 - Math.cos(Math.PI * s)) / 2 : s;
  }
  g[n - 1] = n === 1 ? 0 : 1; // exact end point whatever the spacing
  return g;
}
