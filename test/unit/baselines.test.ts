import { describe, expect, it } from 'vitest';
import { averageBaseline, gaussianBaseline, nearestNeighbourDistances, noiseBaseline } from '../../lib/eval/baselines.js';
import { mlp } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

const arch = mlp([10, 6, 3]);
const P = arch.numParams;

function bruteNN(q: Float32Array, qi: number, t: Float32Array, T: number, skip = -1): { d: number; i: number } {
  let best = Infinity;
  let arg = -1;
  for (let k = 0; k < T; k++) {
    if (k === skip) continue;
    let s = 0;
    for (let p = 0; p < P; p++) s += (q[qi * P + p]! - t[k * P + p]!) ** 2;
    if (s < best) [best, arg] = [s, k];
  }
  return { d: Math.sqrt(best), i: arg };
}

describe('nearestNeighbourDistances', () => {
  const rng = new Rng(1);
  const T = 40;
  const train = rng.fillNormal(new Float32Array(T * P));

  it('matches brute force, reports the training set’s leave-one-out distances, and sees copies at distance 0', () => {
    const S = 9;
    const samples = rng.fillNormal(new Float32Array(S * P));
    samples.set(train.subarray(5 * P, 6 * P), 2 * P); // sample 2 memorises training network 5
    const r = nearestNeighbourDistances(arch, samples, train, { looQueries: 15, seed: 3 });
    for (let s = 0; s < S; s++) {
      const b = bruteNN(samples, s, train, T);
      expect(r.samples.values[s]).toBeCloseTo(b.d, 10);
      expect(r.samples.neighbour[s]).toBe(b.i);
    }
    expect(r.samples.values[2]).toBe(0);
    expect(r.samples.neighbour[2]).toBe(5);
    expect(r.trainLoo.queries.length).toBe(15);
    r.trainLoo.queries.forEach((q, k) => {
      const b = bruteNN(train, q, train, T, q);
      expect(r.trainLoo.values[k]).toBeCloseTo(b.d, 10);
      expect(r.trainLoo.neighbour[k]).not.toBe(q);
    });
    expect(r.ratio).toBeCloseTo(r.samples.mean / r.trainLoo.mean, 12);
  });

  it('measures through a transform hook', () => {
    const samples = rng.fillNormal(new Float32Array(3 * P));
    const twice = (f: Float32Array) => f.map((v) => 2 * v);
    const a = nearestNeighbourDistances(arch, samples, train);
    const b = nearestNeighbourDistances(arch, samples, train, { transform: twice });
    expect(b.samples.values).toAllClose(a.samples.values.map((v) => 2 * v), { rtol: 1e-6 }); // f32 doubling is exact; sqrt rounding
    expect(() => nearestNeighbourDistances(arch, samples, train, { transform: () => new Float32Array(7) })).toThrowError(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });
});

describe('noiseBaseline and averageBaseline', () => {
  const rng = new Rng(2);
  const T = 30;
  const train = rng.fillNormal(new Float32Array(T * P));

  it('noise: mean distance to the sources equals the requested one (directly and through a transform)', () => {
    const r = noiseBaseline(arch, train, { distance: 1.234, count: 50, seed: 4 });
    expect(r.weights.length).toBe(50 * P);
    let sum = 0;
    for (let i = 0; i < 50; i++) {
      let s = 0;
      for (let p = 0; p < P; p++) s += (r.weights[i * P + p]! - train[r.source[i]! * P + p]!) ** 2;
      sum += Math.sqrt(s);
    }
    expect(sum / 50).toAllClose(1.234, { rtol: 1e-6 }); // outputs rounded to f32
    expect(r.meanDistance).toAllClose(1.234, { rtol: 1e-6 });
    expect(new Set(r.source.subarray(0, T)).size).toBe(T); // distinct sources before cycling
    // A nonlinear transform (cube): σ found by bisection.
    const cube = (f: Float32Array) => f.map((v) => v * v * v);
    const c = noiseBaseline(arch, train, { distance: 0.5, count: 20, seed: 1, transform: cube });
    expect(c.meanDistance).toAllClose(0.5, { rtol: 1e-4 }); // bisection + f32 rounding of the transformed points
    expect(c.reached).toBe(true);
  });

  it('noise: a distance the transform cannot reach throws, or saturates on request (never NaN weights)', () => {
    // tanh bounds every coordinate: transformed distances stay below 2·sqrt(P).
    const squash = (f: Float32Array) => f.map((v) => Math.tanh(v));
    const far = 3 * Math.sqrt(P);
    expect(() => noiseBaseline(arch, train, { distance: far, count: 10, seed: 1, transform: squash })).toThrow(/not reachable/);
    const r = noiseBaseline(arch, train, { distance: far, count: 10, seed: 1, transform: squash, saturate: true });
    expect(r.reached).toBe(false);
    expect(r.weights.every((v) => Number.isFinite(v))).toBe(true);
    expect(r.meanDistance).toBeGreaterThan(1.5 * Math.sqrt(P) * 0.5);
    expect(r.meanDistance).toBeLessThan(far);
  });

  it('average: each output is the mean of k distinct training networks', () => {
    const r = averageBaseline(arch, train, { k: 3, count: 7, seed: 5 });
    for (let i = 0; i < 7; i++) {
      const idx = [...r.indices.subarray(3 * i, 3 * i + 3)];
      expect(new Set(idx).size).toBe(3);
      const mean = new Float64Array(P);
      for (const k of idx) for (let p = 0; p < P; p++) mean[p]! += train[k * P + p]! / 3;
      expect(r.weights.subarray(i * P, (i + 1) * P)).toAllClose(mean, { atol: 1e-6, rtol: 1e-6 }); // f32 output
    }
    expect(() => averageBaseline(arch, train, { k: 31 })).toThrow(/`k`/);
    expect(() => noiseBaseline(arch, train, { distance: 0 })).toThrow(/`distance`/);
  });
});

describe('gaussianBaseline', () => {
  it('two networks: every draw lies on the line through them, with a standard normal coordinate along it', () => {
    const rng = new Rng(6);
    const train = rng.fillNormal(new Float32Array(2 * P));
    const n = 4000;
    const r = gaussianBaseline(arch, train, { count: n, seed: 1 });
    expect(r.members).toBe(2);
    // μ = (a + b)/2, x − μ = c·(a − b)/2 with c = (ε1 − ε2)/√2 ~ N(0, 1).
    const half = new Float64Array(P).map((_, p) => (train[p]! - train[P + p]!) / 2);
    const hh = half.reduce((s, v) => s + v * v, 0);
    let m1 = 0;
    let m2 = 0;
    for (let i = 0; i < n; i++) {
      const d = new Float64Array(P).map((_, p) => r.weights[i * P + p]! - r.mean[p]!);
      const c = d.reduce((s, v, p) => s + v * half[p]!, 0) / hh;
      const off = d.reduce((s, v, p) => s + (v - c * half[p]!) ** 2, 0);
      expect(Math.sqrt(off)).toBeLessThan(1e-5 * (1 + Math.abs(c))); // f32 rounding only
      m1 += c / n;
      m2 += (c * c) / n;
    }
    expect(Math.abs(m1)).toBeLessThan(5 / Math.sqrt(n)); // 5σ of the sample mean
    expect(Math.abs(m2 - 1)).toBeLessThan(5 * Math.sqrt(2 / n));
  });

  it('draws have the zoo’s mean and empirical covariance (1/T)Σ(x_i − μ)(x_i − μ)ᵀ', () => {
    const small = mlp([2, 2, 1]);
    const Q = small.numParams; // 9
    const rng = new Rng(7);
    const T = 5;
    const train = rng.fillNormal(new Float32Array(T * Q));
    const mu = new Float64Array(Q);
    for (let i = 0; i < T; i++) for (let p = 0; p < Q; p++) mu[p]! += train[i * Q + p]! / T;
    const n = 40000;
    const r = gaussianBaseline(small, train, { count: n, seed: 2 });
    expect(r.mean).toAllClose(mu, { atol: 1e-12 });
    const emp = new Float64Array(Q);
    const cov = new Float64Array(Q * Q);
    for (let i = 0; i < n; i++) for (let p = 0; p < Q; p++) emp[p]! += r.weights[i * Q + p]! / n;
    for (let i = 0; i < n; i++) for (let p = 0; p < Q; p++) for (let q = 0; q < Q; q++) cov[p * Q + q]! += ((r.weights[i * Q + p]! - mu[p]!) * (r.weights[i * Q + q]! - mu[q]!)) / n;
    let scale = 0;
    for (let p = 0; p < Q; p++) for (let i = 0; i < T; i++) scale = Math.max(scale, (train[i * Q + p]! - mu[p]!) ** 2);
    for (let p = 0; p < Q; p++) {
      expect(Math.abs(emp[p]! - mu[p]!)).toBeLessThan(6 * Math.sqrt(scale / n));
      for (let q = 0; q < Q; q++) {
        let want = 0;
        for (let i = 0; i < T; i++) want += ((train[i * Q + p]! - mu[p]!) * (train[i * Q + q]! - mu[q]!)) / T;
        expect(Math.abs(cov[p * Q + q]! - want)).toBeLessThan(6 * scale * Math.sqrt(2 / n));
      }
    }
  });

  it('members below T use that many distinct rows around the full mean; bad options are typed errors', () => {
    const rng = new Rng(8);
    const train = rng.fillNormal(new Float32Array(12 * P));
    const T = 12;
    const m = 4;
    const n = 12;
    const r = gaussianBaseline(arch, train, { count: n, members: m, seed: 1 });
    expect(r.members).toBe(m);
    expect(r.weights.length).toBe(n * P);
    // The mean is that of all T rows (f64), not of the members.
    const mu = new Float64Array(P);
    for (let i = 0; i < T; i++) for (let p = 0; p < P; p++) mu[p]! += train[i * P + p]!;
    for (let p = 0; p < P; p++) mu[p]! /= T;
    expect(r.mean).toAllClose(mu, { atol: 1e-14, rtol: 1e-13 });
    // Gram–Schmidt (twice, for stability) with a relative residual threshold: the basis of the accepted vectors.
    const basis: Float64Array[] = [];
    const residual = (v: Float64Array): number => {
      const u = v.slice();
      for (let pass = 0; pass < 2; pass++) {
        for (const q of basis) {
          const c = u.reduce((s, x, p) => s + x * q[p]!, 0);
          for (let p = 0; p < P; p++) u[p]! -= c * q[p]!;
        }
      }
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      const rn = Math.sqrt(u.reduce((s, x) => s + x * x, 0));
      if (rn > 1e-4 * norm) basis.push(u.map((x) => x / rn));
      return rn / norm;
    };
    // The n = 12 centred draws x − μ span exactly m = 4 dimensions (f32 rounding leaves residuals ≈ 1e-7); draws
    // built from more rows would span more.
    for (let i = 0; i < n; i++) residual(Float64Array.from(r.weights.subarray(i * P, (i + 1) * P), (v, p) => v - mu[p]!));
    expect(basis.length).toBe(m);
    // That span is spanned by exactly m distinct training rows (x_i − μ lies in it for those rows only).
    const inSpan = [];
    for (let i = 0; i < T; i++) {
      const before = basis.length;
      const rel = residual(Float64Array.from(train.subarray(i * P, (i + 1) * P), (v, p) => v - mu[p]!));
      basis.length = before; // test membership only
      if (rel < 1e-4) inSpan.push(i);
    }
    expect(inSpan.length).toBe(m);
    // Coordinates of each draw in that basis: x − μ = Σ_k c_k (x_k − μ) with c_k = ε_k/√m, ε_k ~ N(0, 1). Around the
    // members' mean instead, the same span would hold but every draw would have Σ_k c_k = 1 exactly.
    const rows = inSpan.map((i) => Float64Array.from(train.subarray(i * P, (i + 1) * P), (v, p) => v - mu[p]!));
    const dot = (a: Float64Array, b: Float64Array): number => a.reduce((s, v, p) => s + v * b[p]!, 0);
    const sums: number[] = [];
    let sq = 0;
    for (let i = 0; i < n; i++) {
      const d = Float64Array.from(r.weights.subarray(i * P, (i + 1) * P), (v, p) => v - mu[p]!);
      // Normal equations G c = A d (G = A Aᵀ, 4 × 4), Gaussian elimination with partial pivoting.
      const G = rows.map((a) => [...rows.map((b) => dot(a, b)), dot(a, d)]);
      for (let c = 0; c < m; c++) {
        const piv = G.slice(c).reduce((best, row, k) => (Math.abs(row[c]!) > Math.abs(G[best]![c]!) ? c + k : best), c);
        [G[c], G[piv]] = [G[piv]!, G[c]!];
        for (let k = c + 1; k < m; k++) {
          const f = G[k]![c]! / G[c]![c]!;
          for (let q = c; q <= m; q++) G[k]![q]! -= f * G[c]![q]!;
        }
      }
      const coef = new Float64Array(m);
      for (let c = m - 1; c >= 0; c--) coef[c] = (G[c]![m]! - G[c]!.slice(c + 1, m).reduce((s, v, k) => s + v * coef[c + 1 + k]!, 0)) / G[c]![c]!;
      const fit = new Float64Array(P);
      coef.forEach((c, k) => rows[k]!.forEach((v, p) => (fit[p]! += c * v)));
      expect(fit).toAllClose(d, { atol: 1e-5, rtol: 1e-5 }); // f32 draws
      sums.push(coef.reduce((a, b) => a + b, 0));
      sq += coef.reduce((a, c) => a + c * c, 0) / (n * m);
    }
    const sMean = sums.reduce((a, b) => a + b, 0) / n;
    expect(Math.sqrt(sums.reduce((a, v) => a + (v - sMean) ** 2, 0) / (n - 1))).toBeGreaterThan(0.3); // Σ c_k ~ N(0, 1)
    expect(sq).toBeGreaterThan(0.12); // E c_k² = 1/m = 0.25 (48 values: χ²₄₈/48 outside [0.48, 2] is < 1e-3 likely)
    expect(sq).toBeLessThan(0.5);
    expect(() => gaussianBaseline(arch, train, { members: 0 })).toThrowError(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => gaussianBaseline(arch, train, { count: 1.5 })).toThrowError(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => gaussianBaseline(arch, new Float32Array(P + 1))).toThrowError(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });
});
