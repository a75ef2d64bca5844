/**
 * Couplings between a batch of prior samples x0 and data x1 (METHOD.md §5.2 step 3).
 * - `independent`: pairs as drawn.
 * - `ot`: exact mini-batch optimal transport on the B×B cost (squared Euclidean, or the squared geodesic
 *   distance summed over sphere factors plus the bias part). Corrected semantics uses the optimal permutation
 *   itself (every x0 and x1 used once); reference semantics draws B pairs with replacement from the plan, as the
 *   published code (about 1/e of each batch duplicated or dropped).
 * - `trajectory` (handled by the flow): each checkpoint is paired with the initialisation of its own run.
 */
import { linearSumAssignment } from '../align/assignment.js';
import type { Geometry } from '../geometry/Geometry.js';
import type { Rng } from '../util/rng.js';

/** Coupling kinds. */
/**
 * Pairing of prior draws and networks: independent, minibatch OT, each checkpoint with its run's initialisation
 * ('trajectory'), or OT within one component of a mixture prior at a time ('component-ot').
 */
export type Coupling = 'independent' | 'ot' | 'trajectory' | 'component-ot';
/** OT cost. */
export type OtCost = 'euclidean' | 'geodesic';

/** B×B cost matrix between rows of x0 and x1 (each B·P). */
export function couplingCost(x0: Float32Array, x1: Float32Array, P: number, cost: OtCost, geom?: Geometry): Float64Array {
  const B = x0.length / P;
  const C = new Float64Array(B * B);
  if (cost === 'euclidean' || geom === undefined || geom.kind !== 'geometric') {
    for (let i = 0; i < B; i++) {
      for (let j = 0; j < B; j++) {
        let s = 0;
        const a = i * P;
        const b = j * P;
        for (let p = 0; p < P; p++) {
          const d = x0[a + p]! - x1[b + p]!;
          s += d * d;
        }
        C[i * B + j] = s;
      }
    }
    return C;
  }
  // Geodesic: Σ_s d_s² over the sphere factors plus the squared bias distance, via batched dist on all pairs.
  const xs = new Float32Array(B * B * P);
  const ys = new Float32Array(B * B * P);
  for (let i = 0; i < B; i++) {
    for (let j = 0; j < B; j++) {
      xs.set(x0.subarray(i * P, (i + 1) * P), (i * B + j) * P);
      ys.set(x1.subarray(j * P, (j + 1) * P), (i * B + j) * P);
    }
  }
  const d = geom.dist(xs, ys);
  const F = geom.numFactors;
  for (let k = 0; k < B * B; k++) {
    let s = 0;
    for (let f = 0; f < F; f++) s += d[k * F + f]! ** 2;
    C[k] = s;
  }
  return C;
}

/**
 * Re-pairs a batch by mini-batch OT. Returns index arrays (i0, i1) of length B: pair k is (x0[i0[k]], x1[i1[k]]).
 */
export function otPairs(C: Float64Array, B: number, semantics: 'corrected' | 'reference', rng: Rng): { i0: Int32Array; i1: Int32Array } {
  const { rowToCol } = linearSumAssignment(C, B, B);
  const i0 = new Int32Array(B);
  const i1 = new Int32Array(B);
  for (let k = 0; k < B; k++) {
    // Reference: the exact plan is a permutation with mass 1/B per pair; B pairs drawn with replacement.
    const r = semantics === 'reference' ? rng.int(B) : k;
    i0[k] = r;
    i1[k] = rowToCol[r]!;
  }
  return { i0, i1 };
}
