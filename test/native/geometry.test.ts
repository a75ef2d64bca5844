// Contract of the geometry facade and the GeometryPlan binding: typed errors for bad kinds, lengths, modes,
// devices and receivers, disposal, aliasing rules — and the process keeps working afterwards.
import { describe, expect, it } from 'vitest';
import { canonicalize, canonicalizeBackward, geometry, mlp, WsfError } from '../../lib/index.js';
import { binding } from '../../lib/native/binding.js';
import { createPlan, disposeSharedPlans } from '../../lib/geometry/plan.js';
import { Rng } from '../../lib/util/rng.js';
import type { Geometry } from '../../lib/geometry/Geometry.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(WsfError);
    return (e as WsfError).code;
  }
  return undefined;
}

const arch = mlp([7, 5, 3]);
const P = arch.numParams;
const cudaOk = binding().cudaInfo().deviceCount > 0 && binding().cudaInfo().compiled;

describe('geometry facade validation', () => {
  const g = geometry(arch, 'geometric', { device: 'cpu' });
  const x = new Float32Array(2 * P).fill(0.1);

  it('unknown kind, semantics, device or a bad lastLayerNorm → ERR_INVALID naming the choices', () => {
    expect(codeOf(() => geometry(arch, 'spherical' as 'geometric'))).toBe('ERR_INVALID');
    expect(() => geometry(arch, 'spherical' as 'geometric')).toThrow(/'euclidean', 'normalized', 'geometric'/);
    expect(codeOf(() => geometry(arch, 'geometric', { semantics: 'exact' as 'reference' }))).toBe('ERR_INVALID');
    expect(codeOf(() => geometry(arch, 'geometric', { device: 'tpu' as 'cpu' }))).toBe('ERR_INVALID');
    expect(codeOf(() => geometry(arch, 'geometric', { lastLayerNorm: 0 }))).toBe('ERR_INVALID');
    expect(codeOf(() => geometry(arch, 'geometric', { lastLayerNorm: Number.NaN }))).toBe('ERR_INVALID');
    expect(codeOf(() => geometry({} as typeof arch, 'geometric'))).toBe('ERR_INVALID');
    expect(codeOf(() => geometry(arch, 'geometric', 5 as unknown as object))).toBe('ERR_INVALID');
  });

  it('wrong array kinds → ERR_DTYPE, wrong lengths → ERR_SHAPE, with the expected shape in the message', () => {
    expect(codeOf(() => g.project(new Float64Array(P) as unknown as Float32Array))).toBe('ERR_DTYPE');
    expect(codeOf(() => g.project([1, 2, 3] as unknown as Float32Array))).toBe('ERR_DTYPE');
    expect(codeOf(() => g.project(new Float32Array(P + 1)))).toBe('ERR_SHAPE');
    expect(() => g.project(new Float32Array(P + 1))).toThrow(`B·P (P = ${P} for 7-5-3)`);
    expect(codeOf(() => g.project(new Float32Array(0)))).toBe('ERR_SHAPE');
    expect(codeOf(() => g.expmap(x, new Float32Array(P)))).toBe('ERR_SHAPE');
    expect(() => g.expmap(x, new Float32Array(P))).toThrow(`length ${2 * P} for \`u\``);
    expect(codeOf(() => g.dist(x, x, { out: new Float32Array(2 * P) }))).toBe('ERR_SHAPE'); // dist out is B·F
    expect(codeOf(() => g.interpolate(x, x, new Float32Array(3)))).toBe('ERR_SHAPE');
    expect(codeOf(() => g.interpolate(x, x, Number.NaN))).toBe('ERR_INVALID');
    expect(codeOf(() => g.interpolate(x, x, [0.5, 0.5] as unknown as number))).toBe('ERR_DTYPE');
    expect(codeOf(() => g.eulerStep(x, x, Number.POSITIVE_INFINITY))).toBe('ERR_INVALID');
    expect(codeOf(() => g.loss(x, x, { grad: new Float32Array(P) }))).toBe('ERR_SHAPE');
    expect(codeOf(() => g.loss(x, x, { perNetwork: new Float32Array(3) }))).toBe('ERR_SHAPE');
    expect(codeOf(() => canonicalize(arch, new Float32Array(P - 1)))).toBe('ERR_SHAPE');
    expect(codeOf(() => canonicalizeBackward(arch, x, new Float32Array(P)))).toBe('ERR_SHAPE');
    expect(codeOf(() => canonicalize(arch, x, { lastLayerNorm: -1 }))).toBe('ERR_INVALID');
  });

  it('outputs: in place is allowed, partial overlap and gradient aliasing are ERR_INVALID', () => {
    const buf = new Float32Array(3 * P).fill(0.2);
    const a = buf.subarray(0, 2 * P);
    const shifted = buf.subarray(P, 3 * P);
    const expected = g.project(a);
    expect(g.project(a, { out: a })).toBe(a);
    expect(a).toEqual(expected);
    expect(codeOf(() => g.project(a, { out: shifted }))).toBe('ERR_INVALID');
    expect(codeOf(() => g.loss(a, x, { grad: a }))).toBe('ERR_INVALID');
    expect(codeOf(() => canonicalizeBackward(arch, a, x, { out: a }))).toBe('ERR_INVALID');
  });

  it.skipIf(cudaOk)("'cuda' without a usable device is ERR_NO_CUDA (never a silent fallback)", () => {
    expect(codeOf(() => geometry(arch, 'geometric', { device: 'cuda' }))).toBe('ERR_NO_CUDA');
    expect(codeOf(() => canonicalize(arch, x, { device: 'cuda' }))).toBe('ERR_NO_CUDA');
  });

  it.runIf(cudaOk)("'cuda' with a usable device runs there and agrees with the CPU", () => {
    const xs = new Rng(5).fillNormal(new Float32Array(2 * P));
    const gc = geometry(arch, 'geometric', { device: 'cuda' });
    try {
      expect(gc.project(xs)).toAllClose(g.project(xs), { atol: 1e-6, rtol: 1e-5 }); // f32 norms, other summation order
    } finally {
      gc.dispose();
    }
    expect(canonicalize(arch, xs, { device: 'cuda' })).toAllClose(canonicalize(arch, xs, { device: 'cpu' }), { atol: 1e-6, rtol: 1e-5 });
  });

  it('disposed geometries throw ERR_DISPOSED; dispose is idempotent', () => {
    const h: Geometry = geometry(arch, 'euclidean', { device: 'cpu' });
    h.dispose();
    h.dispose();
    expect(h.disposed).toBe(true);
    expect(codeOf(() => h.project(x))).toBe('ERR_DISPOSED');
  });
});

describe('GeometryPlan binding re-checks natively', () => {
  const Plan = binding().GeometryPlan;
  const plan = createPlan(arch, 'geometric');
  const x = new Float32Array(P).fill(0.3);
  const out = new Float32Array(P);

  it('bad widths or kind → ERR_INVALID / ERR_DTYPE', () => {
    expect(codeOf(() => new Plan(new Int32Array([5]), 'geometric'))).toBe('ERR_INVALID');
    expect(codeOf(() => new Plan(new Int32Array([5, 0, 2]), 'geometric'))).toBe('ERR_INVALID');
    expect(codeOf(() => new Plan([5, 2] as unknown as Int32Array, 'geometric'))).toBe('ERR_DTYPE');
    expect(codeOf(() => new Plan(new Int32Array([5, 2]), 'sphere' as 'geometric'))).toBe('ERR_INVALID');
    // calling the class without `new` is stopped by V8 itself
    expect(() => (Plan as unknown as (w: Int32Array, k: string) => unknown)(new Int32Array([5, 2]), 'geometric')).toThrow(TypeError);
  });

  it('kinds, lengths, mode and device strings', () => {
    expect(plan.numParams).toBe(P);
    expect(plan.numSpheres).toBe(6);
    expect(plan.numFactors).toBe(7);
    expect(plan.euclideanOffset).toBe(arch.numWeights);
    expect(codeOf(() => plan.project(out, new Float64Array(P) as unknown as Float32Array, 'cpu', 'accurate'))).toBe('ERR_DTYPE');
    expect(codeOf(() => plan.project(out, new Float32Array(P + 3), 'cpu', 'accurate'))).toBe('ERR_SHAPE');
    expect(codeOf(() => plan.project(new Float32Array(1), x, 'cpu', 'accurate'))).toBe('ERR_SHAPE');
    expect(codeOf(() => plan.project(out, x, 'cpu', 'bogus' as 'accurate'))).toBe('ERR_INVALID');
    expect(codeOf(() => plan.project(out, x, 'gpu' as 'cpu', 'accurate'))).toBe('ERR_INVALID');
    expect(codeOf(() => plan.eulerStep(out, x, x, Number.NaN, 'cpu', 'accurate'))).toBe('ERR_INVALID');
    expect(codeOf(() => plan.canonicalize(out, x, 0, 'cpu'))).toBe('ERR_INVALID');
    expect(codeOf(() => plan.loss(new Float32Array(1), x, x, x, 'cpu', 'accurate'))).toBe('ERR_INVALID'); // grad aliases pred
    expect(codeOf(() => plan.projectF64(new Float64Array(P), x as unknown as Float64Array, 'accurate'))).toBe('ERR_DTYPE');
    expect(codeOf(() => (plan.project as (...a: unknown[]) => void)(out))).toBe('ERR_DTYPE');
    if (!cudaOk) expect(codeOf(() => plan.project(out, x, 'cuda', 'accurate'))).toBe('ERR_NO_CUDA');
  });

  it('an illegal receiver is rejected without touching memory (V8 signature check, then the type tag)', () => {
    expect(() => plan.project.call({}, out, x, 'cpu', 'accurate')).toThrow(TypeError);
    expect(() => plan.dispose.call(Object.create(Plan.prototype) as never)).toThrow(TypeError);
    plan.project(out, x, 'cpu', 'accurate');
    expect(Array.from(out).every(Number.isFinite)).toBe(true);
  });

  it('after dispose: ERR_DISPOSED, and the process is fine', () => {
    const p = createPlan(arch, 'geometric');
    p.dispose();
    expect(p.disposed).toBe(true);
    expect(codeOf(() => p.project(out, x, 'cpu', 'accurate'))).toBe('ERR_DISPOSED');
    plan.project(out, x, 'cpu', 'accurate');
    expect(Array.from(out).every(Number.isFinite)).toBe(true);
    disposeSharedPlans();
    expect(binding().deviceMemory().live).toBe(0);
  });
});
