/**
 * Permutations of hidden neurons, the symmetry that weight-space models must respect (METHOD.md §4).
 *
 * A permutation set for one network is an Int32Array of length H = Σ_{l=1}^{L−1} n_l: the hidden layers'
 * permutations concatenated in layer order (layer l's segment starts at {@link hiddenOffsets}(arch)[l−1]).
 * Convention: `p[j] = k` means neuron j of the permuted network is neuron k of the original one. Applying it to
 * layer l moves the incoming weights (column j ← column k of the (in, out) block), the bias (b'_j = b_k) and the
 * outgoing weights (row j of layer l+1's block ← row k), so the network computes exactly the same function.
 * Inputs (layer 0) and outputs (layer L) are never permuted. A batch of B permutation sets is B·H values.
 */
import { type Architecture, checkBatch } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import { Rng } from '../util/rng.js';
import { checkInt, invalidArgument } from '../util/validate.js';

/** Total number of hidden neurons H = Σ_{l=1}^{L−1} n_l (the length of one permutation set). */
export function numHidden(arch: Architecture): number {
  let h = 0;
  for (let l = 1; l < arch.numLayers; l++) h += arch.widths[l]!;
  return h;
}

/** Offsets of each hidden layer's segment in a permutation set: element l−1 for layer l (1…L−1). */
export function hiddenOffsets(arch: Architecture): Int32Array {
  const o = new Int32Array(Math.max(0, arch.numLayers - 1));
  let h = 0;
  for (let l = 1; l < arch.numLayers; l++) {
    o[l - 1] = h;
    h += arch.widths[l]!;
  }
  return o;
}

/**
 * Checks a batch of permutation sets: Int32Array of length H or B·H whose every layer segment is a permutation.
 * @returns the number of sets (1 for length H; 1 also when H = 0)
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_INVALID naming the first bad segment
 */
export function checkPermutations(arch: Architecture, name: string, perms: unknown, batch?: number): number {
  const H = numHidden(arch);
  if (!(perms instanceof Int32Array)) throw invalidArgument(name, `Int32Array of length H or B·H (H = ${H} hidden neurons of ${arch.key})`, perms, 'ERR_DTYPE');
  if (H === 0) {
    if (perms.length !== 0) throw invalidArgument(name, `an empty Int32Array (${arch.key} has no hidden neurons)`, perms, 'ERR_SHAPE');
    return 1;
  }
  const okLen = perms.length === H || (batch !== undefined ? perms.length === batch * H : perms.length > 0 && perms.length % H === 0);
  if (!okLen) {
    throw invalidArgument(name, `Int32Array of length H = ${H} or B·H${batch !== undefined ? ` = ${batch * H}` : ''} (${arch.key})`, perms, 'ERR_SHAPE');
  }
  const sets = perms.length / H;
  const offs = hiddenOffsets(arch);
  const seen = new Int32Array(H);
  let stamp = 0;
  for (let s = 0; s < sets; s++) {
    for (let l = 1; l < arch.numLayers; l++) {
      const n = arch.widths[l]!;
      const base = s * H + offs[l - 1]!;
      stamp++;
      for (let j = 0; j < n; j++) {
        const k = perms[base + j]!;
        if (k < 0 || k >= n || seen[k] === stamp) {
          throw new WsfError(`Expected \`${name}\` set ${s}, layer ${l} (${n} neurons) to be a permutation of 0…${n - 1} but position ${j} holds ${k}${k >= 0 && k < n ? ' twice' : ''}`, 'ERR_INVALID');
        }
        seen[k] = stamp;
      }
    }
  }
  return sets;
}

/**
 * Applies one permutation set per network (or one shared set) to a batch of flat networks. Exact: values are
 * moved, never recomputed, and the function of every network is unchanged.
 * @param arch the base MLP
 * @param flat Float32Array B×P (flat layout)
 * @param perms Int32Array of length H (applied to every network) or B·H (one set per network); see the module doc
 * @param out optional Float32Array B×P to write into (must not alias `flat`); allocated when omitted
 * @returns the permuted networks, B×P
 * @throws WsfError ERR_DTYPE / ERR_SHAPE for bad arrays, ERR_INVALID when a segment is not a permutation or
 *   `out` overlaps `flat` (non-finite weights are moved like any other value)
 */
export function permuteNetworks(arch: Architecture, flat: Float32Array, perms: Int32Array, out?: Float32Array): Float32Array {
  const B = checkBatch(arch, 'flat', flat, { finite: false });
  const sets = checkPermutations(arch, 'perms', perms, B);
  const P = arch.numParams;
  const dst = out ?? new Float32Array(B * P);
  if (!(dst instanceof Float32Array) || dst.length !== B * P) throw invalidArgument('out', `Float32Array of length B·P = ${B * P}`, dst, 'ERR_SHAPE');
  if (dst.buffer === flat.buffer && dst.byteOffset < flat.byteOffset + flat.byteLength && flat.byteOffset < dst.byteOffset + dst.byteLength) {
    throw new WsfError('`out` must not overlap `flat` (the permutation reads and writes different positions)', 'ERR_INVALID');
  }
  const H = numHidden(arch);
  const offs = hiddenOffsets(arch);
  const L = arch.numLayers;
  for (let b = 0; b < B; b++) {
    const src = b * P;
    const pb = sets === 1 ? 0 : b * H;
    for (let l = 1; l <= L; l++) {
      const nIn = arch.widths[l - 1]!;
      const nOut = arch.widths[l]!;
      const inBase = l > 1 ? pb + offs[l - 2]! : -1; // P_{l−1}; identity for the inputs
      const outBase = l < L ? pb + offs[l - 1]! : -1; // P_l; identity for the outputs
      const wo = arch.weightOffset(l);
      for (let i = 0; i < nIn; i++) {
        const si = inBase < 0 ? i : perms[inBase + i]!;
        const srcRow = src + wo + si * nOut;
        const dstRow = src + wo + i * nOut;
        if (outBase < 0) {
          dst.set(flat.subarray(srcRow, srcRow + nOut), dstRow);
        } else {
          for (let j = 0; j < nOut; j++) dst[dstRow + j] = flat[srcRow + perms[outBase + j]!]!;
        }
      }
      const bo = src + arch.biasOffset(l);
      for (let j = 0; j < nOut; j++) dst[bo + j] = flat[bo + (outBase < 0 ? j : perms[outBase + j]!)]!;
    }
  }
  return dst;
}

/**
 * Identity permutation sets (every hidden neuron stays where it is).
 * @param arch the base MLP
 * @param count number of sets B (default 1)
 * @returns Int32Array of length B·H
 */
export function identityPermutations(arch: Architecture, count = 1): Int32Array {
  const H = numHidden(arch);
  const out = new Int32Array(count * H);
  const offs = hiddenOffsets(arch);
  for (let s = 0; s < count; s++) {
    for (let l = 1; l < arch.numLayers; l++) for (let j = 0; j < arch.widths[l]!; j++) out[s * H + offs[l - 1]! + j] = j;
  }
  return out;
}

/**
 * Uniformly random permutation sets.
 * @param arch the base MLP
 * @param rng a seeded {@link Rng} or a seed (integer)
 * @param count number of sets B (default 1)
 * @returns Int32Array of length B·H
 * @throws WsfError ERR_INVALID for a bad `count`
 */
export function randomPermutations(arch: Architecture, rng: Rng | number, count = 1): Int32Array {
  checkInt('count', count, 1);
  const r = typeof rng === 'number' ? new Rng(rng) : rng;
  const H = numHidden(arch);
  const out = new Int32Array(count * H);
  const offs = hiddenOffsets(arch);
  for (let s = 0; s < count; s++) {
    for (let l = 1; l < arch.numLayers; l++) out.set(r.permutation(arch.widths[l]!), s * H + offs[l - 1]!);
  }
  return out;
}

/**
 * Inverts permutation sets layer by layer: `permuteNetworks(permuteNetworks(θ, p), invertPermutations(p)) = θ`.
 * @param arch the base MLP
 * @param perms Int32Array of length H or B·H
 * @returns Int32Array of the same length
 * @throws WsfError as {@link checkPermutations}
 */
export function invertPermutations(arch: Architecture, perms: Int32Array): Int32Array {
  const sets = checkPermutations(arch, 'perms', perms);
  const H = numHidden(arch);
  const offs = hiddenOffsets(arch);
  const out = new Int32Array(perms.length);
  for (let s = 0; s < sets; s++) {
    for (let l = 1; l < arch.numLayers; l++) {
      const base = s * H + offs[l - 1]!;
      for (let j = 0; j < arch.widths[l]!; j++) out[base + perms[base + j]!] = j;
    }
  }
  return out;
}

/**
 * Composes permutation sets: the result applies `first`, then `second`
 * (`permuteNetworks(θ, compose(first, second)) = permuteNetworks(permuteNetworks(θ, first), second)`).
 * @param arch the base MLP
 * @param first Int32Array of length H or B·H
 * @param second Int32Array of length H or B·H
 * @returns Int32Array of length max(|first|, |second|)
 * @throws WsfError as {@link checkPermutations}; ERR_SHAPE for two batches of different sizes
 */
export function composePermutations(arch: Architecture, first: Int32Array, second: Int32Array): Int32Array {
  const s1 = checkPermutations(arch, 'first', first);
  const s2 = checkPermutations(arch, 'second', second);
  if (s1 !== 1 && s2 !== 1 && s1 !== s2) throw new WsfError(`Expected permutation batches of equal size but received ${s1} and ${s2} sets`, 'ERR_SHAPE');
  const H = numHidden(arch);
  const sets = Math.max(s1, s2);
  const out = new Int32Array(sets * H);
  for (let s = 0; s < sets; s++) {
    const b1 = s1 === 1 ? 0 : s * H;
    const b2 = s2 === 1 ? 0 : s * H;
    const offs = hiddenOffsets(arch);
    for (let l = 1; l < arch.numLayers; l++) {
      const o = offs[l - 1]!;
      // (second ∘ first)[j]: neuron j after both = neuron second[j] after first = neuron first[second[j]] originally.
      for (let j = 0; j < arch.widths[l]!; j++) out[s * H + o + j] = first[b1 + o + second[b2 + o + j]!]!;
    }
  }
  return out;
}
