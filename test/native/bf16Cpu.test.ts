// bf16 weight products of the CPU engine (VectorField `matmul: 'bf16'`; native/core/gemm_cpu.cc namespace bf16):
// operands rounded to nearest-even bfloat16, products summed in float by vdpbf16ps, a 1–2-column tail summed in float
// from the unrounded operands. Checked against float64 sums of operands rounded here (an independent bf16 rounding
// written from the format's definition), at shapes reaching every path: 1–2 column tails, a partial last panel (3–15
// columns), odd K (a half-empty last pair), row counts across the 12-row tile and the 96-row block, strided A rows,
// a wider C, and accumulation; products too small to gain (one 16-column panel, K = 1) must stay float bit for bit. Then the engine: the option takes effect (outputs differ from float, by about bf16's
// rounding), training still converges, and every place the option cannot apply refuses it with ERR_INVALID.
import { describe, expect, it } from 'vitest';
import { VectorField } from '../../lib/engine/VectorField.js';
import { runOp } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';
import { Rng } from '../../lib/util/rng.js';
import { withCpuIsa } from '../helpers/native.js';

const b = binding();
const isa = b.cpuIsa();
const rng = new Rng(77);
const normal = (n: number): Float32Array => rng.fillNormal(new Float32Array(n));

const f1 = new Float32Array(1);
const u1 = new Uint32Array(f1.buffer);
/** x rounded to the nearest bfloat16 (ties to even), as a number. */
function bf16(x: number): number {
  f1[0] = x;
  const u = u1[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return f1[0]; // NaN stays NaN
  u1[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 0) & 0xffff0000;
  return f1[0];
}

interface Shape { M: number; N: number; K: number; lda: number; ldc: number; acc: boolean }

/** C (+)= A·B through the packed-weight path, in bf16 or float. */
function packed(s: Shape, A: Float32Array, B: Float32Array, C0: Float32Array, bf: boolean): Float32Array {
  const r = runOp(b, 'cpu', {
    name: 'gemm_packed', op: 'gemm_packed', inputs: { A, B },
    outputs: { C: { len: C0.length, init: C0 } },
    scalars: { M: s.M, N: s.N, K: s.K, lda: s.lda, ldb: s.N, ldc: s.ldc, acc: s.acc, matmul_bf16: bf },
    tol: { atol: 0, rtol: 0, nmse: 0 },
  });
  expect(r.problems).toEqual([]);
  return r.outputs.C!;
}

const SHAPES: Shape[] = [];
for (const [M, N, K] of [[1, 16, 1], [11, 17, 2], [12, 18, 3], [13, 33, 32], [97, 32, 33], [200, 65, 64], [96, 64, 65], [25, 19, 300], [7, 130, 65], [40, 3, 9], [30, 128, 33], [14, 34, 2], [9, 64, 1]] as const) {
  SHAPES.push({ M, N, K, lda: K, ldc: N, acc: false });
}
SHAPES.push({ M: 50, N: 33, K: 20, lda: 27, ldc: 40, acc: true });
SHAPES.push({ M: 130, N: 47, K: 66, lda: 70, ldc: 47, acc: true });

describe.skipIf(!isa.bf16)('bf16 weight products (this CPU has AVX-512 BF16)', () => {
  it.each(SHAPES.map((s) => [`${s.M}×${s.K}·${s.K}×${s.N}${s.lda > s.K ? ` lda ${s.lda}` : ''}${s.ldc > s.N ? ` ldc ${s.ldc}` : ''}${s.acc ? ' acc' : ''}`, s] as const))('%s: the sums of bf16-rounded operands', (_n, s) => {
    const A = normal(s.M * s.lda), B = normal(s.K * s.N), C0 = normal(s.M * s.ldc);
    const got = packed(s, A, B, C0, true);
    const f32 = packed(s, A, B, C0, false);
    const tail = s.N % 16 <= 2 ? s.N % 16 : 0; // columns summed in float from the unrounded operands
    // Products of fewer than two 16-column panels, or K < 2, stay float (too small to gain): bit for bit the float path.
    const bfPath = Math.ceil((s.N - tail) / 16) >= 2 && s.K >= 2;
    if (!bfPath) {
      expect(got).toEqual(f32);
      return;
    }
    let worst = 0, worstAt = '', differs = 0;
    for (let i = 0; i < s.M; i++) {
      for (let j = 0; j < s.N; j++) {
        const floatCol = j >= s.N - tail;
        let ref = s.acc ? C0[i * s.ldc + j]! : 0, mag = Math.abs(ref);
        for (let p = 0; p < s.K; p++) {
          const a = A[i * s.lda + p]!, w = B[p * s.N + j]!;
          const t = floatCol ? a * w : bf16(a) * bf16(w);
          ref += t;
          mag += Math.abs(t);
        }
        // float accumulation of K exact products (each bf16·bf16 product is exact in float): ≈ 6e-8·√K·Σ|terms|
        const err = Math.abs(got[i * s.ldc + j]! - ref) / (mag * 6e-8 * (2 + Math.sqrt(s.K)) + 1e-30);
        if (!(err <= worst)) { worst = Number.isNaN(err) ? Infinity : err; worstAt = `(${i}, ${j})`; }
        if (got[i * s.ldc + j] !== f32[i * s.ldc + j]) differs++;
      }
      for (let j = s.N; j < s.ldc; j++) expect(got[i * s.ldc + j], 'C beyond N is left alone').toBe(C0[i * s.ldc + j]);
    }
    expect(worst, `worst entry ${worstAt}`).toBeLessThan(8);
    // The bf16 path ran: entries outside the float tail differ from the float products (rounding 2⁻⁹ of each operand).
    expect(differs).toBeGreaterThan(0.5 * s.M * (s.N - tail));
  });

  // Weight gradients: C (+)= Σ_p A(i,p)·B[p][j] with A(i,p) = A[i + p·sap] (dyᵀ over a block of rows), both operands
  // packed as bf16 pairs per call; a 1–2-column tail in float; one panel or K = 1: the float product bit for bit.
  const WGRAD: [number, number, number, number][] = [[64, 65, 96, 64], [32, 33, 96, 40], [33, 32, 95, 33], [16, 64, 7, 16], [65, 130, 1, 65], [12, 17, 50, 12], [100, 48, 33, 101], [5, 34, 3, 5], [13, 19, 2, 13]];
  it.each(WGRAD.map((w) => [`${w[0]}×${w[1]} over K=${w[2]} (sap ${w[3]})`, w] as const))('weight gradient %s: the sums of bf16-rounded operands', (_n, [M, N, K, sap]) => {
    const A = normal(K * sap), B = normal(K * N), C0 = normal(M * N);
    const run = (bf: boolean): Float32Array => {
      const r = runOp(b, 'cpu', {
        name: 'gemm_serial', op: 'gemm_serial', inputs: { A, B }, outputs: { C: { len: M * N, init: C0 } },
        scalars: { M, N, K, sai: 1, sap, ldb: N, ldc: N, acc: true, matmul_bf16: bf }, tol: { atol: 0, rtol: 0, nmse: 0 },
      });
      expect(r.problems).toEqual([]);
      return r.outputs.C!;
    };
    const got = run(true), f32 = run(false);
    const tail = N % 16 <= 2 ? N % 16 : 0;
    if (!(Math.ceil((N - tail) / 16) >= 2 && K >= 2)) {
      expect(got).toEqual(f32);
      return;
    }
    let worst = 0, differs = 0;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        const floatCol = j >= N - tail;
        let ref = C0[i * N + j]!, mag = Math.abs(ref);
        for (let p = 0; p < K; p++) {
          const a = A[i + p * sap]!, w = B[p * N + j]!;
          const t = floatCol ? a * w : bf16(a) * bf16(w);
          ref += t;
          mag += Math.abs(t);
        }
        worst = Math.max(worst, Math.abs(got[i * N + j]! - ref) / (mag * 6e-8 * (2 + Math.sqrt(K)) + 1e-30));
        if (got[i * N + j] !== f32[i * N + j]) differs++;
      }
    }
    expect(worst).toBeLessThan(8);
    expect(differs).toBeGreaterThan(0.5 * M * (N - tail));
  });

  it('the fused pair MLP in bf16 agrees with float to bf16 precision', () => {
    // A small sparse VectorField forward on random parameters, float vs bf16 products: relative error of the
    // output about bf16's 2⁻⁹ per rounding, far above float's, far below the output's size.
    const f = VectorField.create({ arch: [30, 16, 16, 2], D: 32, layers: 2, device: 'cpu', seed: 3 });
    const g = VectorField.create({ arch: [30, 16, 16, 2], D: 32, layers: 2, device: 'cpu', seed: 3, matmul: 'bf16' });
    try {
      expect(f.matmul).toBe('f32');
      expect(g.matmul).toBe('bf16');
      const P = f.arch.numParams;
      const xt = normal(4 * P).map((v) => 0.3 * v);
      const a = f.forward(xt, 0.4), c = g.forward(xt, 0.4);
      let num = 0, den = 0;
      for (let i = 0; i < a.length; i++) { num += (a[i]! - c[i]!) ** 2; den += a[i]! ** 2; }
      const rel = Math.sqrt(num / den);
      expect(rel).toBeGreaterThan(1e-5); // bf16 in effect (float vs float would be 0: same parameters, same order)
      expect(rel).toBeLessThan(3e-2);
      // and back to float: bit for bit the float field's outputs
      g.setMatmul('f32');
      expect(g.forward(xt, 0.4)).toEqual(a);
    } finally {
      f.dispose();
      g.dispose();
    }
  });

  it('bf16 training steps are bit for bit the same on 1 and 2 threads', () => {
    const arch = [30, 16, 16, 2];
    const P = 30 * 16 + 16 + 16 * 16 + 16 + 16 * 2 + 2;
    const r = new Rng(3);
    const xt = r.fillNormal(new Float32Array(6 * P)).map((v) => 0.3 * v), target = r.fillNormal(new Float32Array(6 * P)).map((v) => 0.3 * v);
    const run = (threads: number): { losses: number[]; params: Float32Array } =>
      withCpuIsa('avx512', threads, () => {
        const f = VectorField.create({ arch, D: 32, layers: 2, device: 'cpu', seed: 4, matmul: 'bf16' });
        try {
          const losses = Array.from({ length: 3 }, () => f.trainStepMse(xt, 0.3, target, { lr: 1e-3 }));
          return { losses, params: f.getParams() };
        } finally {
          f.dispose();
        }
      });
    const one = run(1), two = run(2);
    expect(two.losses).toEqual(one.losses);
    expect(two.params).toEqual(one.params);
  });

  it('training with bf16 products overfits a fixed batch as float does', () => {
    // As the float test in vectorfield.test.ts: the loss on one fixed batch falls by orders of magnitude. bf16's
    // rounding puts a floor under it (measured: 0.25 → ~1e-5 in 600 steps, float → ~1e-13), so the check is
    // 100× for both, and the starting losses agree to bf16 precision.
    const P = 5 * 4 + 4 + 4 * 3 + 3;
    const losses: Record<string, number[]> = {};
    for (const matmul of ['f32', 'bf16'] as const) {
      const r = new Rng(11);
      const xt = r.fillNormal(new Float32Array(4 * P)), target = r.fillNormal(new Float32Array(4 * P), 0, 0.5);
      const t = Float32Array.from([0.1, 0.4, 0.6, 0.9]);
      const f = VectorField.create({ arch: [5, 4, 3], D: 32, layers: 2, device: 'cpu', seed: 2, matmul });
      try {
        losses[matmul] = Array.from({ length: 601 }, () => f.trainStepMse(xt, t, target, { lr: 3e-3 }));
      } finally {
        f.dispose();
      }
    }
    const [f32, bf] = [losses.f32!, losses.bf16!];
    expect(Math.abs(bf[0]! / f32[0]! - 1)).toBeLessThan(0.01);
    expect(bf[0]).not.toBe(f32[0]);
    expect(f32.at(-1)!).toBeLessThan(f32[0]! / 100);
    expect(bf.at(-1)!).toBeLessThan(bf[0]! / 100);
  });
});

describe('where bf16 products cannot run, they are refused', () => {
  it('kernels capped below AVX-512: unavailable, and matmul bf16 throws ERR_INVALID naming the CPU', () => {
    withCpuIsa('portable', 1, () => {
      expect(b.cpuIsa().bf16).toBe(false);
      expect(() => VectorField.create({ arch: [4, 3, 2], D: 8, layers: 1, device: 'cpu', matmul: 'bf16' })).toThrow(
        expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/AVX-512 BF16/) }),
      );
    });
  });

  it('the f64 reference refuses bf16; an unknown precision is refused; f32 is accepted everywhere', () => {
    expect(() => VectorField.create({ arch: [4, 3, 2], D: 8, layers: 1, dtype: 'f64', matmul: 'bf16' })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/f64 reference/) }),
    );
    const f = VectorField.create({ arch: [4, 3, 2], D: 8, layers: 1, device: 'cpu', matmul: 'f32' });
    try {
      expect(() => f.setMatmul('fp8' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/'f32' or 'bf16'/) }));
      expect(f.matmul).toBe('f32');
    } finally {
      f.dispose();
    }
  });
});
