// Accuracy of the CPU engine's GELU (forward and derivative) against a double-precision closed form. The CPU uses
// a rational erf approximation (native/core/fastmath_cpu.h); the CUDA kernels use the device's erff. The bound
// measured here is what the CUDA-vs-CPU parity tolerance for GELU (TOL_GELU in lib/internal/backendParity.ts)
// rests on, so it is pinned: a less accurate approximation fails this test rather than the GPU check.
import { describe, expect, it } from 'vitest';
import { TOL_GELU, runOp } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';

/** erfc in double precision: Taylor series of erf for |z| < 2, continued fraction beyond (both ≪ 1e-12 here). */
function erfc(z: number): number {
  if (z < 0) return 2 - erfc(-z);
  if (z < 2) {
    let term = z;
    let sum = z;
    for (let n = 1; n < 60; n++) {
      term *= (-z * z) / n;
      sum += term / (2 * n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  let k = z;
  for (let n = 80; n >= 1; n--) k = z + n / 2 / k;
  return Math.exp(-z * z) / (Math.sqrt(Math.PI) * k);
}
const Phi = (x: number): number => 0.5 * erfc(-x / Math.SQRT2);
const gelu = (x: number): number => x * Phi(x);
const geluGrad = (x: number): number => Phi(x) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);

describe('CPU GELU accuracy (f64 closed form)', () => {
  const n = 64001;
  const x = Float32Array.from({ length: n }, (_, i) => -8 + (16 * i) / (n - 1));

  it('the double-precision reference itself is right (erf(1), erfc(3), Φ(−5))', () => {
    expect(1 - erfc(1)).toBeCloseTo(0.8427007929497149, 14);
    expect(erfc(3) / 2.209049699858544e-5).toBeCloseTo(1, 12);
    expect(Phi(-5) / 2.866515718791939e-7).toBeCloseTo(1, 12);
  });

  it('forward: absolute error ≤ 1.5e-6 on [−8, 8], within the parity floor TOL_GELU.atol', () => {
    const r = runOp(binding(), 'cpu', { name: 'gelu', op: 'act_fwd', inputs: { x }, outputs: { y: { len: n } }, scalars: { n, act: 0 }, tol: TOL_GELU });
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(r.outputs.y![i]! - gelu(x[i]!)));
    expect(worst).toBeLessThan(1.5e-6); // measured 1.35e-6 at x ≈ 5.56 (2026-12-04)
    expect(worst).toBeLessThan(TOL_GELU.atol);
  });

  it("derivative: absolute error ≤ 5e-7 on [−8, 8] (dy = 1)", () => {
    const r = runOp(binding(), 'cpu', { name: 'gelu bwd', op: 'act_bwd', inputs: { x, dy: new Float32Array(n).fill(1) }, outputs: { dx: { len: n } }, scalars: { n, act: 0, acc: false }, tol: TOL_GELU });
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(r.outputs.dx![i]! - geluGrad(x[i]!)));
    expect(worst).toBeLessThan(5e-7); // measured 2.2e-7 at x ≈ 4.48 (2026-12-04)
  });
});
