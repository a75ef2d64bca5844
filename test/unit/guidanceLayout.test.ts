// The published code's guidance layout (METHOD.md §6.5, §12 item 3): it flattened each layer's weight gradient in
// PyTorch's (out, in) order and added it to the flow's (in, out) coordinates. publishedGradientLayout is checked
// against that construction written here from the definition — per layer a PyTorch-shaped gradient matrix G[j][i]
// read off the flat gradient by weightIndex, flattened row by row and laid over the weight block — on a non-square
// and a square architecture and a batch; then the sampler's `guidance.layout`: reference semantics guides with the
// published layout by default, corrected semantics with the flat one, and either can be asked for by name.
import { describe, expect, it } from 'vitest';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { mlp, publishedGradientLayout, type Architecture } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

/** The published layout from its definition: per layer, G[j][i] (out, in) flattened row-major over the weight block. */
function publishedByDefinition(arch: Architecture, grad: Float32Array): Float32Array {
  const P = arch.numParams;
  const out = grad.slice();
  for (let b = 0; b < grad.length / P; b++) {
    for (let l = 1; l <= arch.numLayers; l++) {
      const nIn = arch.widths[l - 1]!;
      const nOut = arch.widths[l]!;
      const G: number[][] = [];
      for (let j = 0; j < nOut; j++) {
        G.push([]);
        for (let i = 0; i < nIn; i++) G[j]!.push(grad[b * P + arch.weightIndex(l, i, j)]!);
      }
      const flatPyTorch = G.flat();
      for (let q = 0; q < flatPyTorch.length; q++) out[b * P + arch.weightOffset(l) + q] = flatPyTorch[q]!;
    }
  }
  return out;
}

describe('guidance gradients in the published layout', () => {
  it('publishedGradientLayout lays each (out, in)-flattened weight gradient over the (in, out) block; biases unchanged', () => {
    for (const widths of [[5, 3, 2], [4, 4, 4], [3, 7, 1]]) {
      const arch = mlp(widths);
      const P = arch.numParams;
      const B = 3;
      const g = new Rng(11).fillNormal(new Float32Array(B * P), 0, 1);
      const got = publishedGradientLayout(arch, g);
      expect(Array.from(got)).toEqual(Array.from(publishedByDefinition(arch, g)));
      expect(got).not.toBe(g);
      // Biases stay where they are; each weight block is a permutation of itself, and not the identity.
      for (let b = 0; b < B; b++) {
        for (let l = 1; l <= arch.numLayers; l++) {
          const o = b * P + arch.biasOffset(l);
          expect(Array.from(got.subarray(o, o + widths[l]!))).toEqual(Array.from(g.subarray(o, o + widths[l]!)));
          const w0 = b * P + arch.weightOffset(l);
          const n = widths[l - 1]! * widths[l]!;
          const sorted = (a: Float32Array): number[] => Array.from(a).sort((x, y) => x - y);
          expect(sorted(got.subarray(w0, w0 + n))).toEqual(sorted(g.subarray(w0, w0 + n)));
          if (widths[l - 1]! > 1 && widths[l]! > 1) expect(Array.from(got.subarray(w0, w0 + n))).not.toEqual(Array.from(g.subarray(w0, w0 + n)));
        }
      }
    }
    // A square layer's block is the transpose: applying the layout twice gives the gradient back.
    const sq = mlp([4, 4, 4]);
    const g = new Rng(3).fillNormal(new Float32Array(sq.numParams), 0, 1);
    expect(Array.from(publishedGradientLayout(sq, publishedGradientLayout(sq, g)))).toEqual(Array.from(g));
    const W = sq.weightOffset(1);
    expect(publishedGradientLayout(sq, g)[W + 1 * 4 + 2]).toBe(g[W + 2 * 4 + 1]);
  });

  it('refuses a gradient that is not B×P', () => {
    const arch = mlp([5, 3, 2]);
    expect(() => publishedGradientLayout(arch, new Float32Array(arch.numParams + 1))).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => publishedGradientLayout(arch, [1, 2] as unknown as Float32Array)).toThrow(expect.objectContaining({ code: 'ERR_DTYPE' }));
  });

  it("the sampler: reference semantics guides in the published layout by default, corrected in the flat one; `layout` names either", async () => {
    const arch = mlp([5, 3, 2]);
    const P = arch.numParams;
    const rng = new Rng(5);
    const zoo = rng.fillNormal(new Float32Array(16 * P), 0, 0.5);
    const c = rng.fillNormal(new Float32Array(P), 0, 1);
    // A data-free gradient whose weight part is not symmetric under the permutation: ∇ of ½‖x − c‖².
    const grad = (x: Float32Array): Float32Array => x.map((v, i) => v - c[i % P]!);
    const permuted = (x: Float32Array): Float32Array => publishedByDefinition(arch, grad(x));
    const n = 3;
    const x0 = new Rng(9).fillNormal(new Float32Array(n * P), 0, 0.5);
    for (const semantics of ['reference', 'corrected'] as const) {
      const fm = FlowMatcher.create({ arch, geometry: 'euclidean', semantics, field: { D: 8, layers: 1 }, seed: 4, device: 'cpu' });
      await fm.fit({ weights: zoo }, { steps: 3, batchSize: 4 });
      const run = (g: Parameters<FlowMatcher['sample']>[0]['guidance']): Float32Array => fm.sample({ n, steps: 6, x0, ...(g !== undefined ? { guidance: g } : {}) });
      const asDefault = run({ grad, lambda: 0.5 });
      const flat = run({ grad, lambda: 0.5, layout: 'flat' });
      const published = run({ grad, lambda: 0.5, layout: 'published' });
      // 'published' is the flat sampler given the permuted gradient, bit for bit.
      expect(Array.from(published)).toEqual(Array.from(run({ grad: permuted, lambda: 0.5, layout: 'flat' })));
      expect(Array.from(asDefault)).toEqual(Array.from(semantics === 'reference' ? published : flat));
      const gap = published.reduce((m, v, i) => Math.max(m, Math.abs(v - flat[i]!)), 0);
      expect(gap).toBeGreaterThan(1e-3);
      expect(() => run({ grad, lambda: 0.5, layout: 'pytorch' as 'flat' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/guidance\.layout/) }));
      fm.dispose();
    }
  });
});
