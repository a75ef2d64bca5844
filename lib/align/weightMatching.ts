/**
 * Permutation alignment by weight matching (Ainsworth, Hayase & Srinivasa, "Git Re-Basin", 2023): for every network θ
 * find per-hidden-layer permutations π maximising ⟨θ_ref, π(θ)⟩ over all parameters, i.e. minimising
 * ‖θ_ref − π(θ)‖² (METHOD.md §4 — the same L2 objective the reference optimises with Sinkhorn + Adam, here solved
 * by exact assignments).
 *
 * Coordinate descent over layers: with the other layers' permutations fixed, the objective restricted to layer l is
 * linear in its permutation, with similarity S[j, k] between reference neuron j and candidate neuron k collecting
 * every parameter touching the neuron — incoming weights (rows permuted by P_{l−1}), bias and outgoing weights
 * (columns permuted by P_{l+1}) — so each layer is one exact linear assignment ({@link linearSumAssignment}).
 * Layers are visited in a seeded random order per sweep; a layer's permutation changes only when it strictly
 * improves the objective, so the objective never decreases and the iteration stops at a fixed point (a sweep with
 * no change) or after `maxIterations` sweeps. With one hidden layer (e.g. 784-10-10) one assignment is the exact
 * global optimum.
 */
import { type Architecture, checkBatch } from '../arch/Architecture.js';
import { type Summary, summarize } from '../eval/stats.js';
import { Rng } from '../util/rng.js';
import { checkInt, invalidArgument } from '../util/validate.js';
import { solveAssignment } from './assignment.js';
import { hiddenOffsets, numHidden, permuteNetworks } from './permutation.js';

/** Options of {@link alignNetworks}. */
export interface AlignOptions {
  /**
   * The reference: a network index into `weights`, or a separate network (Float32Array of length P, e.g. the
   * reference of an already aligned zoo). Default: the network nearest (Euclidean) to the mean of `weights`, a
   * deterministic choice that favours a typical network; the reference itself is left unchanged.
   */
  reference?: number | Float32Array;
  /** Maximum coordinate-descent sweeps over the hidden layers per network (default 100). */
  maxIterations?: number;
  /** Seed of the layer visiting order (default 0). */
  seed?: number;
}

/** Per-network Euclidean distances to the reference and their summary. */
export interface DistanceStats extends Summary {
  /** Float64Array of length B. */
  readonly values: Float64Array;
}

/** Result of {@link alignNetworks}. */
export interface AlignResult {
  /** The aligned networks, Float32Array B×P: `permuteNetworks(arch, weights, perms)`. */
  readonly aligned: Float32Array;
  /** Index of the reference in `weights`, or −1 when a separate reference network was passed. */
  readonly referenceIndex: number;
  /** The reference network, Float32Array of length P (a copy). */
  readonly reference: Float32Array;
  /** Permutation sets, Int32Array B×H (see `permutation.ts` for the convention). */
  readonly perms: Int32Array;
  /** Coordinate-descent sweeps used per network, Int32Array of length B (0 when there is no hidden layer). */
  readonly iterations: Int32Array;
  /** Number of networks that reached a fixed point within `maxIterations`. */
  readonly converged: number;
  /** Distances ‖θ_b − θ_ref‖ before alignment. */
  readonly distanceBefore: DistanceStats;
  /** Distances ‖π_b(θ_b) − θ_ref‖ after alignment (never larger than before). */
  readonly distanceAfter: DistanceStats;
  /** Wall-clock milliseconds. */
  readonly ms: number;
}

/**
 * Index of the network nearest (Euclidean, f64) to the mean of the batch.
 * @param arch the base MLP
 * @param weights Float32Array B×P
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad `weights`
 */
export function nearestToMean(arch: Architecture, weights: Float32Array): number {
  const B = checkBatch(arch, 'weights', weights);
  const P = arch.numParams;
  const mean = new Float64Array(P);
  for (let b = 0; b < B; b++) for (let p = 0, o = b * P; p < P; p++) mean[p]! += weights[o + p]!;
  for (let p = 0; p < P; p++) mean[p]! /= B;
  let best = 0;
  let bestD = Infinity;
  for (let b = 0; b < B; b++) {
    let d = 0;
    for (let p = 0, o = b * P; p < P; p++) {
      const t = weights[o + p]! - mean[p]!;
      d += t * t;
    }
    if (d < bestD) {
      bestD = d;
      best = b;
    }
  }
  return best;
}

function sqDist(a: Float32Array, ao: number, b: Float32Array, bo: number, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) {
    const t = a[ao + k]! - b[bo + k]!;
    s += t * t;
  }
  return s;
}

/**
 * Aligns every network of a batch to one reference by weight matching (see the module doc). Exactly
 * function-preserving; deterministic for a given seed.
 *
 * Cost per network and sweep: Σ_l n_l²·(n_{l−1} + n_{l+1} + 1) multiply-adds plus an O(n_l³) assignment per hidden
 * layer; e.g. 784-10-10 ≈ 80k, 30-16-16-2 ≈ 24k.
 * @param arch the base MLP
 * @param weights Float32Array B×P (flat layout)
 * @param opts see {@link AlignOptions}
 * @returns see {@link AlignResult}
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad `weights` or reference, ERR_INVALID for bad options
 */
export function alignNetworks(arch: Architecture, weights: Float32Array, opts: AlignOptions = {}): AlignResult {
  const t0 = performance.now();
  const B = checkBatch(arch, 'weights', weights);
  const P = arch.numParams;
  const maxIterations = checkInt('maxIterations', opts.maxIterations ?? 100, 1);
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));
  let referenceIndex: number;
  let ref: Float32Array;
  if (opts.reference instanceof Float32Array) {
    checkBatch(arch, 'reference', opts.reference);
    if (opts.reference.length !== P) throw invalidArgument('reference', `Float32Array of length P = ${P} (one network)`, opts.reference, 'ERR_SHAPE');
    referenceIndex = -1;
    ref = new Float32Array(opts.reference);
  } else if (opts.reference === undefined) {
    referenceIndex = nearestToMean(arch, weights);
    ref = weights.slice(referenceIndex * P, (referenceIndex + 1) * P);
  } else {
    referenceIndex = checkInt('reference', opts.reference, 0, B - 1);
    ref = weights.slice(referenceIndex * P, (referenceIndex + 1) * P);
  }

  const L = arch.numLayers;
  const H = numHidden(arch);
  const offs = hiddenOffsets(arch);
  const perms = new Int32Array(B * H);
  const iterations = new Int32Array(B);
  let converged = 0;
  let maxN = 1;
  for (let l = 1; l < L; l++) maxN = Math.max(maxN, arch.widths[l]!);
  const S = new Float64Array(maxN * maxN);
  const cand = new Int32Array(maxN);
  const order = new Int32Array(Math.max(0, L - 1));
  const before = new Float64Array(B);

  for (let b = 0; b < B; b++) {
    const base = b * P;
    before[b] = Math.sqrt(sqDist(weights, base, ref, 0, P));
    const pb = b * H;
    for (let l = 1; l < L; l++) for (let j = 0; j < arch.widths[l]!; j++) perms[pb + offs[l - 1]! + j] = j;
    if (L < 2) {
      converged++;
      continue;
    }
    let it = 0;
    let changed = true;
    while (changed && it < maxIterations) {
      changed = false;
      it++;
      for (let k = 0; k < L - 1; k++) order[k] = k + 1;
      if (L > 2) rng.shuffle(order);
      for (const l of order) {
        const n = arch.widths[l]!;
        const nIn = arch.widths[l - 1]!;
        const nNext = arch.widths[l + 1]!;
        const po = pb + offs[l - 1]!;
        const pIn = l > 1 ? pb + offs[l - 2]! : -1;
        const pNext = l + 1 < L ? pb + offs[l]! : -1;
        S.fill(0, 0, n * n);
        // Incoming weights: S[j,k] += Σ_i Wref[i→j]·W[P_{l−1}(i)→k], rows of (in, out) blocks.
        const wo = arch.weightOffset(l);
        for (let i = 0; i < nIn; i++) {
          const rRow = wo + i * n;
          const tRow = base + wo + (pIn < 0 ? i : perms[pIn + i]!) * n;
          for (let j = 0; j < n; j++) {
            const r = ref[rRow + j]!;
            if (r === 0) continue;
            const sr = j * n;
            for (let c = 0; c < n; c++) S[sr + c]! += r * weights[tRow + c]!;
          }
        }
        // Bias.
        const bo = arch.biasOffset(l);
        for (let j = 0; j < n; j++) {
          const r = ref[bo + j]!;
          if (r === 0) continue;
          for (let c = 0; c < n; c++) S[j * n + c]! += r * weights[base + bo + c]!;
        }
        // Outgoing weights: S[j,k] += Σ_m Wref[j→m]·W[k→P_{l+1}(m)].
        const wn = arch.weightOffset(l + 1);
        for (let j = 0; j < n; j++) {
          const rRow = wn + j * nNext;
          for (let c = 0; c < n; c++) {
            const tRow = base + wn + c * nNext;
            let s = 0;
            if (pNext < 0) for (let m = 0; m < nNext; m++) s += ref[rRow + m]! * weights[tRow + m]!;
            else for (let m = 0; m < nNext; m++) s += ref[rRow + m]! * weights[tRow + perms[pNext + m]!]!;
            S[j * n + c]! += s;
          }
        }
        solveAssignment(S, n, n, cand, -1);
        let oldObj = 0;
        let newObj = 0;
        for (let j = 0; j < n; j++) {
          oldObj += S[j * n + perms[po + j]!]!;
          newObj += S[j * n + cand[j]!]!;
        }
        // Accept only strict improvements (relative slack for rounding), so ties cannot make the descent cycle.
        if (newObj > oldObj + 1e-12 * Math.max(1, Math.abs(oldObj))) {
          let diff = false;
          for (let j = 0; j < n; j++) if (perms[po + j] !== cand[j]) diff = true;
          if (diff) {
            perms.set(cand.subarray(0, n), po);
            changed = true;
          }
        }
      }
      // One hidden layer: its assignment does not depend on anything else, so one sweep is the exact optimum.
      if (L === 2) changed = false;
    }
    iterations[b] = it;
    if (!changed) converged++;
  }
  const aligned = permuteNetworks(arch, weights, perms);
  const after = new Float64Array(B);
  for (let b = 0; b < B; b++) after[b] = Math.sqrt(sqDist(aligned, b * P, ref, 0, P));
  return {
    aligned,
    referenceIndex,
    reference: ref,
    perms,
    iterations,
    converged,
    distanceBefore: { ...summarize(before), values: before },
    distanceAfter: { ...summarize(after), values: after },
    ms: performance.now() - t0,
  };
}
