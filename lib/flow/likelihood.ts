/**
 * Log-likelihood of a Euclidean flow by the instantaneous change of variables (continuous normalising flows;
 * METHOD.md §8.6). For dx/dt = v(x, t) with x(0) ~ p0 the log-density along a solution obeys
 * d log p_t(x(t))/dt = −tr(∂v/∂x)(x(t), t), so
 *
 *   log p1(x1) = log p0(x0) − ℓ,   ℓ = ∫₀¹ tr(∂v/∂x)(x(t), t) dt,
 *
 * where x(·) is the solution through x(1) = x1: the ODE is integrated BACKWARDS from t = 1 to t = 0 on a fixed
 * grid (Euler, midpoint or RK4 with negative steps), with ℓ carried as an extra state. The trace is either exact
 * (one vector–Jacobian product per coordinate: the basis vectors) or Hutchinson's estimate tr(J) = E[εᵀJε] over
 * probes with E[εεᵀ] = I (Rademacher ±1 or standard Gaussian), εᵀJε = (Jᵀε)·ε from one VJP per probe. The probes
 * are drawn once per trajectory and reused at every evaluation, so the ODE stays deterministic and ℓ is the mean
 * of K per-probe integrals ℓ_k = ∫ ε_kᵀJε_k dt: unbiased, with a Monte-Carlo standard error std(ℓ_k)/√K that is
 * reported alongside.
 *
 * The density is the AMBIENT one on R^P. For the Normalized and Geometric flows, whose samples live on products
 * of spheres, the ambient divergence is not the change of a density on the manifold, so the flow layer accepts
 * Euclidean flows only (FlowMatcher.logLikelihood). This module is independent of the network: it integrates
 * any velocity field given with its vector–Jacobian product (tests use linear fields with closed forms).
 */
import { WsfError } from '../errors.js';
import type { Rng } from '../util/rng.js';
import type { SolverName } from './solvers.js';

/** Velocity at one (x, t) and its vector–Jacobian product there. */
export interface VelocityVjp {
  /** v(x, t), B·P. */
  v: Float64Array;
  /** uᵀ·∂v/∂x at the same (x, t) for a cotangent u (B·P); valid until the next {@link DivergenceProblem.at}. */
  vjp(u: Float64Array): Float64Array;
}

/** A batch of B independent P-dimensional ODEs (the Jacobian is block-diagonal over the B networks). */
export interface DivergenceProblem {
  /** P: dimension of one network. */
  dim: number;
  /** Evaluates the velocity at (x, t), x of length B·P. */
  at(x: Float64Array, t: number): VelocityVjp;
  /** Largest time at which the velocity is evaluated (the sampler's clamp). Default 1 − 1e-4. */
  tMax?: number;
  /**
   * The velocity is singular at t = 1 ((x̂1 − x)/(1 − t) of a plain x1-prediction field): evaluated there at a point
   * off the flow's paths (a data point), the model's error is divided by 1 − tMax. With it, the midpoint and RK4
   * integrators take the step that ends at t = 1 by Euler's rule, evaluated at its left time, as Euler does for every
   * step: no evaluation lies after the last step's left time.
   */
  singularAtOne?: boolean;
}

/** How the trace is computed. */
export type TraceSpec = { kind: 'exact' } | { kind: 'hutchinson'; probes: readonly Float64Array[] };

/** The result of {@link integrateDivergence} for a batch. */
export interface DivergenceResult {
  /** The start points x(0), B·P. */
  x0: Float64Array;
  /** ℓ = ∫₀¹ tr(∂v/∂x) dt per network (B). */
  divergence: Float64Array;
  /** Monte-Carlo standard error of `divergence` (B; 0 for the exact trace or a single probe). */
  stderr: Float64Array;
  /** Velocity evaluations (forward passes). */
  nfe: number;
  /** Vector–Jacobian products. */
  nvjp: number;
}

/** Probe distributions for Hutchinson's estimator. */
export type ProbeKind = 'rademacher' | 'gaussian';

/**
 * Draws K probe vectors of `length` entries: Rademacher (±1 with probability ½; the lower-variance choice,
 * METHOD.md §13.5) or standard Gaussian (the published code).
 */
export function drawProbes(kind: ProbeKind, K: number, length: number, rng: Rng): Float64Array[] {
  const out: Float64Array[] = [];
  for (let k = 0; k < K; k++) {
    const e = new Float64Array(length);
    if (kind === 'gaussian') rng.fillNormal(e);
    else for (let i = 0; i < length; i++) e[i] = rng.uniform() < 0.5 ? -1 : 1;
    out.push(e);
  }
  return out;
}

/**
 * log N(x; mean·1, std²·I) per network of P coordinates: −(P/2)·log(2π·std²) − ‖x − mean‖²/(2·std²).
 * (The published notebook evaluated the prior with covariance std·I instead of std²·I — METHOD.md §8.6, §12.A.8;
 * this is the correct density of the prior the flows sample from.)
 */
export function gaussianLogDensity(x: ArrayLike<number>, P: number, mean: number, std: number): Float64Array {
  const B = x.length / P;
  const out = new Float64Array(B);
  const c = -0.5 * P * Math.log(2 * Math.PI * std * std);
  for (let b = 0; b < B; b++) {
    let s = 0;
    for (let i = 0; i < P; i++) s += (x[b * P + i]! - mean) ** 2;
    out[b] = c - s / (2 * std * std);
  }
  return out;
}

/**
 * Integrates the batch backwards from x(1) = x1 to t = 0 over `grid` (increasing from 0 to 1; the same grid the
 * sampler uses, walked in reverse), accumulating ℓ = ∫₀¹ tr(∂v/∂x) dt per network.
 * @param x1 B·P end points
 * @param grid increasing times, grid[0] = 0 … grid[S] = 1 (S ≥ 1 steps)
 * @param solver 'euler', 'midpoint' or 'rk4'
 * @param trace exact (P VJPs per evaluation) or Hutchinson with K fixed probes of length B·P
 * @throws WsfError ERR_INVALID for an unknown solver, a bad grid or probes of the wrong length
 */
export function integrateDivergence(x1: Float64Array, problem: DivergenceProblem, grid: ArrayLike<number>, solver: SolverName, trace: TraceSpec): DivergenceResult {
  if (solver !== 'euler' && solver !== 'midpoint' && solver !== 'rk4') {
    throw new WsfError(`Expected solver 'euler', 'midpoint' or 'rk4' but received ${JSON.stringify(solver)}`, 'ERR_INVALID');
  }
  if (grid.length < 2) throw new WsfError(`Expected a time grid of at least 2 points but received ${grid.length}`, 'ERR_INVALID');
  for (let k = 1; k < grid.length; k++) {
    if (!(grid[k]! > grid[k - 1]!)) throw new WsfError(`Expected an increasing time grid but grid[${k}] = ${grid[k]} follows ${grid[k - 1]}`, 'ERR_INVALID');
  }
  const P = problem.dim;
  if (!Number.isInteger(P) || P < 1 || x1.length === 0 || x1.length % P !== 0) {
    throw new WsfError(`Expected x1 of length B·P (P = ${P}) but received length ${x1.length}`, 'ERR_SHAPE');
  }
  const B = x1.length / P;
  const probes = trace.kind === 'hutchinson' ? trace.probes : [];
  if (trace.kind === 'hutchinson') {
    if (probes.length === 0) throw new WsfError('Expected at least one Hutchinson probe', 'ERR_INVALID');
    for (const e of probes) if (e.length !== x1.length) throw new WsfError(`Expected probes of length B·P = ${x1.length} but received length ${e.length}`, 'ERR_SHAPE');
  }
  // K per-network trace values per evaluation: one per probe, or the exact trace alone.
  const K = trace.kind === 'exact' ? 1 : probes.length;
  const tMax = problem.tMax ?? 1 - 1e-4;
  let nfe = 0;
  let nvjp = 0;

  // One evaluation: v(y, τ) and the K per-network trace values (row k·B + b).
  const f = (y: Float64Array, t: number): { v: Float64Array; d: Float64Array } => {
    const r = problem.at(y, Math.min(t, tMax));
    nfe++;
    const d = new Float64Array(K * B);
    if (trace.kind === 'exact') {
      const u = new Float64Array(y.length);
      for (let i = 0; i < P; i++) {
        for (let b = 0; b < B; b++) u[b * P + i] = 1; // e_i in every network (block-diagonal Jacobian)
        const g = r.vjp(u);
        nvjp++;
        for (let b = 0; b < B; b++) {
          d[b] = d[b]! + g[b * P + i]!; // (e_iᵀ J)_i = J_ii
          u[b * P + i] = 0;
        }
      }
    } else {
      for (let k = 0; k < K; k++) {
        const e = probes[k]!;
        const g = r.vjp(e);
        nvjp++;
        for (let b = 0; b < B; b++) {
          let s = 0;
          for (let i = b * P; i < (b + 1) * P; i++) s += g[i]! * e[i]!; // (Jᵀε)·ε = εᵀJε
          d[k * B + b] = s;
        }
      }
    }
    return { v: r.v, d };
  };
  const axpy = (y: Float64Array, a: number, v: Float64Array): Float64Array => {
    const out = new Float64Array(y.length);
    for (let i = 0; i < y.length; i++) out[i] = y[i]! + a * v[i]!;
    return out;
  };

  let y: Float64Array = Float64Array.from(x1);
  const ell = new Float64Array(K * B); // per-probe ∫ tr dt
  for (let s = grid.length - 1; s >= 1; s--) {
    const t = grid[s]!;
    const h = grid[s - 1]! - t; // negative: backwards in time
    // ℓ = ∫₀¹ tr dt = Σ over steps of |h|·(stage-weighted trace), i.e. −h·(…)
    if (solver === 'euler' || (s === grid.length - 1 && problem.singularAtOne === true)) {
      // (a field singular at t = 1 takes this rule for the step that ends there whatever the solver: see
      // DivergenceProblem.singularAtOne; the inverse of its sampler step near t = 1 is too ill-conditioned to iterate)
      // The reverse of the sampler's explicit Euler step x_s = x_{s−1} + dt·v(x_{s−1}, t_{s−1}): evaluate at the
      // step's left time t_{s−1} (same order; never at t = 1, where x1-prediction's (x̂1 − x)/(1 − t) is singular).
      const k1 = f(y, grid[s - 1]!);
      y = axpy(y, h, k1.v);
      for (let j = 0; j < ell.length; j++) ell[j] = ell[j]! - h * k1.d[j]!;
    } else if (solver === 'midpoint') {
      const k1 = f(y, t);
      const k2 = f(axpy(y, h / 2, k1.v), t + h / 2);
      y = axpy(y, h, k2.v);
      for (let j = 0; j < ell.length; j++) ell[j] = ell[j]! - h * k2.d[j]!;
    } else {
      const k1 = f(y, t);
      const k2 = f(axpy(y, h / 2, k1.v), t + h / 2);
      const k3 = f(axpy(y, h / 2, k2.v), t + h / 2);
      const k4 = f(axpy(y, h, k3.v), t + h);
      const next = new Float64Array(y.length);
      for (let i = 0; i < y.length; i++) next[i] = y[i]! + (h * (k1.v[i]! + 2 * k2.v[i]! + 2 * k3.v[i]! + k4.v[i]!)) / 6;
      y = next;
      for (let j = 0; j < ell.length; j++) ell[j] = ell[j]! - (h * (k1.d[j]! + 2 * k2.d[j]! + 2 * k3.d[j]! + k4.d[j]!)) / 6;
    }
  }
  const divergence = new Float64Array(B);
  const stderr = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    let m = 0;
    for (let k = 0; k < K; k++) m += ell[k * B + b]!;
    m /= K;
    divergence[b] = m;
    if (K > 1) {
      let v = 0;
      for (let k = 0; k < K; k++) v += (ell[k * B + b]! - m) ** 2;
      stderr[b] = Math.sqrt(v / (K - 1) / K);
    }
  }
  return { x0: y, divergence, stderr, nfe, nvjp };
}
