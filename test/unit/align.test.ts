import { describe, expect, it } from 'vitest';
import { linearSumAssignment } from '../../lib/align/assignment.js';
import { composePermutations, identityPermutations, invertPermutations, numHidden, permuteNetworks, randomPermutations } from '../../lib/align/permutation.js';
import { alignNetworks, nearestToMean } from '../../lib/align/weightMatching.js';
import { alignZoo } from '../../lib/pipeline/align.js';
import type { Zoo } from '../../lib/zoo/Zoo.js';
import { loadTf, mlp, toTfModel, WsfError } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';
import { forwardF64 } from '../helpers/mlpRef.js';

function bruteForce(cost: Float64Array, n: number, m: number, maximize: boolean): number {
  // Best total over all injective maps of the smaller side into the larger.
  const small = Math.min(n, m);
  const big = Math.max(n, m);
  const at = (s: number, b: number): number => (n <= m ? cost[s * m + b]! : cost[b * m + s]!);
  let best = maximize ? -Infinity : Infinity;
  const used = new Uint8Array(big);
  const rec = (s: number, acc: number): void => {
    if (s === small) {
      best = maximize ? Math.max(best, acc) : Math.min(best, acc);
      return;
    }
    for (let b = 0; b < big; b++) {
      if (used[b]) continue;
      used[b] = 1;
      rec(s + 1, acc + at(s, b));
      used[b] = 0;
    }
  };
  rec(0, 0);
  return best;
}

describe('linearSumAssignment (Hungarian, shortest augmenting paths)', () => {
  it('matches brute force on random square and rectangular matrices, min and max', () => {
    const rng = new Rng(11);
    let cases = 0;
    for (const [n, m] of [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5], [6, 6], [7, 7], [2, 5], [5, 2], [3, 6], [6, 4]] as const) {
      for (let rep = 0; rep < 8; rep++) {
        // Integer costs create ties; Gaussian costs do not — exercise both.
        const cost = new Float64Array(n * m);
        for (let k = 0; k < cost.length; k++) cost[k] = rep % 2 === 0 ? rng.int(5) : rng.normal();
        for (const maximize of [false, true]) {
          const { rowToCol, total } = linearSumAssignment(cost, n, m, { maximize });
          // A valid injective assignment of min(n, m) pairs whose total is the recomputed one.
          const cols = [...rowToCol].filter((c) => c >= 0);
          expect(cols.length).toBe(Math.min(n, m));
          expect(new Set(cols).size).toBe(cols.length);
          let t = 0;
          rowToCol.forEach((c, r) => (t += c >= 0 ? cost[r * m + c]! : 0));
          expect(t).toBeCloseTo(total, 12);
          expect(total).toBeCloseTo(bruteForce(cost, n, m, maximize), 10); // exact optimum up to f64 summation order
          cases++;
        }
      }
    }
    expect(cases).toBe(176);
  });

  it('solves a 300×300 problem quickly and rejects bad input', () => {
    const n = 300;
    const cost = new Rng(3).fillNormal(new Float64Array(n * n));
    const t0 = performance.now();
    const { rowToCol } = linearSumAssignment(cost, n, n, { maximize: true });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(new Set(rowToCol).size).toBe(n);
    expect(() => linearSumAssignment(new Float64Array(5), 2, 3)).toThrow(/length rows·cols = 6/);
    expect(() => linearSumAssignment(Float64Array.of(1, NaN, 0, 1), 2, 2)).toThrow(/finite costs/);
    expect(() => linearSumAssignment([1, 2] as unknown as Float64Array, 1, 2)).toThrowError(WsfError);
  });
});

describe('permutations of hidden neurons', () => {
  const arch = mlp([7, 5, 4, 3]);
  const rng = new Rng(5);
  const B = 3;
  const flat = rng.fillNormal(new Float32Array(B * arch.numParams));

  it('preserve the function exactly (f64 forward) for shared and per-network sets', () => {
    const x = rng.fillNormal(new Float64Array(7 * 4));
    for (const perms of [randomPermutations(arch, 1), randomPermutations(arch, 2, B)]) {
      const pf = permuteNetworks(arch, flat, perms);
      expect(pf).not.toEqual(flat);
      for (let b = 0; b < B; b++) {
        for (let r = 0; r < 4; r++) {
          // Only the summation order of hidden sums changes: f64 rounding.
          expect(forwardF64(arch, pf, x, b, r * 7)).toAllClose(forwardF64(arch, flat, x, b, r * 7), { atol: 1e-12, rtol: 1e-12 });
        }
      }
    }
  });

  it('move incoming weights, bias and outgoing weights as documented', () => {
    const a = mlp([2, 3, 1]);
    const f = new Float32Array(a.numParams).map((_, k) => k);
    const p = Int32Array.of(2, 0, 1); // new neuron j = old neuron p[j]
    const q = permuteNetworks(a, f, p);
    for (let j = 0; j < 3; j++) {
      for (let i = 0; i < 2; i++) expect(q[a.weightIndex(1, i, j)]).toBe(f[a.weightIndex(1, i, p[j]!)]);
      expect(q[a.biasIndex(1, j)]).toBe(f[a.biasIndex(1, p[j]!)]);
      expect(q[a.weightIndex(2, j, 0)]).toBe(f[a.weightIndex(2, p[j]!, 0)]);
    }
    expect(q[a.biasIndex(2, 0)]).toBe(f[a.biasIndex(2, 0)]);
  });

  it('invert and compose', () => {
    const p = randomPermutations(arch, 7, B);
    const q = randomPermutations(arch, 8, B);
    const back = permuteNetworks(arch, permuteNetworks(arch, flat, p), invertPermutations(arch, p));
    expect(back).toEqual(flat);
    expect(permuteNetworks(arch, flat, composePermutations(arch, p, q))).toEqual(permuteNetworks(arch, permuteNetworks(arch, flat, p), q));
  });

  it('validate with typed errors', () => {
    expect(numHidden(arch)).toBe(9);
    expect(() => permuteNetworks(arch, flat, new Int32Array(8))).toThrow(/length H = 9 or B·H = 27/);
    expect(() => permuteNetworks(arch, flat, Int32Array.of(0, 1, 2, 3, 3, 0, 1, 2, 3))).toThrow(/layer 1 \(5 neurons\).*position 4 holds 3 twice/);
    expect(() => permuteNetworks(arch, flat, [0] as unknown as Int32Array)).toThrowError(expect.objectContaining({ code: 'ERR_DTYPE' }));
    expect(() => permuteNetworks(arch, flat, randomPermutations(arch, 1), flat)).toThrow(/must not overlap/);
    expect(permuteNetworks(mlp([3, 2]), new Float32Array(8), new Int32Array(0))).toEqual(new Float32Array(8));
  });
});

describe('alignNetworks (weight matching)', () => {
  it('recovers random permutations of a network exactly, for 1, 2 and 3 hidden layers', () => {
    for (const widths of [[20, 12, 3], [30, 16, 16, 2], [10, 8, 7, 6, 2]]) {
      const arch = mlp(widths);
      const P = arch.numParams;
      const rng = new Rng(widths.length);
      const theta = rng.fillNormal(new Float32Array(P));
      const K = 6;
      const pis = randomPermutations(arch, rng, K);
      const batch = new Float32Array((K + 1) * P);
      for (let k = 0; k <= K; k++) batch.set(theta, k * P);
      batch.set(permuteNetworks(arch, batch.slice(P), pis), P);
      const res = alignNetworks(arch, batch, { reference: 0 });
      for (let k = 0; k <= K; k++) expect(res.aligned.subarray(k * P, (k + 1) * P)).toEqual(theta);
      const H = numHidden(arch);
      expect(res.perms.subarray(H)).toEqual(invertPermutations(arch, pis));
      expect(res.distanceAfter.max).toBe(0);
      expect(res.converged).toBe(K + 1);
    }
  });

  it('is function-preserving (TF.js and f64 forward), never increases distances and is deterministic', async () => {
    const { tf } = await loadTf();
    const arch = mlp([30, 16, 16, 2]);
    const P = arch.numParams;
    const B = 24;
    const rng = new Rng(21);
    const w = rng.fillNormal(new Float32Array(B * P), 0, 0.3);
    const res = alignNetworks(arch, w, { seed: 3 });
    expect(res.referenceIndex).toBe(nearestToMean(arch, w));
    expect(res.distanceAfter.mean).toBeLessThan(res.distanceBefore.mean * 0.95);
    for (let b = 0; b < B; b++) expect(res.distanceAfter.values[b]!).toBeLessThanOrEqual(res.distanceBefore.values[b]! + 1e-9);
    expect(res.distanceAfter.values[res.referenceIndex]).toBe(0);
    const x = rng.fillNormal(new Float32Array(8 * 30));
    const xt = tf.tensor2d(x, [8, 30]);
    for (const b of [0, 5, 17]) {
      const m0 = toTfModel(tf, arch, w, b);
      const m1 = toTfModel(tf, arch, res.aligned, b);
      const y0 = (m0.predict(xt) as import('@tensorflow/tfjs').Tensor).dataSync();
      const y1 = (m1.predict(xt) as import('@tensorflow/tfjs').Tensor).dataSync();
      expect(y1).toAllClose(y0, { atol: 1e-5, rtol: 1e-5 }); // f32 sums in a different order
      for (let r = 0; r < 8; r++) expect(forwardF64(arch, res.aligned, x, b, r * 30)).toAllClose(forwardF64(arch, w, x, b, r * 30), { atol: 1e-12, rtol: 1e-12 });
      m0.dispose();
      m1.dispose();
    }
    xt.dispose();
    const again = alignNetworks(arch, w, { seed: 3 });
    expect(again.perms).toEqual(res.perms);
    // A separate reference network (here the chosen one) gives the same alignment.
    const sep = alignNetworks(arch, w, { seed: 3, reference: res.reference });
    expect(sep.referenceIndex).toBe(-1);
    expect(sep.aligned).toEqual(res.aligned);
  });

  it('groups share the permutation that is best summed over the group (brute force over all 4! sets)', () => {
    const arch = mlp([3, 4, 2]);
    const P = arch.numParams;
    const rng = new Rng(5);
    const B = 9;
    const w = rng.fillNormal(new Float32Array(B * P));
    const groups = [7, 7, 7, 2, 2, 9, 9, 9, 9];
    const res = alignNetworks(arch, w, { reference: 0, groups });
    // Every permutation of the 4 hidden neurons, by exhaustive search: the group's summed squared distance to the reference.
    const all: number[][] = [];
    const rec = (p: number[]): void => {
      if (p.length === 4) all.push(p);
      else for (let j = 0; j < 4; j++) if (!p.includes(j)) rec([...p, j]);
    };
    rec([]);
    const ref = w.subarray(0, P);
    const groupCost = (members: number[], perm: Int32Array): number => {
      const x = permuteNetworks(arch, Float32Array.from(members.flatMap((b) => Array.from(w.subarray(b * P, (b + 1) * P)))), perm);
      let s = 0;
      for (let i = 0; i < x.length; i++) s += (x[i]! - ref[i % P]!) ** 2;
      return s;
    };
    for (const id of [2, 9]) {
      const members = groups.flatMap((g, b) => (g === id ? [b] : []));
      for (const b of members) expect(res.perms.subarray(b * 4, b * 4 + 4)).toEqual(res.perms.subarray(members[0]! * 4, members[0]! * 4 + 4));
      const best = Math.min(...all.map((p) => groupCost(members, Int32Array.from(p))));
      expect(groupCost(members, res.perms.slice(members[0]! * 4, members[0]! * 4 + 4))).toBeCloseTo(best, 3);
      // Never worse than leaving the group unpermuted, and strictly better here (random networks are not aligned).
      const chosen = groupCost(members, res.perms.slice(members[0]! * 4, members[0]! * 4 + 4));
      expect(chosen).toBeLessThan(groupCost(members, identityPermutations(arch)));
    }
    // The reference's group keeps the identity: the reference itself is unchanged.
    for (const b of [0, 1, 2]) expect(Array.from(res.perms.subarray(b * 4, b * 4 + 4))).toEqual([0, 1, 2, 3]);
    expect(res.aligned.subarray(0, P)).toEqual(ref);
    // One network per group is plain per-network alignment.
    expect(alignNetworks(arch, w, { groups: [...w.keys()].slice(0, B) }).perms).toEqual(alignNetworks(arch, w).perms);
  });

  it('groups recover one run-wide permutation that per-checkpoint matching splits', () => {
    // A run's checkpoints drift away from the reference; per checkpoint, the late ones match a different permutation.
    const arch = mlp([6, 5, 2]);
    const P = arch.numParams;
    const rng = new Rng(8);
    const ref = rng.fillNormal(new Float32Array(P));
    const pi = randomPermutations(arch, rng);
    const K = 6;
    const run = new Float32Array(K * P);
    const drift = rng.fillNormal(new Float32Array(P), 0, 2);
    for (let k = 0; k < K; k++) for (let p = 0; p < P; p++) run[k * P + p] = ref[p]! + (k / (K - 1)) * drift[p]! + 0.01 * rng.normal();
    const batch = new Float32Array((K + 1) * P);
    batch.set(ref);
    batch.set(permuteNetworks(arch, run, pi), P);
    const groups = [0, ...Array(K).fill(1)];
    const g = alignNetworks(arch, batch, { reference: 0, groups });
    const inv = invertPermutations(arch, pi);
    for (let k = 1; k <= K; k++) expect(g.perms.subarray(k * 5, (k + 1) * 5)).toEqual(inv);
    expect(g.aligned.subarray(P)).toEqual(run);
    // Checkpoint by checkpoint, some of the run's checkpoints get another permutation.
    const each = alignNetworks(arch, batch, { reference: 0 });
    let split = 0;
    for (let k = 1; k <= K; k++) if (each.perms.subarray(k * 5, (k + 1) * 5).some((v, j) => v !== inv[j])) split++;
    expect(split).toBeGreaterThan(0);
  });

  it('validates options', () => {
    const arch = mlp([4, 3, 2]);
    const w = new Float32Array(2 * arch.numParams);
    expect(() => alignNetworks(arch, w, { groups: [0] })).toThrowError(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => alignNetworks(arch, w, { groups: [0, Number.NaN] })).toThrow(/groups/);
    expect(() => alignNetworks(arch, w, { reference: 2 })).toThrow(/\[0, 1\] for `reference`/);
    expect(() => alignNetworks(arch, w, { reference: new Float32Array(3) })).toThrowError(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => alignNetworks(arch, w, { maxIterations: 0 })).toThrow(/maxIterations/);
  });
});

describe('alignZoo by run', () => {
  it('gives each run one permutation, keeps the reference run, permutes init like its run, and chunks whole runs', async () => {
    const arch = mlp([5, 4, 3, 2]);
    const P = arch.numParams;
    const H = numHidden(arch);
    const rng = new Rng(13);
    const R = 4;
    const per = 5;
    const n = R * per;
    const base = rng.fillNormal(new Float32Array(P));
    const init = new Float32Array(R * P);
    const weights = new Float32Array(n * P);
    const run = new Int32Array(n);
    for (let r = 0; r < R; r++) {
      const own = new Float32Array(P);
      for (let p = 0; p < P; p++) own[p] = base[p]! + 0.3 * rng.normal();
      const ckpts = new Float32Array(per * P);
      for (let k = 0; k < per; k++) for (let p = 0; p < P; p++) ckpts[k * P + p] = own[p]! + (k / per) * rng.normal();
      const pi = r === 0 ? identityPermutations(arch) : randomPermutations(arch, rng);
      // Interleave runs, so a run's checkpoints are not contiguous.
      const perm = permuteNetworks(arch, ckpts, pi);
      for (let k = 0; k < per; k++) {
        weights.set(perm.subarray(k * P, (k + 1) * P), (k * R + r) * P);
        run[k * R + r] = r;
      }
      init.set(permuteNetworks(arch, own, pi), r * P);
    }
    const zoo: Zoo = { arch, task: 'synthetic', n, weights, run, epoch: new Int32Array(n), iter: Int32Array.from({ length: n }, (_, k) => k), testAcc: new Float32Array(n), testLoss: new Float32Array(n), init, metadata: {}, extra: {} };
    const seen: { done: number; dist: number }[] = [];
    const progress = { update: (done: number, f?: { dist?: number }) => seen.push({ done, dist: f?.dist ?? NaN }) } as unknown as import('../../lib/util/progress.js').Progress;
    const res = await alignZoo(zoo, { by: 'run', chunk: 3, reference: 0, progress });
    // Progress counts whole runs (5 networks each, chunk 3) and ends at the zoo's mean distance after alignment.
    expect(seen.map((p) => p.done)).toEqual([5, 10, 15, 20]);
    const free = alignNetworks(arch, weights, { reference: weights.slice(0, P), groups: run });
    const firstRun = [...run.keys()].filter((k) => run[k] === 0);
    expect(seen[0]!.dist).toBeCloseTo(firstRun.reduce((a, k) => a + free.distanceAfter.values[k]!, 0) / firstRun.length, 6);
    expect(seen.at(-1)!.dist).toBeCloseTo(free.distanceAfter.mean, 6);
    const perms = res.zoo.extra!.perms!.data as Int32Array;
    for (let k = 0; k < n; k++) expect(perms.subarray(k * H, (k + 1) * H)).toEqual(perms.subarray(run[k]! * H, (run[k]! + 1) * H));
    // The reference's run (run 0) stays as it was.
    for (let k = 0; k < n; k++) if (run[k] === 0) expect(res.zoo.weights.subarray(k * P, (k + 1) * P)).toEqual(weights.subarray(k * P, (k + 1) * P));
    // Each run's init moves with its checkpoints.
    for (let r = 0; r < R; r++) expect(res.zoo.init!.subarray(r * P, (r + 1) * P)).toEqual(permuteNetworks(arch, init.subarray(r * P, (r + 1) * P), perms.slice(r * H, (r + 1) * H)));
    // Same result as one grouped alignment of the whole zoo (chunking by whole runs changes nothing).
    const whole = alignNetworks(arch, weights, { reference: 0, groups: run });
    expect(perms).toEqual(whole.perms);
    expect(JSON.parse(res.zoo.metadata!.aligned_to!)).toMatchObject({ by: 'run' });
    await expect(alignZoo(zoo, { by: 'layer' as 'run' })).rejects.toThrowError(expect.objectContaining({ code: 'ERR_INVALID' }));
  });
});
