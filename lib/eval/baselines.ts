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
 *
 * Distances are measured in the space the caller passes (flat weights; aligned and/or canonicalised as the caller
 * chooses), optionally through a `transform` hook applied to whole batches (Float32Array B×P → B×P').
 */
import { type Architecture, checkBatch } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
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

/** Exact f64 NN search with early abandoning (partial sums checked every 64 coordinates). */
function nearest(q: Float32Array, qo: number, T: Float32Array, nT: number, dim: number, skip: number): { index: number; dist: number } {
  let best = Infinity;
  let arg = -1;
  for (let t = 0; t < nT; t++) {
    if (t === skip) continue;
    const to = t * dim;
    let s = 0;
    for (let p0 = 0; p0 < dim && s < best; p0 += 64) {
      const e = Math.min(dim, p0 + 64);
      for (let p = p0; p < e; p++) {
        const d = q[qo + p]! - T[to + p]!;
        s += d * d;
      }
    }
    if (s < best) {
      best = s;
      arg = t;
    }
  }
  return { index: arg, dist: Math.sqrt(best) };
}

/**
 * Nearest-neighbour distances of samples to a training set, with the training set's own leave-one-out NN distances.
 * Exact (f64), O((S + Q)·T·P) with early abandoning; e.g. 1,000 samples × 8,000 WDBC networks is a few seconds.
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
  const sv = new Float64Array(S);
  const sn = new Int32Array(S);
  for (let i = 0; i < S; i++) {
    const r = nearest(s.data, i * dim, t.data, T, dim, -1);
    sv[i] = r.dist;
    sn[i] = r.index;
  }
  const queries = Q === T ? new Int32Array(T).map((_, k) => k) : rng.permutation(T).slice(0, Q).sort();
  const lv = new Float64Array(Q);
  const ln = new Int32Array(Q);
  for (let k = 0; k < Q; k++) {
    const i = queries[k]!;
    const r = nearest(t.data, i * dim, t.data, T, dim, i);
    lv[k] = r.dist;
    ln[k] = r.index;
  }
  const samplesStats = { ...summarize(sv), values: sv, neighbour: sn };
  const loo = { ...summarize(lv), values: lv, neighbour: ln, queries };
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
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad arrays, ERR_INVALID for bad options or an
 *   unreachable distance under `transform`
 */
export function noiseBaseline(
  arch: Architecture,
  train: Float32Array,
  opts: { distance: number; count?: number; seed?: number; transform?: BatchTransform },
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
    let lo = 0;
    let hi = distance / Math.sqrt(P);
    let grow = 0;
    while (meanDist(make(hi)) < distance) {
      hi *= 2;
      if (++grow > 60) throw new WsfError(`noiseBaseline: a mean distance of ${distance} is not reachable through \`transform\``, 'ERR_INVALID');
    }
    for (let it = 0; it < 60; it++) {
      const mid = 0.5 * (lo + hi);
      if (meanDist(make(mid)) < distance) lo = mid;
      else hi = mid;
    }
    sigma = 0.5 * (lo + hi);
  }
  const weights = make(sigma);
  return { weights, source, sigma, meanDistance: meanDist(weights) };
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
