// Guidance at the trained networks' logit scale: naturalLogitScale against an f64 forward pass of the raw and the
// canonicalised networks (the canonical logits are the raw ones divided by it), and the logitScale option of
// sampleFlow's guidance (1 is the plain gradient; other values change the guided samples; bad values are refused).
import { describe, expect, it } from 'vitest';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { canonicalize, mlp, naturalLogitScale, sampleFlow } from '../../lib/index.js';
import { customTask } from '../../lib/tasks/customTask.js';
import { Rng } from '../../lib/util/rng.js';

/** Logits of one network (flat layout) on one input, in f64, written here from the layout's definition. */
function logits(widths: number[], w: Float32Array, off: number, input: number[]): number[] {
  let h = input;
  let wo = off;
  const nWeights = widths.slice(1).reduce((a, n, k) => a + widths[k]! * n, 0);
  let bo = off + nWeights;
  for (let l = 1; l < widths.length; l++) {
    const nin = widths[l - 1]!;
    const nout = widths[l]!;
    const z = Array.from({ length: nout }, (_, j) => {
      let s = w[bo + j]!;
      for (let i = 0; i < nin; i++) s += h[i]! * w[wo + i * nout + j]!;
      return s;
    });
    h = l === widths.length - 1 ? z : z.map((v) => Math.max(0, v));
    wo += nin * nout;
    bo += nout;
  }
  return h;
}

describe('guidance at the natural logit scale', () => {
  const widths = [5, 4, 3, 2];
  const arch = mlp(widths);
  const P = arch.numParams;

  it('naturalLogitScale is the factor between raw and canonical logits (f64 forward pass)', () => {
    const rng = new Rng(4);
    for (let n = 0; n < 5; n++) {
      const x = rng.fillNormal(new Float32Array(P), 0, 0.3 + n);
      const s = naturalLogitScale(arch, x);
      const c = canonicalize(arch, x);
      for (let k = 0; k < 3; k++) {
        const input = Array.from({ length: 5 }, () => rng.normal());
        const raw = logits(widths, x, 0, input);
        const can = logits(widths, c, 0, input);
        raw.forEach((v, j) => expect(v).toBeCloseTo(s * can[j]!, 3));
      }
    }
    // The median over networks.
    const xs = new Float32Array(3 * P);
    [1, 5, 2].forEach((f, b) => xs.set(new Rng(9).fillNormal(new Float32Array(P), 0, 1).map((v) => v * f), b * P));
    const each = [0, 1, 2].map((b) => naturalLogitScale(arch, xs.subarray(b * P, (b + 1) * P)));
    expect(naturalLogitScale(arch, xs)).toBe([...each].sort((a, b) => a - b)[1]);
    expect(() => naturalLogitScale(arch, new Float32Array(P + 1))).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
  });

  it('logitScale 1 is the plain gradient; another scale changes the guided samples; non-positive scales are refused', async () => {
    const rng = new Rng(2);
    const task = customTask({ name: 'toy', numFeatures: 5, numClasses: 2, x: rng.fillNormal(new Float32Array(60 * 5), 0, 1), y: Int32Array.from({ length: 60 }, (_, i) => i % 2), seed: 1 });
    const zoo = rng.fillNormal(new Float32Array(16 * P), 0, 0.5);
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: { D: 4, layers: 1 }, seed: 1, device: 'cpu' });
    await fm.fit({ weights: zoo }, { steps: 2, batchSize: 4 });
    const run = async (logitScale?: number): Promise<Float32Array> =>
      (await sampleFlow(fm, { n: 4, steps: 4, seed: 3, guidance: { lambda: 1, task, rows: 8, ...(logitScale !== undefined ? { logitScale } : {}) } })).weights;
    const plain = await run();
    expect(await run(1)).toEqual(plain);
    const scaled = await run(7);
    expect(scaled.every((v, i) => v === plain[i])).toBe(false);
    await expect(run(0)).rejects.toMatchObject({ code: 'ERR_INVALID' });
    await expect(run(-2)).rejects.toMatchObject({ code: 'ERR_INVALID' });
    fm.dispose();
  });

  it("velocity: sampleFlow passes the thesis' x0-anchored velocity to the sampler (same as FlowMatcher.sample)", async () => {
    const rng = new Rng(5);
    const zoo = rng.fillNormal(new Float32Array(16 * P), 0, 0.5);
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 4, layers: 1 }, seed: 1, device: 'cpu' });
    await fm.fit({ weights: zoo }, { steps: 2, batchSize: 4 });
    const x0 = rng.fillNormal(new Float32Array(3 * P), 0, 0.1);
    const anchored = (await sampleFlow(fm, { n: 3, steps: 5, seed: 3, x0, velocity: 'x0-anchored' })).weights;
    expect(anchored).toEqual(fm.sample({ n: 3, steps: 5, x0, velocity: 'x0-anchored' }));
    const riemannian = (await sampleFlow(fm, { n: 3, steps: 5, seed: 3, x0 })).weights;
    expect(riemannian).toEqual(fm.sample({ n: 3, steps: 5, x0 }));
    expect(anchored.some((v, i) => Math.abs(v - riemannian[i]!) > 1e-4)).toBe(true);
    fm.dispose();
  });
});
