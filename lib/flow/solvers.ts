/**
 * Fixed-step ODE solvers for dx/dt = v(x, t) on a manifold given by its `move` (the exponential-map step:
 * x + dt·v in Euclidean space; Exp_x(dt·proj_x v) re-projected on the spheres). Methods:
 * - `euler`: x ← move(x, v(x, t), dt)                                      (order 1)
 * - `midpoint`: x ← move(x, v(move(x, v(x,t), dt/2), t + dt/2), dt)         (order 2)
 * - `rk4`: classical stages, each evaluated at x moved along the previous stage's velocity; the weighted
 *   combination is applied from x with one `move` (order 4 in Euclidean space; on the spheres the combination
 *   is an ambient average projected at x).
 * The last stage of `rk4` is evaluated at min(t + dt, tMax) so fields singular at t = 1 stay finite; for such a field
 * ({@link OdeProblem.singularAtOne}) the step reaching past tMax takes the midpoint rule instead.
 */
import { WsfError } from '../errors.js';

/** Solver names. */
export type SolverName = 'euler' | 'midpoint' | 'rk4';

/** The problem a solver integrates. */
export interface OdeProblem {
  /** Velocity at (x, t): B·P in, B·P out. */
  velocity(x: Float32Array, t: number): Float32Array;
  /** One step x → x + dt·v on the manifold. Default: the Euclidean step. */
  move?(x: Float32Array, v: Float32Array, dt: number): Float32Array;
  /** Hook before each step (e.g. stochastic noise); returns the new state. */
  beforeStep?(x: Float32Array, t: number, dt: number): Float32Array;
  /** Largest time at which the velocity is evaluated (default 1 − 1e-4). */
  tMax?: number;
  /**
   * The velocity is singular at t = 1 ((x̂1 − x)/(1 − t) of a plain x1-prediction field): RK4's step whose last stage
   * would lie past tMax takes the midpoint rule (stages at t and t + dt/2), since at tMax the field's error at the
   * stage point is divided by 1 − tMax = 1e-4 (samples far off the Euler and midpoint ones, measured 2026-12-07).
   */
  singularAtOne?: boolean;
}

function euclideanMove(x: Float32Array, v: Float32Array, dt: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! + dt * v[i]!;
  return out;
}

/**
 * Integrates from `x` over the time `grid` (increasing; grid.length − 1 steps).
 * @returns the end state (a new array)
 * @throws WsfError ERR_INVALID for an unknown solver or a grid with fewer than 2 points
 */
export function integrate(x: Float32Array, grid: ArrayLike<number>, solver: SolverName, p: OdeProblem): Float32Array {
  if (solver !== 'euler' && solver !== 'midpoint' && solver !== 'rk4') {
    throw new WsfError(`Expected solver 'euler', 'midpoint' or 'rk4' but received ${JSON.stringify(solver)}`, 'ERR_INVALID');
  }
  if (grid.length < 2) throw new WsfError(`Expected a time grid of at least 2 points but received ${grid.length}`, 'ERR_INVALID');
  const move = p.move ?? euclideanMove;
  const tMax = p.tMax ?? 1 - 1e-4;
  let y = x;
  for (let k = 0; k + 1 < grid.length; k++) {
    const t = grid[k]!;
    const dt = grid[k + 1]! - t;
    if (p.beforeStep !== undefined) y = p.beforeStep(y, t, dt);
    if (solver === 'euler') {
      y = move(y, p.velocity(y, t), dt);
    } else if (solver === 'midpoint' || (p.singularAtOne === true && t + dt > tMax)) {
      // (RK4's step reaching past tMax on a field singular at t = 1 takes the midpoint rule: see OdeProblem.singularAtOne)
      const ym = move(y, p.velocity(y, t), dt / 2);
      y = move(y, p.velocity(ym, Math.min(t + dt / 2, tMax)), dt);
    } else {
      const k1 = p.velocity(y, t);
      const k2 = p.velocity(move(y, k1, dt / 2), Math.min(t + dt / 2, tMax));
      const k3 = p.velocity(move(y, k2, dt / 2), Math.min(t + dt / 2, tMax));
      const k4 = p.velocity(move(y, k3, dt), Math.min(t + dt, tMax));
      const v = new Float32Array(y.length);
      for (let i = 0; i < v.length; i++) v[i] = (k1[i]! + 2 * k2[i]! + 2 * k3[i]! + k4[i]!) / 6;
      y = move(y, v, dt);
    }
  }
  return y;
}
