// Manifold identities of the product geometry (geoopt's test_manifold_basic style), over 5 seeds, on the f64
// and f32 CPU entry points, in corrected ('accurate') semantics unless stated; then the edge cases θ ≈ 0,
// θ ≈ π, K = 1 and large K (784-10-10).
import { describe, expect, it } from 'vitest';
import { canonicalize, mlp } from '../../lib/index.js';
import type { Architecture } from '../../lib/arch/Architecture.js';
import { createPlan } from '../../lib/geometry/plan.js';
import type { NativeGeometryPlan } from '../../lib/native/types.js';
import { Rng } from '../../lib/util/rng.js';
import * as ref from '../helpers/geometryRef.js';

const SEEDS = [1, 2, 3, 4, 5];
// Manifold identities (HOUSE_STYLE): f64 1e-10 (a few ulp through cos/sin/atan2 and K ≤ 784 sums); f32 2e-5
// (float32 rounding of unit vectors, sums over K ≤ 784, amplified ≤ 10× by θ/sin θ at angles up to 3 rad).
const T64 = 1e-10;
const T32 = 2e-5;

type Arr = Float32Array | Float64Array;
interface Ops {
  name: 'f64' | 'f32';
  tol: number;
  make: (n: number) => Arr;
  from: (a: ArrayLike<number>) => Arr;
  project: (x: Arr) => Arr;
  expmap: (x: Arr, u: Arr) => Arr;
  logmap: (x: Arr, y: Arr) => Arr;
  dist: (x: Arr, y: Arr) => Arr;
  interpolate: (x: Arr, y: Arr, t: number) => Arr;
  euler: (x: Arr, v: Arr, dt: number, mode: 'accurate' | 'reference') => Arr;
}

function opsFor(plan: NativeGeometryPlan, name: 'f64' | 'f32'): Ops {
  const P = plan.numParams;
  const F = plan.numFactors;
  if (name === 'f64') {
    const m = (n: number) => new Float64Array(n);
    return {
      name,
      tol: T64,
      make: m,
      from: (a) => Float64Array.from(a),
      project: (x) => ((o) => (plan.projectF64(o, x as Float64Array, 'accurate'), o))(m(x.length)),
      expmap: (x, u) => ((o) => (plan.expmapF64(o, x as Float64Array, u as Float64Array, 'accurate'), o))(m(x.length)),
      logmap: (x, y) => ((o) => (plan.logmapF64(o, x as Float64Array, y as Float64Array, 'accurate'), o))(m(x.length)),
      dist: (x, y) => ((o) => (plan.distF64(o, x as Float64Array, y as Float64Array, 'accurate'), o))(m((x.length / P) * F)),
      interpolate: (x, y, t) => ((o) => (plan.interpolateF64(o, x as Float64Array, y as Float64Array, new Float64Array(x.length / P).fill(t), 'accurate'), o))(m(x.length)),
      euler: (x, v, dt, mode) => ((o) => (plan.eulerStepF64(o, x as Float64Array, v as Float64Array, dt, mode), o))(m(x.length)),
    };
  }
  const m = (n: number) => new Float32Array(n);
  return {
    name,
    tol: T32,
    make: m,
    from: (a) => Float32Array.from(a),
    project: (x) => ((o) => (plan.project(o, x as Float32Array, 'cpu', 'accurate'), o))(m(x.length)),
    expmap: (x, u) => ((o) => (plan.expmap(o, x as Float32Array, u as Float32Array, 'cpu', 'accurate'), o))(m(x.length)),
    logmap: (x, y) => ((o) => (plan.logmap(o, x as Float32Array, y as Float32Array, 'cpu', 'accurate'), o))(m(x.length)),
    dist: (x, y) => ((o) => (plan.dist(o, x as Float32Array, y as Float32Array, 'cpu', 'accurate'), o))(m((x.length / P) * F)),
    interpolate: (x, y, t) => ((o) => (plan.interpolate(o, x as Float32Array, y as Float32Array, new Float32Array(x.length / P).fill(t), 'cpu', 'accurate'), o))(m(x.length)),
    euler: (x, v, dt, mode) => ((o) => (plan.eulerStep(o, x as Float32Array, v as Float32Array, dt, 'cpu', mode), o))(m(x.length)),
  };
}

/** Per (network, sphere): f(gathered a, gathered b). */
function perSphere(arch: Architecture, B: number, a: ArrayLike<number>, b: ArrayLike<number>, f: (x: ref.Vec, y: ref.Vec) => number): number[] {
  const P = arch.numParams;
  const out: number[] = [];
  for (let n = 0; n < B; n++) for (const idx of ref.factorIndices(arch).spheres) out.push(f(ref.gather(a, P, n, idx), ref.gather(b, P, n, idx)));
  return out;
}
const sphereDists = (arch: Architecture, B: number, d: ArrayLike<number>) => {
  const F = arch.numSpheres + 1;
  return Array.from({ length: B * arch.numSpheres }, (_, k) => d[Math.floor(k / arch.numSpheres) * F + (k % arch.numSpheres)]!);
};

for (const widths of [
  [30, 16, 16, 2],
  [784, 10, 10],
]) {
  const arch = mlp(widths);
  const P = arch.numParams;
  const B = 2;
  for (const prec of ['f64', 'f32'] as const) {
    describe(`${arch.key} ${prec}: manifold identities over ${SEEDS.length} seeds`, () => {
      const plan = createPlan(arch, 'geometric');
      const o = opsFor(plan, prec);
      for (const seed of SEEDS) {
        const rng = new Rng(seed * 1000 + P);
        const xs = ref.randomPoints(arch, B, rng);
        const ys = ref.randomPoints(arch, B, rng);
        const x = o.from(prec === 'f64' ? xs.f64 : xs.f32);
        const y = o.from(prec === 'f64' ? ys.f64 : ys.f32);
        const u = o.from(ref.randomTangents(arch, x, B, rng, 0, 3)); // ‖u‖ < π
        const ones = (n: number) => new Array<number>(n).fill(1);
        const zeros = (n: number) => new Array<number>(n).fill(0);
        const nS = B * arch.numSpheres;

        it(`seed ${seed}: project is idempotent; ‖exp_x(u)‖ = 1; ⟨x, log_x(y)⟩ = 0`, () => {
          const raw = o.from(rng.fillNormal(new Float64Array(B * P)));
          const p = o.project(raw);
          expect(o.project(p)).toAllClose(p, { atol: o.tol, rtol: 0 });
          expect(perSphere(arch, B, p, p, (a) => ref.norm(a))).toAllClose(ones(nS), { atol: o.tol, rtol: 0 });
          expect(perSphere(arch, B, o.expmap(x, u), x, (a) => ref.norm(a))).toAllClose(ones(nS), { atol: o.tol, rtol: 0 });
          expect(perSphere(arch, B, x, o.logmap(x, y), ref.dot)).toAllClose(zeros(nS), { atol: o.tol, rtol: 0 });
        });

        it(`seed ${seed}: exp_x(log_x(y)) = y; log_x(x) = 0; d(x, exp_x(u)) = ‖u‖`, () => {
          // random points in these dimensions are ~π/2 apart: far from antipodal (asserted)
          expect(Math.max(...sphereDists(arch, B, o.dist(x, y)))).toBeLessThan(Math.PI - 0.1);
          expect(o.expmap(x, o.logmap(x, y))).toAllClose(y, { atol: o.tol, rtol: 0 });
          expect(o.logmap(x, x)).toAllClose(zeros(B * P), { atol: o.tol, rtol: 0 });
          const d = sphereDists(arch, B, o.dist(x, o.expmap(x, u)));
          expect(d).toAllClose(perSphere(arch, B, u, u, (a) => ref.norm(a)), { atol: o.tol, rtol: 0 });
          expect(sphereDists(arch, B, o.dist(x, x))).toAllClose(zeros(nS), { atol: o.tol, rtol: 0 });
        });

        it(`seed ${seed}: interpolate hits both ends and moves at constant speed; the corrected Euler step stays on the spheres`, () => {
          expect(o.interpolate(x, y, 0)).toAllClose(x, { atol: o.tol, rtol: 0 });
          expect(o.interpolate(x, y, 1)).toAllClose(y, { atol: o.tol, rtol: 0 });
          const d1 = sphereDists(arch, B, o.dist(x, y));
          const dt = sphereDists(arch, B, o.dist(x, o.interpolate(x, y, 0.3)));
          expect(dt).toAllClose(d1.map((v) => 0.3 * v), { atol: o.tol, rtol: 0 });
          const v = o.from(rng.fillNormal(new Float64Array(B * P)));
          let z = x;
          for (let k = 0; k < 7; k++) z = o.euler(z, v, 1 / 7, 'accurate');
          expect(perSphere(arch, B, z, z, (a) => ref.norm(a))).toAllClose(ones(nS), { atol: o.tol, rtol: 0 });
        });

        it(`seed ${seed}: canonicalisation is idempotent`, () => {
          const raw = rng.fillNormal(new Float32Array(B * P), 0, 0.2);
          const c1 = canonicalize(arch, raw, { device: 'cpu' });
          expect(canonicalize(arch, c1, { device: 'cpu' })).toAllClose(c1, { atol: T32, rtol: 0 });
          const r64 = Float64Array.from(raw);
          const a = new Float64Array(B * P);
          const b = new Float64Array(B * P);
          plan.canonicalizeF64(a, r64, 1);
          plan.canonicalizeF64(b, a, 1);
          expect(b).toAllClose(a, { atol: T64, rtol: 0 });
        });
      }
    });
  }
}

describe('edge cases', () => {
  const arch = mlp([784, 10, 10]);
  const P = arch.numParams;
  const plan = createPlan(arch, 'geometric');
  const { spheres } = ref.factorIndices(arch);

  it('θ ≈ 0: log and dist keep full relative accuracy down to ‖u‖ = 1e-9 (f64) and 1e-3 (f32)', () => {
    const rng = new Rng(42);
    const x = ref.randomPoints(arch, 1, rng).f64;
    for (const n of [1e-9, 1e-6, 1e-3]) {
      const u = ref.randomTangents(arch, x, 1, rng, n, n * (1 + 1e-12));
      const y = new Float64Array(P);
      plan.expmapF64(y, x, u, 'accurate');
      const l = new Float64Array(P);
      plan.logmapF64(l, x, y, 'accurate');
      // y itself is rounded to ~1e-16 per entry, which is 1e-7 of the step at n = 1e-9
      expect(spheres.map((i) => ref.norm(ref.gather(l, P, 0, i)))).toAllClose(spheres.map(() => n), { atol: 0, rtol: 1e-6 });
      const d = new Float64Array(arch.numSpheres + 1);
      plan.distF64(d, x, y, 'accurate');
      expect(Array.from(d.subarray(0, arch.numSpheres))).toAllClose(spheres.map(() => n), { atol: 0, rtol: 1e-6 });
    }
    // f32: the points are rounded to 6e-8 per entry, so small angles carry ~1e-7·√K absolute error
    const x32 = Float32Array.from(x);
    const u32 = Float32Array.from(ref.randomTangents(arch, x, 1, rng, 1e-3, 1e-3 * (1 + 1e-9)));
    const y32 = new Float32Array(P);
    plan.expmap(y32, x32, u32, 'cpu', 'accurate');
    const d32 = new Float32Array(arch.numSpheres + 1);
    plan.dist(d32, x32, y32, 'cpu', 'accurate');
    expect(Array.from(d32.subarray(0, arch.numSpheres))).toAllClose(spheres.map(() => 1e-3), { atol: 5e-6, rtol: 0 });
    // geoopt's reference dist floors at 0.014142 instead
    plan.dist(d32, x32, y32, 'cpu', 'reference');
    expect(d32[0]).toBeCloseTo(0.0141434, 6);
  });

  it('θ ≈ π: antipodal points get the deterministic fallback direction of length θ ≈ π; near-antipodal ones are exact', () => {
    const rng = new Rng(43);
    const x = ref.randomPoints(arch, 1, rng).f64;
    const y = x.map((v, i) => (i < arch.numWeights ? -v : v));
    for (const prec of ['f64', 'f32'] as const) {
      const o = opsFor(plan, prec);
      const xx = o.from(x);
      const yy = o.from(y);
      const l = o.logmap(xx, yy);
      expect(Array.from(l).every(Number.isFinite)).toBe(true);
      expect(spheres.map((i) => ref.dot(ref.gather(xx, P, 0, i), ref.gather(l, P, 0, i)))).toAllClose(spheres.map(() => 0), { atol: o.tol, rtol: 0 });
      expect(spheres.map((i) => ref.norm(ref.gather(l, P, 0, i)))).toAllClose(spheres.map(() => Math.PI), { atol: prec === 'f64' ? 1e-7 : 2e-4, rtol: 0 });
      // the fallback is the tangent projection of e_k, k = argmin |x_k|: deterministic
      const k0 = spheres[0]!.reduce((best, idx, j) => (Math.abs(x[idx]!) < Math.abs(x[spheres[0]![best]!]!) ? j : best), 0);
      const dir = ref.gather(l, P, 0, spheres[0]!);
      const e = ref.tangent(ref.gather(x, P, 0, spheres[0]!), spheres[0]!.map((_, j) => (j === k0 ? 1 : 0)));
      expect(ref.dot(dir, e) / (ref.norm(dir) * ref.norm(e))).toBeCloseTo(1, 5);
      // exp of a tangent of length π lands on the antipode
      expect(o.expmap(xx, l)).toAllClose(yy, { atol: prec === 'f64' ? 1e-7 : 3e-4, rtol: 0 });
      expect(sphereDists(arch, 1, o.dist(xx, yy))).toAllClose(spheres.map(() => Math.PI), { atol: prec === 'f64' ? 1e-12 : 1e-6, rtol: 0 });
    }
    // near-antipodal (π − 1e-3): not the fallback, Log recovers the generating tangent (f64)
    const u = ref.randomTangents(arch, x, 1, rng, Math.PI - 1e-3, Math.PI - 1e-3 + 1e-12);
    const yn = new Float64Array(P);
    plan.expmapF64(yn, x, u, 'accurate');
    const l = new Float64Array(P);
    plan.logmapF64(l, x, yn, 'accurate');
    expect(Array.from(l.subarray(0, arch.numWeights))).toAllClose(Array.from(u.subarray(0, arch.numWeights)), { atol: 1e-9, rtol: 0 });
  });

  it('K = 1 spheres (a single input): project gives ±1, antipodal log is 0 (S^0 has no tangent directions), no NaN', () => {
    const a = mlp([1, 3, 2]);
    const p = createPlan(a, 'geometric');
    const x = new Float64Array(a.numParams).fill(0.5);
    const xp = new Float64Array(a.numParams);
    p.projectF64(xp, x, 'accurate');
    for (let j = 0; j < 3; j++) expect(xp[a.weightIndex(1, 0, j)]).toBe(1);
    const y = xp.map((v, i) => (i < 3 ? -v : v));
    const l = new Float64Array(a.numParams);
    p.logmapF64(l, xp, y, 'accurate');
    expect(Array.from(l.subarray(0, 3))).toEqual([0, 0, 0]);
    const d = new Float64Array(p.numFactors);
    p.distF64(d, xp, y, 'accurate');
    expect(Array.from(d.subarray(0, 3))).toAllClose([Math.PI, Math.PI, Math.PI], { atol: 1e-15, rtol: 0 });
    p.dispose();
  });

  it('zero factors: project and dist use e_0, loss gradient 0; nothing is NaN', () => {
    const a = mlp([5, 3, 2]);
    const p = createPlan(a, 'geometric');
    const z = new Float32Array(a.numParams);
    const o = new Float32Array(a.numParams);
    p.project(o, z, 'cpu', 'accurate');
    for (let j = 0; j < 3; j++) expect([0, 1, 2, 3, 4].map((i) => o[a.weightIndex(1, i, j)])).toEqual([1, 0, 0, 0, 0]);
    const d = new Float32Array(p.numFactors);
    p.dist(d, z, o, 'cpu', 'accurate');
    expect(Array.from(d)).toEqual(Array.from(d, () => 0));
    const g = new Float32Array(a.numParams);
    p.loss(new Float32Array(1), g, z, o, 'cpu', 'accurate');
    expect(Array.from(g).every((v) => v === 0)).toBe(true);
    p.dispose();
  });
});

describe('reference semantics', () => {
  const arch = mlp([30, 16, 16, 2]);
  const P = arch.numParams;
  const plan = createPlan(arch, 'geometric');

  it('expmap with a non-tangent u leaves the sphere as ‖Exp‖² = 1 + sin(2‖u‖)⟨x,u⟩/‖u‖ (METHOD.md §6.3)', () => {
    const rng = new Rng(8);
    const x = ref.randomPoints(arch, 1, rng).f64;
    const u = rng.fillNormal(new Float64Array(P), 0, 0.1);
    const y = new Float64Array(P);
    plan.expmapF64(y, x, u, 'reference');
    const expected = ref.factorIndices(arch).spheres.map((i) => {
      const xi = ref.gather(x, P, 0, i);
      const ui = ref.gather(u, P, 0, i);
      const n = ref.norm(ui);
      return Math.sqrt(1 + (Math.sin(2 * n) * ref.dot(xi, ui)) / n);
    });
    expect(perSphere(arch, 1, y, y, (a) => ref.norm(a))).toAllClose(expected, { atol: 1e-12, rtol: 0 });
  });

  it("the published Euler sampler (x0-anchored velocity, 7 steps) drifts off the spheres; the corrected one does not", () => {
    const rng = new Rng(9);
    const B = 8;
    const x0 = ref.randomPoints(arch, B, rng).f32;
    const x1 = ref.randomPoints(arch, B, rng).f32;
    const v = x1.map((val, i) => val - x0[i]!); // x̂1 − x0 with a fixed prediction x̂1 = x1
    let zr: Float32Array = x0.slice();
    let zc: Float32Array = x0.slice();
    for (let k = 0; k < 7; k++) {
      const nr = new Float32Array(B * P);
      plan.eulerStep(nr, zr, v, 1 / 7, 'cpu', 'reference');
      zr = nr;
      const nc = new Float32Array(B * P);
      plan.eulerStep(nc, zc, v, 1 / 7, 'cpu', 'accurate');
      zc = nc;
    }
    const normsR = perSphere(arch, B, zr, zr, (a) => ref.norm(a));
    const normsC = perSphere(arch, B, zc, zc, (a) => ref.norm(a));
    const mean = normsR.reduce((s, n) => s + n, 0) / normsR.length;
    expect(mean).toBeLessThan(0.97); // ≈ 0.94 in METHOD.md's run; here ≈ the chord/arc ratio of π/2-apart points
    expect(normsC).toAllClose(normsC.map(() => 1), { atol: T32, rtol: 0 });
  });
});
