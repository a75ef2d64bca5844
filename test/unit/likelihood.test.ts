// The likelihood integrator (lib/flow/likelihood.ts) on velocity fields with closed forms, separately from the
// network: for v(x) = A·x + b the flow map is x1 = e^A·x0 + φ1(A)·b, so a Gaussian prior N(μ, σ²I) maps to the
// Gaussian N(e^A μ + φ1(A) b, σ² e^A e^Aᵀ), whose log-density at x1 is computed here by dense linear algebra —
// an independent reference for the sign convention, the backward integration and the prior term. Hutchinson's
// estimate is checked against the exact trace within its known Monte-Carlo variance.
import { describe, expect, it } from 'vitest';
import { drawProbes, gaussianLogDensity, integrateDivergence, type DivergenceProblem } from '../../lib/flow/likelihood.js';
import type { SolverName } from '../../lib/flow/solvers.js';
import { WsfError } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

type Mat = number[][];
const eye = (n: number): Mat => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 1 : 0)));
const mul = (a: Mat, b: Mat): Mat => a.map((r) => b[0]!.map((_, j) => r.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
const add = (a: Mat, b: Mat, s = 1): Mat => a.map((r, i) => r.map((v, j) => v + s * b[i]![j]!));
const scale = (a: Mat, s: number): Mat => a.map((r) => r.map((v) => v * s));
const mv = (a: Mat, x: number[]): number[] => a.map((r) => r.reduce((s, v, k) => s + v * x[k]!, 0));
const tr = (a: Mat): number => a.reduce((s, r, i) => s + r[i]!, 0);
const transpose = (a: Mat): Mat => a[0]!.map((_, j) => a.map((r) => r[j]!));
// Σ_k A^k / (k + j)! (j = 0: e^A; j = 1: φ1(A) = ∫₀¹ e^{A s} ds), 40 terms: converges to f64 for ‖A‖ ≲ 2.
function series(A: Mat, j: number): Mat {
  const n = A.length;
  let term = eye(n); // A⁰/j! = I for j ∈ {0, 1}
  let sum = term;
  for (let k = 1; k < 40; k++) {
    term = scale(mul(term, A), 1 / (k + j));
    sum = add(sum, term);
  }
  return sum;
}
// Solves S·y = r and returns log|det S| by Gaussian elimination with partial pivoting.
function solve(S: Mat, r: number[]): { y: number[]; logdet: number } {
  const n = S.length;
  const a = S.map((row, i) => [...row, r[i]!]);
  let logdet = 0;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let i = c + 1; i < n; i++) if (Math.abs(a[i]![c]!) > Math.abs(a[p]![c]!)) p = i;
    [a[c], a[p]] = [a[p]!, a[c]!];
    logdet += Math.log(Math.abs(a[c]![c]!));
    for (let i = c + 1; i < n; i++) {
      const f = a[i]![c]! / a[c]![c]!;
      for (let j = c; j <= n; j++) a[i]![j] = a[i]![j]! - f * a[c]![j]!;
    }
  }
  const y = new Array<number>(n).fill(0);
  for (let i = n - 1; i >= 0; i--) {
    let s = a[i]![n]!;
    for (let j = i + 1; j < n; j++) s -= a[i]![j]! * y[j]!;
    y[i] = s / a[i]![i]!;
  }
  return { y, logdet };
}

/** The linear field v(x) = A·x + b on a batch, with its VJP uᵀA. */
function linearField(A: Mat, b: number[], tMax = 1): DivergenceProblem & { evals: number } {
  const P = b.length;
  const f = {
    dim: P,
    tMax,
    evals: 0,
    at(x: Float64Array) {
      f.evals++;
      const B = x.length / P;
      const v = new Float64Array(x.length);
      for (let n = 0; n < B; n++) {
        const y = mv(A, Array.from(x.subarray(n * P, (n + 1) * P)));
        for (let i = 0; i < P; i++) v[n * P + i] = y[i]! + b[i]!;
      }
      return {
        v,
        vjp(u: Float64Array): Float64Array {
          const g = new Float64Array(u.length);
          for (let n = 0; n < B; n++) for (let j = 0; j < P; j++) for (let i = 0; i < P; i++) g[n * P + j] = g[n * P + j]! + u[n * P + i]! * A[i]![j]!;
          return g;
        },
      };
    },
  };
  return f;
}

describe('likelihood integrator: linear fields (closed forms)', () => {
  const P = 4;
  const rng = new Rng(3);
  const A: Mat = Array.from({ length: P }, () => Array.from({ length: P }, () => 0.6 * rng.normal()));
  const b = Array.from({ length: P }, () => rng.normal());
  const mu = 0.3;
  const sigma = 0.7;
  const E = series(A, 0);
  const c = mv(series(A, 1), b);
  const B = 3;
  const x1 = rng.fillNormal(new Float64Array(B * P), 0, 1.5);
  // Independent reference: the pushforward Gaussian N(m, Σ), m = e^A μ1 + c, Σ = σ² e^A e^Aᵀ, at each x1.
  const m = mv(E, new Array<number>(P).fill(mu)).map((v, i) => v + c[i]!);
  const Sigma = scale(mul(E, transpose(E)), sigma * sigma);
  const refLogp = Array.from({ length: B }, (_, n) => {
    const d = Array.from(x1.subarray(n * P, (n + 1) * P), (v, i) => v - m[i]!);
    const { y, logdet } = solve(Sigma, d);
    return -0.5 * P * Math.log(2 * Math.PI) - 0.5 * logdet - 0.5 * d.reduce((s, v, i) => s + v * y[i]!, 0);
  });
  const refX0 = Array.from({ length: B }, (_, n) => solve(E, Array.from(x1.subarray(n * P, (n + 1) * P), (v, i) => v - c[i]!)).y);

  for (const [solver, steps, tol] of [['rk4', 160, 1e-9], ['midpoint', 400, 2e-4], ['euler', 4000, 2e-3]] as [SolverName, number, number][]) {
    it(`${solver}, exact trace: x0 and log p1(x1) match the pushforward Gaussian (sign convention included)`, () => {
      const grid = Float64Array.from({ length: steps + 1 }, (_, i) => i / steps);
      const field = linearField(A, b);
      const r = integrateDivergence(x1, field, grid, solver, { kind: 'exact' });
      const logp = gaussianLogDensity(r.x0, P, mu, sigma);
      for (let n = 0; n < B; n++) {
        // ℓ = ∫ tr(A) dt = tr(A) exactly for a linear field, whatever the solver.
        expect(r.divergence[n]).toBeCloseTo(tr(A), 12);
        expect(r.stderr[n]).toBe(0);
        // Global truncation error: O(h⁴) (RK4: ~3e-8 at h = 1/40, so h = 1/160), O(h²) (midpoint), O(h) (Euler).
        expect(Array.from(r.x0.subarray(n * P, (n + 1) * P))).toAllClose(refX0[n]!, { atol: tol, rtol: tol });
        expect(logp[n]! - r.divergence[n]!).toAllClose(refLogp[n]!, { atol: 10 * tol, rtol: 10 * tol });
      }
      const stages = { euler: 1, midpoint: 2, rk4: 4 }[solver];
      expect(r.nfe).toBe(steps * stages);
      expect(r.nvjp).toBe(steps * stages * P); // one VJP per coordinate per evaluation
    });
  }

  it('the velocity is evaluated at most at tMax (the sampler clamp), the first step starting from t = 1', () => {
    const times: number[] = [];
    const base = linearField(A, b);
    const field: DivergenceProblem = { dim: P, at: (x, t) => (times.push(t), base.at(x, t)) };
    integrateDivergence(x1, field, [0, 0.5, 1], 'rk4', { kind: 'exact' });
    expect(Math.max(...times)).toBe(1 - 1e-4);
    expect(times[0]).toBe(1 - 1e-4);
    expect(Math.min(...times)).toBe(0);
  });

  for (const kind of ['rademacher', 'gaussian'] as const) {
    it(`Hutchinson (${kind}): unbiased, and within its Monte-Carlo error of the exact trace`, () => {
      // Constant A: each probe's integral is exactly εᵀAε, whose variance is known: with S = (A + Aᵀ)/2,
      // Rademacher 2·Σ_{i≠j} S_ij², Gaussian 2·‖S‖_F².
      const S = scale(add(A, transpose(A)), 0.5);
      let v1 = 0;
      for (let i = 0; i < P; i++) for (let j = 0; j < P; j++) if (kind === 'gaussian' || i !== j) v1 += 2 * S[i]![j]! ** 2;
      const K = 25;
      const runs = 300;
      const prng = new Rng(17);
      const grid = [0, 0.5, 1];
      let sum = 0;
      let sumSe2 = 0;
      for (let s = 0; s < runs; s++) {
        const r = integrateDivergence(x1, linearField(A, b), grid, 'euler', { kind: 'hutchinson', probes: drawProbes(kind, K, B * P, prng) });
        for (let n = 0; n < B; n++) {
          // 5 standard errors per run (300 × 3 runs: a false failure has probability ~1e-3 at most).
          expect(Math.abs(r.divergence[n]! - tr(A))).toBeLessThan(5 * Math.sqrt(v1 / K));
          sum += r.divergence[n]!;
          sumSe2 += r.stderr[n]! ** 2;
        }
      }
      const N = runs * B;
      // Unbiased: the mean of N estimates is within 4 standard errors of the mean of tr(A).
      expect(Math.abs(sum / N - tr(A))).toBeLessThan(4 * Math.sqrt(v1 / K / N));
      // The reported standard error estimates the true one: mean of se² ≈ Var/K (±20 % over 900 runs).
      expect(sumSe2 / N / (v1 / K)).toBeGreaterThan(0.8);
      expect(sumSe2 / N / (v1 / K)).toBeLessThan(1.2);
    });
  }

  it('probes have the right moments: E[ε] = 0, E[ε²] = 1; Rademacher entries are ±1', () => {
    const prng = new Rng(5);
    for (const kind of ['rademacher', 'gaussian'] as const) {
      const [e] = drawProbes(kind, 1, 20000, prng);
      const mean = e!.reduce((s, v) => s + v, 0) / e!.length;
      const sq = e!.reduce((s, v) => s + v * v, 0) / e!.length;
      expect(Math.abs(mean)).toBeLessThan(0.03); // 4 standard errors of 1/√20000
      expect(Math.abs(sq - 1)).toBeLessThan(kind === 'rademacher' ? 1e-12 : 0.05);
      if (kind === 'rademacher') expect(e!.every((v) => v === 1 || v === -1)).toBe(true);
    }
  });

  it('the prior log-density uses covariance std²·I (the published notebook used std·I)', () => {
    const x = Float64Array.from([0.1, -0.4, 0.25, 1.0, 0.0, 2.0]);
    const std = 0.1;
    const logp = gaussianLogDensity(x, 3, 0.2, std);
    const oneD = (v: number): number => Math.log(Math.exp(-((v - 0.2) ** 2) / (2 * std * std)) / (std * Math.sqrt(2 * Math.PI)));
    expect(logp[0]).toBeCloseTo(oneD(0.1) + oneD(-0.4) + oneD(0.25), 10);
    expect(logp[1]).toBeCloseTo(oneD(1.0) + oneD(0.0) + oneD(2.0), 10);
  });

  it('rejects a bad solver, grid or probes with typed errors', () => {
    const f = linearField(A, b);
    const code = (fn: () => unknown): string | undefined => {
      try {
        fn();
      } catch (e) {
        return e instanceof WsfError ? e.code : 'not a WsfError';
      }
      return undefined;
    };
    expect(code(() => integrateDivergence(x1, f, [0, 1], 'heun' as SolverName, { kind: 'exact' }))).toBe('ERR_INVALID');
    expect(code(() => integrateDivergence(x1, f, [0], 'euler', { kind: 'exact' }))).toBe('ERR_INVALID');
    expect(code(() => integrateDivergence(x1, f, [0, 0.5, 0.5, 1], 'euler', { kind: 'exact' }))).toBe('ERR_INVALID');
    expect(code(() => integrateDivergence(x1.subarray(1), f, [0, 1], 'euler', { kind: 'exact' }))).toBe('ERR_SHAPE');
    expect(code(() => integrateDivergence(x1, f, [0, 1], 'euler', { kind: 'hutchinson', probes: [] }))).toBe('ERR_INVALID');
    expect(code(() => integrateDivergence(x1, f, [0, 1], 'euler', { kind: 'hutchinson', probes: [new Float64Array(P)] }))).toBe('ERR_SHAPE');
  });
});
