// Training-time distributions (end of file) and solver convergence order on analytic velocity fields (flow_matching's pattern): halving the step shrinks the
// error by about 2× (Euler), 4× (midpoint) and 16× (RK4); and the Riemannian step keeps points on the spheres.
import { describe, expect, it } from 'vitest';
import { integrate, type SolverName } from '../../lib/flow/solvers.js';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { sampleTimes, timeGrid } from '../../lib/flow/time.js';
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

describe('training-time distributions (sampleTimes) against closed forms', () => {
  const n = 200_000;
  const moments = (dist: 'beta' | 'uniform' | 'logit-normal') => {
    const t = sampleTimes(new Rng(5), dist, new Float32Array(n));
    let s = 0, s2 = 0, lo = 0, inRange = true;
    for (const v of t) {
      s += v;
      s2 += v * v;
      if (v < 1 / (1 + Math.exp(-1))) lo++;
      if (v < 0 || v > 1) inRange = false;
    }
    const mean = s / n;
    return { mean, variance: s2 / n - mean * mean, belowSigmoid1: lo / n, inRange };
  };
  // Midpoint-rule quadrature of a density over (0, 1), f64 — an independent reference for the logit-normal.
  const quad = (f: (t: number) => number): number => {
    const m = 200_000;
    let acc = 0;
    for (let i = 0; i < m; i++) acc += f((i + 0.5) / m);
    return acc / m;
  };
  const logitNormalPdf = (t: number): number => Math.exp(-0.5 * Math.log(t / (1 - t)) ** 2) / (Math.sqrt(2 * Math.PI) * t * (1 - t));

  it('Beta(1, 2): mean 1/3, variance 1/18', () => {
    const r = moments('beta');
    expect(Math.abs(r.mean - 1 / 3)).toBeLessThan(4 * Math.sqrt(1 / 18 / n));
    expect(Math.abs(r.variance - 1 / 18)).toBeLessThan(2e-3);
    expect(r.inRange).toBe(true);
  });

  it('uniform: mean 1/2, variance 1/12', () => {
    const r = moments('uniform');
    expect(Math.abs(r.mean - 0.5)).toBeLessThan(4 * Math.sqrt(1 / 12 / n));
    expect(Math.abs(r.variance - 1 / 12)).toBeLessThan(2e-3);
  });

  it('logit-normal σ(N(0,1)): mean 1/2, variance and P(t < σ(1)) = Φ(1) from quadrature of its density', () => {
    const r = moments('logit-normal');
    const mass = quad(logitNormalPdf);
    const ex2 = quad((t) => t * t * logitNormalPdf(t));
    expect(mass).toBeCloseTo(1, 4);
    const variance = ex2 - 0.25;
    expect(variance).toBeGreaterThan(0.04);
    expect(variance).toBeLessThan(0.045);
    expect(Math.abs(r.mean - 0.5)).toBeLessThan(4 * Math.sqrt(variance / n));
    expect(Math.abs(r.variance - variance)).toBeLessThan(1e-3);
    expect(Math.abs(r.belowSigmoid1 - 0.8413447460685429)).toBeLessThan(4 * Math.sqrt(0.84 * 0.16 / n));
    expect(r.inRange).toBe(true);
  });

  it('FlowMatcher accepts time: logit-normal and names the option for an unknown one', () => {
    const arch = mlp([3, 2, 2]);
    expect(() => FlowMatcher.create({ arch, geometry: 'euclidean', time: 'logit-normal', field: { D: 4, layers: 1 }, device: 'cpu' }).dispose()).not.toThrow();
    expect(() => FlowMatcher.create({ arch, geometry: 'euclidean', time: 'lognormal' as never, field: { D: 4, layers: 1 }, device: 'cpu' })).toThrow(/time/);
  });
});
