/**
 * Priors p0 over flat weight vectors.
 * - `gaussian`: every coordinate N(mean, std²) (the thesis: std 0.1, mean 0; the Gaussian toy: std 1).
 * - `init`: a network initialisation scheme — zero biases and weights N(0, std²) (`'normal'`, std 0.1 as the
 *   zoos' default init) or N(0, gain²/fan_in) (`'fanin'`, He-style).
 * - `zoo`: the Gaussian fitted to the training networks (beyond the thesis): their mean and the empirical covariance
 *   of `members` random networks, scaled by `scale` — x0 = μ + scale·Σ_k ε_k (x_k − μ)/√m. The flow then only has
 *   to learn how the zoo departs from a Gaussian. The flow fits it on its first training data ({@link fitZooPrior});
 *   its statistics are saved with the flow.
 * - `mixture`: a mixture of such Gaussians, one per cluster of the training networks (k-means with `components`
 *   clusters, weighted by cluster size; beyond the thesis). Training pairs each network with a draw from its own
 *   cluster's Gaussian, so the start point already says which mode a path ends in; sampling picks a component by
 *   its weight. Made for zoos of several independent runs, whose aligned networks still sit in separate basins
 *   that a single-Gaussian prior makes the field average over (README, "Why MNIST samples fall short"). With `std`
 *   each component is instead the isotropic N(cluster mean, std²·I): the cluster's mean says which mode, the noise
 *   hides the rest of the cluster's shape (the thesis prior, re-centred per mode). With `by: 'run'` the clusters are the
 *   zoo's training runs (one component per run id; `components` is then ignored) instead of k-means clusters.
 * Normalized and Geometric flows canonicalise prior samples (done by the flow, not here).
 */
import type { Architecture } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import { fillNormalFast } from '../util/fastNormal.js';
import type { Rng } from '../util/rng.js';
import { checkInt, checkNumber, checkOptionKeys } from '../util/validate.js';

/** Prior specification. */
export type PriorSpec =
  | { kind: 'gaussian'; std?: number; mean?: number }
  | { kind: 'init'; scheme?: 'normal' | 'fanin'; std?: number; gain?: number }
  | { kind: 'zoo'; members?: number; scale?: number }
  | { kind: 'mixture'; components?: number; members?: number; scale?: number; std?: number; by?: 'kmeans' | 'run' };

/** The fitted statistics of a `zoo` prior: the mean (P) and m basis rows scale·(x_k − μ)/√m (m × P). */
export interface ZooPriorStats {
  readonly mean: Float32Array;
  readonly basis: Float32Array;
}

/** One component of a {@link MixturePriorStats}: its weight and Gaussian fit. */
export interface MixtureComponent extends ZooPriorStats {
  readonly weight: number;
}

/** The fitted statistics of a `mixture` prior: one Gaussian fit per cluster of the training networks. */
export interface MixturePriorStats {
  readonly components: readonly MixtureComponent[];
  /** With clusters by run: the run id of each component. */
  readonly runs?: Int32Array;
  /** Isotropic standard deviation around each component mean (components then have no basis). */
  readonly std?: number;
}

/** Statistics of either fitted prior. */
export type PriorStats = ZooPriorStats | MixturePriorStats;

/** True for the statistics of a `mixture` prior. */
export function isMixture(stats: PriorStats): stats is MixturePriorStats {
  return 'components' in stats;
}

/** The fields of each kind of {@link PriorSpec}. */
const PRIOR_KEYS: Readonly<Record<PriorSpec['kind'], readonly string[]>> = {
  gaussian: ['kind', 'std', 'mean'],
  init: ['kind', 'scheme', 'std', 'gain'],
  zoo: ['kind', 'members', 'scale'],
  mixture: ['kind', 'components', 'members', 'scale', 'std', 'by'],
};

/** Checks a prior specification's fields. @throws WsfError ERR_INVALID naming the bad field */
export function checkPriorSpec(spec: PriorSpec): void {
  // A misspelt field would otherwise leave its default in place without a word (and be saved with the flow).
  const keys = PRIOR_KEYS[spec.kind];
  if (keys !== undefined) checkOptionKeys(`prior (kind '${spec.kind}')`, spec, keys);
  if (spec.kind === 'gaussian') {
    checkNumber('prior.std', spec.std ?? 0.1, Number.MIN_VALUE);
    checkNumber('prior.mean', spec.mean ?? 0);
  } else if (spec.kind === 'init') {
    checkNumber('prior.std', spec.std ?? 0.1, Number.MIN_VALUE);
    checkNumber('prior.gain', spec.gain ?? Math.SQRT2, Number.MIN_VALUE);
  } else if (spec.kind === 'zoo') {
    checkInt('prior.members', spec.members ?? 256, 1);
    checkNumber('prior.scale', spec.scale ?? 1, 0);
  } else if (spec.kind === 'mixture') {
    checkInt('prior.components', spec.components ?? 8, 1, 4096);
    checkInt('prior.members', spec.members ?? 256, 1);
    checkNumber('prior.scale', spec.scale ?? 1, 0);
    if (spec.std !== undefined) checkNumber('prior.std', spec.std, Number.MIN_VALUE);
    if (spec.by !== undefined && spec.by !== 'kmeans' && spec.by !== 'run') throw new WsfError(`Expected 'kmeans' or 'run' for \`prior.by\` but received ${JSON.stringify(spec.by)}`, 'ERR_INVALID');
  }
}

/**
 * k-means (Lloyd's algorithm from a k-means++ start) on T rows of P values: squared Euclidean distances in f64,
 * ties to the lower cluster index, an emptied cluster re-seeded with the row farthest from its centre. Stops when no
 * label changes or after `maxIter` rounds.
 * @returns the K × P centres (f64), the label of every row and the rounds run
 * @throws WsfError ERR_INVALID when K exceeds the row count
 */
export function kmeans(P: number, weights: Float32Array, K: number, rng: Rng, maxIter = 50): { centres: Float64Array; labels: Int32Array; iterations: number } {
  const T = weights.length / P;
  if (!Number.isInteger(T) || T < 1) throw new WsfError(`Expected a whole number of rows of ${P} values but received ${weights.length} values`, 'ERR_SHAPE');
  if (K > T) throw new WsfError(`Expected at most as many clusters as networks (${T}) but received ${K}`, 'ERR_INVALID');
  const norm2 = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    let s = 0;
    for (let p = 0; p < P; p++) s += weights[i * P + p]! * weights[i * P + p]!;
    norm2[i] = s;
  }
  const centres = new Float64Array(K * P);
  const cn2 = new Float64Array(K);
  const dist2 = (i: number, k: number): number => {
    let dot = 0;
    const a = i * P;
    const c = k * P;
    for (let p = 0; p < P; p++) dot += weights[a + p]! * centres[c + p]!;
    return Math.max(0, norm2[i]! - 2 * dot + cn2[k]!);
  };
  const setCentre = (k: number, row: number): void => {
    let s = 0;
    for (let p = 0; p < P; p++) {
      const v = weights[row * P + p]!;
      centres[k * P + p] = v;
      s += v * v;
    }
    cn2[k] = s;
  };
  // k-means++: each next centre drawn with probability ∝ the squared distance to the nearest centre so far.
  setCentre(0, rng.int(T));
  const near = new Float64Array(T).fill(Infinity);
  for (let k = 1; k < K; k++) {
    let total = 0;
    for (let i = 0; i < T; i++) {
      near[i] = Math.min(near[i]!, dist2(i, k - 1));
      total += near[i]!;
    }
    let row = T - 1;
    if (total > 0) {
      let u = rng.uniform() * total;
      for (let i = 0; i < T; i++) {
        u -= near[i]!;
        if (u < 0) {
          row = i;
          break;
        }
      }
    } else {
      row = rng.int(T);
    }
    setCentre(k, row);
  }
  const labels = new Int32Array(T).fill(-1);
  const best = new Float64Array(T);
  let it = 0;
  while (it < maxIter) {
    it++;
    let changed = 0;
    for (let i = 0; i < T; i++) {
      let bk = 0;
      let bd = Infinity;
      for (let k = 0; k < K; k++) {
        const d = dist2(i, k);
        if (d < bd) {
          bd = d;
          bk = k;
        }
      }
      best[i] = bd;
      if (labels[i] !== bk) {
        labels[i] = bk;
        changed++;
      }
    }
    if (changed === 0) break;
    const count = new Float64Array(K);
    centres.fill(0);
    for (let i = 0; i < T; i++) {
      const k = labels[i]!;
      count[k]!++;
      for (let p = 0; p < P; p++) centres[k * P + p]! += weights[i * P + p]!;
    }
    for (let k = 0; k < K; k++) {
      if (count[k] === 0) {
        // Re-seed an empty cluster with the row farthest from its centre (and make it that row's cluster).
        let far = 0;
        for (let i = 1; i < T; i++) if (best[i]! > best[far]!) far = i;
        best[far] = 0;
        labels[far] = k;
        setCentre(k, far);
        continue;
      }
      let s = 0;
      for (let p = 0; p < P; p++) {
        const v = centres[k * P + p]! / count[k]!;
        centres[k * P + p] = v;
        s += v * v;
      }
      cn2[k] = s;
    }
  }
  return { centres, labels, iterations: it };
}

/**
 * Fits a `mixture` prior: k-means on the training networks (T × P, as given) — or, with `by: 'run'`, their run ids —
 * then the Gaussian fit of {@link fitGaussian} to each cluster (its mean and the covariance of up to `members` of its
 * networks), weighted by the cluster's share of the networks.
 * @param runs the run id of every network (required with `by: 'run'`)
 * @returns the statistics and the cluster of every training network
 * @throws WsfError ERR_INVALID for `by: 'run'` without run ids of every network
 */
export function fitMixturePrior(arch: Architecture, spec: Extract<PriorSpec, { kind: 'mixture' }>, weights: Float32Array, rng: Rng, runs?: Int32Array): { stats: MixturePriorStats; labels: Int32Array } {
  const P = arch.numParams;
  const members = checkInt('prior.members', spec.members ?? 256, 1);
  const scale = checkNumber('prior.scale', spec.scale ?? 1, 0);
  const T = weights.length / P;
  const std = spec.std === undefined ? undefined : checkNumber('prior.std', spec.std, Number.MIN_VALUE);
  let labels: Int32Array;
  let runIds: Int32Array | undefined;
  if (spec.by === 'run') {
    if (runs === undefined || runs.length !== T) throw new WsfError(`prior.by 'run' needs the run id of every network (${T}), but ${runs === undefined ? 'none were given' : `${runs.length} were given`}`, 'ERR_INVALID');
    runIds = Int32Array.from(new Set(runs)).sort();
    const index = new Map(Array.from(runIds, (r, k) => [r, k] as const));
    labels = Int32Array.from(runs, (r) => index.get(r)!);
  } else {
    const K = checkInt('prior.components', spec.components ?? 8, 1, 4096);
    if (K > T) throw new WsfError(`prior.components is ${K}${spec.components === undefined ? ' (the default)' : ''}, more clusters than the ${T} training network${T === 1 ? '' : 's'}: give at most ${T}, or prior.by 'run'`, 'ERR_INVALID');
    labels = kmeans(P, weights, K, rng).labels;
  }
  const components: MixtureComponent[] = [];
  for (const rows of membersOf(labels, runIds?.length ?? (spec.components ?? 8))) {
    const sub = new Float32Array(rows.length * P);
    rows.forEach((r, j) => sub.set(weights.subarray(r * P, (r + 1) * P), j * P));
    const fit = fitGaussian(P, sub, std === undefined ? members : 0, scale, rng);
    components.push({ weight: rows.length / T, mean: Float32Array.from(fit.mean), basis: fit.basis });
  }
  return { stats: { components, ...(std !== undefined ? { std } : {}), ...(runIds !== undefined ? { runs: runIds } : {}) }, labels };
}

/** The rows of each cluster (labels in 0 … K − 1), in increasing order, in one pass. */
export function membersOf(labels: Int32Array, K: number): Int32Array[] {
  const count = new Int32Array(K);
  for (const l of labels) count[l]!++;
  const out = Array.from(count, (c) => new Int32Array(c));
  count.fill(0);
  for (let i = 0; i < labels.length; i++) out[labels[i]!]![count[labels[i]!]!++] = i;
  return out;
}

/**
 * The component of each training network: its run's component when the mixture is by run and `runs` are given (a run
 * the fit did not see gets the nearest component), else the component whose mean is nearest.
 */
export function componentsOf(stats: MixturePriorStats, weights: Float32Array, runs?: Int32Array): Int32Array {
  if (stats.runs === undefined || runs === undefined) return nearestComponent(stats, weights);
  const index = new Map(Array.from(stats.runs, (r, k) => [r, k] as const));
  const near = runs.some((r) => !index.has(r)) ? nearestComponent(stats, weights) : undefined;
  return Int32Array.from(runs, (r, i) => index.get(r) ?? near![i]!);
}

/** The component of a mixture prior whose mean is nearest (squared Euclidean, f64) to each of the rows (T × P). */
export function nearestComponent(stats: MixturePriorStats, weights: Float32Array): Int32Array {
  const P = stats.components[0]!.mean.length;
  const T = weights.length / P;
  const labels = new Int32Array(T);
  for (let i = 0; i < T; i++) {
    let bd = Infinity;
    stats.components.forEach((c, k) => {
      let d = 0;
      for (let p = 0; p < P; p++) {
        const e = weights[i * P + p]! - c.mean[p]!;
        d += e * e;
      }
      if (d < bd) {
        bd = d;
        labels[i] = k;
      }
    });
  }
  return labels;
}

/**
 * Draws one row per entry of `components` from that component of a mixture prior into `out` (length
 * components.length · P).
 */
export function drawMixtureComponents(stats: MixturePriorStats, components: ArrayLike<number>, rng: Rng, out: Float32Array): Float32Array {
  const P = stats.components[0]!.mean.length;
  for (let b = 0; b < components.length; b++) {
    const c = stats.components[components[b]!]!;
    const m = c.basis.length / P;
    const row = out.subarray(b * P, (b + 1) * P);
    if (stats.std !== undefined) {
      fillNormalFast(rng, row, 0, stats.std);
      for (let p = 0; p < P; p++) row[p] = row[p]! + c.mean[p]!;
    } else {
      drawGaussianFit(c.mean, c.basis, fillNormalFast(rng, new Float32Array(Math.max(1, m)), 0, 1), row);
    }
  }
  return out;
}

/** Draws a component index from the mixture weights. */
function pickComponent(stats: MixturePriorStats, rng: Rng): number {
  let u = rng.uniform();
  const cs = stats.components;
  for (let k = 0; k < cs.length - 1; k++) {
    u -= cs[k]!.weight;
    if (u < 0) return k;
  }
  return cs.length - 1;
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
export function samplePrior(arch: Architecture, spec: PriorSpec, rng: Rng, out: Float32Array, stats?: PriorStats): Float32Array {
  const P = arch.numParams;
  const B = out.length / P;
  if (spec.kind === 'gaussian') {
    const std = spec.std ?? 0.1;
    const mean = spec.mean ?? 0;
    return fillNormalFast(rng, out, mean, std);
  }
  if (spec.kind === 'mixture') {
    if (stats === undefined || !isMixture(stats)) throw new WsfError("the 'mixture' prior is fitted to the training networks: train the flow (fit) before drawing from it", 'ERR_INVALID');
    const Pm = stats.components[0]!.mean.length;
    if (Pm !== P) {
      throw new WsfError(`the 'mixture' prior was fitted to networks of ${Pm} parameters, not ${P} (${arch.key}); it cannot be transferred to another architecture`, 'ERR_INVALID');
    }
    const ks = new Int32Array(B);
    for (let b = 0; b < B; b++) ks[b] = pickComponent(stats, rng);
    return drawMixtureComponents(stats, ks, rng, out);
  }
  if (spec.kind === 'zoo') {
    if (stats === undefined || isMixture(stats)) throw new WsfError("the 'zoo' prior is fitted to the training networks: train the flow (fit) before drawing from it", 'ERR_INVALID');
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
