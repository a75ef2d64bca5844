// Mini-batch OT coupling straightens the learned flow: on a synthetic bimodal target, flows trained with OT
// pairs produce sampling trajectories whose length is closer to the straight-line distance than flows trained
// with independent pairs (same budget, seed and model). Reported as numbers (path-length ratio, 1 = straight).
import { describe, expect, it } from 'vitest';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { mlp } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

const arch = mlp([2, 2, 1]); // P = 9
const P = arch.numParams;

function target(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const out = new Float32Array(n * P);
  for (let i = 0; i < n; i++) {
    const c = i % 2 === 0 ? 2 : -2; // two modes at ±2 in every coordinate
    for (let p = 0; p < P; p++) out[i * P + p] = c + 0.3 * rng.normal();
  }
  return out;
}

async function pathRatio(coupling: 'independent' | 'ot', seed = 4): Promise<number> {
  // Beta(1,2) times, as the thesis trains OT flows: with logit-normal times (the corrected default since 2026-12-04)
  // this budget gave 1.038 for OT vs 1.024 independent — fewer draws near t = 0, where OT pairs shape the path.
  const fm = FlowMatcher.create({ arch, geometry: 'euclidean', coupling, time: 'beta', field: { D: 16, layers: 2 }, prior: { kind: 'gaussian', std: 1 }, seed, device: 'cpu', sigma: 0 });
  await fm.fit({ weights: target(512, 1) }, { steps: 400, batchSize: 64, lr: 3e-3 });
  // Trajectory length / end-to-end distance, averaged over samples.
  const prev = new Map<number, Float32Array>();
  const start = new Map<number, Float32Array>();
  const length = new Map<number, Float64Array>();
  fm.sample({
    n: 128, steps: 32, seed: 9, batchSize: 128,
    onStep: (x, _t, b0) => {
      const p = prev.get(b0);
      if (p === undefined) {
        start.set(b0, x.slice());
        length.set(b0, new Float64Array(x.length / P));
      } else {
        const L = length.get(b0)!;
        for (let i = 0; i < L.length; i++) {
          let s = 0;
          for (let k = 0; k < P; k++) s += (x[i * P + k]! - p[i * P + k]!) ** 2;
          L[i]! += Math.sqrt(s);
        }
      }
      prev.set(b0, x.slice());
    },
  });
  let ratio = 0;
  let count = 0;
  for (const [b0, L] of length) {
    const a = start.get(b0)!;
    const z = prev.get(b0)!;
    for (let i = 0; i < L.length; i++) {
      let s = 0;
      for (let k = 0; k < P; k++) s += (z[i * P + k]! - a[i * P + k]!) ** 2;
      ratio += L[i]! / Math.max(Math.sqrt(s), 1e-9);
      count++;
    }
  }
  fm.dispose();
  return ratio / count;
}

describe('mini-batch OT coupling', () => {
  it('gives straighter sampling paths than independent coupling (path length / distance)', { timeout: 120_000 }, async () => {
    // Averaged over four training seeds: one 400-step run moves with the engine's rounding (seed 4 alone gave
    // 1.0037 vs 1.0147 and 1.0077 vs 1.0135 under two summation orders of the same weight gradients).
    const seeds = [4, 5, 6, 7];
    let indep = 0, ot = 0;
    for (const s of seeds) {
      indep += (await pathRatio('independent', s)) / seeds.length;
      ot += (await pathRatio('ot', s)) / seeds.length;
    }
    console.log(`path-length ratio (1 = straight): independent ${indep.toFixed(4)}, OT ${ot.toFixed(4)}`);
    expect(ot).toBeLessThan(indep);
    // (A ratio ≥ 1 holds for any path: the triangle inequality.) What OT should do is remove most of the excess
    // length: measured 1.0080 vs 1.0256 (31 % of the independent excess; 26 % under the earlier weight-gradient
    // summation order); require under half.
    expect(ot - 1).toBeLessThan(0.5 * (indep - 1));
  });
});
