// Every CPU geometry op (f64 and f32 entry points) vs the independent plain-TS f64 reference in
// test/helpers/geometryRef.ts, written from the formulas without calling native code.
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/index.js';
import { createPlan } from '../../lib/geometry/plan.js';
import type { NativeGeoMode } from '../../lib/native/types.js';
import { Rng } from '../../lib/util/rng.js';
import * as ref from '../helpers/geometryRef.js';

const ARCHS = [
  [7, 5, 3],
  [30, 16, 16, 2],
  [4, 1, 3], // a single hidden neuron
  [3, 2], // no hidden layer: the last layer is the only sphere
];
const B = 3;
// f64 native vs f64 TS: equivalent but different formulas (atan2 vs acos, series vs direct); acos loses
// ~eps/sin θ, and the random angles keep sin θ ≳ 1e-2, so 1e-11 leaves a wide margin.
const TOL64 = { atol: 1e-11, rtol: 1e-10 };
// f32 native vs f64 TS on the same (f32-rounded) inputs: float32 rounding of O(1) values through K ≤ 784 sums.
const TOL32 = { atol: 3e-6, rtol: 2e-5 };

for (const widths of ARCHS) {
  for (const kind of ['geometric', 'euclidean'] as const) {
    for (const mode of ['accurate', 'reference'] as NativeGeoMode[]) {
      describe(`${widths.join('-')} ${kind} ${mode}: CPU ops vs plain-TS f64`, () => {
        const arch = mlp(widths);
        const P = arch.numParams;
        const eu = kind === 'euclidean';
        const plan = createPlan(arch, kind);
        const rng = new Rng(widths.reduce((a, b) => a * 31 + b, kind.length + mode.length));
        const x = ref.randomPoints(arch, B, rng, eu);
        const y = ref.randomPoints(arch, B, rng, eu);
        const raw = rng.fillNormal(new Float64Array(B * P));
        const u = ref.randomTangents(arch, x.f64, B, rng, 0.1, 2.5);
        const t = [0.1, 0.5, 0.9];
        const x32 = Float64Array.from(x.f32);
        const y32 = Float64Array.from(y.f32);
        const u32f = Float32Array.from(u);
        const u32 = Float64Array.from(u32f);
        const raw32f = Float32Array.from(raw);
        const raw32 = Float64Array.from(raw32f);
        const g = (a: ArrayLike<number>, b: number, idx: number[]) => ref.gather(a, P, b, idx);
        const refOp = (sph: (b: number, idx: number[]) => ref.Vec, euc: (b: number, idx: number[]) => ref.Vec) => ref.mapFactors(arch, eu, B, sph, euc);

        it('project and tangentProject', () => {
          const expected64 = refOp((b, i) => ref.project(g(raw, b, i)), (b, i) => g(raw, b, i));
          const o64 = new Float64Array(B * P);
          plan.projectF64(o64, raw, mode);
          expect(o64).toAllClose(expected64, TOL64);
          const o32 = new Float32Array(B * P);
          plan.project(o32, raw32f, 'cpu', mode);
          expect(o32).toAllClose(refOp((b, i) => ref.project(g(raw32, b, i)), (b, i) => g(raw32, b, i)), TOL32);
          plan.tangentProjectF64(o64, x.f64, raw, mode);
          expect(o64).toAllClose(refOp((b, i) => ref.tangent(g(x.f64, b, i), g(raw, b, i)), (b, i) => g(raw, b, i)), TOL64);
          plan.tangentProject(o32, x.f32, raw32f, 'cpu', mode);
          expect(o32).toAllClose(refOp((b, i) => ref.tangent(g(x32, b, i), g(raw32, b, i)), (b, i) => g(raw32, b, i)), TOL32);
        });

        it('expmap and logmap', () => {
          const o64 = new Float64Array(B * P);
          const o32 = new Float32Array(B * P);
          plan.expmapF64(o64, x.f64, u, mode);
          expect(o64).toAllClose(refOp((b, i) => ref.expmap(g(x.f64, b, i), g(u, b, i), mode), (b, i) => ref.add(g(x.f64, b, i), g(u, b, i))), TOL64);
          plan.expmap(o32, x.f32, u32f, 'cpu', mode);
          expect(o32).toAllClose(refOp((b, i) => ref.expmap(g(x32, b, i), g(u32, b, i), mode), (b, i) => ref.add(g(x32, b, i), g(u32, b, i))), TOL32);
          plan.logmapF64(o64, x.f64, y.f64, mode);
          expect(o64).toAllClose(refOp((b, i) => ref.logmap(g(x.f64, b, i), g(y.f64, b, i), mode), (b, i) => ref.sub(g(y.f64, b, i), g(x.f64, b, i))), TOL64);
          plan.logmap(o32, x.f32, y.f32, 'cpu', mode);
          expect(o32).toAllClose(refOp((b, i) => ref.logmap(g(x32, b, i), g(y32, b, i), mode), (b, i) => ref.sub(g(y32, b, i), g(x32, b, i))), TOL32);
        });

        it('dist: B × F, spheres then the Euclidean block', () => {
          const F = plan.numFactors;
          const { spheres, euclid } = ref.factorIndices(arch, eu);
          expect(F).toBe(spheres.length + 1);
          const expected = (xa: ArrayLike<number>, ya: ArrayLike<number>) => {
            const e: number[] = [];
            for (let b = 0; b < B; b++) {
              for (const idx of spheres) e.push(ref.dist(g(xa, b, idx), g(ya, b, idx), mode));
              e.push(ref.norm(ref.sub(g(xa, b, euclid), g(ya, b, euclid))));
            }
            return e;
          };
          const o64 = new Float64Array(B * F);
          plan.distF64(o64, x.f64, y.f64, mode);
          expect(o64).toAllClose(expected(x.f64, y.f64), TOL64);
          const o32 = new Float32Array(B * F);
          plan.dist(o32, x.f32, y.f32, 'cpu', mode);
          expect(o32).toAllClose(expected(x32, y32), TOL32);
        });

        it('interpolate (t per network) and eulerStep', () => {
          const o64 = new Float64Array(B * P);
          const o32 = new Float32Array(B * P);
          const lin = (a: ArrayLike<number>, c: ArrayLike<number>) => (b: number, i: number[]) => ref.add(ref.scale(g(a, b, i), 1 - t[b]!), ref.scale(g(c, b, i), t[b]!));
          plan.interpolateF64(o64, x.f64, y.f64, Float64Array.from(t), mode);
          expect(o64).toAllClose(refOp((b, i) => ref.interpolate(g(x.f64, b, i), g(y.f64, b, i), t[b]!, mode), lin(x.f64, y.f64)), TOL64);
          plan.interpolate(o32, x.f32, y.f32, Float32Array.from(t), 'cpu', mode);
          expect(o32).toAllClose(refOp((b, i) => ref.interpolate(g(x32, b, i), g(y32, b, i), t[Math.min(b, 2)]!, mode), lin(x32, y32)), TOL32);
          const dt = 0.1;
          plan.eulerStepF64(o64, x.f64, raw, dt, mode);
          expect(o64).toAllClose(refOp((b, i) => ref.eulerStep(g(x.f64, b, i), g(raw, b, i), dt, mode), (b, i) => ref.add(g(x.f64, b, i), ref.scale(g(raw, b, i), dt))), TOL64);
          plan.eulerStep(o32, x.f32, raw32f, dt, 'cpu', mode);
          expect(o32).toAllClose(refOp((b, i) => ref.eulerStep(g(x32, b, i), g(raw32, b, i), Math.fround(dt), mode), (b, i) => ref.add(g(x32, b, i), ref.scale(g(raw32, b, i), Math.fround(dt)))), TOL32);
        });

        it('loss and per-network loss', () => {
          const e = ref.loss(arch, eu, x.f64, y.f64, B, mode);
          const per64 = new Float64Array(B);
          expect(plan.lossF64(per64, null, x.f64, y.f64, mode)).toAllClose(e.loss, TOL64);
          expect(per64).toAllClose(e.perNetwork, TOL64);
          const e32 = ref.loss(arch, eu, x32, y32, B, mode);
          const per32 = new Float32Array(B);
          const grad = new Float32Array(B * P);
          expect(plan.loss(per32, grad, x.f32, y.f32, 'cpu', mode)).toAllClose(e32.loss, TOL32);
          expect(per32).toAllClose(e32.perNetwork, TOL32);
          if (eu) {
            // MSE over all B·P entries: grad = 2(p − q)/(B·P)
            expect(grad).toAllClose(Array.from(x32, (v, k) => (2 * (v - y32[k]!)) / (B * P)), TOL32);
          }
        });
      });
    }
  }
}

it('float32 and float64 entry points agree on a 784-10-10 batch (large K)', () => {
  const arch = mlp([784, 10, 10]);
  const plan = createPlan(arch, 'geometric');
  const rng = new Rng(5);
  const x = ref.randomPoints(arch, 2, rng);
  const y = ref.randomPoints(arch, 2, rng);
  const o64 = new Float64Array(x.f64.length);
  const o32 = new Float32Array(x.f32.length);
  plan.logmapF64(o64, Float64Array.from(x.f32), Float64Array.from(y.f32), 'accurate');
  plan.logmap(o32, x.f32, y.f32, 'cpu', 'accurate');
  expect(o32).toAllClose(o64, TOL32);
  plan.dispose();
});
