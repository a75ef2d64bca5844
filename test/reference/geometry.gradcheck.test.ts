// Finite-difference gradient checks in f64 (central differences, h = 1e-6·max(1, |x|)) of the analytic
// gradients on the CPU reference: the canonicalisation's vector-Jacobian product and the loss gradients
// (geometric accurate, geometric reference, MSE). Then the f32 entry points against the f64 ones.
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/index.js';
import type { Architecture } from '../../lib/arch/Architecture.js';
import { createPlan } from '../../lib/geometry/plan.js';
import { Rng } from '../../lib/util/rng.js';
import { fdGradient } from '../helpers/gradcheck.js';
import * as ref from '../helpers/geometryRef.js';

// HOUSE_STYLE default for f64 FD checks: truncation O(h²·f''') ≈ 1e-12 and rounding O(eps·|f|/h) ≈ 1e-9 for the
// |f| ≲ 10 used here, both well inside atol 1e-8 + rtol 1e-6·|g|.
const FD = { atol: 1e-8, rtol: 1e-6 };
// f32 analytic gradient vs the f64 one on the same inputs: float32 rounding through the forward recomputation.
const F32 = { atol: 2e-6, rtol: 1e-4 };

const dotF = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
};

describe('canonicalize backward vs finite differences (f64)', () => {
  const cases: [number[], number][] = [
    [[5, 4, 3, 2], 1],
    [[30, 16, 16, 2], 1],
    [[30, 16, 16, 2], Math.SQRT2], // the thesis' √C for C = 2
    [[4, 1, 3], 1], // a single hidden neuron
    [[3, 2], 2], // no hidden layer
  ];
  for (const [widths, c] of cases) {
    it(`${widths.join('-')}, lastLayerNorm ${c.toFixed(3)}: every coordinate`, () => {
      const arch = mlp(widths);
      const P = arch.numParams;
      const B = 2;
      const plan = createPlan(arch, 'normalized');
      const rng = new Rng(widths.length * 7 + Math.round(c * 10));
      // random networks; norms are ~0.3·√fan-in, far from the r = 0 singularity (margin: every r > 0.1)
      const x = rng.fillNormal(new Float64Array(B * P), 0, 0.3);
      const dOut = rng.fillNormal(new Float64Array(B * P));
      for (let b = 0; b < B; b++) {
        const { r } = ref.canonicalizeRef(arch, x.subarray(b * P, (b + 1) * P), c);
        expect(Math.min(...r.flat(), Infinity)).toBeGreaterThan(0.1);
      }
      const y = new Float64Array(B * P);
      const f = (xs: Float64Array) => {
        plan.canonicalizeF64(y, xs, c);
        return dotF(y, dOut);
      };
      const dx = new Float64Array(B * P);
      plan.canonicalizeBackwardF64(dx, x, dOut, c);
      expect(dx).toAllClose(fdGradient(f, x), FD);
      // f32 backward vs f64 backward on the same f32-rounded inputs
      const x32 = Float32Array.from(x);
      const d32 = Float32Array.from(dOut);
      const dx32 = new Float32Array(B * P);
      plan.canonicalizeBackward(dx32, x32, d32, c, 'cpu');
      plan.canonicalizeBackwardF64(dx, Float64Array.from(x32), Float64Array.from(d32), c);
      expect(dx32).toAllClose(dx, F32);
      plan.dispose();
    });
  }
});

// Builds a prediction/target pair for the loss: targets on the spheres; predictions = targets pushed along a
// random tangent by an angle in [angLo, angHi), then scaled per sphere by a factor in [0.5, 2) (non-unit, as the
// output of canonicalize with lastLayerNorm ≠ 1 or of a model), biases random.
function lossPair(arch: Architecture, B: number, rng: Rng, angLo: number, angHi: number): { pred: Float64Array; target: Float64Array } {
  const P = arch.numParams;
  const target = ref.randomPoints(arch, B, rng).f64;
  const u = ref.randomTangents(arch, target, B, rng, angLo, angHi);
  const pred = rng.fillNormal(new Float64Array(B * P), 0, 0.1);
  const { spheres } = ref.factorIndices(arch);
  for (let b = 0; b < B; b++) {
    for (const idx of spheres) {
      const p = ref.expmap(ref.gather(target, P, b, idx), ref.gather(u, P, b, idx), 'accurate');
      ref.scatter(pred, P, b, idx, ref.scale(p, 0.5 + 1.5 * rng.uniform()));
    }
  }
  return { pred, target };
}

describe('loss gradients vs finite differences (f64)', () => {
  const archs = [
    [7, 5, 3],
    [30, 16, 16, 2],
    [4, 1, 3],
  ];
  for (const widths of archs) {
    const arch = mlp(widths);
    const P = arch.numParams;
    const B = 3;

    it(`${widths.join('-')} geometric accurate: angles in [0.05, 3.0] and in [1e-4, 1e-2] (small-angle series)`, () => {
      const plan = createPlan(arch, 'geometric');
      const rng = new Rng(11 + widths.length);
      for (const [lo, hi] of [
        [0.05, 3.0], // margin to the antipodal singularity: π − 3.0 = 0.14 rad
        [1e-4, 1e-2],
      ] as const) {
        const { pred, target } = lossPair(arch, B, rng, lo, hi);
        const per = new Float64Array(B);
        const grad = new Float64Array(B * P);
        plan.lossF64(per, grad, pred, target, 'accurate');
        const fd = fdGradient((p) => plan.lossF64(per, null, p, target, 'accurate'), pred);
        expect(grad).toAllClose(fd, FD);
        const g32 = new Float32Array(B * P);
        plan.loss(new Float32Array(B), g32, Float32Array.from(pred), Float32Array.from(target), 'cpu', 'accurate');
        plan.lossF64(per, grad, Float64Array.from(Float32Array.from(pred)), Float64Array.from(Float32Array.from(target)), 'accurate');
        expect(g32).toAllClose(grad, F32);
      }
      plan.dispose();
    });

    it(`${widths.join('-')} geometric reference: inside the clamp range (margin 1e-3 to the clamp bounds)`, () => {
      const plan = createPlan(arch, 'geometric');
      const rng = new Rng(23 + widths.length);
      // reference dist uses the raw inner product, so keep predictions unit (scaling would leave the clamp range)
      const target = ref.randomPoints(arch, B, rng).f64;
      const u = ref.randomTangents(arch, target, B, rng, 0.1, 2.8);
      const pred = ref.mapFactors(arch, false, B, (b, idx) => ref.expmap(ref.gather(target, P, b, idx), ref.gather(u, P, b, idx), 'accurate'), () => []);
      const { euclid } = ref.factorIndices(arch);
      for (let b = 0; b < B; b++) for (const i of euclid) pred[b * P + i] = rng.normal();
      for (let b = 0; b < B; b++) {
        for (const idx of ref.factorIndices(arch).spheres) {
          const c = ref.dot(ref.gather(pred, P, b, idx), ref.gather(target, P, b, idx));
          expect(Math.abs(c)).toBeLessThan(1 - 1e-4 - 1e-3);
        }
      }
      const per = new Float64Array(B);
      const grad = new Float64Array(B * P);
      plan.lossF64(per, grad, pred, target, 'reference');
      expect(grad).toAllClose(fdGradient((p) => plan.lossF64(per, null, p, target, 'reference'), pred), FD);
      plan.dispose();
    });

    it(`${widths.join('-')} MSE (euclidean and normalized kinds)`, () => {
      for (const kind of ['euclidean', 'normalized'] as const) {
        const plan = createPlan(arch, kind);
        const rng = new Rng(31);
        const pred = rng.fillNormal(new Float64Array(B * P));
        const target = rng.fillNormal(new Float64Array(B * P));
        const per = new Float64Array(B);
        const grad = new Float64Array(B * P);
        plan.lossF64(per, grad, pred, target, 'accurate');
        expect(grad).toAllClose(fdGradient((p) => plan.lossF64(per, null, p, target, 'accurate'), pred), FD);
        plan.dispose();
      }
    });
  }

  it('the gradient of a zero prediction factor is 0 (d is not differentiable there)', () => {
    const arch = mlp([7, 5, 3]);
    const P = arch.numParams;
    const plan = createPlan(arch, 'geometric');
    const rng = new Rng(3);
    const target = ref.randomPoints(arch, 1, rng).f64;
    const pred = ref.randomPoints(arch, 1, rng).f64;
    const idx = ref.factorIndices(arch).spheres[2]!;
    for (const i of idx) pred[i] = 0;
    const grad = new Float64Array(P);
    plan.lossF64(new Float64Array(1), grad, pred, target, 'accurate');
    expect(idx.map((i) => grad[i]!)).toEqual(idx.map(() => 0));
    plan.dispose();
  });
});
