/**
 * Memorisation checks and simple baselines for generated weights (DESIGN.md, "Sample quality is measured, not
 * assumed"; beyond the thesis).
 *
 * - {@link nearestNeighbourDistances}: each sample's Euclidean distance to its nearest training network, reported
 *   beside the training set's own leave-one-out nearest-neighbour distances: samples much closer to the training set
 *   than its points are to each other suggest memorisation.
 * - {@link noiseBaseline}: training networks plus isotropic Gaussian noise, scaled so that the mean distance to the
 *   originals equals a requested distance (e.g. the samples' mean NN distance) — "is the flow better than jitter?".
 * - {@link averageBaseline}: means of k random training networks — "is the flow better than averaging?".
 * - {@link gaussianBaseline}: draws from the Gaussian with the training networks' mean and empirical covariance.
 *
 * Distances are measured in the space the caller passes (flat weights; aligned and/or canonicalised as the caller
 * chooses), optionally through a `transform` hook applied to whole batches (Float32Array B×P → B×P').
 */
import { type Architecture, checkBatch } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import { drawGaussianFit, drawMixtureComponents, fitGaussian, fitMixturePrior } from '../flow/prior.js';
import { Rng } from '../util/rng.js';
import { checkInt, checkNumber, invalidArgument } from '../util/validate.js';
import { type Summary, summarize } from './stats.js';

/** A batch transform (Float32Array B×P → Float32Array B×P') applied before distances are measured. */
export type BatchTransform = (flat: Float32Array) => Float32Array;

/** Distances with their summary and the index of the nearest neighbour. */
export interface NeighbourStats extends Summary {
  /** Distance per query, Float64Array. */
  readonly values: Float64Array;
  /** Index (into the training batch) of each query's nearest neighbour, Int32Array. */
  readonly neighbour: Int32Array;
}

/** Result of {@link nearestNeighbourDistances}. */
export interface NearestNeighbourResult {
  /** Each sample's distance to its nearest training network. */
  readonly samples: NeighbourStats;
  /** Leave-one-out NN distances of (a subsample of) the training networks among the training set. */
  readonly trainLoo: NeighbourStats & { readonly queries: Int32Array };
  /** samples.mean / trainLoo.mean (< 1: samples sit closer to the training set than its own points do). */
  readonly ratio: number;
  readonly ms: number;
}

function applyTransform(name: string, flat: Float32Array, B: number, transform: BatchTransform | undefined): { data: Float32Array; dim: number } {
  if (transform === undefined) return { data: flat, dim: flat.length / B };
  const t = transform(flat);
  if (!(t instanceof Float32Array) || t.length === 0 || t.length % B !== 0) {
    throw new WsfError(`Expected \`transform\` to return a Float32Array of length B·P' (B = ${B}) for \`${name}\``, 'ERR_SHAPE');
  }
  return { data: t, dim: t.length / B };
}

function sqNorms(x: Float32Array, n: number, dim: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let p = i * dim, e = p + dim; p < e; p++) s += x[p]! * x[p]!;
    out[i] = s;
  }
  return out;
}

/**
 * Nearest training row for each query row `rows[k]` of `Q` (skipping training row `skip[k]` when given).
 * Candidates are ranked by ‖q‖² + ‖t‖² − 2·q·t with f64 dot products in 2×4 register blocks (≈ 3.5× faster in V8
 * than direct differences; f64 keeps the cancellation error ≈ 1e-16·(‖q‖² + ‖t‖²)); the winner's distance is then
 * recomputed exactly from the differences.
 */
function nearestRows(Q: Float32Array, rows: Int32Array, T: Float32Array, nT: number, dim: number, skip: Int32Array | undefined): { dist: Float64Array; index: Int32Array } {
  const nQ = rows.length;
  const tn = sqNorms(T, nT, dim);
  const best = new Float64Array(nQ).fill(Infinity);
  const index = new Int32Array(nQ).fill(-1);
  const qn = new Float64Array(nQ);
  for (let k = 0; k < nQ; k++) {
    let s = 0;
    for (let p = rows[k]! * dim, e = p + dim; p < e; p++) s += Q[p]! * Q[p]!;
    qn[k] = s;
  }
  const consider = (k: number, t: number, dot: number): void => {
    if (skip !== undefined && skip[k] === t) return;
    const d2 = qn[k]! + tn[t]! - 2 * dot;
    if (d2 < best[k]!) {
      best[k] = d2;
      index[k] = t;
    }
  };
  let k = 0;
  for (; k < nQ; k += 2) {
    const two = k + 1 < nQ;
    const a0 = rows[k]! * dim;
    const a1 = two ? rows[k + 1]! * dim : a0;
    let t = 0;
    for (; t + 4 <= nT; t += 4) {
      const b0 = t * dim;
      const b1 = b0 + dim;
      const b2 = b1 + dim;
      const b3 = b2 + dim;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0; // prettier-ignore
      for (let p = 0; p < dim; p++) {
        const x0 = Q[a0 + p]!;
        const x1 = Q[a1 + p]!;
        const y0 = T[b0 + p]!;
        const y1 = T[b1 + p]!;
        const y2 = T[b2 + p]!;
        const y3 = T[b3 + p]!;
        s00 += x0 * y0;
        s01 += x0 * y1;
        s02 += x0 * y2;
        s03 += x0 * y3;
        s10 += x1 * y0;
        s11 += x1 * y1;
        s12 += x1 * y2;
        s13 += x1 * y3;
      }
      consider(k, t, s00);
      consider(k, t + 1, s01);
      consider(k, t + 2, s02);
      consider(k, t + 3, s03);
      if (two) {
        consider(k + 1, t, s10);
        consider(k + 1, t + 1, s11);
        consider(k + 1, t + 2, s12);
        consider(k + 1, t + 3, s13);
      }
    }
    for (; t < nT; t++) {
      const b0 = t * dim;
      let s0 = 0;
      let s1 = 0;
      for (let p = 0; p < dim; p++) {
        s0 += Q[a0 + p]! * T[b0 + p]!;
        s1 += Q[a1 + p]! * T[b0 + p]!;
      }
      consider(k, t, s0);
      if (two) consider(k + 1, t, s1);
    }
  }
  const dist = new Float64Array(nQ);
  for (let q = 0; q < nQ; q++) {
    const a = rows[q]! * dim;
    const b = index[q]! * dim;
    let s = 0;
    for (let p = 0; p < dim; p++) {
      const d = Q[a + p]! - T[b + p]!;
      s += d * d;
    }
    dist[q] = Math.sqrt(s);
  }
  return { dist, index };
}

/**
 * Nearest-neighbour distances of samples to a training set, with the training set's own leave-one-out NN distances.
 * f64 throughout; cost (S + Q)·T·P multiply-adds (e.g. 1,500 × 8,000 × 802 ≈ 10⁹ for WDBC; `bench/align_eval.ts` times it).
 * @param arch the base MLP (P)
 * @param samples Float32Array S×P
 * @param train Float32Array T×P (T ≥ 2)
 * @param opts.transform optional batch transform applied to both sets first (see the module doc)
 * @param opts.looQueries training networks used as leave-one-out queries (default min(T, 500), a seeded subsample)
 * @param opts.seed subsampling seed (default 0)
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad arrays, ERR_INVALID for bad options
 */
export function nearestNeighbourDistances(
  arch: Architecture,
  samples: Float32Array,
  train: Float32Array,
  opts: { transform?: BatchTransform; looQueries?: number; seed?: number } = {},
): NearestNeighbourResult {
  const t0 = performance.now();
  const S = checkBatch(arch, 'samples', samples);
  const T = checkBatch(arch, 'train', train);
  checkInt('number of training networks', T, 2);
  const Q = Math.min(T, checkInt('looQueries', opts.looQueries ?? 500, 1));
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  const s = applyTransform('samples', samples, S, opts.transform);
  const t = applyTransform('train', train, T, opts.transform);
  if (s.dim !== t.dim) throw new WsfError(`\`transform\` returned ${s.dim} values per sample but ${t.dim} per training network`, 'ERR_SHAPE');
  const dim = s.dim;
  const all = new Int32Array(S).map((_, k) => k);
  const sr = nearestRows(s.data, all, t.data, T, dim, undefined);
  const queries = Q === T ? new Int32Array(T).map((_, k) => k) : rng.permutation(T).slice(0, Q).sort();
  const lr = nearestRows(t.data, queries, t.data, T, dim, queries);
  const samplesStats = { ...summarize(sr.dist), values: sr.dist, neighbour: sr.index };
  const loo = { ...summarize(lr.dist), values: lr.dist, neighbour: lr.index, queries };
  return { samples: samplesStats, trainLoo: loo, ratio: samplesStats.mean / loo.mean, ms: performance.now() - t0 };
}

/** Result of {@link noiseBaseline}. */
export interface NoiseBaselineResult {
  /** Float32Array count×P: train[source[i]] + σ·z_i. */
  readonly weights: Float32Array;
  /** Index of each output's training network, Int32Array. */
  readonly source: Int32Array;
  /** The noise standard deviation per coordinate. */
  readonly sigma: number;
  /** Achieved mean distance to the sources (measured after rounding to f32, through `transform` if given). */
  readonly meanDistance: number;
  /** False when the requested distance was not reachable through the transform and the farthest noise was used. */
  readonly reached: boolean;
}

/**
 * Trained networks plus isotropic Gaussian noise whose scale makes the mean distance to the originals equal
 * `distance`. Without a transform the scale is exact: σ = distance / mean‖z_i‖ for the drawn unit normals z_i.
 * With one, σ is found by bisection (60 halvings, same draws) so that the mean transformed distance
 * mean‖T(x_i + σz_i) − T(x_i)‖ matches.
 * Sources are distinct training networks when count ≤ T (seeded shuffle), cycling through reshuffles otherwise.
 * @param arch the base MLP
 * @param train Float32Array T×P
 * @param opts.distance target mean distance (> 0)
 * @param opts.count number of outputs (default T)
 * @param opts.seed seed (default 0)
 * @param opts.transform optional batch transform in which the distance is measured
 * @param opts.saturate when the distance is not reachable through `transform`, return the farthest reachable
 *   noise (`reached: false`) instead of throwing
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad arrays, ERR_INVALID for bad options or an
 *   unreachable distance under `transform`
 */
export function noiseBaseline(
  arch: Architecture,
  train: Float32Array,
  opts: { distance: number; count?: number; seed?: number; transform?: BatchTransform; saturate?: boolean },
): NoiseBaselineResult {
  const T = checkBatch(arch, 'train', train);
  if (opts === null || typeof opts !== 'object') throw invalidArgument('opts', 'options {distance, count?, seed?, transform?}', opts);
  const distance = checkNumber('distance', opts.distance, Number.MIN_VALUE);
  const count = checkInt('count', opts.count ?? T, 1);
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  const P = arch.numParams;
  const source = new Int32Array(count);
  let perm = rng.permutation(T);
  for (let i = 0, k = 0; i < count; i++, k++) {
    if (k === T) {
      perm = rng.permutation(T);
      k = 0;
    }
    source[i] = perm[k]!;
  }
  const base = new Float32Array(count * P);
  for (let i = 0; i < count; i++) base.set(train.subarray(source[i]! * P, (source[i]! + 1) * P), i * P);
  const z = rng.fillNormal(new Float64Array(count * P));
  const make = (sigma: number): Float32Array => {
    const w = new Float32Array(count * P);
    for (let k = 0; k < count * P; k++) w[k] = base[k]! + sigma * z[k]!;
    return w;
  };
  const baseT = opts.transform === undefined ? base : applyTransform('train', base, count, opts.transform).data;
  const meanDist = (w: Float32Array): number => {
    const wt = opts.transform === undefined ? w : applyTransform('noisy', w, count, opts.transform).data;
    const dim = wt.length / count;
    if (baseT.length !== wt.length) throw new WsfError('`transform` changed its output size between calls', 'ERR_SHAPE');
    let sum = 0;
    for (let i = 0; i < count; i++) {
      let s = 0;
      for (let p = 0; p < dim; p++) {
        const d = wt[i * dim + p]! - baseT[i * dim + p]!;
        s += d * d;
      }
      sum += Math.sqrt(s);
    }
    return sum / count;
  };
  let sigma: number;
  if (opts.transform === undefined) {
    let sum = 0;
    for (let i = 0; i < count; i++) {
      let s = 0;
      for (let p = 0; p < P; p++) s += z[i * P + p]! ** 2;
      sum += Math.sqrt(s);
    }
    sigma = distance / (sum / count);
  } else {
    // Grow σ until the distance is reached. A transform such as canonicalisation bounds the reachable distance
    // (sphere factors saturate), and very large σ overflows: both count as unreachable.
    let lo = 0;
    let hi = distance / Math.sqrt(P);
    let best = { sigma: 0, dist: 0 };
    let reached = false;
    for (let grow = 0; grow <= 60; grow++) {
      const d = meanDist(make(hi));
      if (!Number.isFinite(d)) break;
      if (d > best.dist) best = { sigma: hi, dist: d };
      if (d >= distance) {
        reached = true;
        break;
      }
      lo = hi;
      hi *= 2;
    }
    if (!reached) {
      if (opts.saturate !== true) {
        throw new WsfError(`noiseBaseline: a mean distance of ${distance} is not reachable through \`transform\` (the largest reached is ${best.dist}); pass saturate: true to use that instead`, 'ERR_INVALID');
      }
      const weights = make(best.sigma);
      return { weights, source, sigma: best.sigma, meanDistance: meanDist(weights), reached: false };
    }
    for (let it = 0; it < 60; it++) {
      const mid = 0.5 * (lo + hi);
      if (meanDist(make(mid)) < distance) lo = mid;
      else hi = mid;
    }
    sigma = 0.5 * (lo + hi);
  }
  const weights = make(sigma);
  return { weights, source, sigma, meanDistance: meanDist(weights), reached: true };
}

/**
 * Means of k distinct random training networks (f64 sums, rounded to f32).
 * @param arch the base MLP
 * @param train Float32Array T×P
 * @param opts.k networks per average (1 ≤ k ≤ T; default 2)
 * @param opts.count number of outputs (default T)
 * @param opts.seed seed (default 0)
 * @returns the averages (Float32Array count×P) and the averaged indices (Int32Array count×k)
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad arrays, ERR_INVALID for bad options
 */
export function averageBaseline(arch: Architecture, train: Float32Array, opts: { k?: number; count?: number; seed?: number } = {}): { weights: Float32Array; indices: Int32Array } {
  const T = checkBatch(arch, 'train', train);
  const k = checkInt('k', opts.k ?? 2, 1, T);
  const count = checkInt('count', opts.count ?? T, 1);
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  const P = arch.numParams;
  const weights = new Float32Array(count * P);
  const indices = new Int32Array(count * k);
  const pool = new Int32Array(T).map((_, i) => i);
  const acc = new Float64Array(P);
  for (let i = 0; i < count; i++) {
    // Partial Fisher–Yates: k distinct indices.
    for (let a = 0; a < k; a++) {
      const b = a + rng.int(T - a);
      const tmp = pool[a]!;
      pool[a] = pool[b]!;
      pool[b] = tmp;
    }
    acc.fill(0);
    for (let a = 0; a < k; a++) {
      const src = pool[a]! * P;
      indices[i * k + a] = pool[a]!;
      for (let p = 0; p < P; p++) acc[p]! += train[src + p]!;
    }
    for (let p = 0; p < P; p++) weights[i * P + p] = acc[p]! / k;
  }
  return { weights, indices };
}

/**
 * Draws from the Gaussian fitted to the training networks: their mean and empirical covariance,
 * x = μ + Σ_i ε_i (x_i − μ) / √m with ε_i ~ N(0, 1) over m member networks, so Cov(x) = (1/m) Σ_i (x_i − μ)(x_i − μ)ᵀ
 * exactly, without forming the P×P matrix — "is the flow better than a Gaussian fit of the zoo?". On an aligned
 * zoo this is a strong baseline (the mean carries what the networks share, the covariance how they differ).
 * μ is always the mean of all T rows (f64); the members are all rows when `members` ≥ T, else that many distinct
 * seeded random rows (cost count·m·P).
 * @param arch the base MLP
 * @param train Float32Array T×P
 * @param opts.count number of outputs (default T)
 * @param opts.members rows spanning the covariance (default min(T, 1024))
 * @param opts.seed seed (default 0)
 * @returns the draws (Float32Array count×P) and the mean (Float64Array P)
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad arrays, ERR_INVALID for bad options
 */
export function gaussianBaseline(arch: Architecture, train: Float32Array, opts: { count?: number; members?: number; seed?: number } = {}): { weights: Float32Array; mean: Float64Array; members: number } {
  const T = checkBatch(arch, 'train', train);
  if (opts === null || typeof opts !== 'object') throw invalidArgument('opts', 'options {count?, members?, seed?}', opts);
  const count = checkInt('count', opts.count ?? T, 1);
  const members = checkInt('members', opts.members ?? 1024, 1);
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  const fit = fitGaussian(arch.numParams, train, members, 1, rng); // the zoo prior's fit, with an f64 mean
  const eps = rng.fillNormal(new Float64Array(count * fit.members));
  const weights = drawGaussianFit(fit.mean, fit.basis, eps, new Float32Array(count * arch.numParams));
  return { weights, mean: fit.mean, members: fit.members };
}

/**
 * Draws from the Gaussian mixture fitted to the training networks — the `mixture` prior's own fit (k-means into
 * `components` clusters, one {@link gaussianBaseline}-style Gaussian per cluster, weighted by cluster size) without a
 * flow: "is the flow better than the mixture it starts from?". Component counts per draw are proportional to the
 * weights (largest remainders), so the draws cover every cluster in proportion.
 * @param arch the base MLP
 * @param train Float32Array T×P
 * @param opts.components clusters (default 8)
 * @param opts.count number of outputs (default T)
 * @param opts.members rows spanning each cluster's covariance (default 256)
 * @param opts.std isotropic N(cluster mean, std²·I) components instead of the clusters' covariances
 * @param opts.scale spread around each component's mean (default 1: the cluster's own covariance)
 * @param opts.runs the run id of every training network: one cluster per run instead of k-means (`components` unused)
 * @param opts.seed seed (default 0)
 * @returns the draws (Float32Array count×P), the component of each draw and the cluster of each training row
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad arrays, ERR_INVALID for bad options
 */
export function mixtureBaseline(
  arch: Architecture,
  train: Float32Array,
  opts: { components?: number; runs?: Int32Array; count?: number; members?: number; scale?: number; std?: number; seed?: number } = {},
): { weights: Float32Array; component: Int32Array; labels: Int32Array } {
  const T = checkBatch(arch, 'train', train);
  if (opts === null || typeof opts !== 'object') throw invalidArgument('opts', 'options {components?, runs?, count?, members?, scale?, std?, seed?}', opts);
  const count = checkInt('count', opts.count ?? T, 1);
  const components = checkInt('components', opts.components ?? 8, 1, Math.min(T, 4096));
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  const std = opts.std === undefined ? {} : { std: checkNumber('std', opts.std, Number.MIN_VALUE) };
  const by = opts.runs !== undefined ? { by: 'run' as const } : {};
  const { stats, labels } = fitMixturePrior(arch, { kind: 'mixture', components, members: checkInt('members', opts.members ?? 256, 1), scale: checkNumber('scale', opts.scale ?? 1, 0), ...std, ...by }, train, rng, opts.runs);
  const share = stats.components.map((c) => c.weight * count);
  const n = share.map(Math.floor);
  const order = share.map((v, k) => [v - Math.floor(v), k] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let r = count - n.reduce((a, b) => a + b, 0), i = 0; r > 0; r--, i++) n[order[i]![1]]!++;
  const component = new Int32Array(count);
  let o = 0;
  n.forEach((c, k) => component.fill(k, o, (o += c)));
  return { weights: drawMixtureComponents(stats, component, rng, new Float32Array(count * arch.numParams)), component, labels };
}
