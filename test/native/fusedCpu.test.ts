// The CPU engine's fused ops (native/core/rt_ops_cpu.cc) against the op sequences they replace, which the CUDA
// engine still runs and which the parity suites check op by op: they must agree bit for bit, at every CPU
// instruction-set level, on 1 and 2 threads, over a real weight graph (pairs in CSR order, the reverse index).
//   attention_proj_fwd  = linear_fwd (Pe = e·W_Eᵀ) + attention_fwd_rows, over a row range with its first pair
//                         as k_base (chunked mode) or the whole graph; Pe kept (training) or in block scratch;
//   attention_proj_bwd  = attention_bwd + linear_bwd_data + linear_bwd_weight for the pair projections: ∂L/∂n and
//                         ∂L/∂e bit for bit; ∂L/∂W_E summed in fixed partitions (to rounding — within 1e-5 of its
//                         largest entry, sums of thousands of f32 terms in another order —, and the same bits on
//                         1 and 2 threads);
//   edge_update_fwd     = linear_fwd (e·W_e1ᵀ), linear_fwd (e·W_e2ᵀ), edge_combine_fwd, edge_mlp_fwd, over a pair
//                         range [k0, k0 + M); z and the saved activations kept (training) or in block scratch;
//   edge_update_bwd     = edge_combine_bwd + linear_bwd_data ×2 + linear_bwd_weight ×2: ∂L/∂e, the node terms and
//                         ∂L/∂b_e bit for bit, ∂L/∂W_e to rounding (the same bits on 1 and 2 threads);
//   in_mlp_fwd / _bwd   = the input MLP as linear_fwd/act_fwd (h0, h1, h2 kept or in scratch) and its backward as
//                         linear_bwd_*/act_*: outputs and ∂L/∂f bit for bit, weight and bias gradients to rounding.
// MNIST-like rows of 301 pairs (longer than a projection block) and short ones (a block of many rows) both occur.
import { describe, expect, it } from 'vitest';
import { type OpCase, runOp } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';
import type { NativeEngineConfig } from '../../lib/native/types.js';
import { Rng } from '../../lib/util/rng.js';
import { cpuIsaLevels, withCpuIsa } from '../helpers/native.js';

interface Graph { N: number; M: number; rowPtr: Int32Array; row: Int32Array; col: Int32Array; rev: Int32Array }

/** The sparse weight graph of a batch of MLPs, from the engine's debug buffers. */
function graphOf(archs: number[][]): Graph {
  const widest = (i: (a: number[]) => number): number => Math.max(...archs.map(i));
  const cfg: NativeEngineConfig = {
    D: 4, layers: 1, heads: 1, inputSlots: widest((a) => a[0]!), hiddenSlots: widest((a) => a.length - 2), outputSlots: widest((a) => a[a.length - 1]!),
    mode: 'sparse', timeRule: 'all', dirEmbed: true, reverseValue: true, inFeatures: 1,
  };
  const e = new (binding().NativeEngine)(cfg, 1, 'cpu', 'f32');
  try {
    e.setGraph(archs);
    const { M, N } = e.graphInfo() as { M: number; N: number };
    const i32 = (name: string): Int32Array => Int32Array.from(e.debugBuffer(name));
    return { N, M, rowPtr: i32('row_ptr'), row: i32('edge_row'), col: i32('edge_col'), rev: i32('edge_rev') };
  } finally {
    e.dispose();
  }
}

const rng = new Rng(17);
const randn = (n: number, s = 1): Float32Array => Float32Array.from({ length: n }, () => s * rng.normal());
const cpu = (c: Omit<OpCase, 'name' | 'tol'>): Record<string, Float32Array> => {
  const r = runOp(binding(), 'cpu', { ...c, name: c.op, tol: { atol: 0, rtol: 0, nmse: 0 } });
  expect(r.problems).toEqual([]);
  return r.outputs;
};
function expectSameBits(name: string, a: Float32Array, b: Float32Array): void {
  expect(a.length, name).toBe(b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let bad = -1;
  for (let i = 0; i < x.length && bad < 0; i++) if (x[i] !== y[i]) bad = i;
  expect(bad, `${name}: first differing element ${bad} (${a[bad]} vs ${b[bad]})`).toBe(-1);
  expect(a.every(Number.isFinite), `${name} finite`).toBe(true);
}

/** A re-ordered sum of the same f32 terms: within 1e-5 of the reference's largest entry. */
function expectReordered(name: string, got: Float32Array, ref: Float32Array): void {
  const scale = Math.max(...ref.map(Math.abs));
  expect(Math.max(...got.map((v, i) => Math.abs(v - ref[i]!))) / scale, name).toBeLessThan(1e-5);
}

const settings = cpuIsaLevels().flatMap((isa) => [1, 2].map((threads) => [isa, threads] as const));
const g = graphOf([[300, 5, 3], [7, 6, 6, 2], [12, 4, 3]]);

// Widths reach every column-tail path of the products (their weights are packed once per op): H = D + 1 = 9, 13 (an
// 8- or 16-wide masked panel) and 17 (one dot/axpy tail column after a full panel).
describe.each([
  { D: 8, heads: 1 },
  { D: 12, heads: 2 },
  { D: 16, heads: 2 },
])('fused CPU ops = the op sequences (D=$D, heads=$heads)', ({ D, heads }) => {
  const H = D + 1;
  const e = randn(g.M * H, 0.7);

  it.each(settings)('attention_proj_fwd = linear_fwd + attention_fwd_rows (%s, %i threads)', (isa, threads) => {
    withCpuIsa(isa, threads, () => {
      const Pn = randn(g.N * 3 * D, 0.5), WE = randn(4 * D * H, 0.3);
      // Whole graph (k_base 0), and a middle row range as a chunk (k_base = its first pair, Pe chunk-sized).
      for (const [r0, r1] of [[0, g.N], [3, g.N - 5]] as const) {
        const k0 = g.rowPtr[r0]!, rows = g.rowPtr[r1]! - k0;
        const Pe = cpu({ op: 'linear_fwd', inputs: { x: e.subarray(k0 * H, (k0 + rows) * H), W: WE }, outputs: { y: { len: rows * 4 * D } }, scalars: { b: null, rows, K: H, N: 4 * D, ldw: H, acc: false } }).y!;
        const common = { Pn, row_ptr: g.rowPtr, col: g.col };
        // o and alpha start from the same values outside the range (the ops write rows [r0, r1) only).
        const init = { o: { len: g.N * D, init: randn(g.N * D) }, alpha: { len: g.M * heads, init: randn(g.M * heads) } };
        const ref = cpu({ op: 'attention_fwd_rows', inputs: { ...common, Pe }, outputs: init, scalars: { r0, r1, k_base: k0, D, heads } });
        const scalars = { r0, r1, k_base: k0, D, H, heads };
        const kept = cpu({ op: 'attention_proj_fwd', inputs: { ...common, e_all: e, WE }, outputs: { ...init, Pe: { len: rows * 4 * D } }, scalars });
        const scratch = cpu({ op: 'attention_proj_fwd', inputs: { ...common, e_all: e, WE }, outputs: init, scalars: { ...scalars, Pe: null } });
        for (const [name, got] of [['kept', kept], ['scratch', scratch]] as const) {
          expectSameBits(`${name} o [${r0}, ${r1})`, got.o!, ref.o!);
          expectSameBits(`${name} alpha [${r0}, ${r1})`, got.alpha!, ref.alpha!);
        }
        expectSameBits('kept Pe', kept.Pe!, Pe);
      }
    });
  });

  it.each(cpuIsaLevels())('attention_proj_bwd = attention_bwd + linear_bwd_data + linear_bwd_weight (%s)', (isa) => {
    const Pn = randn(g.N * 3 * D, 0.5), WE = randn(4 * D * H, 0.3), Pe = randn(g.M * 4 * D, 0.5), dout = randn(g.N * D);
    const alpha = Float32Array.from({ length: g.M * heads }, () => rng.uniform());
    const dE0 = randn(g.M * H), dW0 = randn(4 * D * H);
    const graph = { row_ptr: g.rowPtr, col: g.col, rev: g.rev };
    const runs = [1, 2].map((threads) =>
      withCpuIsa(isa, threads, () => {
        const ref = cpu({ op: 'attention_bwd', inputs: { ...graph, dout, alpha, Pn, Pe }, outputs: { dPn: { len: g.N * 3 * D }, dPe: { len: g.M * 4 * D } }, scalars: { N: g.N, D, heads } });
        const dE = cpu({ op: 'linear_bwd_data', inputs: { dy: ref.dPe!, W: WE }, outputs: { dx: { len: g.M * H, init: dE0 } }, scalars: { rows: g.M, K: H, N: 4 * D, ldw: H, acc: true } }).dx!;
        const dW = cpu({ op: 'linear_bwd_weight', inputs: { dy: ref.dPe!, x: e }, outputs: { dW: { len: 4 * D * H, init: dW0 } }, scalars: { db: null, rows: g.M, K: H, N: 4 * D, ldw: H } }).dW!;
        const fused = cpu({
          op: 'attention_proj_bwd', inputs: { ...graph, dout, alpha, Pn, Pe, e_all: e, WE },
          outputs: { dPn: { len: g.N * 3 * D }, dE: { len: g.M * H, init: dE0 }, dWE: { len: 4 * D * H, init: dW0 }, kcol: { len: g.M * D }, vcol: { len: g.M * D } },
          scalars: { N: g.N, D, H, heads },
        });
        // An input-only backward: no weight gradient, the same data gradients.
        const inputOnly = cpu({
          op: 'attention_proj_bwd', inputs: { ...graph, dout, alpha, Pn, Pe, e_all: e, WE },
          outputs: { dPn: { len: g.N * 3 * D }, dE: { len: g.M * H, init: dE0 }, kcol: { len: g.M * D }, vcol: { len: g.M * D } },
          scalars: { dWE: null, N: g.N, D, H, heads },
        });
        expectSameBits('dPn', fused.dPn!, ref.dPn!);
        expectSameBits('dE', fused.dE!, dE);
        expectSameBits('input-only dPn', inputOnly.dPn!, ref.dPn!);
        expectSameBits('input-only dE', inputOnly.dE!, dE);
        expectReordered('dW_E against linear_bwd_weight', fused.dWE!, dW);
        return fused.dWE!;
      }),
    );
    expectSameBits('dW_E on 1 and 2 threads', runs[0]!, runs[1]!);
  });

  it.each(cpuIsaLevels())('edge_update_bwd = edge_combine_bwd + linear_bwd_data ×2 + linear_bwd_weight ×2 (%s)', (isa) => {
    const dz = randn(g.M * D), We = randn(D * 2 * H, 0.3), dE0 = randn(g.M * H), dW0 = randn(D * 2 * H), db0 = randn(D);
    const runs = [1, 2].map((threads) =>
      withCpuIsa(isa, threads, () => {
        const comb = cpu({ op: 'edge_combine_bwd', inputs: { dz, row_ptr: g.rowPtr, rev: g.rev }, outputs: { dY2: { len: g.M * D }, dS: { len: g.N * D }, dT: { len: g.N * D }, dbias: { len: D, init: db0 } }, scalars: { N: g.N, M: g.M, D } });
        const data = (dx: Float32Array, dy: Float32Array, W: Float32Array): Float32Array =>
          cpu({ op: 'linear_bwd_data', inputs: { dy, W }, outputs: { dx: { len: g.M * H, init: dx } }, scalars: { rows: g.M, K: H, N: D, ldw: 2 * H, acc: true } }).dx!;
        const dE = data(data(dE0, dz, We), comb.dY2!, We.subarray(H));
        const weight = (dW: Float32Array, dy: Float32Array, half: number): Float32Array => {
          // linear_bwd_weight into one half of W_e's gradient (D × 2H): the other half carried through unchanged.
          const out = cpu({ op: 'linear_bwd_weight', inputs: { dy, x: e }, outputs: { dW: { len: D * 2 * H - half, init: dW.subarray(half) } }, scalars: { db: null, rows: g.M, K: H, N: D, ldw: 2 * H } }).dW!;
          const r = Float32Array.from(dW);
          r.set(out, half);
          return r;
        };
        const dW = weight(weight(dW0, dz, 0), comb.dY2!, H);
        const fused = cpu({
          op: 'edge_update_bwd', inputs: { dz, e_all: e, We, row_ptr: g.rowPtr, rev: g.rev },
          outputs: { dE: { len: g.M * H, init: dE0 }, dWe: { len: D * 2 * H, init: dW0 }, dS: { len: g.N * D }, dT: { len: g.N * D }, dbias: { len: D, init: db0 } },
          scalars: { N: g.N, D, H },
        });
        const inputOnly = cpu({
          op: 'edge_update_bwd', inputs: { dz, e_all: e, We, row_ptr: g.rowPtr, rev: g.rev },
          outputs: { dE: { len: g.M * H, init: dE0 }, dS: { len: g.N * D }, dT: { len: g.N * D }, dbias: { len: D, init: db0 } },
          scalars: { dWe: null, N: g.N, D, H },
        });
        for (const [name, got] of [['fused', fused], ['input-only', inputOnly]] as const) {
          expectSameBits(`${name} dE`, got.dE!, dE);
          expectSameBits(`${name} dS`, got.dS!, comb.dS!);
          expectSameBits(`${name} dT`, got.dT!, comb.dT!);
          expectSameBits(`${name} dbias`, got.dbias!, comb.dbias!);
        }
        expectReordered('dW_e against linear_bwd_weight', fused.dWe!, dW);
        return fused.dWe!;
      }),
    );
    expectSameBits('dW_e on 1 and 2 threads', runs[0]!, runs[1]!);
  });

  it.each(cpuIsaLevels())('in_mlp_fwd / in_mlp_bwd = the input MLP op sequence (%s)', (isa) => {
    const din = 2, rows = 203; // two 96-row blocks and a tail
    const f = randn(rows * din), W0 = randn(D * din, 0.5), W = [0, 1, 2].map(() => randn(D * D, 0.4)), bs = [0, 1, 2, 3].map(() => randn(D, 0.1));
    const dout = randn(rows * D), g0 = [D * din, D, D * D, D, D * D, D, D * D, D].map((n) => randn(n));
    const names = ['dW0', 'db0', 'dW1', 'db1', 'dW2', 'db2', 'dWp', 'dbp'];
    const runs = [1, 2].map((threads) =>
      withCpuIsa(isa, threads, () => {
        // The op sequence (VectorField's engine on other devices).
        const lin = (x: Float32Array, Wl: Float32Array, b: Float32Array, K: number): Float32Array =>
          cpu({ op: 'linear_fwd', inputs: { x, W: Wl, b }, outputs: { y: { len: rows * D } }, scalars: { rows, K, N: D, ldw: K, acc: false } }).y!;
        const silu = (x: Float32Array): Float32Array => cpu({ op: 'act_fwd', inputs: { x }, outputs: { y: { len: x.length } }, scalars: { n: x.length, act: 1 } }).y!;
        const h0 = lin(f, W0, bs[0]!, din), h1 = lin(silu(h0), W[0]!, bs[1]!, D), h2 = lin(silu(h1), W[1]!, bs[2]!, D), out = lin(h2, W[2]!, bs[3]!, D);
        const kept = cpu({ op: 'in_mlp_fwd', inputs: { f, W0, b0: bs[0]!, W1: W[0]!, b1: bs[1]!, W2: W[1]!, b2: bs[2]!, Wp: W[2]!, bp: bs[3]! }, outputs: { out: { len: rows * D }, h0: { len: rows * D }, h1: { len: rows * D }, h2: { len: rows * D } }, scalars: { rows, din, D } });
        const scratch = cpu({ op: 'in_mlp_fwd', inputs: { f, W0, b0: bs[0]!, W1: W[0]!, b1: bs[1]!, W2: W[1]!, b2: bs[2]!, Wp: W[2]!, bp: bs[3]! }, outputs: { out: { len: rows * D } }, scalars: { h0: null, h1: null, h2: null, rows, din, D } });
        expectSameBits('out', kept.out!, out);
        expectSameBits('out (scratch)', scratch.out!, out);
        expectSameBits('h0', kept.h0!, h0);
        expectSameBits('h1', kept.h1!, h1);
        expectSameBits('h2', kept.h2!, h2);
        // Backward: each layer's (dW, db) += (dyᵀ·x, Σ dy), dx = dy·W, SiLU' between.
        const grads: Float32Array[] = g0.map((a) => Float32Array.from(a));
        const layer = (slot: number, dy: Float32Array, x: Float32Array, Wl: Float32Array, K: number): Float32Array => {
          const r = cpu({ op: 'linear_bwd_weight', inputs: { dy, x }, outputs: { dW: { len: D * K, init: grads[slot]! }, db: { len: D, init: grads[slot + 1]! } }, scalars: { rows, K, N: D, ldw: K } });
          grads[slot] = r.dW!;
          grads[slot + 1] = r.db!;
          return cpu({ op: 'linear_bwd_data', inputs: { dy, W: Wl }, outputs: { dx: { len: rows * K } }, scalars: { rows, K, N: D, ldw: K, acc: false } }).dx!;
        };
        const dsilu = (dy: Float32Array, x: Float32Array): Float32Array => cpu({ op: 'act_bwd', inputs: { dy, x }, outputs: { dx: { len: x.length } }, scalars: { n: x.length, act: 1, acc: false } }).dx!;
        const dh2 = layer(6, dout, h2, W[2]!, D);
        const dh1 = dsilu(layer(4, dh2, silu(h1), W[1]!, D), h1);
        const dh0 = dsilu(layer(2, dh1, silu(h0), W[0]!, D), h0);
        const df = layer(0, dh0, f, W0, din);
        const bwdIn = { dout, f, h0, h1, h2, W0, W1: W[0]!, W2: W[1]!, Wp: W[2]! };
        const fused = cpu({ op: 'in_mlp_bwd', inputs: bwdIn, outputs: { df: { len: rows * din }, ...Object.fromEntries(names.map((n, i) => [n, { len: g0[i]!.length, init: g0[i]! }])) }, scalars: { rows, din, D } });
        const inputOnly = cpu({ op: 'in_mlp_bwd', inputs: bwdIn, outputs: { df: { len: rows * din } }, scalars: { ...Object.fromEntries(names.map((n) => [n, null])), rows, din, D } });
        expectSameBits('df', fused.df!, df);
        expectSameBits('df (input only)', inputOnly.df!, df);
        names.forEach((n, i) => expectReordered(n, fused[n]!, grads[i]!));
        return names.map((n) => fused[n]!);
      }),
    );
    runs[0]!.forEach((a, i) => expectSameBits(`${names[i]} on 1 and 2 threads`, a, runs[1]![i]!));
  });

  it.each(settings)('edge_update_fwd = linear_fwd ×2 + edge_combine_fwd + edge_mlp_fwd (%s, %i threads)', (isa, threads) => {
    withCpuIsa(isa, threads, () => {
      const w = {
        We: randn(D * 2 * H, 0.3), be: randn(D, 0.1), S: randn(g.N * D, 0.5), Tn: randn(g.N * D, 0.5),
        W1: randn(H * D, 0.3), b1: randn(H, 0.1), g2: randn(H, 0.2).map((x) => 1 + x), be2: randn(H, 0.1),
        Wm0: randn(D * H, 0.3), Wm2: randn(H * D, 0.3), bm2: randn(H, 0.1), g3: randn(H, 0.2).map((x) => 1 + x), be3: randn(H, 0.1),
      };
      // All pairs, and a middle range [k0, k0 + M) (a chunk: its reverse pairs lie outside it).
      for (const [k0, M] of [[0, g.M], [101, g.M - 250]] as const) {
        const lin = (x: Float32Array, W: Float32Array, rows: number): Float32Array =>
          cpu({ op: 'linear_fwd', inputs: { x, W }, outputs: { y: { len: rows * D } }, scalars: { b: null, rows, K: H, N: D, ldw: 2 * H, acc: false } }).y!;
        // The op sequence over all pairs (e·W_e2ᵀ of the reverse pairs is needed), then the range.
        const Y1 = lin(e, w.We, g.M), Y2 = lin(e, w.We.subarray(H), g.M);
        const zAll = cpu({ op: 'edge_combine_fwd', inputs: { Y1, Y2, S: w.S, Tn: w.Tn, bias: w.be, row: g.row, col: g.col, rev: g.rev }, outputs: { z: { len: g.M * D } }, scalars: { M: g.M, D } }).z!;
        const z = zAll.slice(k0 * D, (k0 + M) * D);
        const mlpW = { W1: w.W1, b1: w.b1, g2: w.g2, be2: w.be2, Wm0: w.Wm0, Wm2: w.Wm2, bm2: w.bm2, g3: w.g3, be3: w.be3 };
        const saved = { ebar: { len: M * H }, xh2: { len: M * H }, rs2: { len: M }, h3: { len: M * D }, xh3: { len: M * H }, rs3: { len: M } };
        const ref = cpu({ op: 'edge_mlp_fwd', inputs: { ...mlpW, z, e_in: e.slice(k0 * H, (k0 + M) * H) }, outputs: { ...saved, e_out: { len: M * H } }, scalars: { M, D, H } });
        const inputs = { ...mlpW, e_all: e, We: w.We, be: w.be, S: w.S, Tn: w.Tn, row: g.row, col: g.col, rev: g.rev };
        const kept = cpu({ op: 'edge_update_fwd', inputs, outputs: { ...saved, z: { len: M * D }, e_out: { len: M * H } }, scalars: { k0, M, D, H } });
        const nulls = { z: null, ebar: null, xh2: null, rs2: null, h3: null, xh3: null, rs3: null };
        const scratch = cpu({ op: 'edge_update_fwd', inputs, outputs: { e_out: { len: M * H } }, scalars: { ...nulls, k0, M, D, H } });
        expectSameBits(`z [${k0}, +${M})`, kept.z!, z);
        for (const k of Object.keys(saved)) expectSameBits(`${k} [${k0}, +${M})`, kept[k]!, ref[k]!);
        expectSameBits(`kept e_out [${k0}, +${M})`, kept.e_out!, ref.e_out!);
        expectSameBits(`scratch e_out [${k0}, +${M})`, scratch.e_out!, ref.e_out!);
      }
    });
  });
});

