// The engine's development diagnostics (debugBuffer, used by bench/gpu/diag-inputgrad.cjs to trace a CUDA-vs-CPU
// difference stage by stage): names, sizes, consistency with the graph, and typed errors.
import { describe, expect, it } from 'vitest';
import { ENGINE_CASES, KINK, reluKinkParams } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';
import { Rng } from '../../lib/util/rng.js';

describe('NativeEngine.debugBuffer (CPU)', () => {
  const c = ENGINE_CASES.find((x) => x.name.startsWith('sparse [30,16,16,2]'))!;

  it('exposes the graph, the per-layer activations and the feature gradients with the right sizes', () => {
    const e = new (binding().NativeEngine)(c.config, 2, 'cpu', 'f32');
    try {
      e.setGraph(c.widths);
      const { N, M, P, G } = e.graphInfo();
      expect(() => e.debugBuffer('alpha:0')).toThrow(expect.objectContaining({ code: 'ERR_INVALID' })); // no forward yet
      expect(() => e.debugBuffer('nonsense')).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
      const rng = new Rng(1);
      const xt = rng.fillNormal(new Float32Array(P), 0, 0.5);
      const t = Float32Array.from({ length: G }, () => rng.uniform());
      const y = new Float32Array(P);
      e.forward(xt, t, y, true);
      const rev = e.debugBuffer('edge_rev');
      expect(rev.length).toBe(M);
      for (let k = 0; k < M; k++) expect(rev[rev[k]!]).toBe(k); // an involution
      const rowPtr = e.debugBuffer('row_ptr');
      expect(rowPtr.length).toBe(N + 1);
      expect(rowPtr[N]).toBe(M);
      const heads = c.config.heads ?? 1;
      const alpha = e.debugBuffer('alpha:0');
      expect(alpha.length).toBe(M * heads);
      for (let u = 0; u < N; u++) {
        // each row's attention weights (head 0) sum to 1
        let s = 0;
        for (let k = rowPtr[u]!; k < rowPtr[u + 1]!; k++) s += alpha[k * heads]!;
        if (rowPtr[u + 1]! > rowPtr[u]!) expect(s).toBeCloseTo(1, 5);
      }
      expect(e.debugBuffer(`e_out:${(c.config.layers ?? 2) - 1}`).length).toBe(M * (c.config.D + 1));
      expect(() => e.debugBuffer(`z:${c.config.layers ?? 2}`)).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
      // dEf exists once an input-gradient backward has run; the weights' input gradient is the sum of the
      // forward and reverse pairs' feature gradients (value column), as edge_features_bwd adds them.
      const dx = new Float32Array(P);
      e.backward(rng.fillNormal(new Float32Array(P)), dx, false);
      const din = c.config.inFeatures ?? 1;
      const dEf = e.debugBuffer('dEf');
      expect(dEf.length).toBe(M * din);
      const outEdge = e.debugBuffer('out_edge'), outParam = e.debugBuffer('out_edge_param');
      for (let i = 0; i < outEdge.length; i += 7) {
        const k = outEdge[i]!;
        expect(dx[outParam[i]!]).toBeCloseTo(dEf[k * din]! + dEf[rev[k]! * din]!, 6);
      }
    } finally {
      e.dispose();
    }
  });

  it('the weight of the H200 parity failure (seed 1107485112, element 13068) sits at a ReLU kink of its output head', () => {
    // The open case of 2026-12-04: CUDA and CPU disagreed on this one input-gradient element by 14 %; its edge head's
    // second ReLU input is 7.5e-9 on the CPU, so rounding picks the side of the kink. The parity check now leaves
    // such elements out (reluKinkParams) and reports how many.
    const mn = ENGINE_CASES.find((x) => x.name.includes('sparse MNIST'))!;
    const seed = 1107485112;
    const e = new (binding().NativeEngine)(mn.config, seed, 'cpu', 'f32');
    try {
      e.setGraph(mn.widths);
      const { P, G } = e.graphInfo();
      const rng = new Rng(seed ^ 0x5eed); // checkEngineCase's inputs
      const xt = rng.fillNormal(new Float32Array(P), 0, 0.5);
      const t = Float32Array.from({ length: G }, () => rng.uniform());
      e.forward(xt, t, new Float32Array(P), true);
      const kinks = reluKinkParams(e, mn.config.D);
      expect(kinks.has(13068)).toBe(true);
      expect(kinks.size).toBeLessThan(P / 100); // rare: a handful of the 15,920 parameters
      const row = Array.from(e.debugBuffer('out_edge_param')).indexOf(13068);
      const h2 = e.debugBuffer('he_h2').subarray(row * mn.config.D, (row + 1) * mn.config.D);
      expect(Math.min(...Array.from(h2, Math.abs))).toBeLessThan(KINK);
    } finally {
      e.dispose();
    }
  });
});
