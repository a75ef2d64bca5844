// The CPU matrix products (native/core/gemm_cpu.cc: packed AVX2 panels, dot/axpy column tails, split-K tall
// reductions) through the three linear ops that use them, against float64 loops written here from the op
// definitions in rt_ops.h. Shapes are chosen to reach every path: output widths N mod 16 ∈ {0, 1, 2, 8, 9, 15}
// (full panels, dot and axpy tails, 8- and 16-wide masked panels), K across the 256-deep chunk boundary, row counts
// that are not multiples of the 6-row tile, tall weight-gradient reductions (rows ≥ 4096, both orientations), a
// weight leading dimension wider than K, and accumulation. Results must also be bit-identical for 1 and 2 threads.
// Every instruction-set level up to the detected one (portable float loops, AVX2, AVX-512) is checked against f64.
import { afterAll, describe, expect, it } from 'vitest';
import { runOp, type OpCase } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';
import type { CpuIsaName } from '../../lib/native/types.js';
import { Rng } from '../../lib/util/rng.js';
import { cpuIsaLevels, withCpuIsa } from '../helpers/native.js';

const b = binding();
const isa = b.cpuIsa();

/** Runs `c` on 1 and 2 threads at each level from the portable kernels up to the detected one, returning the runs per level. */
function runAtEachLevel(c: OpCase): { level: CpuIsaName; runs: ReturnType<typeof runOp>[] }[] {
  return cpuIsaLevels().map((level) => ({ level, runs: [1, 2].map((t) => withCpuIsa(level, t, () => runOp(b, 'cpu', c))) }));
}

const rng = new Rng(2024);
const normal = (n: number): Float32Array => rng.fillNormal(new Float32Array(n));

/** Checks `got` against an f64 reference with a bound scaled by Σ|terms| of each entry (f32 rounding of K terms). */
function expectClose(name: string, got: Float32Array, ref: Float64Array, mag: Float64Array, terms: number): void {
  let worst = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    const err = Math.abs(got[i]! - ref[i]!) / (mag[i]! * 1e-7 * (2 + Math.sqrt(terms)) + 1e-30);
    if (!(err <= worst)) {
      worst = Number.isNaN(err) ? Infinity : err;
      at = i;
    }
  }
  // worst is the error in units of a generous f32 bound (≈ 1e-7·√terms·Σ|terms|); > 8 is a wrong product.
  expect(worst, `${name}: worst entry ${at}: ${got[at]} vs ${ref[at]}`).toBeLessThan(8);
}

describe('CPU GEMM (linear ops) against float64 loops', () => {
  // y[r][o] (+)= b[o] + Σ_k x[r][k]·W[o·ldw + k]
  it.each([
    [1, 1, 1, 1], [7, 33, 16, 33], [13, 33, 17, 33], [29, 65, 18, 65], [61, 17, 24, 17], [100, 65, 25, 130],
    [97, 300, 31, 300], [250, 33, 128, 33], [1001, 9, 36, 9], [37, 257, 64, 260],
  ])('linear_fwd rows=%i K=%i N=%i ldw=%i', (rows, K, N, ldw) => {
    for (const acc of [false, true]) {
      const x = normal(rows * K), W = normal(N * ldw), bias = normal(N), init = normal(rows * N);
      const c: OpCase = { name: 'fwd', op: 'linear_fwd', inputs: { x, W, b: bias }, outputs: { y: acc ? { len: rows * N, init } : { len: rows * N } }, scalars: { rows, K, N, ldw, acc }, tol: { atol: 0, rtol: 0, nmse: 0 } };
      const ref = new Float64Array(rows * N), mag = new Float64Array(rows * N);
      for (let r = 0; r < rows; r++) {
        for (let o = 0; o < N; o++) {
          let s = (acc ? init[r * N + o]! : 0) + bias[o]!;
          let m = Math.abs(s);
          for (let k = 0; k < K; k++) {
            const p = x[r * K + k]! * W[o * ldw + k]!;
            s += p;
            m += Math.abs(p);
          }
          ref[r * N + o] = s;
          mag[r * N + o] = m;
        }
      }
      for (const { level, runs } of runAtEachLevel(c)) {
        expect(runs[0]!.problems).toEqual([]);
        expectClose(`fwd acc=${acc} ${level}`, runs[0]!.outputs.y!, ref, mag, K);
        expect(runs[1]!.outputs.y).toEqual(runs[0]!.outputs.y); // thread count does not change a bit
      }
    }
  });

  // dx[r][k] (+)= Σ_o dy[r][o]·W[o·ldw + k]
  it.each([
    [5, 16, 32, 16], [13, 17, 33, 17], [29, 18, 64, 36], [61, 33, 128, 33], [100, 65, 256, 65], [37, 9, 300, 9], [250, 1, 40, 1],
  ])('linear_bwd_data rows=%i K=%i N=%i ldw=%i', (rows, K, N, ldw) => {
    for (const acc of [false, true]) {
      const dy = normal(rows * N), W = normal(N * ldw), init = normal(rows * K);
      const c: OpCase = { name: 'dx', op: 'linear_bwd_data', inputs: { dy, W }, outputs: { dx: acc ? { len: rows * K, init } : { len: rows * K } }, scalars: { rows, K, N, ldw, acc }, tol: { atol: 0, rtol: 0, nmse: 0 } };
      const ref = new Float64Array(rows * K), mag = new Float64Array(rows * K);
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < K; k++) {
          let s = acc ? init[r * K + k]! : 0;
          let m = Math.abs(s);
          for (let o = 0; o < N; o++) {
            const p = dy[r * N + o]! * W[o * ldw + k]!;
            s += p;
            m += Math.abs(p);
          }
          ref[r * K + k] = s;
          mag[r * K + k] = m;
        }
      }
      for (const { level, runs } of runAtEachLevel(c)) {
        expect(runs[0]!.problems).toEqual([]);
        expectClose(`dx acc=${acc} ${level}`, runs[0]!.outputs.dx!, ref, mag, N);
        expect(runs[1]!.outputs.dx).toEqual(runs[0]!.outputs.dx);
      }
    }
  });

  // dW[o·ldw + k] += Σ_r dy[r][o]·x[r][k]; db[o] += Σ_r dy[r][o] — rows ≥ 4096 take the split-K tall path.
  it.each([
    [37, 33, 16, 33], [300, 17, 33, 17], [4100, 33, 32, 66], [5000, 65, 17, 65], [6000, 17, 64, 17], [4500, 1, 2, 1],
    [9000, 9, 130, 9], [2000, 128, 16, 128],
  ])('linear_bwd_weight rows=%i K=%i N=%i ldw=%i', (rows, K, N, ldw) => {
    const dy = normal(rows * N), x = normal(rows * K), dW0 = normal(N * ldw), db0 = normal(N);
    const c: OpCase = { name: 'dW', op: 'linear_bwd_weight', inputs: { dy, x }, outputs: { dW: { len: N * ldw, init: dW0 }, db: { len: N, init: db0 } }, scalars: { rows, K, N, ldw }, tol: { atol: 0, rtol: 0, nmse: 0 } };
    const ref = Float64Array.from(dW0), mag = Float64Array.from(dW0, Math.abs);
    const refb = Float64Array.from(db0), magb = Float64Array.from(db0, Math.abs);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < N; o++) {
        const g = dy[r * N + o]!;
        refb[o] = refb[o]! + g;
        magb[o] = magb[o]! + Math.abs(g);
        for (let k = 0; k < K; k++) {
          const p = g * x[r * K + k]!;
          ref[o * ldw + k] = ref[o * ldw + k]! + p;
          mag[o * ldw + k] = mag[o * ldw + k]! + Math.abs(p);
        }
      }
    }
    for (const { level, runs } of runAtEachLevel(c)) {
      expect(runs[0]!.problems).toEqual([]);
      // Columns k ≥ K of each dW row (ldw > K) are not the op's: they must keep their initial values.
      for (let o = 0; o < N; o++) for (let k = K; k < ldw; k++) expect(runs[0]!.outputs.dW![o * ldw + k]).toBe(dW0[o * ldw + k]);
      expectClose(`dW ${level}`, runs[0]!.outputs.dW!, ref, mag, rows);
      expectClose(`db ${level}`, runs[0]!.outputs.db!, refb, magb, rows);
      expect(runs[1]!.outputs.dW).toEqual(runs[0]!.outputs.dW);
      expect(runs[1]!.outputs.db).toEqual(runs[0]!.outputs.db);
    }
  });

  it('checks every level up to the detected one, starting from the portable kernels', () => {
    expect(cpuIsaLevels()[0]).toBe('portable');
    expect(cpuIsaLevels().at(-1)).toBe(isa.detected);
    expect(b.cpuIsa().active).toBe(isa.active); // each check restores the active level
  });
});

// The AVX-512 kernel (12×32 tiles over full 16-column panels) runs the same FMA chain per output entry as the AVX2
// kernel (one accumulator, K ascending, the same 256-deep chunks), so capping the instruction set must not change a
// bit. The f64 checks above run at every level; this also pins AVX2 to AVX-512 bit for bit.
describe('CPU GEMM instruction-set levels', () => {
  afterAll(() => b.setCpuIsa(isa.active));

  it('rejects an unknown level and never rises above the detected one', () => {
    expect(() => b.setCpuIsa('sse' as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(b.setCpuIsa('avx512')).toBe(isa.detected);
    expect(b.setCpuIsa('portable')).toBe('portable');
    expect(b.cpuIsa()).toEqual({ active: 'portable', detected: isa.detected, bf16: false });
    b.setCpuIsa(isa.active);
  });

  const cases: OpCase[] = [];
  for (const [rows, K, N] of [[1001, 33, 132], [97, 300, 48], [250, 65, 16], [61, 17, 33], [4100, 33, 32], [4200, 65, 130], [37, 9, 64]] as const) {
    const x = normal(rows * K), W = normal(N * K), bias = normal(N), init = normal(rows * N), dy = normal(rows * N);
    cases.push({ name: `fwd ${rows}×${K}→${N}`, op: 'linear_fwd', inputs: { x, W, b: bias }, outputs: { y: { len: rows * N, init } }, scalars: { rows, K, N, ldw: K, acc: true }, tol: { atol: 0, rtol: 0, nmse: 0 } });
    cases.push({ name: `dx ${rows}×${N}→${K}`, op: 'linear_bwd_data', inputs: { dy, W }, outputs: { dx: { len: rows * K } }, scalars: { rows, K, N, ldw: K, acc: false }, tol: { atol: 0, rtol: 0, nmse: 0 } });
    cases.push({ name: `dW ${rows} rows ${N}×${K}`, op: 'linear_bwd_weight', inputs: { dy, x }, outputs: { dW: { len: N * K }, db: { len: N } }, scalars: { rows, K, N, ldw: K }, tol: { atol: 0, rtol: 0, nmse: 0 } });
  }
  it.skipIf(isa.detected !== 'avx512').each(cases.map((c) => [c.name, c] as const))('AVX-512 and AVX2 agree bitwise: %s', (_name, c) => {
    expect(b.setCpuIsa('avx512')).toBe('avx512');
    const wide = runOp(b, 'cpu', c);
    expect(b.setCpuIsa('avx2')).toBe('avx2');
    const narrow = runOp(b, 'cpu', c);
    b.setCpuIsa(isa.active);
    expect(wide.problems).toEqual([]);
    for (const k of Object.keys(narrow.outputs)) {
      expect(wide.outputs[k]!.length).toBeGreaterThan(0);
      expect(wide.outputs[k], k).toEqual(narrow.outputs[k]);
    }
  });
});
