// Canonicalisation (METHOD.md §3): the CPU reference vs an independent f64 TS implementation, idempotence, the
// zero-norm rule, and function preservation checked with a plain f64 forward pass and with TF.js.
import { describe, expect, it } from 'vitest';
import { canonicalize, loadTf, mlp, toTfModel } from '../../lib/index.js';
import { createPlan } from '../../lib/geometry/plan.js';
import { Rng } from '../../lib/util/rng.js';
import * as ref from '../helpers/geometryRef.js';

const ARCHS = [
  [30, 16, 16, 2],
  [7, 5, 3],
  [784, 10, 10],
  [4, 1, 3],
  [3, 2],
];

describe('canonicalize vs an independent f64 implementation', () => {
  for (const widths of ARCHS) {
    for (const c of [1, Math.sqrt(widths[widths.length - 1]!)]) {
      it(`${widths.join('-')}, lastLayerNorm ${c.toFixed(3)}`, () => {
        const arch = mlp(widths);
        const P = arch.numParams;
        const B = 2;
        const rng = new Rng(P + Math.round(c * 100));
        const x = rng.fillNormal(new Float64Array(B * P), 0, 0.2);
        const expected = new Float64Array(B * P);
        for (let b = 0; b < B; b++) expected.set(ref.canonicalizeRef(arch, x.subarray(b * P, (b + 1) * P), c).y, b * P);
        const plan = createPlan(arch, 'geometric');
        const y64 = new Float64Array(B * P);
        plan.canonicalizeF64(y64, x, c);
        expect(y64).toAllClose(expected, { atol: 1e-13, rtol: 1e-12 }); // same operations, f64 rounding only
        const x32 = Float32Array.from(x);
        const y32 = canonicalize(arch, x32, { lastLayerNorm: c, device: 'cpu' });
        const e32 = new Float64Array(B * P);
        for (let b = 0; b < B; b++) e32.set(ref.canonicalizeRef(arch, x32.subarray(b * P, (b + 1) * P), c).y, b * P);
        // float32 products/quotients of O(1) values, norms over ≤ 784 terms
        expect(y32).toAllClose(e32, { atol: 1e-6, rtol: 1e-5 });
        // idempotent: a canonical network is its own canonical form (r = 1, ρ = c up to rounding)
        expect(canonicalize(arch, y32, { lastLayerNorm: c, device: 'cpu' })).toAllClose(y32, { atol: 1e-6, rtol: 1e-5 });
        const z64 = new Float64Array(B * P);
        plan.canonicalizeF64(z64, y64, c);
        expect(z64).toAllClose(y64, { atol: 1e-14, rtol: 1e-13 });
        // in place (out = flat) gives the same result
        const inPlace = x32.slice();
        canonicalize(arch, inPlace, { lastLayerNorm: c, device: 'cpu', out: inPlace });
        expect(inPlace).toEqual(y32);
        plan.dispose();
      });
    }
  }

  it('a neuron with all-zero incoming weights is left unchanged (r treated as 1), and so is a zero last layer', () => {
    const arch = mlp([5, 4, 3]);
    const rng = new Rng(9);
    const x = rng.fillNormal(new Float32Array(arch.numParams));
    for (let i = 0; i < 5; i++) x[arch.weightIndex(1, i, 2)] = 0;
    const y = canonicalize(arch, x, { device: 'cpu' });
    const e = ref.canonicalizeRef(arch, x, 1);
    expect(e.r[0]![2]).toBe(1);
    expect(y).toAllClose(e.y, { atol: 1e-6, rtol: 1e-5 });
    expect(y[arch.biasIndex(1, 2)]).toBe(x[arch.biasIndex(1, 2)]); // bias untouched
    const z = new Float32Array(arch.numParams);
    z[arch.biasIndex(2, 0)] = 0.5;
    expect(canonicalize(arch, z, { device: 'cpu' })).toEqual(z); // all weights zero: nothing changes, no NaN
  });
});

describe('function preservation', () => {
  // ReLU(z/r) = ReLU(z)/r for r > 0: a canonical network's hidden neuron j of layer l outputs h_j/r_j, which the
  // next layer's row (×r_j) undoes, so every hidden activation is the original one up to that positive per-neuron
  // factor and the logits are the original logits × c/ρ. (METHOD.md's "hidden outputs unchanged" holds for
  // what the next layer receives; the activations themselves carry the 1/r_j factor.)
  const widths = [30, 16, 16, 2];
  const arch = mlp(widths);
  const P = arch.numParams;
  const rng = new Rng(77);
  const x = rng.fillNormal(new Float32Array(P), 0, 0.3);
  const inputs = Array.from({ length: 32 }, () => Array.from({ length: widths[0]! }, () => rng.normal()));

  for (const c of [1, Math.SQRT2]) {
    it(`f64 forward pass, lastLayerNorm ${c.toFixed(3)}`, () => {
      const plan = createPlan(arch, 'geometric');
      const y = new Float64Array(P);
      plan.canonicalizeF64(y, Float64Array.from(x), c);
      const { r, rho } = ref.canonicalizeRef(arch, x, c);
      for (const inp of inputs) {
        const a = ref.forwardLayers(arch, x, inp);
        const b = ref.forwardLayers(arch, y, inp);
        for (let l = 0; l < arch.numLayers - 1; l++) {
          expect(b[l]!.map((v, j) => v * r[l]![j]!)).toAllClose(a[l]!, { atol: 1e-12, rtol: 1e-10 }); // f64
        }
        const logits = a[arch.numLayers - 1]!;
        expect(b[arch.numLayers - 1]!).toAllClose(logits.map((v) => (v * c) / rho), { atol: 1e-12, rtol: 1e-10 });
        expect(b[arch.numLayers - 1]!.indexOf(Math.max(...b[arch.numLayers - 1]!))).toBe(logits.indexOf(Math.max(...logits)));
      }
      plan.dispose();
    });
  }

  it('TF.js models of the original and the canonical network (f32)', async () => {
    const { tf } = await loadTf();
    const c = 1;
    const y = canonicalize(arch, x, { device: 'cpu', lastLayerNorm: c });
    const { r, rho } = ref.canonicalizeRef(arch, x, c);
    const m0 = toTfModel(tf, arch, x);
    const m1 = toTfModel(tf, arch, y);
    const X = tf.tensor2d(inputs.flat(), [inputs.length, widths[0]!]);
    let h0 = X as import('@tensorflow/tfjs').Tensor;
    let h1 = X as import('@tensorflow/tfjs').Tensor;
    for (let l = 0; l < arch.numLayers; l++) {
      h0 = m0.layers[l]!.apply(h0) as import('@tensorflow/tfjs').Tensor;
      h1 = m1.layers[l]!.apply(h1) as import('@tensorflow/tfjs').Tensor;
      const a = h0.dataSync();
      const b = h1.dataSync();
      const n = arch.widths[l + 1]!;
      const f = l < arch.numLayers - 1 ? (k: number) => r[l]![k % n]! : () => rho / c;
      // float32 GEMMs over ≤ 30 inputs of O(1) values
      expect(Array.from(b, (v, k) => v * f(k))).toAllClose(a, { atol: 2e-5, rtol: 1e-4 });
    }
    const am0 = (tf.argMax(h0, 1).dataSync() as Int32Array).slice();
    const am1 = (tf.argMax(h1, 1).dataSync() as Int32Array).slice();
    expect(Array.from(am1)).toEqual(Array.from(am0));
    m0.dispose();
    m1.dispose();
    tf.dispose([X, h0, h1]);
  });
});
