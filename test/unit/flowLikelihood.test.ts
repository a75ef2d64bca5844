// FlowMatcher.logLikelihood on the network: the velocity it integrates is the sampler's, its vector–Jacobian
// product matches f64 central differences of that velocity (sparse and dense graphs, with and without
// preconditioning, layer scaling, velocity prediction), the exact trace and Hutchinson's estimate agree within
// the reported Monte-Carlo error, the backward integration inverts the sampler, and bad input is refused with
// typed errors. (The integrator itself is checked against closed forms in likelihood.test.ts.)
import { describe, expect, it } from 'vitest';
import { FlowMatcher, type FlowOptions } from '../../lib/flow/FlowMatcher.js';
import { gaussianLogDensity } from '../../lib/flow/likelihood.js';
import { mlp, WsfError } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

const arch = mlp([3, 2, 2]);
const P = arch.numParams;

function zoo(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const modes = [rng.fillNormal(new Float32Array(P), 0, 0.5), rng.fillNormal(new Float32Array(P), 0, 0.5)];
  const out = new Float32Array(n * P);
  for (let i = 0; i < n; i++) for (let p = 0; p < P; p++) out[i * P + p] = modes[i % 2]![p]! + 0.05 * rng.normal();
  return out;
}

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return e instanceof WsfError ? e.code : `not a WsfError: ${String(e)}`;
  }
  return undefined;
};

describe('FlowMatcher.logLikelihood', () => {
  const variants: [string, Partial<FlowOptions>, boolean][] = [
    ['sparse, preconditioned x1-prediction', {}, false],
    ['sparse, plain x1-prediction', { precondition: false }, false],
    ['dense, preconditioned, layer scaling', { field: { D: 4, layers: 2, graph: 'dense', dtype: 'f64' }, layerScaling: true }, true],
    ['dense, velocity prediction, layer scaling', { field: { D: 4, layers: 2, graph: 'dense', dtype: 'f64' }, prediction: 'velocity', layerScaling: true }, true],
  ];
  for (const [name, o, scaled] of variants) {
    it(`${name}: the VJP of the integrated velocity matches f64 central differences`, async () => {
      const fm = FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 4, layers: 2, dtype: 'f64' }, seed: 3, device: 'cpu', ...o });
      if (scaled) await fm.fit({ weights: zoo(8, 2) }, { steps: 0 }); // sets the per-layer scale from the data
      // Random parameters larger than the initialisation, so every path (and the scale) matters.
      fm.field.setParams(new Rng(4).fillNormal(new Float64Array(fm.field.numParams), 0, 0.4));
      const rng = new Rng(5);
      const B = 2;
      const x = rng.fillNormal(new Float64Array(B * P), 0, 0.7);
      // t = 0.99995 is inside the 1 − t ≥ 1e-4 clamp, where the preconditioned velocity is (1 − t)/1e-4 · s⊙F.
      for (const t of [0.3, 0.8, 0.99995]) {
        const u = rng.fillNormal(new Float64Array(B * P));
        const g = fm.likelihoodVelocity(x, t).vjp(u);
        const fd = new Float64Array(B * P);
        for (let i = 0; i < B * P; i++) {
          const h = 1e-6 * Math.max(1, Math.abs(x[i]!));
          const xp = x.slice();
          xp[i] = x[i]! + h;
          const vp = fm.likelihoodVelocity(xp, t).v;
          xp[i] = x[i]! - h;
          const vm = fm.likelihoodVelocity(xp, t).v;
          for (let j = 0; j < B * P; j++) fd[i] = fd[i]! + (u[j]! * (vp[j]! - vm[j]!)) / (2 * h);
        }
        // HOUSE_STYLE f64 gradcheck; 1/max(1 − t, 1e-4) amplifies the plain-x1 velocity (and its FD error).
        expect(g).toAllClose(fd, { atol: 1e-7 / Math.max(1 - t, 1e-4), rtol: 1e-6 });
        // Networks do not interact: the VJP of a cotangent on network 0 vanishes on network 1.
        const u0 = u.slice();
        u0.fill(0, P);
        expect(fm.likelihoodVelocity(x, t).vjp(u0).subarray(P).every((v) => v === 0)).toBe(true);
      }
      fm.dispose();
    });
  }

  it('integrates the sampler velocity: (x̂1 − x)/(1 − t) as predictX1 computes it', () => {
    for (const precondition of [true, false]) {
      const fm = FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 8, layers: 2 }, precondition, seed: 1, device: 'cpu' });
      const x = new Rng(2).fillNormal(new Float32Array(3 * P), 0, 0.5);
      for (const t of [0, 0.45, 0.9]) {
        const xhat = fm.predictX1(x, t);
        const ref = Array.from(xhat, (v, i) => (v - x[i]!) / (1 - t));
        // f32 network output; the reference subtracts x in f32 and divides by 1 − t ≥ 0.1.
        expect(fm.likelihoodVelocity(Float64Array.from(x), t).v).toAllClose(ref, { atol: 1e-5, rtol: 1e-5 });
      }
      fm.dispose();
    }
  });

  it('exact trace vs Hutchinson: same trajectory, estimates within the reported Monte-Carlo error', async () => {
    // Preconditioned (v = F, bounded at t → 1): the test is about the trace estimators, not the 1/(1 − t) factor.
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 8, layers: 2 }, precondition: true, seed: 2, device: 'cpu' });
    await fm.fit({ weights: zoo(32, 1) }, { steps: 60, batchSize: 8, lr: 3e-3 });
    const x1 = zoo(6, 9);
    const ex = fm.logLikelihood(x1, { exact: true, steps: 8 });
    expect(ex.stderr.every((s) => s === 0)).toBe(true);
    expect(ex.nvjp).toBe(8 * P); // P VJPs per evaluation, one evaluation per Euler step (one batch)
    for (const probe of ['rademacher', 'gaussian'] as const) {
      const h = fm.logLikelihood(x1, { probes: 64, probe, steps: 8, seed: 3 });
      // The trajectory does not depend on the probes (the VJPs leave the forward state alone).
      expect(h.x0).toAllClose(ex.x0, { atol: 0, rtol: 0 });
      expect(h.logPrior).toAllClose(ex.logPrior, { atol: 0, rtol: 0 });
      for (let b = 0; b < 6; b++) {
        expect(h.stderr[b]).toBeGreaterThan(0);
        // 5 reported standard errors (K = 64 probes estimate the error to ~10 %): false failures ≲ 1e-5.
        expect(Math.abs(h.divergence[b]! - ex.divergence[b]!)).toBeLessThan(5 * h.stderr[b]!);
        expect(h.logLikelihood[b]).toBeCloseTo(h.logPrior[b]! - h.divergence[b]!, 12);
      }
    }
    // The prior term is N(0, std²·I) at the recovered start points (computed in f64; `x0` is returned rounded to
    // f32, which moves ‖x0‖²/(2·0.01) by ~P·|x|·2⁻²⁴/0.01 ≈ 1e-5).
    expect(ex.logPrior).toAllClose(gaussianLogDensity(ex.x0, P, 0, 0.1), { atol: 1e-4, rtol: 0 });
    fm.dispose();
  });

  it('inverts the sampler: integrating back from sampled networks recovers their start points', async () => {
    // RK4 evaluates at t = 1 − 1e-4, where un-preconditioned x1-prediction's (x̂1 − x)/(1 − t) is singular.
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 8, layers: 2 }, precondition: true, seed: 4, device: 'cpu' });
    await fm.fit({ weights: zoo(32, 3) }, { steps: 60, batchSize: 8, lr: 3e-3 });
    const x0 = new Rng(6).fillNormal(new Float32Array(4 * P), 0, 0.1);
    const x1 = fm.sample({ n: 4, x0, solver: 'rk4', steps: 32 });
    const r = fm.logLikelihood(x1, { solver: 'rk4', steps: 32, probes: 4 });
    // RK4 forward and backward on the same grid: both O(h⁴) from the exact flow, f32 network evaluations.
    expect(r.x0).toAllClose(x0, { atol: 2e-4, rtol: 1e-3 });
    expect(r.nfe).toBe(4 * 32);
    fm.dispose();
  });

  it('a plain x1-prediction field (singular at t = 1): midpoint and RK4 no longer divide its error by 1e-4', async () => {
    // Midpoint and RK4 used to start the backward pass at t = 1 − 1e-4, dividing the field's error at a data point by
    // 1e-4 (log-likelihoods of −1e9 where Euler gave +10²); the step ending at t = 1 now takes Euler's rule at its left
    // time. The density itself has no limit as the grid is refined (the field contracts onto x̂1's image near t = 1,
    // and inverting the sampler there is ill-conditioned): likelihoodGridDependent() says so.
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'gaussian' }, field: { D: 8, layers: 2 }, precondition: false, seed: 4, device: 'cpu' });
    try {
      expect(fm.likelihoodGridDependent()).toBe(true);
      await fm.fit({ weights: zoo(32, 3) }, { steps: 60, batchSize: 8, lr: 3e-3 });
      const data = zoo(4, 9);
      const times: number[] = [];
      const field = fm.field;
      const forward = field.forward.bind(field);
      field.forward = ((x: Float32Array, t: Float32Array, o: object) => (times.push(t[0]!), forward(x, t, o))) as typeof field.forward;
      const m = fm.logLikelihood(data, { solver: 'midpoint', steps: 16, exact: true });
      const r = fm.logLikelihood(data, { solver: 'rk4', steps: 16, exact: true });
      field.forward = forward;
      // No evaluation after the last step's left time (1 − 1/16), where 1/(1 − t) ≤ 16.
      expect(Math.max(...times)).toBeCloseTo(1 - 1 / 16, 6);
      for (let b = 0; b < 4; b++) {
        expect(Number.isFinite(r.logLikelihood[b]!)).toBe(true);
        // The two share the step at t = 1 and differ elsewhere by their truncation errors only.
        expect(Math.abs(m.logLikelihood[b]! - r.logLikelihood[b]!)).toBeLessThan(0.01 * Math.abs(r.logLikelihood[b]!));
      }
    } finally {
      fm.dispose();
    }
    const pre = FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 4, layers: 1 }, precondition: true, device: 'cpu' });
    expect(pre.likelihoodGridDependent()).toBe(false);
    pre.dispose();
  });

  it('the RK4 sampler on a plain x1 field takes the midpoint rule for its last step, on the device and host paths', async () => {
    // Its last stage at t = 1 − 1e-4 divided the field's error by 1e-4: samples of RMS 1.93 where Euler and midpoint
    // gave 0.65 and 0.67 (600 training steps; measured 2026-12-07).
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'gaussian' }, field: { D: 8, layers: 2 }, precondition: false, seed: 4, device: 'cpu' });
    try {
      await fm.fit({ weights: zoo(32, 3) }, { steps: 200, batchSize: 8, lr: 3e-3 });
      const x0 = new Rng(6).fillNormal(new Float32Array(4 * P), 0, 0.1);
      const rms = (a: Float32Array, b?: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - (b?.[i] ?? 0)) ** 2, 0) / a.length);
      const euler = fm.sample({ n: 4, x0, solver: 'euler', steps: 32 });
      const mid = fm.sample({ n: 4, x0, solver: 'midpoint', steps: 32 });
      const rk4 = fm.sample({ n: 4, x0, solver: 'rk4', steps: 32 });
      // RK4 and midpoint are both second order or better: closer to each other than to Euler (before, RK4 differed
      // from midpoint by 0.4–1.7 at sample RMS 0.45–0.67).
      expect(rms(rk4, mid)).toBeLessThan(rms(euler, mid));
      expect(rms(rk4, mid)).toBeLessThan(0.05 * rms(mid));
      // The host sampler (a noise hook of scale 0 keeps it on the host) gives the same networks.
      const host = fm.sample({ n: 4, x0, solver: 'rk4', steps: 32, onStep: () => undefined });
      expect(host).toAllClose(rk4, { atol: 1e-6, rtol: 1e-5 });
    } finally {
      fm.dispose();
    }
  });

  it('rejects bad input and flows without an ambient density with typed errors', () => {
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 4, layers: 1 }, device: 'cpu' });
    const ok = new Float32Array(2 * P);
    expect(code(() => fm.logLikelihood(new Float32Array(P + 1)))).toBe('ERR_SHAPE');
    expect(code(() => fm.logLikelihood(new Float64Array(P) as unknown as Float32Array))).toBe('ERR_DTYPE');
    const nan = ok.slice();
    nan[5] = NaN;
    expect(code(() => fm.logLikelihood(nan))).toBe('ERR_NUMERIC');
    const inf = ok.slice();
    inf[P + 1] = Infinity;
    expect(code(() => fm.logLikelihood(inf))).toBe('ERR_NUMERIC');
    expect(code(() => fm.logLikelihood(ok, { probes: 0 }))).toBe('ERR_INVALID');
    expect(code(() => fm.logLikelihood(ok, { solver: 'heun' as never }))).toBe('ERR_INVALID');
    expect(code(() => fm.logLikelihood(ok, { probe: 'uniform' as never }))).toBe('ERR_INVALID');
    expect(code(() => fm.logLikelihood(ok, { steps: 0 }))).toBe('ERR_INVALID');
    expect(fm.logLikelihood(ok, { steps: 2, probes: 2 }).logLikelihood.every(Number.isFinite)).toBe(true);
    fm.dispose();
    for (const geometry of ['normalized', 'geometric'] as const) {
      const g = FlowMatcher.create({ arch, geometry, field: { D: 4, layers: 1 }, device: 'cpu' });
      expect(code(() => g.logLikelihood(ok))).toBe('ERR_INVALID');
      expect(() => g.logLikelihood(ok)).toThrow(/Euclidean flows only.*spheres.*not the change of a density on the manifold/);
      expect(g.likelihoodUnsupported()).toMatch(/Euclidean flows only/);
      g.dispose();
    }
    const ref = FlowMatcher.create({ arch, geometry: 'euclidean', semantics: 'reference', field: { D: 4, layers: 1 }, device: 'cpu' });
    expect(() => ref.logLikelihood(ok)).toThrow(/corrected.*x0/);
    ref.dispose();
    const init = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'init' }, field: { D: 4, layers: 1 }, device: 'cpu' });
    expect(code(() => init.logLikelihood(ok))).toBe('ERR_INVALID');
    init.dispose();
  });
});
