// The CPU engine's float row kernels (native/core/rt_ops_cpu.cc, namespace v8: LayerNorm forward/backward rows and
// the attention rows, 8-wide AVX2+FMA with masked tails, picked with the GEMM's instruction-set level) against the
// engine in float64 (the plain loops, an independent reference): a whole forward and backward — output x̂1, every
// parameter gradient and the input gradient — at every level up to the detected one. Head widths reach every path
// of the masked loads: Dh = 12 (one full vector and a tail of 4), 8 (full only), 5 (tail only), 32; LayerNorm widths
// H = D + 1 are all odd. Chunked mode runs the attention rows on pair chunks (k_base ≠ 0) with the column buffer.
// Each level must also give bit-identical results on 1 and 2 threads.
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { VectorField, type VectorFieldOptions } from '../../lib/engine/VectorField.js';
import { Rng } from '../../lib/util/rng.js';
import { cpuIsaLevels, withCpuIsa } from '../helpers/native.js';

type Opts = Omit<VectorFieldOptions, 'dtype' | 'seed' | 'device'>;
type Arr = Float32Array | Float64Array;
interface Run { out: Arr; grads: Arr; inputGrad: Arr }

function run(opts: Opts, B: number, dtype: 'f32' | 'f64', params: Float64Array | null): { r: Run; params: Float64Array } {
  const P = mlp(opts.arch as number[]).numParams;
  const Ctor = dtype === 'f64' ? Float64Array : Float32Array;
  const rng = new Rng(31);
  const xt = Ctor.from(Array.from({ length: B * P }, () => 0.4 * rng.normal()));
  const t = Ctor.from(Array.from({ length: B }, (_, i) => (i + 0.5) / B));
  const dy = Ctor.from(Array.from({ length: B * P }, () => rng.normal()));
  const f = VectorField.create({ ...opts, dtype, seed: 3, device: 'cpu' });
  try {
    if (params) f.setParams(dtype === 'f64' ? params : Float32Array.from(params));
    const own = Float64Array.from(f.getParams());
    const out = Ctor.from(f.forward(xt as Float32Array, t as Float32Array, { training: true }));
    f.zeroGrad();
    const inputGrad = new Ctor(B * P);
    f.backward(dy as Float32Array, { inputGrad: inputGrad as Float32Array });
    return { r: { out, grads: Ctor.from(f.getGrads()), inputGrad }, params: own };
  } finally {
    f.dispose();
  }
}

/** max |a − b| over max |b| */
function relDiff(a: Arr, b: Arr): number {
  let m = 0, s = 0;
  for (let i = 0; i < b.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return a.length === b.length && Number.isFinite(m) ? m / Math.max(s, 1e-30) : Infinity;
}
function sameBits(a: Arr, b: Arr): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

const CASES: [string, Opts, number][] = [
  ['D=12, 1 head (Dh 12: a vector and a tail of 4), H=13', { arch: [6, 5, 4, 3], D: 12, layers: 2, heads: 1 }, 3],
  ['D=16, 2 heads (Dh 8), H=17', { arch: [7, 6, 2], D: 16, layers: 2, heads: 2 }, 2],
  ['D=20, 4 heads (Dh 5: tails only), H=21', { arch: [5, 9, 3], D: 20, layers: 2, heads: 4 }, 2],
  ['D=32, 1 head, H=33, a wide input layer', { arch: [40, 6, 3], D: 32, layers: 1, heads: 1 }, 2],
  ['D=12, chunked recompute (attention rows on pair chunks, column buffer)', { arch: [6, 5, 4, 3], D: 12, layers: 2, recompute: true, chunkRows: 9 }, 3],
  ['D=16, dense graph', { arch: [5, 4, 3], D: 16, layers: 2, graph: 'dense' }, 2],
];

describe('CPU float row kernels (LayerNorm, attention) at every instruction-set level, against the f64 engine', () => {
  it.each(CASES)('%s', (_name, opts, B) => {
    const ref = run(opts, B, 'f64', null);
    for (const level of cpuIsaLevels()) {
      const runs = [1, 2].map((threads) => withCpuIsa(level, threads, () => run(opts, B, 'f32', ref.params).r));
      for (const key of ['out', 'grads', 'inputGrad'] as const) {
        // f32 rounding through a few layers of sums over ≤ 41 terms: a wrong lane, tail or sum is ≥ 1e-2.
        expect(relDiff(runs[0]![key], ref.r[key]), `${level} ${key}`).toBeLessThan(2e-4);
        expect(sameBits(runs[0]![key], runs[1]![key]), `${level} ${key}: 1 vs 2 threads`).toBe(true);
      }
    }
  });
});

// An inference forward on a field that never trained keeps no activations: the fused pair MLP keeps its intermediates
// in block scratch instead of the saved tensors. Its output must be the training-mode forward's, bit for bit.
describe('an inference forward (activations not kept) against a training-mode forward', () => {
  const MODES: [string, Opts][] = [
    ['default mode', { arch: [6, 5, 4, 3], D: 12, layers: 3, heads: 2 }],
    ['recompute mode', { arch: [7, 6, 2], D: 16, layers: 2, recompute: true }],
    ['chunked recompute mode', { arch: [6, 5, 4, 3], D: 12, layers: 2, recompute: true, chunkRows: 9 }],
  ];
  it.each(MODES)('%s, at every instruction-set level', (_name, opts) => {
    const P = mlp(opts.arch as number[]).numParams;
    const B = 3;
    const rng = new Rng(7);
    const xt = Float32Array.from({ length: B * P }, () => 0.4 * rng.normal());
    const outs = (training: boolean) => {
      const f = VectorField.create({ ...opts, seed: 4, device: 'cpu' });
      try {
        return Float32Array.from(f.forward(xt, 0.35, { training }));
      } finally {
        f.dispose();
      }
    };
    for (const level of cpuIsaLevels()) {
      const [inference, trained] = withCpuIsa(level, 2, () => [outs(false), outs(true)]);
      expect(inference.length).toBe(B * P);
      expect(sameBits(inference, trained!), level).toBe(true);
    }
    // One field switching between the two kinds of buffers: inference, training (with a backward), inference.
    const f = VectorField.create({ ...opts, seed: 4, device: 'cpu' });
    try {
      const first = Float32Array.from(f.forward(xt, 0.35));
      const trained = Float32Array.from(f.forward(xt, 0.35, { training: true }));
      f.zeroGrad();
      f.backward(Float32Array.from({ length: B * P }, () => rng.normal()));
      const again = Float32Array.from(f.forward(xt, 0.35));
      expect(sameBits(first, trained)).toBe(true);
      expect(sameBits(again, trained)).toBe(true);
    } finally {
      f.dispose();
    }
  });
});
