// Finite-difference gradient checks of the whole relational transformer in f64 (the CPU reference templated on
// double): every parameter's analytic gradient from the hand-written backward against central differences of a
// random linear functional of x̂1. Configurations cover the four graph modes, multi-head attention, the
// direction embedding, reverse-pair values, time and an aux column as input features, and a batch mixing architectures.
import { describe, expect, it } from 'vitest';
import { binding } from '../../lib/native/binding.js';
import type { NativeEngineConfig } from '../../lib/native/types.js';
import { Rng } from '../../lib/util/rng.js';

interface Case {
  name: string;
  cfg: Partial<NativeEngineConfig>;
  widths: number[][];
}

const cases: Case[] = [
  { name: 'sparse, 2 heads, dir embedding, reverse values, t as input', cfg: { mode: 'sparse', heads: 2, dirEmbed: true, reverseValue: true, inFeatures: 2 }, widths: [[3, 4, 2], [2, 3, 2]] },
  { name: 'dense, time on every pair, direction embedding', cfg: { mode: 'dense', heads: 1, dirEmbed: true, reverseValue: false, inFeatures: 1, timeRule: 'all' }, widths: [[2, 3, 2]] },
  { name: 'dense, reference time rule, no direction embedding', cfg: { mode: 'dense', heads: 1, dirEmbed: false, reverseValue: false, inFeatures: 1, timeRule: 'reference' }, widths: [[3, 2, 2]] },
  { name: 'sparse, t and an aux column as inputs', cfg: { mode: 'sparse', heads: 1, dirEmbed: true, reverseValue: true, inFeatures: 2, auxFeatures: 1 }, widths: [[3, 4, 2]] },
  { name: 'sparse, three aux columns as inputs', cfg: { mode: 'sparse', heads: 1, dirEmbed: true, reverseValue: true, inFeatures: 1, auxFeatures: 3 }, widths: [[3, 4, 2]] },
  { name: 'hybrid (sparse + all pairs among non-input neurons), two hidden layers, mixed batch', cfg: { mode: 'hybrid', heads: 2, dirEmbed: true, reverseValue: true, inFeatures: 2, hiddenSlots: 2 }, widths: [[3, 2, 3, 2], [2, 3, 2]] },
  { name: 'virtual node (sparse + one node joined to every neuron), 2 heads, two hidden layers, mixed batch', cfg: { mode: 'virtual', heads: 2, dirEmbed: true, reverseValue: true, inFeatures: 2, hiddenSlots: 2 }, widths: [[3, 2, 3, 2], [2, 3, 2]] },
  { name: 'sparse, no hidden layer, no RT layers', cfg: { mode: 'sparse', layers: 0, heads: 1, dirEmbed: true, reverseValue: true, inFeatures: 1 }, widths: [[3, 2]] },
];

describe('relational transformer: analytic gradients vs f64 central differences', () => {
  for (const c of cases) {
    it(c.name, () => {
      const rng = new Rng(7);
      const cfg: NativeEngineConfig = {
        D: 4, layers: 2, heads: 1, inputSlots: 3, hiddenSlots: 1, outputSlots: 2, mode: 'sparse', timeRule: 'all',
        dirEmbed: true, reverseValue: true, inFeatures: 1, ...c.cfg,
      };
      const e = new (binding().NativeEngine)(cfg, 3, 'cpu', 'f64');
      e.setGraph(c.widths);
      const { P, G } = e.graphInfo();
      const np = e.numParams();
      // Random parameters (larger than init so every path matters), inputs, and a linear functional L = Σ w·x̂1.
      const params = rng.fillNormal(new Float64Array(np), 0, 0.5);
      e.setParams(params);
      const xt = rng.fillNormal(new Float64Array(P));
      const t = rng.fillUniform(new Float64Array(G), 0.1, 0.9);
      const w = rng.fillNormal(new Float64Array(P));
      const aux = (cfg.auxFeatures ?? 0) > 0 ? rng.fillNormal(new Float64Array(P * cfg.auxFeatures!)) : null;
      const out = new Float64Array(P);
      const loss = (): number => {
        e.forward(xt, t, out, false, aux);
        let s = 0;
        for (let i = 0; i < P; i++) s += w[i]! * out[i]!;
        return s;
      };
      e.forward(xt, t, out, true, aux);
      e.zeroGrad();
      e.backward(w);
      const g = new Float64Array(np);
      e.getGrads(g);
      const fd = new Float64Array(np);
      for (let i = 0; i < np; i++) {
        const p0 = params[i]!;
        const h = 1e-6 * Math.max(1, Math.abs(p0));
        params[i] = p0 + h;
        e.setParams(params);
        const lp = loss();
        params[i] = p0 - h;
        e.setParams(params);
        const lm = loss();
        params[i] = p0;
        fd[i] = (lp - lm) / (2 * h);
      }
      e.setParams(params);
      // Central differences with h = 1e-6 in f64 carry ~1e-9 relative truncation/rounding error.
      expect(g).toAllClose(fd, { atol: 1e-7, rtol: 1e-5 });
      // Every RT-layer and input tensor receives gradient (no dead wiring). Heads are skipped: with D = 4 all of a
      // head's ReLUs can be inactive for a random draw, which legitimately zeroes its gradient.
      const table = e.paramTable();
      for (const p of table) {
        const norm = Math.hypot(...g.subarray(p.offset, p.offset + p.size));
        if (p.name.includes('_head.')) continue;
        expect(norm, `gradient of ${p.name}`).toBeGreaterThan(0);
      }
      e.dispose();
    });
  }
});

// The input gradient ∂L/∂x_t (vector–Jacobian products for likelihoods, lib/flow/likelihood.ts) against central
// differences of the same functional in x_t, on the same configurations; plus the contract of the input-only
// pass: parameter gradients untouched, several passes after one forward, identical parameter gradients when
// both are requested.
describe('relational transformer: input gradient vs f64 central differences', () => {
  for (const c of cases) {
    it(c.name, () => {
      const rng = new Rng(11);
      const cfg: NativeEngineConfig = {
        D: 4, layers: 2, heads: 1, inputSlots: 3, hiddenSlots: 1, outputSlots: 2, mode: 'sparse', timeRule: 'all',
        dirEmbed: true, reverseValue: true, inFeatures: 1, ...c.cfg,
      };
      const e = new (binding().NativeEngine)(cfg, 5, 'cpu', 'f64');
      e.setGraph(c.widths);
      const { P, G } = e.graphInfo();
      const np = e.numParams();
      e.setParams(rng.fillNormal(new Float64Array(np), 0, 0.5));
      const xt = rng.fillNormal(new Float64Array(P));
      const t = rng.fillUniform(new Float64Array(G), 0.1, 0.9);
      const ws = [rng.fillNormal(new Float64Array(P)), rng.fillNormal(new Float64Array(P))];
      const aux = (cfg.auxFeatures ?? 0) > 0 ? rng.fillNormal(new Float64Array(P * cfg.auxFeatures!)) : null; // held fixed: no gradient into it
      const out = new Float64Array(P);
      const loss = (x: Float64Array, w: Float64Array): number => {
        e.forward(x, t, out, false, aux);
        let s = 0;
        for (let i = 0; i < P; i++) s += w[i]! * out[i]!;
        return s;
      };
      // One training forward, then a parameter backward (reference gradients), then input-only passes for two
      // cotangents, then a combined pass: the activations must survive every backward.
      e.forward(xt, t, out, true, aux);
      e.zeroGrad();
      e.backward(ws[0]!);
      const gRef = new Float64Array(np);
      e.getGrads(gRef);
      const dx = ws.map(() => new Float64Array(P));
      ws.forEach((w, k) => e.backward(w, dx[k], false));
      const gAfter = new Float64Array(np);
      e.getGrads(gAfter);
      expect(gAfter).toAllClose(gRef, { atol: 0, rtol: 0 }); // input-only passes leave gradients untouched
      e.zeroGrad();
      const dxBoth = new Float64Array(P);
      e.backward(ws[0]!, dxBoth, true);
      const gBoth = new Float64Array(np);
      e.getGrads(gBoth);
      expect(gBoth).toAllClose(gRef, { atol: 0, rtol: 0 }); // same parameter gradients with the input gradient on
      expect(dxBoth).toAllClose(dx[0]!, { atol: 0, rtol: 0 });
      for (let k = 0; k < ws.length; k++) {
        const fd = new Float64Array(P);
        for (let i = 0; i < P; i++) {
          const x0 = xt[i]!;
          const h = 1e-6 * Math.max(1, Math.abs(x0));
          xt[i] = x0 + h;
          const lp = loss(xt, ws[k]!);
          xt[i] = x0 - h;
          const lm = loss(xt, ws[k]!);
          xt[i] = x0;
          fd[i] = (lp - lm) / (2 * h);
        }
        // As the parameter check: h = 1e-6 central differences in f64 (~1e-9 relative error).
        expect(dx[k]).toAllClose(fd, { atol: 1e-7, rtol: 1e-5 });
        // Every weight and bias reaches the output (a dead feature path would leave zeros). Without RT layers each
        // output sees only its own input, through a D = 4 ReLU head that can be inactive: skipped there.
        if (cfg.layers > 0) expect(dx[k]!.some((v) => v === 0)).toBe(false);
      }
      e.dispose();
    });
  }
});
