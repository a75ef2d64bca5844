// Solver convergence order on analytic velocity fields (flow_matching's pattern): halving the step shrinks the
// error by about 2× (Euler), 4× (midpoint) and 16× (RK4); and the Riemannian step keeps points on the spheres.
import { describe, expect, it } from 'vitest';
import { integrate, type SolverName } from '../../lib/flow/solvers.js';
import { timeGrid } from '../../lib/flow/time.js';
import { geometry, mlp } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

describe('ODE solvers', () => {
  // dx/dt = a(t)·x with a(t) = cos(3t) + 1: x(1) = x(0)·exp(∫₀¹ a) = x(0)·exp(sin(3)/3 + 1). Computed in f32 states,
  // so the error is measured at step counts where truncation error dominates f32 rounding.
  const x0 = Float32Array.from([0.5, -1.25, 2.0]);
  const exact = Array.from(x0, (v) => v * Math.exp(Math.sin(3) / 3 + 1));
  const run = (solver: SolverName, steps: number): number => {
    const grid = Array.from({ length: steps + 1 }, (_, i) => i / steps);
    const y = integrate(x0, grid, solver, {
      velocity: (x, t) => x.map((v) => v * (Math.cos(3 * t) + 1)),
      tMax: 1,
    });
    return Math.max(...Array.from(y, (v, i) => Math.abs(v - exact[i]!)));
  };
  const cases: [SolverName, number, number, number][] = [
    // solver, coarse steps, expected ratio, tolerance on the ratio
    ['euler', 64, 2, 0.3],
    ['midpoint', 32, 4, 0.8],
    ['rk4', 4, 16, 4],
  ];
  for (const [solver, n, ratio, tol] of cases) {
    it(`${solver}: error ratio per halving ≈ ${ratio}`, () => {
      const e1 = run(solver, n);
      const e2 = run(solver, 2 * n);
      expect(e1 / e2).toBeGreaterThan(ratio - tol);
      expect(e1 / e2).toBeLessThan(ratio + tol);
    });
  }

  it('time grids: uniform, early (t = s²) and cosine run from 0 to 1, increasing; denser steps where the field is fast pay off', () => {
    for (const kind of ['uniform', 'early', 'cosine'] as const) {
      const g = timeGrid(16, 'corrected', kind);
      expect(g.length).toBe(17);
      expect(g[0]).toBe(0);
      expect(g[16]).toBe(1);
      for (let i = 1; i < g.length; i++) expect(g[i]!).toBeGreaterThan(g[i - 1]!);
    }
    expect(timeGrid(16, 'corrected', 'early')[1]).toBeCloseTo(1 / 256, 12);
    expect(timeGrid(16, 'corrected', 'cosine')[8]).toBeCloseTo(0.5, 12);
    expect(Array.from(timeGrid(5, 'reference'))).toEqual([0, 0.25, 0.5, 0.75, 1]);
    // dx/dt = −20·e^{−20t}·x changes fastest near t = 0: x(1) = x(0)·exp(e^{−20} − 1).
    const k = 20;
    const ex = Array.from(x0, (v) => v * Math.exp(Math.exp(-k) - 1));
    const err = (kind: 'uniform' | 'early' | 'cosine'): number => {
      const y = integrate(x0, timeGrid(16, 'corrected', kind), 'euler', { velocity: (x, t) => x.map((v) => -k * Math.exp(-k * t) * v) });
      return Math.max(...Array.from(y, (v, i) => Math.abs(v - ex[i]!)));
    };
    expect(err('early')).toBeLessThan(0.5 * err('uniform'));
  });

  it('rejects an unknown solver and a degenerate grid', () => {
    expect(() => integrate(x0, [0, 1], 'heun' as SolverName, { velocity: (x) => x })).toThrow(/solver/);
    expect(() => integrate(x0, [0], 'euler', { velocity: (x) => x })).toThrow(/grid/);
  });

  it('the Riemannian step keeps every sphere factor on its sphere for every solver', () => {
    const arch = mlp([6, 4, 3]);
    const g = geometry(arch, 'geometric', { device: 'cpu' });
    const rng = new Rng(4);
    const x = g.project(rng.fillNormal(new Float32Array(2 * arch.numParams)));
    const target = g.project(rng.fillNormal(new Float32Array(2 * arch.numParams)));
    for (const solver of ['euler', 'midpoint', 'rk4'] as const) {
      const y = integrate(x, [0, 0.25, 0.5, 0.75], solver, {
        velocity: (z, t) => g.logmap(z, target).map((v) => v / (1 - t)),
        move: (z, v, dt) => g.eulerStep(z, v, dt),
      });
      const d = g.dist(y, g.project(y)); // distance of each factor to its projection
      expect(Math.max(...d)).toBeLessThan(1e-5);
    }
    g.dispose();
  });
});
