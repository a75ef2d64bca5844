// Precision budget of the float32 path: on the parity inputs (special branches planted), every f32 CPU op stays
// within a fraction of the CUDA-vs-CPU parity tolerance of the f64 CPU reference. CUDA's own float32 rounding is
// of the same size (other summation order, FMA), so a CUDA-vs-CPU difference — at most the sum of the two —
// fits the parity tolerance with margin. This is what can be checked without a GPU.
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/index.js';
import { createPlan } from '../../lib/geometry/plan.js';
import type { NativeGeoKind, NativeGeoMode } from '../../lib/native/types.js';
import { plantedInputs } from '../helpers/geometryInputs.js';

// The parity tolerances (test/parity/geometry.gpu.test.ts); we require f32 error ≤ 40 % of them and NMSE ≤ 1e-9.
const TOL = { atol: 1e-5, rtol: 1e-4 };
const TOL_GRAD = { atol: 1e-7, rtol: 1e-4 };
const FRACTION = 0.4;

/** max over elements of |a − e| / (atol + rtol·|e|), and the NMSE; NaN positions must agree. */
function usage(a: ArrayLike<number>, e: ArrayLike<number>, tol: { atol: number; rtol: number }): { ratio: number; nmse: number } {
  let ratio = 0;
  let se = 0;
  let ss = 0;
  for (let i = 0; i < e.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    if (!Number.isFinite(y) || !Number.isFinite(x)) {
      if (Number.isNaN(x) !== Number.isNaN(y)) return { ratio: Infinity, nmse: Infinity };
      continue;
    }
    ratio = Math.max(ratio, Math.abs(x - y) / (tol.atol + tol.rtol * Math.abs(y)));
    se += (x - y) ** 2;
    ss += y * y;
  }
  return { ratio, nmse: ss > 0 ? se / ss : se };
}

for (const widths of [
  [7, 5, 3],
  [30, 16, 16, 2],
  [784, 10, 10],
  [4, 1, 3],
  [3, 2],
]) {
  for (const kind of ['geometric', 'euclidean'] as NativeGeoKind[]) {
    for (const mode of ['accurate', 'reference'] as NativeGeoMode[]) {
      describe(`${widths.join('-')} ${kind} ${mode}`, () => {
        it('every f32 op is within 40 % of the parity tolerance of the f64 reference', () => {
          const arch = mlp(widths);
          const P = arch.numParams;
          const B = 5;
          const n = B * P;
          const plan = createPlan(arch, kind);
          const F = plan.numFactors;
          const d = plantedInputs(arch, kind, B, widths.length * 100 + P, mode);
          const D = (a: Float32Array) => Float64Array.from(a);
          const checks: [string, () => Float32Array, () => Float64Array, typeof TOL][] = [
            ['project', () => ((o) => (plan.project(o, d.raw, 'cpu', mode), o))(new Float32Array(n)), () => ((o) => (plan.projectF64(o, D(d.raw), mode), o))(new Float64Array(n)), TOL],
            ['tangentProject', () => ((o) => (plan.tangentProject(o, d.x, d.raw, 'cpu', mode), o))(new Float32Array(n)), () => ((o) => (plan.tangentProjectF64(o, D(d.x), D(d.raw), mode), o))(new Float64Array(n)), TOL],
            ['expmap', () => ((o) => (plan.expmap(o, d.x, d.u, 'cpu', mode), o))(new Float32Array(n)), () => ((o) => (plan.expmapF64(o, D(d.x), D(d.u), mode), o))(new Float64Array(n)), TOL],
            ['logmap', () => ((o) => (plan.logmap(o, d.x, d.y, 'cpu', mode), o))(new Float32Array(n)), () => ((o) => (plan.logmapF64(o, D(d.x), D(d.y), mode), o))(new Float64Array(n)), TOL],
            ['dist', () => ((o) => (plan.dist(o, d.x, d.y, 'cpu', mode), o))(new Float32Array(B * F)), () => ((o) => (plan.distF64(o, D(d.x), D(d.y), mode), o))(new Float64Array(B * F)), TOL],
            ['interpolate', () => ((o) => (plan.interpolate(o, d.x, d.y, d.t, 'cpu', mode), o))(new Float32Array(n)), () => ((o) => (plan.interpolateF64(o, D(d.x), D(d.y), D(d.t), mode), o))(new Float64Array(n)), TOL],
            ['eulerStep', () => ((o) => (plan.eulerStep(o, d.x, d.raw, 0.125, 'cpu', mode), o))(new Float32Array(n)), () => ((o) => (plan.eulerStepF64(o, D(d.x), D(d.raw), 0.125, mode), o))(new Float64Array(n)), TOL],
            ['loss grad', () => ((o) => (plan.loss(new Float32Array(B), o, d.raw, d.y, 'cpu', mode), o))(new Float32Array(n)), () => ((o) => (plan.lossF64(new Float64Array(B), o, D(d.raw), D(d.y), mode), o))(new Float64Array(n)), TOL_GRAD],
            ['loss grad on-manifold', () => ((o) => (plan.loss(new Float32Array(B), o, d.x, d.y, 'cpu', mode), o))(new Float32Array(n)), () => ((o) => (plan.lossF64(new Float64Array(B), o, D(d.x), D(d.y), mode), o))(new Float64Array(n)), TOL_GRAD],
            ['loss per network', () => ((o) => (plan.loss(o, null, d.raw, d.y, 'cpu', mode), o))(new Float32Array(B)), () => ((o) => (plan.lossF64(o, null, D(d.raw), D(d.y), mode), o))(new Float64Array(B)), TOL],
            ['canonicalize', () => ((o) => (plan.canonicalize(o, d.raw, 1, 'cpu'), o))(new Float32Array(n)), () => ((o) => (plan.canonicalizeF64(o, D(d.raw), 1), o))(new Float64Array(n)), TOL],
            ['canonicalizeBackward', () => ((o) => (plan.canonicalizeBackward(o, d.raw, d.u, Math.SQRT2, 'cpu'), o))(new Float32Array(n)), () => ((o) => (plan.canonicalizeBackwardF64(o, D(d.raw), D(d.u), Math.SQRT2), o))(new Float64Array(n)), TOL],
          ];
          for (const [name, f32, f64, tol] of checks) {
            const u = usage(f32(), Float32Array.from(f64()), tol);
            expect(u.ratio, `${name}: share of the parity tolerance used`).toBeLessThanOrEqual(FRACTION);
            expect(u.nmse, `${name}: NMSE`).toBeLessThanOrEqual(1e-9);
          }
          plan.dispose();
        });
      });
    }
  }
}
