/**
 * Functional diversity: average pairwise Jensen–Shannon divergence between networks' predictive distributions
 * (thesis definition, METHOD.md §8.2). **This is a reconstruction**: the published code has no implementation and
 * the thesis leaves the inputs, the kernel, the bandwidth and the normalisation unspecified. We fix them as METHOD.md
 * §8.2 suggests:
 *
 * - inputs: the first K examples of the split (K = `numInputs`, default 1,000);
 * - each network i gives the point set A_i = {softmax(f(θ_i, x_k))}_k ⊂ Δ^{C−1}, represented by the first C−1
 *   probability coordinates (the last is determined; a full-covariance KDE would be singular);
 * - p_i is an isotropic Gaussian KDE on A_i with Scott's-rule bandwidth h_i = σ_i·K^{−1/(C−1+4)}, where σ_i² is the
 *   mean over coordinates of the per-coordinate sample variance (ddof 1) of A_i (floored at 1e-12 to keep a
 *   degenerate set finite);
 * - for a pair (i, j) both densities are evaluated at the pooled points X = A_i ∪ A_j (2K points) and each is
 *   renormalised to sum to 1 over X, giving discrete distributions P and Q; JSD(i, j) = ½·KL(P‖M) + ½·KL(Q‖M),
 *   M = (P+Q)/2, natural log, so 0 ≤ JSD ≤ ln 2 and JSD = 0 for identical sets. (The thesis formula sums each KL
 *   term over its own set only; the pooled-support form is the well-defined divergence of the two renormalised
 *   KDEs.)
 * - Diversity(S) = (1/N²) Σ_{i,j} JSD(i, j), including the zero i = j terms (thesis), estimated as
 *   ((N−1)/N)·mean over distinct pairs; when there are more than `maxPairs` distinct pairs a uniform random subset
 *   of them is used.
 *
 * Cost: O(N·K²·C) for the per-network self densities plus O(pairs·K²·C), dominated by 2·K² exponentials per pair;
 * with K = 1,000 about 0.1 s per pair on one busy CPU core (32 networks, all 496 pairs: 40 s).
 * Reported magnitudes in the thesis (MNIST): ~1e-3 for flow samples, 2e-5 for SGD networks; our numbers are only
 * comparable with each other, not with the thesis table.
 */
import { type Architecture, checkBatch } from '../arch/Architecture.js';
import type { Task } from '../tasks/Task.js';
import { Rng } from '../util/rng.js';
import { checkInt, checkOptionKeys, optionKeys } from '../util/validate.js';
import { rangeIndex, resolveEvalOptions, SPLIT_EVAL_KEYS, type SplitEvalOptions } from './evaluate.js';
import { forEachLogits, prepareInputs, yieldToLoop } from './forward.js';
import { distinctPairs, type Summary, summarize } from './stats.js';
import { resolveSplit } from './taskData.js';

/** Options of {@link functionalDiversity}. */
export interface DiversityOptions extends SplitEvalOptions {
  /** Number of fixed inputs K: the first K examples of the split (default 1,000, capped at the split size). */
  numInputs?: number;
  /** Maximum number of distinct pairs evaluated (default 256); more pairs are subsampled uniformly. */
  maxPairs?: number;
  /** Pair-subsampling seed (default 0). */
  seed?: number;
}

/** Result of {@link functionalDiversity}. */
export interface DiversityResult {
  /** (1/N²) Σ_{i,j} JSD(i, j) including i = j (the thesis' definition), estimated from the evaluated pairs. */
  readonly diversity: number;
  /** JSD over the evaluated distinct pairs (mean ± population std, nats). */
  readonly pairJsd: Summary;
  /** Per evaluated pair, Float64Array. */
  readonly values: Float64Array;
  /** The pairs (i, j), i < j, Int32Array of length 2·pairs. */
  readonly pairs: Int32Array;
  /** Whether the pairs are a random subset of all distinct pairs. */
  readonly subsampled: boolean;
  /** K actually used. */
  readonly numInputs: number;
  readonly ms: number;
}

const DIVERSITY_KEYS = optionKeys<DiversityOptions>()([...SPLIT_EVAL_KEYS, 'numInputs', 'maxPairs', 'seed'] as const);

/**
 * Average pairwise JSD of the networks' predictive distributions (see the module doc for the exact, reconstructed
 * definition).
 * @param task the task
 * @param arch the base MLP
 * @param weights Float32Array N×P (N ≥ 2)
 * @param opts see {@link DiversityOptions}
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad weights, ERR_INVALID for N < 2 or bad options
 */
export async function functionalDiversity(task: Task, arch: Architecture, weights: Float32Array, opts: DiversityOptions = {}): Promise<DiversityResult> {
  checkOptionKeys('functionalDiversity', opts, DIVERSITY_KEYS);
  const t0 = performance.now();
  const N = checkBatch(arch, 'weights', weights);
  checkInt('number of networks', N, 2);
  const o = resolveEvalOptions(opts);
  const s = resolveSplit(task, arch, o.split);
  const K = Math.min(checkInt('numInputs', opts.numInputs ?? 1000, 1), s.n);
  const maxPairs = checkInt('maxPairs', opts.maxPairs ?? 256, 1);
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  const d = arch.widths[0]!;
  const C = arch.widths[arch.numLayers]!;
  const D = Math.max(1, C - 1);

  // Pairs: all i < j, or a uniform subset of distinct ones.
  const { pairs, subsampled } = distinctPairs(N, maxPairs, rng);
  const count = pairs.length / 2;
  const involved = new Uint8Array(N);
  for (const p of pairs) involved[p] = 1;

  // Probability points of the involved networks: [i][k][D] (first C−1 coordinates; all of them when C = 1).
  const pts = new Float64Array(N * K * D);
  const prep = prepareInputs(s.x.subarray(0, K * d), K, d);
  const idx = rangeIndex(N).filter((i) => involved[i] === 1);
  const fo: { groupSize?: number; rowChunk?: number } = {};
  if (o.groupSize !== undefined) fo.groupSize = o.groupSize;
  if (o.rowChunk !== undefined) fo.rowChunk = o.rowChunk;
  await forEachLogits(arch, weights, idx, prep, fo, (z, r0, R, g0, G) => {
    for (let r = 0; r < R; r++) {
      for (let g = 0; g < G; g++) {
        const zb = (r * G + g) * C;
        let max = -Infinity;
        for (let c = 0; c < C; c++) max = Math.max(max, o.scale * z[zb + c]!);
        let se = 0;
        for (let c = 0; c < C; c++) se += Math.exp(o.scale * z[zb + c]! - max);
        const pb = (idx[g0 + g]! * K + r0 + r) * D;
        for (let c = 0; c < D; c++) pts[pb + c] = Math.exp(o.scale * z[zb + c]! - max) / se;
      }
    }
  });

  // Scott bandwidths and self densities p_i(A_i) (unnormalised kernel sums; constants cancel on renormalisation).
  const inv2h2 = new Float64Array(N);
  const self = new Float64Array(N * K);
  const factor = K ** (-1 / (D + 4));
  for (const i of idx) {
    const base = i * K * D;
    let varSum = 0;
    for (let c = 0; c < D; c++) {
      let m = 0;
      for (let k = 0; k < K; k++) m += pts[base + k * D + c]!;
      m /= K;
      let v = 0;
      for (let k = 0; k < K; k++) v += (pts[base + k * D + c]! - m) ** 2;
      varSum += K > 1 ? v / (K - 1) : 0;
    }
    const sigma2 = Math.max(varSum / D, 1e-12);
    const h2 = sigma2 * factor * factor;
    inv2h2[i] = 1 / (2 * h2);
    kernelSums(pts, base, pts, base, K, D, inv2h2[i]!, self, i * K);
  }
  await yieldToLoop();

  const values = new Float64Array(count);
  const crossI = new Float64Array(K);
  const crossJ = new Float64Array(K);
  for (let p = 0; p < count; p++) {
    const i = pairs[2 * p]!;
    const j = pairs[2 * p + 1]!;
    // crossI[x ∈ A_j] = Σ_{a∈A_i} k_i(x, a); crossJ[x ∈ A_i] = Σ_{b∈A_j} k_j(x, b) — one distance matrix, two kernels.
    crossSums(pts, i * K * D, j * K * D, K, D, inv2h2[i]!, inv2h2[j]!, crossI, crossJ);
    let zi = 0;
    let zj = 0;
    for (let k = 0; k < K; k++) {
      zi += self[i * K + k]! + crossI[k]!;
      zj += self[j * K + k]! + crossJ[k]!;
    }
    let jsd = 0;
    for (let k = 0; k < K; k++) {
      // Point k of A_i: P = p_i(self)/Z_i, Q = p_j(cross)/Z_j; point k of A_j: P = crossI/Z_i, Q = self_j/Z_j.
      jsd += jsdTerm(self[i * K + k]! / zi, crossJ[k]! / zj);
      jsd += jsdTerm(crossI[k]! / zi, self[j * K + k]! / zj);
    }
    values[p] = Math.max(0, jsd);
    if ((p & 15) === 15) await yieldToLoop();
  }
  const pairJsd = summarize(values);
  return { diversity: ((N - 1) / N) * pairJsd.mean, pairJsd, values, pairs, subsampled, numInputs: K, ms: performance.now() - t0 };
}

/**
 * Kernel terms below exp(−40) ≈ 4e-18 are skipped: each normalisation sums at most 2K² terms and includes the K
 * self terms of 1, so its relative change is below 8e-18·K ≤ 1e-14 (K ≤ 1e4), far below what the JSD can resolve.
 */
const CUTOFF = 40;

/** ½·P·log(2P/(P+Q)) + ½·Q·log(2Q/(P+Q)) with 0·log 0 = 0. */
function jsdTerm(P: number, Q: number): number {
  const M = P + Q;
  if (M === 0) return 0;
  let t = 0;
  if (P > 0) t += P * Math.log((2 * P) / M);
  if (Q > 0) t += Q * Math.log((2 * Q) / M);
  return 0.5 * t;
}

/** out[o + x] = Σ_a exp(−‖X_x − A_a‖²·c) for K query points X and K centres A. */
function kernelSums(A: Float64Array, ab: number, X: Float64Array, xb: number, K: number, D: number, c: number, out: Float64Array, o: number): void {
  for (let x = 0; x < K; x++) {
    let s = 0;
    const xo = xb + x * D;
    for (let a = 0; a < K; a++) {
      const ao = ab + a * D;
      let d2 = 0;
      for (let q = 0; q < D; q++) {
        const t = X[xo + q]! - A[ao + q]!;
        d2 += t * t;
      }
      const e = d2 * c;
      if (e < CUTOFF) s += Math.exp(-e);
    }
    out[o + x] = s;
  }
}

function crossSums(pts: Float64Array, ib: number, jb: number, K: number, D: number, ci: number, cj: number, crossI: Float64Array, crossJ: Float64Array): void {
  crossI.fill(0);
  crossJ.fill(0);
  for (let a = 0; a < K; a++) {
    const ao = ib + a * D;
    let sJ = 0;
    for (let b = 0; b < K; b++) {
      const bo = jb + b * D;
      let d2 = 0;
      for (let q = 0; q < D; q++) {
        const t = pts[ao + q]! - pts[bo + q]!;
        d2 += t * t;
      }
      const ei = d2 * ci;
      const ej = d2 * cj;
      if (ei < CUTOFF) crossI[b]! += Math.exp(-ei); // centre a ∈ A_i at query b ∈ A_j
      if (ej < CUTOFF) sJ += Math.exp(-ej); // centre b ∈ A_j at query a ∈ A_i
    }
    crossJ[a] = sJ;
  }
}
