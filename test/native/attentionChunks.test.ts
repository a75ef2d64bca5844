// The row-chunked attention ops (recompute mode with chunkRows) against the whole-graph ops on the CPU: running
// attention_fwd_rows / attention_bwd_rows over consecutive row chunks, then attention_bwd_cols from the saved
// column operands, must give attention_fwd's and attention_bwd's outputs bit for bit (same arithmetic, same order).
import { describe, expect, it } from 'vitest';
import { randomPairGraph, runOp, type OpCase } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';
import { Rng } from '../../lib/util/rng.js';

const EXACT = { atol: 0, rtol: 0, nmse: 0 };

function normal(rng: Rng, n: number, s = 0.7): Float32Array {
  return Float32Array.from({ length: n }, () => s * rng.normal());
}

function op(name: string, inputs: OpCase['inputs'], outputs: OpCase['outputs'], scalars: OpCase['scalars']): Record<string, Float32Array> {
  const run = runOp(binding(), 'cpu', { name, op: name, inputs, outputs, scalars, tol: EXACT });
  expect(run.problems).toEqual([]);
  return run.outputs as Record<string, Float32Array>;
}

describe('row-chunked attention ops (CPU)', () => {
  it.each([
    ['sparse, 2 heads, chunks of 1–9 rows', 40, 0.25, false, 16, 2],
    ['complete, 1 head', 23, 1, false, 8, 1],
    ['hub row and isolated nodes', 61, 0.03, true, 12, 3],
  ] as const)('%s: chunked = whole graph', (_name, N, p, hub, D, heads) => {
    const rng = new Rng(7 + N);
    const g = randomPairGraph(N, p, rng, !hub, hub);
    const M = g.M;
    const Pn = normal(rng, N * 3 * D), Pe = normal(rng, M * 4 * D), dout = normal(rng, N * D);
    const full = op('attention_fwd', { Pn, Pe, row_ptr: g.rowPtr, col: g.col }, { o: { len: N * D }, alpha: { len: M * heads } }, { N, D, heads });
    const bwd = op('attention_bwd', { dout, alpha: full.alpha!, Pn, Pe, row_ptr: g.rowPtr, col: g.col, rev: g.rev },
      { dPn: { len: N * 3 * D }, dPe: { len: M * 4 * D } }, { N, D, heads });

    // Chunks of varying size (1..9 rows), as the engine cuts them (row boundaries; empty rows included).
    let o: Float32Array = new Float32Array(N * D).fill(NaN), alpha: Float32Array = new Float32Array(M * heads).fill(NaN);
    let dPn: Float32Array = new Float32Array(N * 3 * D).fill(NaN), colbuf: Float32Array = new Float32Array(M * 2 * D).fill(NaN);
    const dPe = new Float32Array(M * 4 * D).fill(NaN);
    let chunks = 0;
    for (let r0 = 0, step = 1; r0 < N; step = (step % 9) + 1) {
      const r1 = Math.min(N, r0 + step);
      const k0 = g.rowPtr[r0]!, k1 = g.rowPtr[r1]!;
      const PeRows = Pe.slice(k0 * 4 * D, Math.max(k1, k0 + 1) * 4 * D);
      const f = op('attention_fwd_rows', { Pn, Pe: PeRows, row_ptr: g.rowPtr, col: g.col },
        { o: { len: N * D, init: o }, alpha: { len: M * heads, init: alpha } }, { r0, r1, k_base: k0, D, heads });
      o = f.o!;
      alpha = f.alpha!;
      const b = op('attention_bwd_rows', { dout, alpha: full.alpha!, Pn, Pe: PeRows, row_ptr: g.rowPtr, col: g.col },
        { dPn: { len: N * 3 * D, init: dPn }, dPe: { len: PeRows.length }, colbuf: { len: M * 2 * D, init: colbuf } },
        { r0, r1, k_base: k0, D, heads });
      dPn = b.dPn!;
      colbuf = b.colbuf!;
      dPe.set(b.dPe!.subarray(0, (k1 - k0) * 4 * D), k0 * 4 * D);
      r0 = r1;
      chunks++;
    }
    expect(chunks).toBeGreaterThan(4);
    const cols = op('attention_bwd_cols', { colbuf, row_ptr: g.rowPtr, rev: g.rev }, { dPn: { len: N * 3 * D, init: dPn } }, { N, D, heads });
    expect(Array.from(o)).toEqual(Array.from(full.o!));
    expect(Array.from(alpha)).toEqual(Array.from(full.alpha!));
    expect(Array.from(dPe)).toEqual(Array.from(bwd.dPe!));
    expect(Array.from(cols.dPn!)).toEqual(Array.from(bwd.dPn!));
  });
});
