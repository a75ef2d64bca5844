// Architecture transfer (METHOD.md §11.4): a flow trained on 784-10-10 networks samples 784-32-10 networks with the
// same vector-field parameters, on the new architecture's prior, geometry and canonicalisation.
import { describe, expect, it } from 'vitest';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { geometry, mlp } from '../../lib/index.js';
import type { WsfError } from '../../lib/index.js';
import { sampleFlow } from '../../lib/pipeline/sample.js';
import { Rng } from '../../lib/util/rng.js';
import { blobsTask } from '../helpers/syntheticTask.js';

const src = mlp([784, 10, 10]);
const wide = mlp([784, 32, 10]);
const field = { D: 4, layers: 1 } as const;

/** Small "trained" data: N(0, 0.1²) weights shifted per layer, so per-layer RMS values differ. */
function data(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const P = src.numParams;
  const x = rng.fillNormal(new Float32Array(n * P), 0, 0.1);
  for (let b = 0; b < n; b++) for (let k = src.weightOffset(2); k < src.biasOffset(1); k++) x[b * P + k] = x[b * P + k]! * 5;
  return x;
}

function caught(f: () => unknown): WsfError | undefined {
  try {
    f();
  } catch (e) {
    return e as WsfError;
  }
  return undefined;
}

describe('FlowMatcher.sample({ arch }) — architecture transfer', () => {
  for (const geom of ['euclidean', 'normalized', 'geometric'] as const) {
    it(`${geom}: a flow trained on 784-10-10 samples finite 784-32-10 networks${geom === 'euclidean' ? '' : ' on the spheres'}`, async () => {
      const fm = FlowMatcher.create({ arch: src, geometry: geom, field, seed: 1, device: 'cpu' });
      await fm.fit({ weights: data(8, 2) }, { steps: 3, batchSize: 4 });
      const s = fm.sample({ n: 3, steps: 3, arch: [784, 32, 10], seed: 4 });
      expect(s.length).toBe(3 * wide.numParams);
      expect(s.every(Number.isFinite)).toBe(true);
      if (geom !== 'euclidean') {
        // Canonicalised for the wide architecture: all 32 hidden spheres (K = 784) and the 320-entry last layer at unit norm.
        const g = geometry(wide, 'geometric', { device: 'cpu' });
        const d = g.dist(s, g.project(s));
        expect(d.length).toBe(3 * g.numFactors);
        expect(Math.max(...d)).toBeLessThan(1e-5); // f32 round-off of a unit vector
        g.dispose();
      }
      // Transfer to the flow's own architecture is plain sampling.
      expect(fm.sample({ n: 2, steps: 2, arch: src, seed: 9 })).toAllClose(fm.sample({ n: 2, steps: 2, seed: 9 }), { atol: 0, rtol: 0 });
      fm.dispose();
    });
  }

  it("one Euler step from x0 is x0 + F(x0, 0): the field's parameters on the wide graph (corrected, preconditioned)", async () => {
    const fm = FlowMatcher.create({ arch: src, geometry: 'euclidean', precondition: true, layerScaling: false, field, seed: 2, device: 'cpu' });
    await fm.fit({ weights: data(8, 3) }, { steps: 2, batchSize: 4 });
    const x0 = new Rng(5).fillNormal(new Float32Array(2 * wide.numParams), 0, 0.1);
    const s = fm.sample({ n: 2, steps: 1, x0, arch: wide });
    const F = fm.field.forward(x0, 0, { arch: wide });
    const want = x0.map((v, i) => v + F[i]!);
    expect(s).toAllClose(want, { atol: 1e-6, rtol: 1e-5 }); // f32 sums in a different order
    fm.dispose();
  });

  it('layerScaling: the per-layer scales measured on the 784-10-10 data are reused layer by layer', async () => {
    const x = data(8, 4);
    const fm = FlowMatcher.create({ arch: src, geometry: 'euclidean', precondition: true, layerScaling: true, field, seed: 3, device: 'cpu' });
    await fm.fit({ weights: x }, { steps: 2, batchSize: 4 });
    // Independent per-block RMS of the training data (one value per layer's weights and per layer's biases).
    const rms = (o: number, len: number): number => {
      let ss = 0;
      for (let b = 0; b < 8; b++) for (let k = 0; k < len; k++) ss += x[b * src.numParams + o + k]! ** 2;
      const r = Math.sqrt(ss / (8 * len));
      return r > 1e-12 ? r : 1; // zero bias blocks keep scale 1
    };
    const scale = new Float32Array(wide.numParams);
    for (let l = 1; l <= 2; l++) {
      scale.fill(rms(src.weightOffset(l), src.widths[l - 1]! * src.widths[l]!), wide.weightOffset(l), wide.weightOffset(l) + wide.widths[l - 1]! * wide.widths[l]!);
      scale.fill(rms(src.biasOffset(l), src.widths[l]!), wide.biasOffset(l), wide.biasOffset(l) + wide.widths[l]!);
    }
    const x0 = new Rng(6).fillNormal(new Float32Array(wide.numParams), 0, 0.1);
    const F = fm.field.forward(x0.map((v, i) => v / scale[i]!), 0, { arch: wide });
    const want = x0.map((v, i) => v + scale[i]! * F[i]!);
    expect(fm.sample({ n: 1, steps: 1, x0, arch: wide })).toAllClose(want, { atol: 1e-6, rtol: 1e-4 }); // f32 scale round trips
    fm.dispose();
  });

  it('refuses architectures with other input width, output width or depth (ERR_SHAPE, naming the expected form)', () => {
    const fm = FlowMatcher.create({ arch: src, geometry: 'geometric', field, device: 'cpu' });
    for (const a of [[784, 32, 5], [100, 32, 10], [784, 8, 8, 10], [784, 10]]) {
      const e = caught(() => fm.sample({ n: 1, steps: 1, arch: a }));
      expect(e?.code, a.join('-')).toBe('ERR_SHAPE');
      expect(e?.message).toMatch(/784-\*-10 .*trained on 784-10-10.*received/);
    }
    const e = caught(() => fm.sample({ n: 1, steps: 1, arch: wide, x0: new Float32Array(src.numParams) }));
    expect(e?.code).toBe('ERR_SHAPE');
    expect(e?.message).toMatch(new RegExp(`x0\` of length n·P = ${wide.numParams}`));
    fm.dispose();
    // A field with one embedding per hidden neuron cannot run wider hidden layers; narrower ones it can.
    const hid = FlowMatcher.create({ arch: src, geometry: 'geometric', field: { ...field, hiddenIdentity: true }, device: 'cpu' });
    const h = caught(() => hid.sample({ n: 1, steps: 1, arch: wide }));
    expect(h?.code).toBe('ERR_SHAPE');
    expect(h?.message).toMatch(/at most 10 neurons.*hiddenIdentity/);
    expect(hid.sample({ n: 1, steps: 1, arch: [784, 6, 10] }).length).toBe(mlp([784, 6, 10]).numParams);
    hid.dispose();
  });

  it('sampleFlow: arch and x0 chunk by chunk (same networks as one FlowMatcher.sample call), gradient evaluations counted', async () => {
    const fm = FlowMatcher.create({ arch: src, geometry: 'geometric', field, seed: 4, device: 'cpu' });
    await fm.fit({ weights: data(8, 5) }, { steps: 2, batchSize: 4 });
    const x0 = new Rng(8).fillNormal(new Float32Array(3 * wide.numParams), 0, 0.1);
    const whole = fm.sample({ n: 3, steps: 3, x0, arch: wide });
    const r = await sampleFlow(fm, { n: 3, steps: 3, batch: 2, x0, arch: wide });
    expect(r.arch.key).toBe(wide.key);
    expect(r.gradientEvals).toBe(0);
    expect(r.weights).toAllClose(whole, { atol: 0, rtol: 0 }); // deterministic from x0: chunking changes nothing
    // Guidance: one gradient per network and Euler step (corrected semantics: `steps` steps), on the wide networks.
    const task = blobsTask({ d: 784, classes: 10, n: [40, 10, 10], seed: 2 });
    const g = await sampleFlow(fm, { n: 3, steps: 3, batch: 2, x0, arch: wide, guidance: { lambda: 0.5, task, rows: 4 } });
    expect(g.gradientEvals).toBe(3);
    expect(g.weights.every(Number.isFinite)).toBe(true);
    expect(Math.max(...g.weights.map((v, i) => Math.abs(v - whole[i]!)))).toBeGreaterThan(1e-4); // guidance moved them
    await expect(sampleFlow(fm, { n: 3, steps: 1, x0: x0.subarray(1), arch: wide })).rejects.toMatchObject({ code: 'ERR_SHAPE' });
    fm.dispose();
  });
});
