/**
 * Scaling-symmetry canonicalisation of ReLU MLPs (METHOD.md §3) and its vector-Jacobian product.
 *
 * Per network, sequentially over the hidden layers l = 1…L−1: r_j = ‖incoming weights of neuron j‖ (current
 * values), the incoming weights and the bias of neuron j are divided by r_j and its outgoing weights (row j of
 * layer l+1) multiplied by r_j; then the last layer and its bias are scaled by c/‖A_L‖_F (c = `lastLayerNorm`).
 * Hidden activations are preserved exactly (ReLU is positively homogeneous) and the logits are multiplied by
 * c/‖A_L‖_F, so the argmax (accuracy) is unchanged. A neuron whose incoming weights are all zero (squared norm
 * below the smallest normal float) is left unchanged, as is an all-zero last layer: still function-preserving.
 */
import type { Architecture } from '../arch/Architecture.js';
import { checkBatch } from '../arch/Architecture.js';
import { type DeviceRequest, parseDeviceRequest, resolveDevice } from '../device.js';
import { checkF32, checkNumber } from '../util/validate.js';
import { checkArch, checkOptions, outArray, sharedPlan } from './plan.js';

/** Options of {@link canonicalize} and {@link canonicalizeBackward}. */
export interface CanonicalizeOptions {
  /** Frobenius norm c of the last layer afterwards, > 0. Default 1 (the published code; the thesis says √C). */
  lastLayerNorm?: number;
  /** Float32Array `[B·P]` for the result; allocated when omitted. For the forward it may be `flat` itself. */
  out?: Float32Array;
  /** Default `'auto'`. */
  device?: DeviceRequest;
}

function parse(opts: unknown): { c: number; out: Float32Array | undefined; device: DeviceRequest | undefined } {
  const o = checkOptions<CanonicalizeOptions>('opts', opts);
  const c = o.lastLayerNorm === undefined ? 1 : checkNumber('lastLayerNorm', o.lastLayerNorm, Number.MIN_VALUE, Number.MAX_VALUE);
  return { c, out: o.out, device: o.device === undefined ? undefined : parseDeviceRequest(o.device, 'device') };
}

/**
 * Canonicalises a batch of networks.
 * @param arch the networks' architecture
 * @param flat `[B·P]` networks in the flat layout
 * @returns `[B·P]` canonicalised networks (`opts.out` when given)
 * @throws WsfError ERR_DTYPE / ERR_SHAPE for a bad array, ERR_INVALID for a bad option, ERR_NO_CUDA
 */
export function canonicalize(arch: Architecture, flat: Float32Array, opts?: CanonicalizeOptions): Float32Array {
  checkArch(arch);
  const B = checkBatch(arch, 'flat', flat, { finite: false });
  const { c, out, device } = parse(opts);
  const y = outArray('out', out, B * arch.numParams);
  sharedPlan(arch).canonicalize(y, flat, c, resolveDevice(device));
  return y;
}

/**
 * The vector-Jacobian product of {@link canonicalize}: dx = J(flat)ᵀ·dOut (the forward is recomputed).
 * @param arch the networks' architecture
 * @param flat `[B·P]` the forward's input
 * @param dOut `[B·P]` gradient w.r.t. the forward's output
 * @returns `[B·P]` gradient w.r.t. `flat` (`opts.out` when given; it must not overlap `flat` or `dOut`)
 * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_INVALID for overlapping arrays or a bad option, ERR_NO_CUDA
 */
export function canonicalizeBackward(arch: Architecture, flat: Float32Array, dOut: Float32Array, opts?: CanonicalizeOptions): Float32Array {
  checkArch(arch);
  const B = checkBatch(arch, 'flat', flat, { finite: false });
  checkF32('dOut', dOut, B * arch.numParams);
  const { c, out, device } = parse(opts);
  const dx = outArray('out', out, B * arch.numParams);
  sharedPlan(arch).canonicalizeBackward(dx, flat, dOut, c, resolveDevice(device));
  return dx;
}
