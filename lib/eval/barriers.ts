/**
 * Loss barriers along straight lines between networks (linear mode connectivity, METHOD.md §8.4): for random pairs
 * (θ_a, θ_b), the loss at the midpoint of the flat vectors, (θ_a + θ_b)/2, relative to the endpoints:
 *   barrier = L(mid) − (L(θ_a) + L(θ_b))/2   (`relative: true`, default)   or   L(mid)   (`relative: false`).
 * Permutation alignment should lower it (thesis, UCI: 0.244 ± 0.009 unaligned → 0.070 ± 0.001 aligned, 250 networks).
 * Losses are exact means over the split (see `evaluate.ts`).
 */
import { type Architecture, checkBatch } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import type { Task } from '../tasks/Task.js';
import { Rng } from '../util/rng.js';
import { checkInt, checkOptionKeys, optionKeys } from '../util/validate.js';
import { lossAndCorrect, resolveEvalOptions, SPLIT_EVAL_KEYS, type SplitEvalOptions } from './evaluate.js';
import { prepareSplit } from './forward.js';
import { distinctPairs, type Summary, summarize } from './stats.js';
import { resolveSplit } from './taskData.js';

/** Options of {@link lossBarriers}. */
export interface BarrierOptions extends SplitEvalOptions {
  /** Number of distinct random pairs i < j (default 256); all pairs when there are at most this many. */
  pairs?: number;
  /** Report L(mid) − mean endpoint loss (default true) or the plain midpoint loss. */
  relative?: boolean;
  /** Pair-sampling seed (default 0). */
  seed?: number;
  /**
   * Optional map applied to the batch of midpoints before evaluation (Float32Array M×P → M×P), e.g. the scale
   * canonicalisation for Normalized/Geometric networks (the reference's optional midpoint normalisation).
   * Endpoints are evaluated as given.
   */
  transformMidpoints?: (mid: Float32Array) => Float32Array;
}

/** Result of {@link lossBarriers}. */
export interface BarrierResult extends Summary {
  /** Per pair, Float64Array (barrier or midpoint loss). */
  readonly values: Float64Array;
  /** Pairs (a, b), a < b, Int32Array of length 2·pairs. */
  readonly pairs: Int32Array;
  /** Midpoint loss per pair and the mean endpoint loss per pair, Float64Array. */
  readonly midpointLoss: Float64Array;
  readonly endpointLoss: Float64Array;
  readonly relative: boolean;
  readonly ms: number;
}

const BARRIER_KEYS = optionKeys<BarrierOptions>()([...SPLIT_EVAL_KEYS, 'pairs', 'relative', 'seed', 'transformMidpoints'] as const);

/**
 * Mean ± std of the midpoint loss barrier over random pairs of networks.
 * @param task the task
 * @param arch the base MLP
 * @param weights Float32Array B×P (B ≥ 2)
 * @param opts see {@link BarrierOptions}
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad weights, ERR_INVALID for B < 2 or bad options,
 *   ERR_SHAPE when `transformMidpoints` returns the wrong length
 */
export async function lossBarriers(task: Task, arch: Architecture, weights: Float32Array, opts: BarrierOptions = {}): Promise<BarrierResult> {
  checkOptionKeys('lossBarriers', opts, BARRIER_KEYS);
  const t0 = performance.now();
  const B = checkBatch(arch, 'weights', weights);
  checkInt('number of networks', B, 2);
  const o = resolveEvalOptions(opts);
  const s = resolveSplit(task, arch, o.split);
  const want = checkInt('pairs', opts.pairs ?? 256, 1);
  const relative = opts.relative ?? true;
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  const { pairs } = distinctPairs(B, want, rng);
  const M = pairs.length / 2;
  const P = arch.numParams;
  let mid: Float32Array = new Float32Array(M * P);
  for (let k = 0; k < M; k++) {
    const a = pairs[2 * k]! * P;
    const b = pairs[2 * k + 1]! * P;
    const m = k * P;
    for (let p = 0; p < P; p++) mid[m + p] = 0.5 * (weights[a + p]! + weights[b + p]!);
  }
  if (opts.transformMidpoints !== undefined) {
    mid = opts.transformMidpoints(mid);
    if (!(mid instanceof Float32Array) || mid.length !== M * P) throw new WsfError(`Expected transformMidpoints to return a Float32Array of length ${M * P}`, 'ERR_SHAPE');
  }
  const prep = prepareSplit(s, arch.widths[0]!);
  const midIdx = new Int32Array(M).map((_, k) => k);
  const midLoss = (await lossAndCorrect(arch, mid, midIdx, s.y, prep, o)).loss;
  const endpointLoss = new Float64Array(M);
  if (relative) {
    const used = new Uint8Array(B);
    for (const p of pairs) used[p] = 1;
    const idx = Int32Array.from([...used.keys()].filter((k) => used[k] === 1));
    const l = (await lossAndCorrect(arch, weights, idx, s.y, prep, o)).loss;
    const byNet = new Float64Array(B);
    idx.forEach((k, u) => (byNet[k] = l[u]! / s.n));
    for (let k = 0; k < M; k++) endpointLoss[k] = 0.5 * (byNet[pairs[2 * k]!]! + byNet[pairs[2 * k + 1]!]!);
  }
  const values = new Float64Array(M);
  for (let k = 0; k < M; k++) {
    midLoss[k]! /= s.n;
    values[k] = relative ? midLoss[k]! - endpointLoss[k]! : midLoss[k]!;
  }
  return { ...summarize(values), values, pairs, midpointLoss: midLoss, endpointLoss, relative, ms: performance.now() - t0 };
}
