/**
 * The geometry of a flow over flat weight vectors (METHOD.md §3, §5, §6.3, §7): batched manifold operations,
 * interpolation, Euler steps and the training loss, for the three flows.
 *
 * **Factors.** For kind `'geometric'` a network (flat layout, {@link Architecture}) is a point of a product
 * manifold: every hidden neuron's incoming weight vector lies on a sphere S^{K−1} (K = fan-in), the whole
 * last-layer matrix is one sphere, and the biases (flat indices `arch.numWeights`…P−1) are Euclidean — factors
 * `0…S−1` are the spheres in {@link Architecture.sphereOffset} order and factor S is the bias block. For
 * `'euclidean'` and `'normalized'` the whole vector is one Euclidean factor (S = 0).
 *
 * **Formulas** (per sphere factor; x, y, u, v its K entries; ⟨·,·⟩ and ‖·‖ Euclidean), semantics `'corrected'`:
 * - project: x/‖x‖; a zero factor (‖x‖² below the smallest normal float, i.e. ‖x‖ ≲ 1.1e-19) becomes e_0;
 * - tangentProject: u − ⟨x,u⟩x;
 * - expmap: n = ‖u‖, x·cos n + u·sin(n)/n (sin(n)/n by its Taylor series for n < 1e-2), then re-normalised;
 * - logmap: x̂ = x/‖x‖, w = y − ⟨x̂,y⟩x̂, θ = atan2(‖w‖, ⟨x̂,y⟩), w·θ/‖w‖ (by a series for small θ); x̂ = x
 *   on the sphere, and projecting first keeps the result tangent for points slightly off it. For antipodal
 *   points (⟨x̂,y⟩ < 0 and ‖w‖ ≤ 1e-4·|⟨x̂,y⟩|) the direction is undefined; the result is then θ·v/‖v‖ with
 *   v = e_k − x̂_k·x̂, k = argmin |x_k| (first on ties): deterministic, tangent, of length θ ≈ π (zero when K = 1);
 * - dist: θ = 2·atan2(‖x̄ − ȳ‖, ‖x̄ + ȳ‖) with x̄ = x/‖x‖, ȳ = y/‖y‖ (accurate at 0 and π);
 * - interpolate: Exp_{x̂0}(t·Log_{x0}(x1)) with the maps above (so t = 0 gives x̂0);
 * - eulerStep: x̂ = x/‖x‖, Exp_{x̂}(dt·(v − ⟨x̂,v⟩x̂)), re-normalised (a proper Riemannian Euler step);
 * - loss: ℓ_b = mean over layers l of [mean over the spheres s of layer l of d(p_s, q_s)²] + mean over the
 *   biases of (p − q)²; the batch loss is mean_b ℓ_b. The gradient w.r.t. `pred` is that of this formula for any
 *   `pred` (not only unit factors): −2·Log_{p̄}(q̄)/‖p‖ per sphere, scaled by its weight and 1/B (zero for a zero
 *   factor, where d is not differentiable).
 * On the Euclidean factor: identity, identity, x + u, y − x, ‖x − y‖, (1−t)·x0 + t·x1, x + dt·v and the squared
 * error, so for `'euclidean'`/`'normalized'` the loss is the MSE over all B·P entries.
 *
 * Semantics `'reference'` reproduces the published code (geoopt 0.5.0 in float32, METHOD.md §7), EPS = 1e-4:
 * dist = acos(clamp(⟨x,y⟩, −1+EPS, 1−EPS)) (so d(x,x) = 0.014142, zero gradient outside the clamp range);
 * expmap = ‖u‖ > EPS ? x cos n + u sin n/n : (x+u)/‖x+u‖, not re-normalised, u not projected; logmap with
 * w = (y−x) − ⟨x, y−x⟩x, θ = dist, θ > EPS ? w·θ/max(‖w‖, EPS) : w; interpolate = Exp(t·Log) with those; eulerStep
 * = expmap(x, dt·v) with the non-tangent v (this drifts off the spheres: norms ≈ 0.94 after 7 steps, §6.3).
 *
 * All arrays are Float32Array `[B·P]` (B networks, P = `arch.numParams`) unless stated. Outputs are returned; pass
 * `{out}` to write into your own array (it may be one of the inputs, for an in-place update, but must not
 * partly overlap one). NaN inputs propagate.
 */
import type { Architecture } from '../arch/Architecture.js';
import { checkBatch } from '../arch/Architecture.js';
import { type Device, type DeviceRequest, parseDeviceRequest, resolveDevice } from '../device.js';
import type { NativeGeoMode, NativeGeometryPlan } from '../native/types.js';
import { checkChoice, checkF32, checkNumber, invalidArgument } from '../util/validate.js';
import { checkArch, checkOptions, createPlan, outArray } from './plan.js';

/** The three flows' geometries. */
export type GeometryKind = 'euclidean' | 'normalized' | 'geometric';
/** `'corrected'` (stable formulas, outputs on the manifold) or `'reference'` (the published code). */
export type GeometrySemantics = 'corrected' | 'reference';

/** Options of {@link geometry}. */
export interface GeometryOptions {
  /** Default `'corrected'`. */
  semantics?: GeometrySemantics;
  /** Frobenius norm c of the last layer after canonicalisation, > 0. Default 1 (the published code); √C is the thesis' choice. */
  lastLayerNorm?: number;
  /**
   * Default `'auto'` (or `WSF_DEVICE`): CUDA when a device works, else the CPU. The ops take host arrays, so on
   * CUDA every call copies its inputs to the device and its outputs back (device-resident tensors come with the
   * engine).
   */
  device?: DeviceRequest;
}

/** Where to write a result. */
export interface OutOptions {
  /** Float32Array of the result's length; allocated when omitted. */
  out?: Float32Array;
}

/** Where to write the loss outputs. */
export interface LossOptions {
  /** Float32Array `[B]`; allocated when omitted. */
  perNetwork?: Float32Array;
  /** Float32Array `[B·P]`; allocated when omitted. Must not overlap `pred` or `target`. */
  grad?: Float32Array;
}

/** The loss, per network, and its gradient. */
export interface LossResult {
  /** mean_b ℓ_b. */
  loss: number;
  /** ℓ_b, `[B]`. */
  perNetwork: Float32Array;
  /** ∂loss/∂pred, `[B·P]`. */
  grad: Float32Array;
}

const KINDS: readonly GeometryKind[] = ['euclidean', 'normalized', 'geometric'];
const SEMANTICS: readonly GeometrySemantics[] = ['corrected', 'reference'];

/**
 * Batched geometry of one architecture and kind (see the module documentation for every formula). Create with
 * {@link geometry}; call {@link Geometry.dispose} to free its device tables early (a finalizer frees them too).
 */
export class Geometry {
  /** The architecture. */
  readonly arch: Architecture;
  /** The flow's geometry. */
  readonly kind: GeometryKind;
  /** `'corrected'` or `'reference'`. */
  readonly semantics: GeometrySemantics;
  /** Where the ops run. */
  readonly device: Device;
  /** Last-layer Frobenius norm used by {@link Geometry.canonicalize}. */
  readonly lastLayerNorm: number;
  /** Sphere factors S (0 for 'euclidean' and 'normalized'). */
  readonly numSpheres: number;
  /** Factors F = S + 1 (the Euclidean block is the last): the row length of {@link Geometry.dist}. */
  readonly numFactors: number;
  private readonly plan: NativeGeometryPlan;
  private readonly mode: NativeGeoMode;

  /** @internal use {@link geometry} */
  constructor(arch: Architecture, kind: GeometryKind, semantics: GeometrySemantics, lastLayerNorm: number, device: Device) {
    this.arch = arch;
    this.kind = kind;
    this.semantics = semantics;
    this.lastLayerNorm = lastLayerNorm;
    this.device = device;
    this.mode = semantics === 'reference' ? 'reference' : 'accurate';
    this.plan = createPlan(arch, kind);
    this.numSpheres = this.plan.numSpheres;
    this.numFactors = this.plan.numFactors;
  }

  /**
   * Projects every sphere factor onto its sphere (biases unchanged).
   * @param x `[B·P]`
   * @returns `[B·P]`
   * @throws WsfError ERR_DTYPE / ERR_SHAPE for a bad array, ERR_DISPOSED after dispose()
   */
  project(x: Float32Array, opts?: OutOptions): Float32Array {
    const B = this.batch('x', x);
    const out = this.out(opts, B * this.arch.numParams);
    this.plan.project(out, x, this.device, this.mode);
    return out;
  }

  /**
   * Projects `u` onto the tangent space at `x`: u − ⟨x,u⟩x per sphere, u on the biases.
   * @param x `[B·P]` base points
   * @param u `[B·P]` ambient vectors
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_DISPOSED
   */
  tangentProject(x: Float32Array, u: Float32Array, opts?: OutOptions): Float32Array {
    const B = this.batch('x', x);
    this.same('u', u, B);
    const out = this.out(opts, B * this.arch.numParams);
    this.plan.tangentProject(out, x, u, this.device, this.mode);
    return out;
  }

  /**
   * Exponential map Exp_x(u) (x + u on the biases).
   * @param x `[B·P]` base points (on the spheres)
   * @param u `[B·P]` tangent vectors
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_DISPOSED
   */
  expmap(x: Float32Array, u: Float32Array, opts?: OutOptions): Float32Array {
    const B = this.batch('x', x);
    this.same('u', u, B);
    const out = this.out(opts, B * this.arch.numParams);
    this.plan.expmap(out, x, u, this.device, this.mode);
    return out;
  }

  /**
   * Logarithmic map Log_x(y) (y − x on the biases).
   * @param x `[B·P]` base points
   * @param y `[B·P]` targets
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_DISPOSED
   */
  logmap(x: Float32Array, y: Float32Array, opts?: OutOptions): Float32Array {
    const B = this.batch('x', x);
    this.same('y', y, B);
    const out = this.out(opts, B * this.arch.numParams);
    this.plan.logmap(out, x, y, this.device, this.mode);
    return out;
  }

  /**
   * Distances per factor.
   * @param x `[B·P]`
   * @param y `[B·P]`
   * @returns `[B·F]`, F = {@link Geometry.numFactors}: row b holds the S geodesic sphere distances (radians) of
   *   network b, then the Euclidean distance ‖b_x − b_y‖ of its bias block (for 'euclidean'/'normalized': one
   *   column, ‖x − y‖).
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_DISPOSED
   */
  dist(x: Float32Array, y: Float32Array, opts?: OutOptions): Float32Array {
    const B = this.batch('x', x);
    this.same('y', y, B);
    const out = this.out(opts, B * this.numFactors);
    this.plan.dist(out, x, y, this.device, this.mode);
    return out;
  }

  /**
   * Geodesic interpolation Exp_{x0}(t·Log_{x0}(x1)) on the spheres, (1−t)·x0 + t·x1 on the biases.
   * @param x0 `[B·P]` start points
   * @param x1 `[B·P]` end points
   * @param t one time for all networks, or a Float32Array `[B]`; usually in [0, 1] (any finite value extrapolates)
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_INVALID for a non-finite scalar t, ERR_DISPOSED
   */
  interpolate(x0: Float32Array, x1: Float32Array, t: number | Float32Array, opts?: OutOptions): Float32Array {
    const B = this.batch('x0', x0);
    this.same('x1', x1, B);
    let tt: Float32Array;
    if (typeof t === 'number') {
      tt = new Float32Array(B).fill(checkNumber('t', t));
    } else if (t instanceof Float32Array) {
      tt = checkF32('t', t, B);
    } else {
      throw invalidArgument('t', `a number or a Float32Array of length ${B}`, t, 'ERR_DTYPE');
    }
    const out = this.out(opts, B * this.arch.numParams);
    this.plan.interpolate(out, x0, x1, tt, this.device, this.mode);
    return out;
  }

  /**
   * One Euler step of the flow from `x` with velocity `v` and step `dt` (see the module documentation for the
   * corrected and reference forms).
   * @param x `[B·P]` current points
   * @param v `[B·P]` velocities (ambient; projected onto the tangent space in 'corrected')
   * @param dt the step, a finite number
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_INVALID for a non-finite dt, ERR_DISPOSED
   */
  eulerStep(x: Float32Array, v: Float32Array, dt: number, opts?: OutOptions): Float32Array {
    const B = this.batch('x', x);
    this.same('v', v, B);
    checkNumber('dt', dt);
    const out = this.out(opts, B * this.arch.numParams);
    this.plan.eulerStep(out, x, v, dt, this.device, this.mode);
    return out;
  }

  /**
   * The training loss of a batch of predictions and its gradient (geodesic for 'geometric', MSE otherwise).
   * @param pred `[B·P]` predicted endpoints x̂1 (typically canonicalised, so near but not exactly on the spheres)
   * @param target `[B·P]` target endpoints x1
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_INVALID when `grad` overlaps an input, ERR_DISPOSED
   */
  loss(pred: Float32Array, target: Float32Array, opts?: LossOptions): LossResult {
    const B = this.batch('pred', pred);
    this.same('target', target, B);
    const o = checkOptions<LossOptions>('opts', opts);
    const perNetwork = outArray('perNetwork', o.perNetwork, B);
    const grad = outArray('grad', o.grad, B * this.arch.numParams);
    const loss = this.plan.loss(perNetwork, grad, pred, target, this.device, this.mode);
    return { loss, perNetwork, grad };
  }

  /**
   * {@link canonicalize} with this geometry's `lastLayerNorm` and device.
   * @param x `[B·P]`
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_DISPOSED
   */
  canonicalize(x: Float32Array, opts?: OutOptions): Float32Array {
    const B = this.batch('x', x);
    const out = this.out(opts, B * this.arch.numParams);
    this.plan.canonicalize(out, x, this.lastLayerNorm, this.device);
    return out;
  }

  /**
   * {@link canonicalizeBackward} with this geometry's `lastLayerNorm` and device.
   * @param x `[B·P]` the canonicalisation's input
   * @param dOut `[B·P]` gradient w.r.t. its output
   * @returns `[B·P]` gradient w.r.t. `x`
   * @throws WsfError ERR_DTYPE / ERR_SHAPE, ERR_INVALID for overlapping arrays, ERR_DISPOSED
   */
  canonicalizeBackward(x: Float32Array, dOut: Float32Array, opts?: OutOptions): Float32Array {
    const B = this.batch('x', x);
    this.same('dOut', dOut, B);
    const out = this.out(opts, B * this.arch.numParams);
    this.plan.canonicalizeBackward(out, x, dOut, this.lastLayerNorm, this.device);
    return out;
  }

  /** Frees the native tables' device copies; every later call throws ERR_DISPOSED. Idempotent. */
  dispose(): void {
    if (!this.plan.disposed) this.plan.dispose();
  }

  /** True after {@link Geometry.dispose}. */
  get disposed(): boolean {
    return this.plan.disposed;
  }

  private batch(name: string, x: unknown): number {
    return checkBatch(this.arch, name, x, { finite: false });
  }

  private same(name: string, v: unknown, B: number): void {
    checkF32(name, v, B * this.arch.numParams);
  }

  private out(opts: OutOptions | undefined, length: number): Float32Array {
    return outArray('out', checkOptions<OutOptions>('opts', opts).out, length);
  }
}

/**
 * The geometry of a flow of kind `kind` over networks of architecture `arch`.
 * @param arch from {@link mlp}
 * @param kind `'euclidean'` (raw weights), `'normalized'` (canonicalised weights, Euclidean ops and MSE) or
 *   `'geometric'` (spheres × Euclidean biases)
 * @param opts semantics (default 'corrected'), lastLayerNorm (default 1), device (default 'auto')
 * @example
 * const g = geometry(mlp([30, 16, 16, 2]), 'geometric');
 * const xt = g.interpolate(x0, x1, 0.3);
 * @throws WsfError ERR_INVALID for an unknown kind/semantics/device or a bad lastLayerNorm; ERR_NO_CUDA when
 *   'cuda' is requested and unavailable
 */
export function geometry(arch: Architecture, kind: GeometryKind, opts?: GeometryOptions): Geometry {
  checkArch(arch);
  const k = checkChoice('kind', kind, KINDS);
  const o = checkOptions<GeometryOptions>('opts', opts);
  const semantics = o.semantics === undefined ? 'corrected' : checkChoice('semantics', o.semantics, SEMANTICS);
  const c = o.lastLayerNorm === undefined ? 1 : checkNumber('lastLayerNorm', o.lastLayerNorm, Number.MIN_VALUE);
  const device = resolveDevice(o.device === undefined ? undefined : parseDeviceRequest(o.device, 'device'));
  return new Geometry(arch, k, semantics, c, device);
}
