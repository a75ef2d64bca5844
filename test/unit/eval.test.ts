import { describe, expect, it } from 'vitest';
import { alignNetworks } from '../../lib/align/weightMatching.js';
import { lossBarriers } from '../../lib/eval/barriers.js';
import { bmaCurve } from '../../lib/eval/bma.js';
import { functionalDiversity } from '../../lib/eval/diversity.js';
import { evaluateNetworks } from '../../lib/eval/evaluate.js';
import { distinctPairs } from '../../lib/eval/stats.js';
import { loadTf, mlp, toTfModel } from '../../lib/index.js';
import type { Task } from '../../lib/tasks/Task.js';
import { Rng } from '../../lib/util/rng.js';
import { forwardF64, lossAccF64 } from '../helpers/mlpRef.js';
import { blobsTask, teacherTask } from '../helpers/syntheticTask.js';
import { trainZoo } from '../helpers/trainZoo.js';

/** An MNIST-like task: most features sit at one background value, so the sparse (CSR + shift) path runs. */
function backgroundTask(seed = 3): Task {
  const d = 64;
  const C = 4;
  const rng = new Rng(seed);
  const make = (n: number) => {
    const x = new Float32Array(n * d).fill(-0.4242);
    const y = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      y[r] = rng.int(C);
      for (let i = 0; i < d; i++) if (rng.uniform() < 0.2) x[r * d + i] = Math.fround(rng.normal() + y[r]! * 0.3);
    }
    return { x, y, n };
  };
  return { name: 'background', numFeatures: d, numClasses: C, train: make(50), val: make(30), test: make(77), defaultArch: [d, 10, C], description: 'tests' };
}

describe('evaluateNetworks', () => {
  it('equals TF.js model.evaluate (sparse CE from logits + accuracy) on trained networks', async () => {
    const { tf } = await loadTf();
    const task = blobsTask({ classes: 3, n: [200, 50, 61], sep: 0.4 });
    const arch = mlp([30, 16, 16, 3]);
    const w = trainZoo(task, arch, { count: 4, steps: 60, seed: 1 });
    const res = await evaluateNetworks(task, arch, w, { split: 'test' });
    expect(res.n).toBe(61);
    const xt = tf.tensor2d(task.test.x, [61, 30]);
    const yt = tf.oneHot(tf.tensor1d(task.test.y, 'int32'), 3);
    for (let b = 0; b < 4; b++) {
      const m = toTfModel(tf, arch, w, b);
      // Cross-entropy from logits (TF.js has no from_logits flag: softmaxCrossEntropy on one-hot targets is that
      // loss) and accuracy, evaluated in batches of 16 (TF.js weights batch means by batch size: an exact mean).
      m.compile({ optimizer: 'sgd', loss: (yTrue, yPred) => tf.losses.softmaxCrossEntropy(yTrue, yPred), metrics: [tf.metrics.categoricalAccuracy] });
      const [l, a] = (m.evaluate(xt, yt, { batchSize: 16 }) as import('@tensorflow/tfjs').Scalar[]).map((t) => t.dataSync()[0]!);
      expect(res.loss[b]).toAllClose(l!, { atol: 1e-6, rtol: 1e-5 }); // TF.js f32 vs our f64 accumulation
      expect(res.accuracy[b]).toAllClose(a!, { atol: 1e-7 }); // same count of correct argmaxes
      const ref = lossAccF64(arch, w, task.test.x, task.test.y, 61, b);
      expect(res.loss[b]).toAllClose(ref.loss, { atol: 1e-12, rtol: 1e-10 }); // both f64, different summation order
      expect(res.accuracy[b]).toBe(ref.acc);
      m.dispose();
    }
    xt.dispose();
    yt.dispose();
    expect(res.accuracySummary.mean).toBeGreaterThan(0.7);
    expect(res.lossSummary.n).toBe(4);
  });

  it('uses the sparse input path exactly and does not depend on chunking; logitScale scales the logits', async () => {
    const task = backgroundTask();
    const arch = mlp([64, 10, 4]);
    const rng = new Rng(9);
    const B = 13;
    const w = rng.fillNormal(new Float32Array(B * arch.numParams), 0, 0.3);
    const a = await evaluateNetworks(task, arch, w, { split: 'test' });
    const b = await evaluateNetworks(task, arch, w, { split: 'test', networksPerPass: 3, batchSize: 5 });
    expect(b.loss).toAllClose(a.loss, { atol: 1e-13, rtol: 1e-12 }); // f64, only summation order differs
    expect(b.accuracy).toEqual(a.accuracy);
    for (let k = 0; k < B; k++) {
      const ref = lossAccF64(arch, w, task.test.x, task.test.y, task.test.n, k);
      expect(a.loss[k]).toAllClose(ref.loss, { atol: 1e-12, rtol: 1e-10 });
      expect(a.accuracy[k]).toBe(ref.acc);
    }
    // logitScale s ≡ scaling the last layer by s.
    const s = 0.37;
    const scaled = w.slice();
    const P = arch.numParams;
    for (let k = 0; k < B; k++) {
      for (let p = arch.weightOffset(2); p < arch.biasOffset(1); p++) scaled[k * P + p]! *= s;
      for (let p = arch.biasOffset(2); p < P; p++) scaled[k * P + p]! *= s;
    }
    const c = await evaluateNetworks(task, arch, w, { logitScale: s, split: 'val' });
    const d = await evaluateNetworks(task, arch, scaled, { split: 'val' });
    expect(c.loss).toAllClose(d.loss, { atol: 1e-6, rtol: 1e-6 }); // scaled weights are rounded to f32
  });

  it('validates the task against the architecture and options', async () => {
    const task = blobsTask({ classes: 3 });
    const w = new Float32Array(mlp([30, 4, 2]).numParams);
    await expect(evaluateNetworks(task, mlp([30, 4, 2]), w)).rejects.toThrow(/3 classes for architecture 30-4-2|30 features and 2 classes/);
    await expect(evaluateNetworks(task, mlp([30, 4, 3]), new Float32Array(mlp([30, 4, 3]).numParams), { split: 'dev' as 'test' })).rejects.toThrow(/one of 'train', 'val', 'test'/);
    await expect(evaluateNetworks(task, mlp([30, 4, 3]), new Float32Array(5))).rejects.toThrowError(expect.objectContaining({ code: 'ERR_SHAPE' }));
    await expect(evaluateNetworks(task, mlp([30, 4, 3]), new Float32Array(mlp([30, 4, 3]).numParams), { logitScale: 0 })).rejects.toThrow(/logitScale/);
  });
});

describe('bmaCurve', () => {
  const task = backgroundTask(4);
  const arch = mlp([64, 10, 4]);
  const P = arch.numParams;

  it('of identical networks equals the single network, in both modes', async () => {
    const one = new Rng(2).fillNormal(new Float32Array(P), 0, 0.3);
    const w = new Float32Array(8 * P);
    for (let k = 0; k < 8; k++) w.set(one, k * P);
    const single = await evaluateNetworks(task, arch, one);
    for (const mode of ['prob', 'logit'] as const) {
      const res = await bmaCurve(task, arch, w, { ns: [1, 3, 8], repeats: 3, mode });
      expect(res.points.map((p) => p.n)).toEqual([1, 3, 8]);
      for (const p of res.points) {
        expect(p.accuracy.mean).toBe(single.accuracy[0]);
        expect(p.loss.mean).toAllClose(single.loss[0]!, { atol: 1e-6, rtol: 1e-6 }); // probabilities stored as f32
        expect(p.accuracy.std).toBe(0);
      }
    }
  });

  it('averages probabilities (thesis) or logits (published code) exactly', async () => {
    const B = 5;
    const w = new Rng(8).fillNormal(new Float32Array(B * P), 0, 0.5);
    const { x, y, n } = task.test;
    const d = 64;
    let nllP = 0;
    let nllL = 0;
    let accP = 0;
    let accL = 0;
    for (let r = 0; r < n; r++) {
      const pbar = new Float64Array(4);
      const zbar = new Float64Array(4);
      for (let k = 0; k < B; k++) {
        const z = forwardF64(arch, w, x, k, r * d);
        const m = Math.max(...z);
        const se = z.reduce((s, v) => s + Math.exp(v - m), 0);
        z.forEach((v, c) => ((pbar[c]! += Math.exp(v - m) / se / B), (zbar[c]! += v / B)));
      }
      nllP -= Math.log(pbar[y[r]!]!);
      const m = Math.max(...zbar);
      nllL += Math.log(zbar.reduce((s, v) => s + Math.exp(v - m), 0)) + m - zbar[y[r]!]!;
      if (pbar.indexOf(Math.max(...pbar)) === y[r]) accP++;
      if (zbar.indexOf(Math.max(...zbar)) === y[r]) accL++;
    }
    const p = (await bmaCurve(task, arch, w, { ns: [B], repeats: 2, mode: 'prob' })).points[0]!;
    const l = (await bmaCurve(task, arch, w, { ns: [B], repeats: 2, mode: 'logit' })).points[0]!;
    expect(p.loss.mean).toAllClose(nllP / n, { rtol: 1e-6 }); // f32 storage of log-probabilities
    expect(l.loss.mean).toAllClose(nllL / n, { rtol: 1e-6 });
    expect(p.accuracy.mean).toBe(accP / n);
    expect(l.accuracy.mean).toBe(accL / n);
    expect(p.loss.mean).not.toBeCloseTo(l.loss.mean, 4);
    await expect(bmaCurve(task, arch, w)).rejects.toThrow(/ensemble sizes in 1…5/);
  });
});

describe('functionalDiversity (JSD reconstruction)', () => {
  const task = backgroundTask(5);
  const arch = mlp([64, 10, 4]);
  const P = arch.numParams;

  it('is 0 for identical networks and positive, bounded by ln 2, for different ones', async () => {
    const one = new Rng(1).fillNormal(new Float32Array(P), 0, 0.5);
    const same = new Float32Array(4 * P);
    for (let k = 0; k < 4; k++) same.set(one, k * P);
    const z = await functionalDiversity(task, arch, same, { numInputs: 40 });
    expect(z.pairs.length).toBe(12);
    expect(z.diversity).toBeLessThan(1e-12); // identical densities up to f64 rounding
    const diff = new Rng(2).fillNormal(new Float32Array(4 * P), 0, 0.5);
    const r = await functionalDiversity(task, arch, diff, { numInputs: 40 });
    expect(r.pairJsd.min).toBeGreaterThan(1e-3);
    expect(r.pairJsd.max).toBeLessThanOrEqual(Math.log(2));
    expect(r.diversity).toBeCloseTo((3 / 4) * r.pairJsd.mean, 12);
    // Slightly perturbed copies are less diverse than independent networks.
    const near = same.slice();
    const rng = new Rng(3);
    for (let k = P; k < near.length; k++) near[k]! += 0.01 * rng.normal();
    const nr = await functionalDiversity(task, arch, near, { numInputs: 40 });
    expect(nr.diversity).toBeGreaterThan(0);
    expect(nr.diversity).toBeLessThan(r.diversity / 10);
  });

  it('equals an f64 reference written from the definition (Scott-rule KDE, pooled support, natural-log JSD)', async () => {
    const N = 3;
    const K = 40;
    const d = 64;
    const C = 4;
    const D = C - 1;
    const w = new Rng(6).fillNormal(new Float32Array(N * P), 0, 0.5);
    // A_i: softmax of network i's f64 logits on the first K test rows, first C − 1 coordinates.
    const points = (i: number): number[][] =>
      Array.from({ length: K }, (_, k) => {
        const z = Array.from(forwardF64(arch, w, task.test.x, i, k * d));
        const m = Math.max(...z);
        const e = z.map((v) => Math.exp(v - m));
        const se = e.reduce((a, b) => a + b, 0);
        return e.slice(0, D).map((v) => v / se);
      });
    // Scott's rule: h² = σ²·K^(−2/(D+4)), σ² the mean over coordinates of the sample variances (ddof 1).
    const h2 = (A: number[][]): number => {
      let v = 0;
      for (let c = 0; c < D; c++) {
        const mean = A.reduce((s, a) => s + a[c]!, 0) / K;
        v += A.reduce((s, a) => s + (a[c]! - mean) ** 2, 0) / (K - 1);
      }
      return (v / D) * K ** (-2 / (D + 4));
    };
    // Isotropic Gaussian KDE (unnormalised: the constant cancels when renormalised over the support).
    const kde = (A: number[][], hh: number, x: number[]): number => A.reduce((s, a) => s + Math.exp(-a.reduce((t, v, c) => t + (v - x[c]!) ** 2, 0) / (2 * hh)), 0);
    const jsdRef = (i: number, j: number): number => {
      const Ai = points(i);
      const Aj = points(j);
      const X = [...Ai, ...Aj];
      const pi = X.map((x) => kde(Ai, h2(Ai), x));
      const pj = X.map((x) => kde(Aj, h2(Aj), x));
      const zi = pi.reduce((a, b) => a + b, 0);
      const zj = pj.reduce((a, b) => a + b, 0);
      let jsd = 0;
      for (let k = 0; k < X.length; k++) {
        const Pk = pi[k]! / zi;
        const Qk = pj[k]! / zj;
        const Mk = (Pk + Qk) / 2;
        jsd += 0.5 * (Pk > 0 ? Pk * Math.log(Pk / Mk) : 0) + 0.5 * (Qk > 0 ? Qk * Math.log(Qk / Mk) : 0);
      }
      return jsd;
    };
    const r = await functionalDiversity(task, arch, w, { numInputs: K });
    expect(r.numInputs).toBe(K);
    expect(Array.from(r.pairs)).toEqual([0, 1, 0, 2, 1, 2]);
    const ref = [jsdRef(0, 1), jsdRef(0, 2), jsdRef(1, 2)];
    for (const v of ref) expect(v).toBeGreaterThan(1e-3); // far from 0: a relative comparison is meaningful
    // f64 both ways; the library skips kernel terms below e^-40 (relative effect < 1e-14) and sums in another order.
    expect(r.values).toAllClose(ref, { atol: 0, rtol: 1e-9 });
    expect(r.diversity).toAllClose(((N - 1) / N) * ((ref[0]! + ref[1]! + ref[2]!) / 3), { atol: 0, rtol: 1e-9 });
  });

  it('subsamples pairs when asked', async () => {
    const w = new Rng(4).fillNormal(new Float32Array(10 * P), 0, 0.5);
    const r = await functionalDiversity(task, arch, w, { numInputs: 20, maxPairs: 7, seed: 1 });
    expect(r.subsampled).toBe(true);
    expect(r.values.length).toBe(7);
    const keys = new Set<number>();
    for (let k = 0; k < 7; k++) {
      expect(r.pairs[2 * k]!).toBeLessThan(r.pairs[2 * k + 1]!);
      keys.add(r.pairs[2 * k]! * 10 + r.pairs[2 * k + 1]!);
    }
    expect(keys.size).toBe(7);
  });
});

describe('distinctPairs', () => {
  it('lists all pairs in order when the budget covers them', () => {
    const r = distinctPairs(4, 6, new Rng(0));
    expect(r.subsampled).toBe(false);
    expect(Array.from(r.pairs)).toEqual([0, 1, 0, 2, 0, 3, 1, 2, 1, 3, 2, 3]);
    expect(distinctPairs(4, 100, new Rng(0)).pairs.length).toBe(12);
    expect(distinctPairs(1, 5, new Rng(0)).pairs.length).toBe(0);
  });

  it('draws distinct ordered pairs, the same for the same seed, covering the range', () => {
    const n = 9;
    const total = (n * (n - 1)) / 2;
    const r = distinctPairs(n, total - 1, new Rng(3)); // all but one: the rejection loop must keep drawing
    expect(r.subsampled).toBe(true);
    const keys = new Set<number>();
    for (let k = 0; k < total - 1; k++) {
      const a = r.pairs[2 * k]!;
      const b = r.pairs[2 * k + 1]!;
      expect(a).toBeGreaterThanOrEqual(0);
      expect(a).toBeLessThan(b);
      expect(b).toBeLessThan(n);
      keys.add(a * n + b);
    }
    expect(keys.size).toBe(total - 1);
    expect(Array.from(distinctPairs(n, total - 1, new Rng(3)).pairs)).toEqual(Array.from(r.pairs));
    expect(Array.from(distinctPairs(n, 5, new Rng(4)).pairs)).not.toEqual(Array.from(distinctPairs(n, 5, new Rng(5)).pairs));
  });
});

describe('lossBarriers', () => {
  it('drops after weight-matching alignment on a small trained zoo', async () => {
    const task = teacherTask({ n: [1000, 100, 400] });
    const arch = mlp([30, 16, 16, 3]);
    // Thesis-like budget (WDBC: 50 epochs × 8 batches of Adam at 1e-3 from N(0, 0.1²)); much longer training
    // overfits this small task and midpoints then beat their endpoints (negative barriers) with or without alignment.
    const w = trainZoo(task, arch, { count: 8, steps: 400, seed: 5, lr: 1e-3 });
    const ev = await evaluateNetworks(task, arch, w);
    const before = await lossBarriers(task, arch, w, { pairs: 28 });
    const al = alignNetworks(arch, w);
    const after = await lossBarriers(task, arch, al.aligned, { pairs: 28 });
    console.log(
      `[barrier] zoo of 8 × 30-16-16-3 on the teacher task: test acc ${ev.accuracySummary.mean.toFixed(3)}, loss ${ev.lossSummary.mean.toFixed(3)}; ` +
        `barrier unaligned ${before.mean.toFixed(3)} ± ${before.std.toFixed(3)}, aligned ${after.mean.toFixed(3)} ± ${after.std.toFixed(3)}; ` +
        `distance to reference ${al.distanceBefore.mean.toFixed(2)} → ${al.distanceAfter.mean.toFixed(2)}`,
    );
    expect(ev.accuracySummary.mean).toBeGreaterThan(0.8);
    expect(before.values.length).toBe(28);
    expect(before.mean).toBeGreaterThan(0.05);
    expect(after.mean).toBeLessThan(0.5 * before.mean);
    // Exact values for three different networks (three pairs), against the f64 loss of the test helper:
    // barrier = L((θ_a + θ_b)/2) − (L(θ_a) + L(θ_b))/2, the midpoint held as f32 weights like any network.
    const P = arch.numParams;
    const three = w.slice(0, 3 * P);
    const L = (flat: ArrayLike<number>, k: number): number => lossAccF64(arch, flat, task.test.x, task.test.y, task.test.n, k).loss;
    const ex = await lossBarriers(task, arch, three);
    const exAbs = await lossBarriers(task, arch, three, { relative: false });
    expect(Array.from(ex.pairs)).toEqual([0, 1, 0, 2, 1, 2]);
    for (const [k, [a, b]] of [[0, 1], [0, 2], [1, 2]].entries()) {
      const mid = new Float32Array(P).map((_, p) => 0.5 * (three[a! * P + p]! + three[b! * P + p]!));
      const lMid = L(mid, 0);
      const lEnds = 0.5 * (L(three, a!) + L(three, b!));
      expect(ex.midpointLoss[k]).toAllClose(lMid, { atol: 1e-13, rtol: 1e-11 }); // f64 both; summation order differs
      expect(ex.endpointLoss[k]).toAllClose(lEnds, { atol: 1e-13, rtol: 1e-11 });
      expect(ex.values[k]).toAllClose(lMid - lEnds, { atol: 1e-12, rtol: 1e-10 });
      expect(Math.abs(lMid - lEnds)).toBeGreaterThan(1e-3); // a real barrier, not a difference that vanishes anyway
      expect(exAbs.values[k]).toAllClose(lMid, { atol: 1e-13, rtol: 1e-11 });
    }
    // Midpoint of a network with itself: zero barrier; absolute mode returns the midpoint loss.
    const two = new Float32Array(2 * arch.numParams);
    two.set(w.subarray(0, arch.numParams));
    two.set(w.subarray(0, arch.numParams), arch.numParams);
    expect((await lossBarriers(task, arch, two)).mean).toBeCloseTo(0, 12);
    const abs = await lossBarriers(task, arch, two, { relative: false });
    expect(abs.mean).toBeCloseTo(ev.loss[0]!, 12);
  });
});
