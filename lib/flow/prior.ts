/**
 * Priors p0 over flat weight vectors.
 * - `gaussian`: every coordinate N(mean, std²) (the thesis: std 0.1, mean 0; the Gaussian toy: std 1).
 * - `init`: a network initialisation scheme — zero biases and weights N(0, std²) (`'normal'`, std 0.1 as the
 *   zoos' default init) or N(0, gain²/fan_in) (`'fanin'`, He-style).
 * - `zoo`: the Gaussian fitted to the training networks (beyond the thesis): their mean and the empirical covariance
 *   of `members` random networks, scaled by `scale` — x0 = μ + scale·Σ_k ε_k (x_k − μ)/√m. The flow then only has
 *   to learn how the zoo departs from a Gaussian. The flow fits it on its first training data ({@link fitZooPrior});
 *   its statistics are saved with the flow.
 * Normalized and Geometric flows canonicalise prior samples (done by the flow, not here).
 */
import type { Architecture } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import { fillNormalFast } from '../util/fastNormal.js';
import type { Rng } from '../util/rng.js';
import { checkInt, checkNumber } from '../util/validate.js';

/** Prior specification. */
export type PriorSpec =
  | { kind: 'gaussian'; std?: number; mean?: number }
  | { kind: 'init'; scheme?: 'normal' | 'fanin'; std?: number; gain?: number }
  | { kind: 'zoo'; members?: number; scale?: number };

/** The fitted statistics of a `zoo` prior: the mean (P) and m basis rows scale·(x_k − μ)/√m (m × P). */
export interface ZooPriorStats {
  readonly mean: Float32Array;
  readonly basis: Float32Array;
}

/** Checks a prior specification's fields. @throws WsfError ERR_INVALID naming the bad field */
export function checkPriorSpec(spec: PriorSpec): void {
  if (spec.kind === 'gaussian') {
    checkNumber('prior.std', spec.std ?? 0.1, Number.MIN_VALUE);
    checkNumber('prior.mean', spec.mean ?? 0);
  } else if (spec.kind === 'init') {
    checkNumber('prior.std', spec.std ?? 0.1, Number.MIN_VALUE);
    checkNumber('prior.gain', spec.gain ?? Math.SQRT2, Number.MIN_VALUE);
  } else if (spec.kind === 'zoo') {
    checkInt('prior.members', spec.members ?? 256, 1);
    checkNumber('prior.scale', spec.scale ?? 1, 0);
  }
}

/**
 * The Gaussian fitted to T networks of P parameters (rows of `weights`): the f64 mean μ of all rows and the basis
 * scale·(x_k − μ)/√m over m = min(T, members) member rows — all rows when m = T, else m distinct rows drawn from `rng`
 * — so that μ + Σ_k ε_k·basis_k with ε ~ N(0, I) has covariance scale²·(1/m) Σ_k (x_k − μ)(x_k − μ)ᵀ. Shared by the
 * `zoo` prior and the Gaussian-fit baseline (eval/baselines.ts).
 */
export function fitGaussian(P: number, weights: Float32Array, members: number, scale: number, rng: Rng): { mean: Float64Array; basis: Float32Array; members: number } {
  const T = weights.length / P;
  const m = Math.min(T, members);
  const mean = new Float64Array(P);
  for (let i = 0; i < T; i++) for (let p = 0; p < P; p++) mean[p]! += weights[i * P + p]!;
  for (let p = 0; p < P; p++) mean[p]! /= T;
  const rows = m === T ? new Int32Array(T).map((_, i) => i) : rng.permutation(T).slice(0, m);
  const basis = new Float32Array(m * P);
  const c = scale / Math.sqrt(m);
  for (let k = 0; k < m; k++) {
    const src = rows[k]! * P;
    for (let p = 0; p < P; p++) basis[k * P + p] = (weights[src + p]! - mean[p]!) * c;
  }
  return { mean, basis, members: m };
}

/**
 * Draws from a fitted Gaussian: out[b] = mean + Σ_k eps[b·m + k]·basis[k] for every row b of `out`, accumulated in
 * f64 and rounded to f32 (m = basis rows; `eps` holds m standard normals per row).
 */
export function drawGaussianFit(mean: ArrayLike<number>, basis: Float32Array, eps: ArrayLike<number>, out: Float32Array): Float32Array {
  const P = mean.length;
  const m = basis.length / P;
  const acc = new Float64Array(P);
  for (let b = 0; b < out.length / P; b++) {
    for (let p = 0; p < P; p++) acc[p] = mean[p]!;
    for (let k = 0; k < m; k++) {
      const e = eps[b * m + k]!;
      const row = k * P;
      for (let p = 0; p < P; p++) acc[p]! += e * basis[row + p]!;
    }
    for (let p = 0; p < P; p++) out[b * P + p] = acc[p]!;
  }
  return out;
}

/** Fits a `zoo` prior to training networks (T × P) with {@link fitGaussian}; the mean is kept (and saved) as f32. */
export function fitZooPrior(arch: Architecture, spec: Extract<PriorSpec, { kind: 'zoo' }>, weights: Float32Array, rng: Rng): ZooPriorStats {
  const fit = fitGaussian(arch.numParams, weights, checkInt('prior.members', spec.members ?? 256, 1), checkNumber('prior.scale', spec.scale ?? 1, 0), rng);
  return { mean: Float32Array.from(fit.mean), basis: fit.basis };
}

/**
 * Draws B prior samples into `out` (length B·P).
 * @param stats the fitted statistics, required for the `zoo` prior
 * @throws WsfError ERR_INVALID for a `zoo` prior without statistics (the flow fits them when it trains) or with
 *   statistics of another architecture
 */
export function samplePrior(arch: Architecture, spec: PriorSpec, rng: Rng, out: Float32Array, stats?: ZooPriorStats): Float32Array {
  const P = arch.numParams;
  const B = out.length / P;
  if (spec.kind === 'gaussian') {
    const std = spec.std ?? 0.1;
    const mean = spec.mean ?? 0;
    return fillNormalFast(rng, out, mean, std);
  }
  if (spec.kind === 'zoo') {
    if (stats === undefined) throw new WsfError("the 'zoo' prior is fitted to the training networks: train the flow (fit) before drawing from it", 'ERR_INVALID');
    if (stats.mean.length !== P) {
      throw new WsfError(`the 'zoo' prior was fitted to networks of ${stats.mean.length} parameters, not ${P} (${arch.key}); it cannot be transferred to another architecture`, 'ERR_INVALID');
    }
    return drawGaussianFit(stats.mean, stats.basis, fillNormalFast(rng, new Float32Array(B * (stats.basis.length / P)), 0, 1), out);
  }
  const scheme = spec.scheme ?? 'normal';
  for (let b = 0; b < B; b++) {
    const base = b * P;
    for (let l = 1; l <= arch.numLayers; l++) {
      const fanIn = arch.widths[l - 1]!;
      const std = scheme === 'normal' ? (spec.std ?? 0.1) : (spec.gain ?? Math.SQRT2) / Math.sqrt(fanIn);
      const o = base + arch.weightOffset(l);
      const n = fanIn * arch.widths[l]!;
      fillNormalFast(rng, out.subarray(o, o + n), 0, std);
      out.fill(0, base + arch.biasOffset(l), base + arch.biasOffset(l) + arch.widths[l]!);
    }
  }
  return out;
}
