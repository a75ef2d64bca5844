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
import { checkInt, checkOptionKeys, invalidArgument, optionKeys } from '../util/validate.js';
import { solveAssignment } from './assignment.js';
import { hiddenOffsets, identityPermutations, numHidden, permuteNetworks } from './permutation.js';

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
  /**
   * Group ids, one per network (e.g. a zoo's training-run ids). Networks of one group share one permutation: the one
   * that maximises the objective summed over the group, i.e. weight matching of the group's mean network (the
   * objective is linear in θ). Neurons keep their identity along a training run, so aligning each checkpoint on its
   * own can give checkpoints of one run different permutations, and their mean then blends different neurons.
   * When the reference is a network of `weights`, its group keeps the identity. Default: every network on its own.
   */
  groups?: ArrayLike<number>;
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
  /**
   * Distances ‖π_b(θ_b) − θ_ref‖ after alignment (never larger than before per network; with `groups`, never larger
   * summed over each group in squares — the group shares one permutation).
   */
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

const ALIGN_KEYS = optionKeys<AlignOptions>()(['reference', 'maxIterations', 'seed', 'groups'] as const);

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
  checkOptionKeys('alignNetworks', opts, ALIGN_KEYS);
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

  const H = numHidden(arch);
  const before = new Float64Array(B);
  for (let b = 0; b < B; b++) before[b] = Math.sqrt(sqDist(weights, b * P, ref, 0, P));
  let perms: Int32Array;
  let iterations: Int32Array;
  let converged = 0;
  if (opts.groups === undefined) {
    let flags: Uint8Array;
    ({ perms, iterations, convergedFlags: flags } = matchAll(arch, weights, ref, maxIterations, rng));
    for (const f of flags) converged += f;
  } else {
    const { index, count } = groupIndex(opts.groups, B);
    const G = count.length;
    // Each group's mean network (f64 sums): matching it maximises the group's summed objective.
    const sums = new Float64Array(G * P);
    for (let b = 0; b < B; b++) for (let p = 0, o = b * P, g = index[b]! * P; p < P; p++) sums[g + p]! += weights[o + p]!;
    const means = new Float32Array(G * P);
    for (let g = 0; g < G; g++) for (let p = 0; p < P; p++) means[g * P + p] = sums[g * P + p]! / count[g]!;
    const m = matchAll(arch, means, ref, maxIterations, rng);
    // The reference's own group defines the frame: it keeps the identity, so the reference stays unchanged.
    if (referenceIndex >= 0) m.perms.set(identityPermutations(arch), index[referenceIndex]! * H);
    perms = new Int32Array(B * H);
    iterations = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const g = index[b]!;
      perms.set(m.perms.subarray(g * H, (g + 1) * H), b * H);
      iterations[b] = m.iterations[g]!;
      converged += m.convergedFlags[g]!;
    }
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

/**
 * Weight matching of every network of `weights` (B×P) to `ref` on its own: per-network permutations, sweeps and
 * whether each reached a fixed point (see {@link alignNetworks}).
 */
function matchAll(arch: Architecture, weights: Float32Array, ref: Float32Array, maxIterations: number, rng: Rng): { perms: Int32Array; iterations: Int32Array; convergedFlags: Uint8Array } {
  const P = arch.numParams;
  const B = weights.length / P;
  const L = arch.numLayers;
  const H = numHidden(arch);
  const offs = hiddenOffsets(arch);
  const perms = new Int32Array(B * H);
  const iterations = new Int32Array(B);
  const convergedFlags = new Uint8Array(B);
  const identity = identityPermutations(arch);
  let maxN = 1;
  for (let l = 1; l < L; l++) maxN = Math.max(maxN, arch.widths[l]!);
  const S = new Float64Array(maxN * maxN);
  const cand = new Int32Array(maxN);
  const order = new Int32Array(Math.max(0, L - 1));

  for (let b = 0; b < B; b++) {
    const base = b * P;
    const pb = b * H;
    perms.set(identity, pb);
    if (L < 2) {
      convergedFlags[b] = 1;
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
    if (!changed) convergedFlags[b] = 1;
  }
  return { perms, iterations, convergedFlags };
}

/** Dense group indices 0..G−1 (in order of first appearance) for B group ids, and each group's size. */
export function groupIndex(groups: ArrayLike<number>, B: number): { index: Int32Array; count: number[] } {
  if (groups.length !== B) throw invalidArgument('groups', `one group id per network (length ${B})`, groups, 'ERR_SHAPE');
  const ids = new Map<number, number>();
  const index = new Int32Array(B);
  const count: number[] = [];
  for (let b = 0; b < B; b++) {
    const id = groups[b]!;
    if (!Number.isFinite(id)) throw invalidArgument('groups', 'finite group ids', id);
    let g = ids.get(id);
    if (g === undefined) {
      g = count.length;
      ids.set(id, g);
      count.push(0);
    }
    index[b] = g;
    count[g]!++;
  }
  return { index, count };
}
