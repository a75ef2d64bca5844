// FlowMatcher: option validation, training in every geometry, sampling constraints, the reference sampler's
// drift, resumable checkpoints (bit-identical continuation), trajectory coupling and OT straightness.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import type { WsfError } from '../../lib/index.js';
import { geometry, mlp } from '../../lib/index.js';
import { loadTask } from '../../lib/tasks/loadTask.js';
import { Rng } from '../../lib/util/rng.js';
import { restoreEnvAfterEach } from '../helpers/env.js';
import { forwardF64, lossAccF64 } from '../helpers/mlpRef.js';
import { setFreeMemoryProbe } from '../../lib/engine/VectorField.js';

const arch = mlp([4, 3, 2]);
const P = arch.numParams;

// A small synthetic "zoo": networks near two modes, so a flow has something to learn.
function zoo(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const modes = [rng.fillNormal(new Float32Array(P), 0, 0.5), rng.fillNormal(new Float32Array(P), 0, 0.5)];
  const out = new Float32Array(n * P);
  for (let i = 0; i < n; i++) {
    const m = modes[i % 2]!;
    for (let p = 0; p < P; p++) out[i * P + p] = m[p]! + 0.05 * rng.normal();
  }
  return out;
}

const small = { D: 8, layers: 2 } as const;

restoreEnvAfterEach(['WSF_FUSED_STEP']);

describe('FlowMatcher', () => {
  it('validates options before any work, naming the option', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ geometry: 'hyperbolic' }, /geometry/],
      [{ semantics: 'legacy' }, /semantics/],
      [{ coupling: 'sinkhorn' }, /coupling/],
      [{ sigma: -1 }, /sigma/],
      [{ prediction: 'velocity', precondition: true }, /precondition/],
      [{ time: 'lognormal' }, /time/],
      [{ prior: { kind: 'zoo', members: 0 } }, /prior\.members/],
      [{ prior: { kind: 'gaussian', std: 0 } }, /prior\.std/],
      [{ prior: { kind: 'laplace' } }, /prior\.kind/],
      [{ prior: { kind: 'zoo' }, coupling: 'trajectory' }, /trajectory/],
    ];
    for (const [o, re] of bad) {
      let err: WsfError | undefined;
      try {
        FlowMatcher.create({ arch, field: small, device: 'cpu', ...o });
      } catch (e) {
        err = e as WsfError;
      }
      expect(err?.code).toBe('ERR_INVALID');
      expect(err?.message).toMatch(re);
    }
  });

  it('rejects bad training data and sampling options with typed errors', async () => {
    const fm = FlowMatcher.create({ arch, field: small, device: 'cpu' });
    await expect(fm.fit({ weights: new Float32Array(P + 1) }, { steps: 1 })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    await expect(fm.fit({ weights: zoo(4, 1) }, { steps: -1 })).rejects.toMatchObject({ code: 'ERR_INVALID' });
    expect(() => fm.sample({ n: 0 })).toThrow(/`n`/);
    expect(() => fm.sample({ n: 2, solver: 'heun' as never })).toThrow(/solver/);
    expect(() => fm.sample({ n: 2, grid: 'log' as never })).toThrow(/grid/);
    const ref = FlowMatcher.create({ arch, field: small, semantics: 'reference', device: 'cpu' });
    expect(() => ref.sample({ n: 1, steps: 3, grid: 'early' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    ref.dispose();
    // A non-uniform grid keeps the samples of the right form (finite; on the spheres for the Geometric default).
    const e = fm.sample({ n: 2, steps: 4, grid: 'early' });
    expect(e.length).toBe(2 * P);
    expect(e.every(Number.isFinite)).toBe(true);
    const traj = FlowMatcher.create({ arch, field: small, coupling: 'trajectory', device: 'cpu' });
    await expect(traj.fit({ weights: zoo(4, 1) }, { steps: 1 })).rejects.toThrow(/trajectory/);
    fm.dispose();
    traj.dispose();
  });

  for (const geom of ['euclidean', 'normalized', 'geometric'] as const) {
    it(`${geom}: the training loss falls and samples have the right form`, async () => {
      const data = zoo(64, 2);
      const fm = FlowMatcher.create({ arch, geometry: geom, field: small, seed: 3, device: 'cpu', prior: { kind: 'gaussian', std: 0.5 } });
      const logs: number[] = [];
      await fm.fit({ weights: data }, { steps: 300, batchSize: 16, lr: 3e-3, logEvery: 50, onLog: (l) => logs.push(l.loss) });
      expect(logs.length).toBe(6);
      expect(logs[logs.length - 1]!).toBeLessThan(logs[0]! * 0.7);
      const s = fm.sample({ n: 6, steps: 8 });
      expect(s.length).toBe(6 * P);
      expect(s.every(Number.isFinite)).toBe(true);
      if (geom !== 'euclidean') {
        // Corrected semantics: canonicalised, so every sphere factor has unit norm (f32).
        const g = geometry(arch, 'geometric', { device: 'cpu' });
        const d = g.dist(s, g.project(s));
        expect(Math.max(...d)).toBeLessThan(1e-5);
        g.dispose();
      }
      fm.dispose();
    });
  }

  for (const geom of ['euclidean', 'normalized', 'geometric'] as const) {
    it(`${geom}: the renoising sampler at ρ = 1 follows the Euler path; below 1 it stays on the spheres, seeded`, async () => {
      const fm = FlowMatcher.create({ arch, geometry: geom, field: small, seed: 4, device: 'cpu', prior: { kind: 'gaussian', std: 0.5 } });
      await fm.fit({ weights: zoo(48, 6) }, { steps: 120, batchSize: 16, lr: 3e-3 });
      for (const grid of ['uniform', 'early'] as const) {
        const euler = fm.sample({ n: 6, steps: 8, seed: 3, grid });
        const same = fm.sample({ n: 6, steps: 8, seed: 3, grid, renoise: 1 });
        let d = 0;
        for (let i = 0; i < euler.length; i++) d = Math.max(d, Math.abs(euler[i]! - same[i]!));
        expect(d).toBeLessThan(2e-5);
      }
      const calls: number[] = [];
      const a = fm.sample({ n: 6, steps: 8, seed: 3, renoise: 0.7, onStep: (_x, t) => calls.push(t) });
      expect(calls.length).toBe(9);
      expect(calls[8]).toBe(1);
      expect(Array.from(fm.sample({ n: 6, steps: 8, seed: 3, renoise: 0.7 }))).toEqual(Array.from(a));
      const b = fm.sample({ n: 6, steps: 8, seed: 3, renoise: 1 });
      let diff = 0;
      for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      expect(diff).toBeGreaterThan(1e-3);
      expect(a.every(Number.isFinite)).toBe(true);
      if (geom !== 'euclidean') {
        const g = geometry(arch, 'geometric', { device: 'cpu' });
        expect(Math.max(...g.dist(a, g.project(a)))).toBeLessThan(1e-5);
        g.dispose();
      }
      fm.dispose();
    });
  }

  it('renoising sampler (Euclidean): each step renews the extrapolated start point with N(0, std²) draws of the share √(1 − ρ²)', async () => {
    const std = 0.5;
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', field: small, seed: 4, device: 'cpu', prior: { kind: 'gaussian', std } });
    await fm.fit({ weights: zoo(48, 6) }, { steps: 60, batchSize: 16, lr: 3e-3 });
    const n = 400;
    const steps = 4;
    const rho = 0.6;
    const states: Float32Array[] = [];
    fm.sample({ n, steps, seed: 9, renoise: rho, batchSize: n, onStep: (x) => states.push(x.slice()) });
    const keep = rho ** (32 / steps);
    const fresh = Math.sqrt(1 - keep * keep);
    // Step k → k + 1: y' = (1 − t')·(keep·x̂0 + fresh·z) + t'·x̂1 with x̂0 = (y − t·x̂1)/(1 − t) (y itself at t = 0), so
    // z recovered from consecutive states must be N(0, std²), independent of the state.
    for (let k = 0; k < steps - 1; k++) {
      const t = k / steps;
      const t2 = (k + 1) / steps;
      const y = states[k]!;
      const x1 = fm.predictX1(y, t);
      let s1 = 0;
      let s2 = 0;
      let sy = 0;
      for (let i = 0; i < y.length; i++) {
        const x0 = (y[i]! - t * x1[i]!) / (1 - t);
        const z = ((states[k + 1]![i]! - t2 * x1[i]!) / (1 - t2) - keep * x0) / fresh;
        s1 += z;
        s2 += z * z;
        sy += z * y[i]!;
      }
      const m = s1 / y.length;
      const sd = Math.sqrt(s2 / y.length - m * m);
      expect(Math.abs(m)).toBeLessThan(0.03);
      expect(Math.abs(sd / std - 1)).toBeLessThan(0.03);
      expect(Math.abs(sy / y.length)).toBeLessThan(0.03); // not the state itself
    }
    fm.dispose();
  });

  it('renoising sampler: options it cannot serve are rejected before any work', async () => {
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: small, device: 'cpu', prior: { kind: 'gaussian', std: 0.5 } });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ renoise: 1.5 }, /renoise/],
      [{ renoise: -0.1 }, /renoise/],
      [{ renoise: 0.5, solver: 'rk4' }, /solver 'euler'/],
      [{ renoise: 0.5, noise: { scale: 0.1 } }, /no `noise` and no guidance other than at the prediction/],
      [{ renoise: 0.5, velocity: 'x0-anchored' }, /velocity 'riemannian'/],
    ];
    for (const [o, re] of bad) {
      expect(() => fm.sample({ n: 2, steps: 4, ...o })).toThrow(re);
      expect(() => fm.sample({ n: 2, steps: 4, ...o })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    }
    fm.dispose();
    const zooPrior = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'zoo' }, field: small, seed: 3, device: 'cpu' });
    await zooPrior.fit({ weights: zoo(32, 2) }, { steps: 5, batchSize: 8 });
    expect(() => zooPrior.sample({ n: 2, steps: 4, renoise: 0.5 })).toThrow(/zero-mean prior/);
    zooPrior.dispose();
    const ref = FlowMatcher.create({ arch, geometry: 'geometric', semantics: 'reference', field: small, device: 'cpu' });
    expect(() => ref.sample({ n: 2, steps: 4, renoise: 0.5 })).toThrow(/corrected semantics/);
    ref.dispose();
  });

  it('reference semantics: the published Geometric sampler leaves the spheres (x0-anchored, non-tangent steps)', async () => {
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', semantics: 'reference', field: small, seed: 1, device: 'cpu', prior: { kind: 'gaussian', std: 0.5 } });
    await fm.fit({ weights: zoo(32, 3) }, { steps: 50, batchSize: 8, lr: 3e-3 });
    const s = fm.sample({ n: 8, steps: 8 });
    const g = geometry(arch, 'geometric', { device: 'cpu' });
    // Norm of each sphere factor: the published sampler's end states are inside the spheres.
    const norms: number[] = [];
    for (let b = 0; b < 8; b++) {
      for (let f = 0; f < arch.numSpheres; f++) {
        let ss = 0;
        for (let k = 0; k < arch.sphereDim[f]!; k++) ss += s[b * P + arch.sphereOffset[f]! + k * arch.sphereStride[f]!]! ** 2;
        norms.push(Math.sqrt(ss));
      }
    }
    const mean = norms.reduce((a, b) => a + b, 0) / norms.length;
    expect(mean).toBeLessThan(0.999);
    g.dispose();
    fm.dispose();
  });

  it('resumes from a checkpoint with a bit-identical continuation (CPU, same seed)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-flow-'));
    const data = zoo(40, 5);
    const opts = { arch, geometry: 'geometric' as const, coupling: 'ot' as const, field: small, seed: 7, device: 'cpu' as const };
    const full = FlowMatcher.create(opts);
    await full.fit({ weights: data }, { steps: 30, batchSize: 8, ema: 0.9 });
    const ck = path.join(dir, 'ck.safetensors');
    const a = FlowMatcher.create(opts);
    const ac = new AbortController();
    let seen = 0;
    await expect(
      a.fit({ weights: data }, { steps: 30, batchSize: 8, ema: 0.9, checkpoint: ck, checkpointEvery: 5, signal: ac.signal, logEvery: 1, onLog: () => { if (++seen === 12) ac.abort(); } }),
    ).rejects.toMatchObject({ code: 'ERR_INTERRUPTED' });
    const stoppedAt = a.field.stepCount;
    expect(stoppedAt).toBeGreaterThanOrEqual(10);
    expect(stoppedAt).toBeLessThan(30);
    const b = FlowMatcher.create(opts);
    // It must resume where the interrupted run stopped (a restart from step 0 with the same seed would end with the
    // same parameters): the start step and the number of steps run say which.
    let start = -1;
    let ran = 0;
    await b.fit({ weights: data }, { steps: 30, batchSize: 8, ema: 0.9, checkpoint: ck, checkpointEvery: 5, logEvery: 1, onStart: (s) => (start = s), onLog: () => ran++ });
    expect(start).toBe(stoppedAt);
    expect(ran).toBe(30 - stoppedAt);
    expect(b.field.stepCount).toBe(30);
    expect(b.field.getParams()).toAllClose(full.field.getParams(), { atol: 0, rtol: 0 });
    // The EMA weights (which sampling uses) resumed too.
    expect(b.sample({ n: 3, steps: 4, seed: 2 })).toAllClose(full.sample({ n: 3, steps: 4, seed: 2 }), { atol: 0, rtol: 0 });
    // Saved flows load for sampling and give the same samples.
    const file = path.join(dir, 'flow.safetensors');
    full.save(file);
    const loaded = FlowMatcher.load(file, { device: 'cpu' });
    expect(loaded.sample({ n: 3, steps: 4, seed: 2 })).toAllClose(full.sample({ n: 3, steps: 4, seed: 2 }), { atol: 0, rtol: 0 });
    for (const f of [full, a, b, loaded]) f.dispose();
  });

  it('OT over a pool of batches pairs prior draws and networks more closely than OT within a batch, keeping both marginals', async () => {
    expect(() => FlowMatcher.create({ arch, geometry: 'euclidean', coupling: 'ot', otPool: 0, field: small, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => FlowMatcher.create({ arch, geometry: 'euclidean', coupling: 'ot', otPool: 65, field: small, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    const data = zoo(64, 21);
    // The pairs each step trains on, captured at the private seam between pairing and the rest of the host step
    // (the fused step gathers independent pairs on the device and never reaches it).
    process.env.WSF_FUSED_STEP = '0';
    const pairsOf = async (coupling: 'independent' | 'ot', otPool: number): Promise<{ cost: number; rows: Set<number> }> => {
      const fm = FlowMatcher.create({ arch, geometry: 'euclidean', coupling, otPool, field: small, seed: 5, device: 'cpu', prior: { kind: 'gaussian', std: 0.3 } });
      const seam = fm as unknown as { trainOnPairs: (x0: Float32Array, x1: Float32Array, B: number, adam: unknown) => unknown };
      const inner = seam.trainOnPairs.bind(fm);
      let cost = 0;
      let pairs = 0;
      const rows = new Set<number>();
      seam.trainOnPairs = (x0, x1, B, adam) => {
        for (let b = 0; b < B; b++) {
          let d = 0;
          for (let p = 0; p < P; p++) d += (x0[b * P + p]! - x1[b * P + p]!) ** 2;
          cost += d;
          pairs++;
          // Which network x1 is (rows of the zoo are distinct): every training network must keep being used.
          for (let i = 0; i < 64; i++) if (x1[b * P] === data[i * P] && x1[b * P + 1] === data[i * P + 1]) rows.add(i);
        }
        return inner(x0, x1, B, adam);
      };
      await fm.fit({ weights: data }, { steps: 24, batchSize: 8 });
      fm.dispose();
      return { cost: cost / pairs, rows };
    };
    const ind = await pairsOf('independent', 1);
    const ot1 = await pairsOf('ot', 1);
    const ot8 = await pairsOf('ot', 8);
    expect(ot1.cost).toBeLessThan(ind.cost);
    expect(ot8.cost).toBeLessThan(ot1.cost);
    // 24 steps × 8 pairs drawn from pools of 64 networks: the data marginal is not narrowed to a favoured subset.
    expect(ot8.rows.size).toBeGreaterThan(48);
  });

  it("the 'zoo' prior: fitted on the first training data, draws with the zoo's mean and covariance, saved with the flow", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-zooprior-'));
    const T = 6;
    const data = zoo(T, 12);
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'zoo' }, field: small, seed: 3, device: 'cpu' });
    expect(() => fm.drawPriorSamples(2)).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/train the flow/) }));
    expect(fm.likelihoodUnsupported()).toMatch(/rank/);
    await fm.fit({ weights: data }, { steps: 5, batchSize: 4 });
    // members (256) ≥ T: all six networks span the covariance, so the draws' mean and covariance are the zoo's.
    const n = 6000;
    const x = fm.drawPriorSamples(n, 4);
    const mu = new Float64Array(P);
    for (let i = 0; i < T; i++) for (let p = 0; p < P; p++) mu[p]! += data[i * P + p]! / T;
    const emp = new Float64Array(P);
    for (let i = 0; i < n; i++) for (let p = 0; p < P; p++) emp[p]! += x[i * P + p]! / n;
    let worst = 0;
    for (let p = 0; p < P; p++) {
      let want = 0;
      let got = 0;
      for (let i = 0; i < T; i++) want += (data[i * P + p]! - mu[p]!) ** 2 / T;
      for (let i = 0; i < n; i++) got += (x[i * P + p]! - mu[p]!) ** 2 / n;
      expect(Math.abs(emp[p]! - mu[p]!)).toBeLessThan(5 * Math.sqrt(want / n) + 1e-6);
      worst = Math.max(worst, Math.abs(got - want) / want);
    }
    expect(worst).toBeLessThan(0.15); // relative error of a variance from 6,000 draws: ~ √(2/6000) ≈ 0.018 each
    // Every draw lies in the zoo's affine span μ + span{x_i − μ} (rank ≤ T − 1).
    const centred = Array.from({ length: T }, (_, i) => Float64Array.from({ length: P }, (_, p) => data[i * P + p]! - mu[p]!));
    const gs: Float64Array[] = []; // Gram–Schmidt basis of the centred zoo
    for (const c of centred) {
      const v = Float64Array.from(c);
      for (const q of gs) {
        const d = v.reduce((s, vv, p) => s + vv * q[p]!, 0);
        for (let p = 0; p < P; p++) v[p]! -= d * q[p]!;
      }
      const norm = Math.hypot(...v);
      if (norm > 1e-9) gs.push(v.map((vv) => vv / norm));
    }
    expect(gs.length).toBe(T - 1);
    for (let i = 0; i < 20; i++) {
      const r = Float64Array.from({ length: P }, (_, p) => x[i * P + p]! - mu[p]!);
      const before = Math.hypot(...r);
      for (const q of gs) {
        const d = r.reduce((s, vv, p) => s + vv * q[p]!, 0);
        for (let p = 0; p < P; p++) r[p]! -= d * q[p]!;
      }
      expect(Math.hypot(...r)).toBeLessThan(1e-5 * (1 + before)); // f32 draws
    }
    // Saved with the flow: the loaded flow draws and samples the same; it cannot transfer to another architecture.
    const file = path.join(dir, 'flow.safetensors');
    fm.save(file);
    const loaded = FlowMatcher.load(file, { device: 'cpu' });
    expect(loaded.drawPriorSamples(4, 9)).toAllClose(fm.drawPriorSamples(4, 9), { atol: 0, rtol: 0 });
    expect(loaded.sample({ n: 3, steps: 4, seed: 2 })).toAllClose(fm.sample({ n: 3, steps: 4, seed: 2 }), { atol: 0, rtol: 0 });
    expect(() => loaded.sample({ n: 1, steps: 2, arch: [4, 5, 2] })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', message: expect.stringMatching(/--prior gaussian/) }));
    // A later fit on other data keeps the fitted prior (it is part of the model).
    const before = fm.drawPriorSamples(2, 1);
    await fm.fit({ weights: zoo(8, 99) }, { steps: 2, batchSize: 4 });
    expect(fm.drawPriorSamples(2, 1)).toAllClose(before, { atol: 0, rtol: 0 });
    fm.dispose();
    loaded.dispose();
  });

  it('gradient features: the field sees each network’s task-loss gradient, normalised per layer block', async () => {
    const task = loadTask('wdbc');
    const small3 = mlp([30, 3, 2]);
    const Q = small3.numParams;
    expect(() => FlowMatcher.create({ arch: small3, gradientFeatures: { task: 'cifar' }, field: small, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => FlowMatcher.create({ arch: [30, 3, 3], gradientFeatures: { task: 'wdbc' }, field: small, device: 'cpu' })).toThrow(/2 classes/);
    // rows ≥ the train split: the probe batch is the whole train split, so the reference is the full-split gradient.
    const fm = FlowMatcher.create({ arch: small3, geometry: 'euclidean', gradientFeatures: { task: 'wdbc', rows: 1e6 }, field: small, seed: 2, device: 'cpu' });
    expect(fm.field.config.auxFeatures).toBe(1);
    expect(fm.likelihoodUnsupported()).toMatch(/gradient features/);
    const x = new Rng(4).fillNormal(new Float32Array(2 * Q), 0, 0.3);
    const feats = fm.gradientFeaturesOf(x)!;
    const tr = task.train;
    for (let b = 0; b < 2; b++) {
      // f64 central differences of the mean cross-entropy over the train split (mlpRef, independent of the library).
      const w = Float64Array.from(x.subarray(b * Q, (b + 1) * Q));
      const g = new Float64Array(Q);
      const h = 1e-5;
      for (let p = 0; p < Q; p++) {
        const keep = w[p]!;
        w[p] = keep + h;
        const up = lossAccF64(small3, w, tr.x, tr.y, tr.n).loss;
        w[p] = keep - h;
        const down = lossAccF64(small3, w, tr.x, tr.y, tr.n).loss;
        w[p] = keep;
        g[p] = (up - down) / (2 * h);
      }
      for (let l = 1; l <= 2; l++) {
        for (const [o, len] of [[small3.weightOffset(l), small3.widths[l - 1]! * small3.widths[l]!], [small3.biasOffset(l), small3.widths[l]!]] as const) {
          const rms = Math.sqrt(g.subarray(o, o + len).reduce((s, v) => s + v * v, 0) / len);
          const want = Array.from(g.subarray(o, o + len), (v) => v / rms);
          expect(feats.subarray(b * Q + o, b * Q + o + len)).toAllClose(want, { atol: 1e-4, rtol: 1e-3 });
        }
      }
    }
    // Trains, samples, and round-trips through save/load with the option.
    const data = new Rng(5).fillNormal(new Float32Array(8 * Q), 0, 0.3);
    await fm.fit({ weights: data }, { steps: 3, batchSize: 4 });
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-gradfeat-')), 'flow.safetensors');
    fm.save(file);
    const loaded = FlowMatcher.load(file, { device: 'cpu' });
    expect(loaded.options.gradientFeatures).toEqual({ task: 'wdbc', rows: 1e6 });
    expect(loaded.sample({ n: 2, steps: 3, seed: 1 })).toAllClose(fm.sample({ n: 2, steps: 3, seed: 1 }), { atol: 0, rtol: 0 });
    fm.dispose();
    loaded.dispose();
  });

  it('probe features: each neuron’s activations on fixed probe inputs, each weight its source’s, normalised per layer block', async () => {
    const a = mlp([30, 3, 2]);
    const Q = a.numParams;
    const K = 4;
    expect(() => FlowMatcher.create({ arch: [30, 3, 3], probeFeatures: { task: 'wdbc' }, field: small, device: 'cpu' })).toThrow(/2 classes/);
    expect(() => FlowMatcher.create({ arch: a, probeFeatures: { task: 'wdbc', probes: 65 }, field: small, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => FlowMatcher.create({ arch: a, probeFeatures: { task: 'wdbc' }, gradientFeatures: { task: 'wdbc' }, field: small, device: 'cpu' })).toThrow(/gradientFeatures and probeFeatures all feed .* choose one/);
    const fm = FlowMatcher.create({ arch: a, geometry: 'euclidean', probeFeatures: { task: 'wdbc', probes: K }, field: small, seed: 2, device: 'cpu' });
    expect(fm.field.config.auxFeatures).toBe(K);
    expect(fm.likelihoodUnsupported()).toMatch(/probe features/);
    expect(fm.gradientFeaturesOf(new Float32Array(Q))).toBeUndefined();
    const x = new Rng(4).fillNormal(new Float32Array(2 * Q), 0, 0.3);
    const { features, probes } = fm.probeFeaturesOf(x)!;
    expect(features.length).toBe(2 * Q * K);
    // The probe inputs are K distinct rows of the task's training split.
    const tr = loadTask('wdbc').train;
    for (let k = 0; k < K; k++) {
      const row = probes.subarray(k * 30, (k + 1) * 30);
      expect(Array.from({ length: tr.n }, (_, r) => r).some((r) => tr.x.subarray(r * 30, (r + 1) * 30).every((v, i) => v === row[i]))).toBe(true);
    }
    // Reference: layer outputs from the f64 MLP of the test helpers (the first layer as a one-layer network).
    const first = mlp([30, 3]);
    for (let b = 0; b < 2; b++) {
      const w = x.subarray(b * Q, (b + 1) * Q);
      const w1 = new Float64Array(first.numParams);
      w1.set(w.subarray(a.weightOffset(1), a.weightOffset(1) + 90), first.weightOffset(1));
      w1.set(w.subarray(a.biasOffset(1), a.biasOffset(1) + 3), first.biasOffset(1));
      const raw = new Float64Array(Q * K);
      for (let k = 0; k < K; k++) {
        const input = probes.subarray(k * 30, (k + 1) * 30);
        const h = Array.from(forwardF64(first, w1, input), (v) => Math.max(v, 0));
        const logits = forwardF64(a, w, input);
        for (let i = 0; i < 30; i++) for (let j = 0; j < 3; j++) raw[(a.weightOffset(1) + i * 3 + j) * K + k] = input[i]!;
        for (let j = 0; j < 3; j++) raw[(a.biasOffset(1) + j) * K + k] = h[j]!;
        for (let i = 0; i < 3; i++) for (let j = 0; j < 2; j++) raw[(a.weightOffset(2) + i * 2 + j) * K + k] = h[i]!;
        for (let j = 0; j < 2; j++) raw[(a.biasOffset(2) + j) * K + k] = logits[j]!;
      }
      for (let l = 1; l <= 2; l++) {
        for (const [o, len] of [[a.weightOffset(l), a.widths[l - 1]! * a.widths[l]!], [a.biasOffset(l), a.widths[l]!]] as const) {
          const block = raw.subarray(o * K, (o + len) * K);
          const rms = Math.sqrt(block.reduce((s2, v) => s2 + v * v, 0) / block.length);
          expect(features.subarray((b * Q + o) * K, (b * Q + o + len) * K)).toAllClose(Array.from(block, (v) => v / rms), { atol: 1e-5, rtol: 1e-4 });
        }
      }
    }
    // Trains (host-orchestrated step), samples in sub-batches with the same networks, round-trips through save/load.
    const data = new Rng(5).fillNormal(new Float32Array(8 * Q), 0, 0.3);
    await fm.fit({ weights: data }, { steps: 3, batchSize: 4 });
    const whole = fm.sample({ n: 3, steps: 3, seed: 1 });
    const prev = setFreeMemoryProbe(() => 1); // one network per field call
    try {
      expect(fm.sample({ n: 3, steps: 3, seed: 1 })).toAllClose(whole, { atol: 0, rtol: 0 });
    } finally {
      setFreeMemoryProbe(prev);
    }
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-probefeat-')), 'flow.safetensors');
    fm.save(file);
    const loaded = FlowMatcher.load(file, { device: 'cpu' });
    expect(loaded.options.probeFeatures).toEqual({ task: 'wdbc', probes: K });
    expect(loaded.sample({ n: 2, steps: 3, seed: 1 })).toAllClose(fm.sample({ n: 2, steps: 3, seed: 1 }), { atol: 0, rtol: 0 });
    fm.dispose();
    loaded.dispose();
  });

  it('trajectory coupling pairs each checkpoint with its own run initialisation', async () => {
    const rng = new Rng(9);
    const init = rng.fillNormal(new Float32Array(4 * P), 0, 0.1);
    const run = Int32Array.from({ length: 16 }, (_, i) => i % 4);
    const weights = new Float32Array(16 * P);
    for (let i = 0; i < 16; i++) for (let p = 0; p < P; p++) weights[i * P + p] = init[run[i]! * P + p]! + 0.5;
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', coupling: 'trajectory', field: small, device: 'cpu', seed: 2 });
    const r = await fm.fit({ weights, run, init }, { steps: 200, batchSize: 8, lr: 3e-3 });
    expect(r.loss).toBeLessThan(0.05);
    // From a run's own initialisation the flow moves it by ≈ +0.5 per coordinate.
    const s = fm.sample({ n: 4, steps: 8, x0: init });
    let shift = 0;
    for (let i = 0; i < s.length; i++) shift += s[i]! - init[i]!;
    expect(shift / s.length).toBeGreaterThan(0.3);
    fm.dispose();
  });
});
