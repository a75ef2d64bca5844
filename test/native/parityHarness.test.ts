// The backend-parity harness itself (lib/internal/backendParity.ts), checked on the CPU so that it is exercised
// on every machine: CPU against CPU must pass every op and engine check, and the harness must catch an
// out-of-bounds write, an unwritten output and a wrong value.
import { describe, expect, it } from 'vitest';
import { ENGINE_CASES, TOL_GELU, buildOpCases, checkEngineCase, checkOpCase, compareTol, runOp, type OpCase } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';

describe('backend parity harness (CPU against itself)', () => {
  it('every op case passes CPU vs CPU (the cases are well formed, outputs fully written, inputs untouched)', () => {
    const cases = buildOpCases(99);
    expect(cases.length).toBeGreaterThan(150);
    const ops = new Set(cases.map((c) => c.op));
    for (const op of ['linear_fwd', 'linear_bwd_data', 'linear_bwd_weight', 'layernorm_fwd', 'layernorm_bwd', 'act_fwd', 'act_bwd', 'add',
      'attention_fwd', 'attention_bwd', 'edge_combine_fwd', 'edge_combine_bwd', 'edge_features', 'node_features', 'copy_cols', 'embed_add',
      'embed_bwd', 'set_time', 'gather_rows', 'scatter_rows', 'scatter_flat', 'gather_flat', 'mse', 'sum_squares', 'scale', 'adam', 'zero', 'copy']) {
      expect(ops.has(op), op).toBe(true);
    }
    const failed = cases.flatMap((c) => checkOpCase(binding(), 'cpu', c)).filter((r) => !r.pass);
    expect(failed.map((r) => `${r.name}: ${r.detail}`)).toEqual([]);
  });

  it('reports an out-of-bounds write into a guard region', () => {
    // `copy` told to write one element more than the payload holds: the element lands in the back guard.
    const c: OpCase = { name: 'copy overrun', op: 'copy', inputs: { src: new Float32Array(9).fill(1) }, outputs: { dst: { len: 8 } }, scalars: { n: 9 }, tol: { atol: 0, rtol: 0, nmse: 0 } };
    expect(runOp(binding(), 'cpu', c).problems.join()).toMatch(/guard element of `dst`/);
  });

  it('reports unwritten outputs and wrong values', () => {
    // `zero` of n = 3 leaves the rest of an 8-element NaN-filled output unwritten.
    const c: OpCase = { name: 'partial', op: 'zero', inputs: {}, outputs: { p: { len: 8 } }, scalars: { n: 3 }, tol: { atol: 0, rtol: 0, nmse: 0 } };
    const out = runOp(binding(), 'cpu', c).outputs.p!;
    expect(Array.from(out.subarray(0, 3))).toEqual([0, 0, 0]);
    expect(Number.isNaN(out[3]!)).toBe(true);
    const off = compareTol('x', [1, 2, 3.001], [1, 2, 3], { atol: 1e-6, rtol: 1e-6, nmse: 1 });
    expect(off.pass).toBe(false);
    expect(off.worst).toBe(2);
    expect(compareTol('x', [1, 2, 3.001], [1, 2, 3], { atol: 1, rtol: 0, nmse: 1e-9 }).pass).toBe(false); // NMSE bound
    expect(compareTol('x', [1, NaN], [1, 2], { atol: 1, rtol: 1, nmse: 1 }).pass).toBe(false);
  });

  it('judges the NMSE of outputs near zero absolutely (floor (atol/rtol)² per element), and still catches O(1) drift', () => {
    // One GELU output at x = −3 (≈ −0.00405): an absolute error of 5e-7 — the CPU erf's documented size, within
    // TOL_GELU's atol — is 1.2e-4 relative. The plain NMSE (1.5e-8) broke the 1e-10 bound; floored at (2e-6/1e-5)²
    // = 0.04 it is 6.3e-12.
    const e = -0.0040496;
    const r = compareTol('gelu n=1', [e + 5e-7], [e], TOL_GELU);
    expect(r.pass, r.detail).toBe(true);
    // The floor leaves the aggregate of O(1) values alone: a systematic 1e-5 relative error on 1,000 values of size
    // ~1 gives NMSE 1e-10 plain and floored alike, so it fails a 1e-11 bound either way.
    const ref = Array.from({ length: 1000 }, (_, i) => 1 + (i % 7) / 7);
    const drift = ref.map((v) => v * (1 + 1e-5));
    const d = compareTol('drift', drift, ref, { atol: 1e-4, rtol: 1e-4, nmse: 1e-11 });
    expect(d.pass).toBe(false);
    expect(d.detail).toMatch(/NMSE 1\.0\d*e-10 exceeds/);
    // Near zero, an error far beyond atol still fails (elementwise), floor or not.
    expect(compareTol('x', [1e-3], [0], TOL_GELU).pass).toBe(false);
  });

  it.each(ENGINE_CASES.map((c) => [c.name, c] as const))('engine case runs CPU vs CPU: %s', (_name, c) => {
    const res = checkEngineCase(binding(), 'cpu', c, 5);
    expect(res.length).toBeGreaterThanOrEqual(10);
    expect(res.filter((r) => !r.pass).map((r) => `${r.name}: ${r.detail}`)).toEqual([]);
  });
});
