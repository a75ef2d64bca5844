// Per-op parity: every op of native/core/rt_ops.h on the CUDA backend against the CPU reference, on odd, empty,
// single-element and split-K/multi-chunk shapes, with sentinel guards and NaN-filled outputs (coverage), NaN/Inf
// agreement first, then tolerances (lib/internal/backendParity.ts states each with its reason).
// Skips without a CUDA device; `npm run test:gpu` (WSF_REQUIRE_CUDA=1) makes a missing device a failure.
import { describe, expect, it } from 'vitest';
import { buildOpCases, checkOpCase } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';
import { hasCuda, withCpuIsa } from '../helpers/native.js';

const cuda = hasCuda();
// Under the CPU emulator (a -DWSF_CUDA_EMU=ON development build) kernels run ~10⁴× slower than on a GPU.
const timeout = cuda && binding().buildInfo().archs === 'emu' ? 600_000 : 60_000;

describe.skipIf(!cuda)('CUDA ops match the CPU reference (per op)', () => {
  const cases = cuda ? buildOpCases(20261128) : [];
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const failed = checkOpCase(binding(), 'cuda', c).filter((r) => !r.pass);
    expect(failed.map((r) => `${r.name}: ${r.detail}`)).toEqual([]);
  }, timeout);

  // The cases above compare with the CPU ops at this CPU's instruction set (AVX2/AVX-512 GEMM, activations, layer
  // norms, attention rows); the SIMD kernels are tied to the plain loops only in their own tests. Here the ops that
  // have SIMD forms are compared once more with the plain loops themselves.
  it('the CUDA ops with SIMD CPU forms also match the portable CPU loops', () => {
    const simd = /^(linear_|layernorm_|act_|attention_|edge_combine_)/;
    const picked = cases.filter((c) => simd.test(c.op));
    expect(picked.length).toBeGreaterThan(40);
    const failed = withCpuIsa('portable', 2, () => picked.flatMap((c) => checkOpCase(binding(), 'cuda', c).filter((r) => !r.pass).map((r) => `${c.name}: ${r.name}: ${r.detail}`)));
    expect(failed).toEqual([]);
  }, timeout);

  // The large shapes (a grid-stride loop's second pass, the reduction's block cap, the split-K partial-sum cap, an
  // 804-node complete graph): on a GPU only — the emulator would take many minutes (bench/gpu-check.mjs runs them too).
  it.skipIf(binding().buildInfo().archs === 'emu')('the large-shape cases match the CPU reference too', () => {
    const small = new Set(cases.map((c) => c.name));
    const large = buildOpCases(20261128, true).filter((c) => !small.has(c.name));
    expect(large.length).toBeGreaterThanOrEqual(10);
    const failed = large.flatMap((c) => checkOpCase(binding(), 'cuda', c).filter((r) => !r.pass).map((r) => `${c.name}: ${r.name}: ${r.detail}`));
    expect(failed).toEqual([]);
  }, 600_000);

  it('a repeated op gives bitwise identical results (deterministic reductions)', () => {
    const pick = cases.filter((c) => /^(linear_bwd_weight rows=3000|embed_bwd rows=10000|attention_bwd hub|layernorm_bwd rows=300 C=65$|edge_combine_bwd complete N=70|mse n=100000$)/.test(c.name));
    expect(pick.length).toBeGreaterThanOrEqual(6);
    for (const c of pick) {
      const a = checkOpCase(binding(), 'cuda', c);
      const b = checkOpCase(binding(), 'cuda', c);
      expect(b.map((r) => r.detail), c.name).toEqual(a.map((r) => r.detail));
    }
  }, timeout);
});
