// CUDA vs CPU parity for every geometry op, forward and backward (ggml test-backend-ops style): odd sizes, a
// single hidden neuron, large K, both kinds and both semantics; outputs sentinel-guarded and checked for full
// coverage and untouched guards, NaN/Inf agreement before any error metric (toAllClose checks it first).
// Inputs include the special branches: an antipodal pair, a zero factor and a small-angle pair.
// Skips without CUDA (`npm run test:gpu` / WSF_REQUIRE_CUDA=1 makes that a failure). WSF_PARITY_SELFTEST=1 runs
// the harness with 'cpu' as the device under test, to check the harness itself on a machine without a GPU.
import { afterAll, describe, expect, it } from 'vitest';
import { mlp } from '../../lib/index.js';
import { createPlan, disposeSharedPlans } from '../../lib/geometry/plan.js';
import { binding } from '../../lib/native/binding.js';
import type { NativeDevice, NativeGeoKind, NativeGeoMode, NativeGeometryPlan } from '../../lib/native/types.js';
import { plantedInputs as inputs } from '../helpers/geometryInputs.js';
import { hasCuda } from '../helpers/native.js';
import { guarded } from '../helpers/sentinel.js';

const SELFTEST = process.env.WSF_PARITY_SELFTEST === '1';
const DUT: NativeDevice = SELFTEST ? 'cpu' : 'cuda';

// Every op reduces over its factor (K ≤ 784) in float32, in a different order on each back end: the HOUSE_STYLE
// reduction tolerance. Gradients carry the factor w_s/B (≈ 1e-3), so their absolute tolerance scales down too.
const TOL = { atol: 1e-5, rtol: 1e-4 };
const TOL_GRAD = { atol: 1e-7, rtol: 1e-4 };
const NMSE_MAX = 1e-7;

function nmse(a: ArrayLike<number>, e: ArrayLike<number>): number {
  let se = 0;
  let ss = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(e[i]!)) continue;
    se += (a[i]! - e[i]!) ** 2;
    ss += e[i]! ** 2;
  }
  return ss > 0 ? se / ss : se;
}

/** Runs `op` on the CPU and on the device under test into guarded outputs and compares them. */
function parity(lengths: number[], op: (outs: Float32Array[], dev: NativeDevice) => void, tols: { atol: number; rtol: number }[]): void {
  const cpu = lengths.map(guarded);
  const dut = lengths.map(guarded);
  op(
    cpu.map((g) => g.view),
    'cpu',
  );
  op(
    dut.map((g) => g.view),
    DUT,
  );
  for (let k = 0; k < lengths.length; k++) {
    expect(cpu[k]!.unwritten(), `CPU output ${k} fully written`).toEqual([]);
    expect(dut[k]!.unwritten(), `${DUT} output ${k} fully written`).toEqual([]);
    expect(cpu[k]!.guardsBroken() + dut[k]!.guardsBroken(), `guards of output ${k}`).toBe(0);
    expect(dut[k]!.view).toAllClose(cpu[k]!.view, tols[k] ?? TOL);
    expect(nmse(dut[k]!.view, cpu[k]!.view)).toBeLessThanOrEqual(NMSE_MAX);
  }
}

const ARCHS = [
  [7, 5, 3],
  [30, 16, 16, 2],
  [784, 10, 10],
  [4, 1, 3], // a single hidden neuron
  [3, 2], // no hidden layer
];

describe.skipIf(!SELFTEST && !hasCuda())(`geometry parity: ${DUT} vs CPU`, () => {
  const plans: NativeGeometryPlan[] = [];
  afterAll(() => {
    // leak check: every device allocation (tables, staging buffers) is gone once the plans are disposed
    for (const p of plans) p.dispose();
    disposeSharedPlans();
    expect(binding().deviceMemory().live).toBe(0);
  });
  for (const widths of ARCHS) {
    for (const kind of ['geometric', 'euclidean'] as NativeGeoKind[]) {
      for (const mode of ['accurate', 'reference'] as NativeGeoMode[]) {
        describe(`${widths.join('-')} ${kind} ${mode}`, () => {
          const arch = mlp(widths);
          const P = arch.numParams;
          const B = 5; // odd
          const plan: NativeGeometryPlan = createPlan(arch, kind);
          plans.push(plan);
          const F = plan.numFactors;
          const d = inputs(arch, kind, B, widths.length * 100 + P, mode);
          const n = B * P;

          it('project, tangentProject', () => {
            parity([n], ([o], dev) => plan.project(o!, d.raw, dev, mode), [TOL]);
            parity([n], ([o], dev) => plan.tangentProject(o!, d.x, d.raw, dev, mode), [TOL]);
          });
          it('expmap, logmap (incl. antipodal, zero and small-angle factors)', () => {
            parity([n], ([o], dev) => plan.expmap(o!, d.x, d.u, dev, mode), [TOL]);
            parity([n], ([o], dev) => plan.logmap(o!, d.x, d.y, dev, mode), [TOL]);
          });
          it('dist (B × F)', () => {
            parity([B * F], ([o], dev) => plan.dist(o!, d.x, d.y, dev, mode), [TOL]);
          });
          it('interpolate (t per network), eulerStep', () => {
            parity([n], ([o], dev) => plan.interpolate(o!, d.x, d.y, d.t, dev, mode), [TOL]);
            parity([n], ([o], dev) => plan.eulerStep(o!, d.x, d.raw, 0.125, dev, mode), [TOL]);
          });
          it('loss: per network, gradient and the batch mean; also without the gradient', () => {
            const losses: Record<string, number> = {};
            parity(
              [B, n],
              ([per, grad], dev) => {
                losses[dev] = plan.loss(per!, grad!, d.raw, d.y, dev, mode);
              },
              [TOL, TOL_GRAD],
            );
            expect(losses[DUT]).toAllClose(losses.cpu!, TOL);
            parity([B], ([per], dev) => void plan.loss(per!, null, d.raw, d.y, dev, mode), [TOL]);
            // on-manifold predictions: the antipodal, zero and small-angle gradient branches
            parity([B, n], ([per, grad], dev) => void plan.loss(per!, grad!, d.x, d.y, dev, mode), [TOL, TOL_GRAD]);
          });
          it('canonicalize forward and backward (backward also vs the f64 CPU reference)', () => {
            for (const c of [1, Math.SQRT2]) {
              parity([n], ([o], dev) => plan.canonicalize(o!, d.raw, c, dev), [TOL]);
              parity([n], ([o], dev) => plan.canonicalizeBackward(o!, d.raw, d.u, c, dev), [TOL]);
              const dx = new Float32Array(n);
              plan.canonicalizeBackward(dx, d.raw, d.u, c, DUT);
              const dx64 = new Float64Array(n);
              plan.canonicalizeBackwardF64(dx64, Float64Array.from(d.raw), Float64Array.from(d.u), c);
              expect(dx).toAllClose(Float32Array.from(dx64), TOL);
            }
          });
          it('in place (out = x) gives the same result', () => {
            const expected = new Float32Array(n);
            plan.expmap(expected, d.x, d.u, 'cpu', mode);
            const buf = d.x.slice();
            plan.expmap(buf, buf, d.u, DUT, mode);
            expect(buf).toAllClose(expected, TOL);
          });
          it('loss gradient vs the f64 CPU reference', () => {
            const g = new Float32Array(n);
            plan.loss(new Float32Array(B), g, d.raw, d.y, DUT, mode);
            const g64 = new Float64Array(n);
            plan.lossF64(new Float64Array(B), g64, Float64Array.from(d.raw), Float64Array.from(d.y), mode);
            expect(g).toAllClose(Float32Array.from(g64), TOL_GRAD);
          });
        });
      }
    }
  }

  it('large batches (grid sizes): 30-16-16-2 × 4096 and 784-10-10 × 256', () => {
    for (const [widths, B] of [
      [[30, 16, 16, 2], 4096],
      [[784, 10, 10], 256],
    ] as [number[], number][]) {
      const arch = mlp(widths);
      const plan = createPlan(arch, 'geometric');
      const d = inputs(arch, 'geometric', B, 7);
      const n = B * arch.numParams;
      parity([n], ([o], dev) => plan.interpolate(o!, d.x, d.y, d.t, dev, 'accurate'), [TOL]);
      parity([B, n], ([per, grad], dev) => void plan.loss(per!, grad!, d.raw, d.y, dev, 'accurate'), [TOL, TOL_GRAD]);
      parity([n], ([o], dev) => plan.canonicalizeBackward(o!, d.raw, d.u, 1, dev), [TOL]);
      plan.dispose();
    }
  });
});
