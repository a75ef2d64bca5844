// Guidance at the prediction (SampleGuidance.at 'prediction'): the sampler takes one gradient step of size λ from the
// field's prediction x̂1 (the gradient taken at x̂1; canonicalised after) and aims at the stepped prediction. Checked
// against an Euler loop written here from that definition with the public predictX1 and geometry operations
// (Euclidean and Geometric), with the renoising sampler (a zero gradient leaves it unchanged; the gradient is taken at
// the field's predictions), through sampleFlow (an SGD step on the network at the logit scale: the last layer's
// gradient divided by the scale, where guidance at the state multiplies it), and the options it cannot serve.
import { describe, expect, it } from 'vitest';
import { FlowMatcher, type SampleGuidance } from '../../lib/flow/FlowMatcher.js';
import { geometry, mlp, sampleFlow } from '../../lib/index.js';
import { customTask } from '../../lib/tasks/customTask.js';
import { Rng } from '../../lib/util/rng.js';

const arch = mlp([4, 3, 2]);
const P = arch.numParams;
const small = { D: 8, layers: 2 } as const;

function zoo(n: number, seed: number): Float32Array {
  const rng = new Rng(seed);
  const mode = rng.fillNormal(new Float32Array(P), 0, 0.5);
  const out = new Float32Array(n * P);
  for (let i = 0; i < out.length; i++) out[i] = mode[i % P]! + 0.1 * rng.normal();
  return out;
}

/** A gradient that does not depend on data: ∇ of ½‖x − c‖² per network. */
const towards = (c: Float32Array) => (x: Float32Array): Float32Array => x.map((v, i) => v - c[i % P]!);

const maxDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('guidance at the prediction', () => {
  for (const geom of ['euclidean', 'geometric'] as const) {
    it(`${geom}: Euler steps aim at x̂1 moved by −λ·∇L(x̂1) (a loop written from the definition)`, async () => {
      const fm = FlowMatcher.create({ arch, geometry: geom, field: small, seed: 2, device: 'cpu', prior: { kind: 'gaussian', std: 0.5 } });
      await fm.fit({ weights: zoo(32, 1) }, { steps: 30, batchSize: 8, lr: 3e-3 });
      const c = new Rng(7).fillNormal(new Float32Array(P), 0, 1);
      const n = 3;
      const steps = 5;
      const lambda = 0.4;
      const x0 = new Rng(3).fillNormal(new Float32Array(n * P), 0, 0.5);
      const seen: Float32Array[] = [];
      const grad = (x: Float32Array): Float32Array => {
        seen.push(x.slice());
        return towards(c)(x);
      };
      const got = fm.sample({ n, steps, x0, guidance: { grad, lambda, at: 'prediction' } });
      expect(seen.length).toBe(steps); // one gradient per field evaluation

      const g = geometry(arch, 'geometric', { device: 'cpu' });
      const canon = (x: Float32Array): Float32Array => (geom === 'geometric' ? g.canonicalize(x) : x);
      let y = canon(x0.slice());
      for (let k = 0; k < steps; k++) {
        const t = k / steps;
        const dt = (k + 1) / steps - t;
        const xhat = fm.predictX1(y, t);
        expect(maxDiff(seen[k]!, xhat)).toBeLessThan(1e-6); // the gradient is taken at the prediction
        const neg = towards(c)(xhat).map((v) => -v);
        let v: Float32Array;
        if (geom === 'geometric') {
          const moved = g.canonicalize(xhat.map((u, i) => u + lambda * neg[i]!));
          v = g.logmap(y, moved).map((u) => u / (1 - t));
          y = g.eulerStep(y, v, dt);
        } else {
          const moved = xhat.map((u, i) => u + lambda * neg[i]!);
          v = moved.map((u, i) => (u - y[i]!) / (1 - t));
          y = y.map((u, i) => u + dt * v[i]!);
        }
      }
      const want = canon(y);
      expect(maxDiff(got, want)).toBeLessThan(2e-5);
      // Guidance at the state with the same λ is another sampler.
      const atState = fm.sample({ n, steps, x0, guidance: { grad: towards(c), lambda } });
      expect(maxDiff(got, atState)).toBeGreaterThan(1e-3);
      // … and the pull towards c is felt: the guided samples end nearer to c than the unguided ones.
      const plain = fm.sample({ n, steps, x0 });
      const dist = (x: Float32Array): number => x.reduce((s, u, i) => s + (u - canon(c)[i % P]!) ** 2, 0);
      if (geom === 'euclidean') expect(dist(got)).toBeLessThan(dist(plain));
      g.dispose();
      fm.dispose();
    });
  }

  it('renoising sampler: a zero gradient changes nothing; a gradient is taken at the predictions and moves the samples', async () => {
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: small, seed: 4, device: 'cpu', prior: { kind: 'gaussian', std: 0.5 } });
    await fm.fit({ weights: zoo(32, 2) }, { steps: 30, batchSize: 8, lr: 3e-3 });
    const n = 4;
    const steps = 6;
    const x0 = new Rng(5).fillNormal(new Float32Array(n * P), 0, 0.5);
    const plain = fm.sample({ n, steps, x0, seed: 9, renoise: 0.6 });
    const zero: SampleGuidance = { grad: (x) => new Float32Array(x.length), lambda: 0.5, at: 'prediction' };
    expect(maxDiff(fm.sample({ n, steps, x0, seed: 9, renoise: 0.6, guidance: zero }), plain)).toBeLessThan(1e-6);
    const states: Float32Array[] = [];
    const seen: Float32Array[] = [];
    const c = new Rng(8).fillNormal(new Float32Array(P), 0, 1);
    const guided = fm.sample({
      n, steps, x0, seed: 9, renoise: 0.6,
      onStep: (x) => states.push(x.slice()),
      guidance: { grad: (x) => { seen.push(x.slice()); return towards(c)(x); }, lambda: 0.5, at: 'prediction' },
    });
    expect(seen.length).toBe(steps);
    for (let k = 0; k < steps; k++) expect(maxDiff(seen[k]!, fm.predictX1(states[k]!, k / steps))).toBeLessThan(1e-6);
    expect(maxDiff(guided, plain)).toBeGreaterThan(1e-3);
    // The renoising sampler still refuses guidance at the state.
    expect(() => fm.sample({ n, steps, renoise: 0.6, guidance: { grad: towards(c), lambda: 0.5 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    fm.dispose();
  });

  it('sampleFlow passes `at` through (the same networks as FlowMatcher.sample with the task gradient)', async () => {
    const rng = new Rng(6);
    const task = customTask({ name: 'toy', numFeatures: 4, numClasses: 2, x: rng.fillNormal(new Float32Array(40 * 4), 0, 1), y: Int32Array.from({ length: 40 }, (_, i) => i % 2), seed: 1 });
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: { D: 4, layers: 1 }, seed: 1, device: 'cpu', prior: { kind: 'gaussian', std: 0.5 } });
    await fm.fit({ weights: zoo(16, 3) }, { steps: 4, batchSize: 4 });
    const x0 = rng.fillNormal(new Float32Array(3 * P), 0, 0.5);
    const run = async (at?: 'state' | 'prediction'): Promise<Float32Array> =>
      (await sampleFlow(fm, { n: 3, steps: 4, seed: 3, x0, guidance: { lambda: 0.5, task, rows: 8, ...(at !== undefined ? { at } : {}) } })).weights;
    const pred = await run('prediction');
    const state = await run('state');
    expect(await run()).toEqual(state);
    expect(maxDiff(pred, state)).toBeGreaterThan(1e-4);
    // The same sampler through FlowMatcher.sample, with a gradient of the same rows computed here.
    const { BatchStream, taskGradient } = await import('../../lib/eval/gradient.js');
    const stream = new BatchStream(task.train, 8, 3);
    const direct = fm.sample({ n: 3, steps: 4, x0, guidance: { lambda: 0.5, at: 'prediction', grad: (x) => taskGradient(task, arch, x, stream.next(x.length / P)).grad } });
    expect(pred).toEqual(direct);
    // At logit scale s: the gradient of the network with its last layer × s; the last layer's step ÷ s (state: × s).
    const s = 7;
    const lastLayer = (x: Float32Array, f: number): Float32Array => {
      const y = x.slice();
      for (let b = 0; b < y.length / P; b++) {
        for (let i = 4 * 3; i < 4 * 3 + 3 * 2; i++) y[b * P + i]! *= f; // 3 × 2 weights after the 4 × 3 ones
        for (let i = P - 2; i < P; i++) y[b * P + i]! *= f; // the last 2 biases
      }
      return y;
    };
    const scaled = async (at: 'state' | 'prediction'): Promise<Float32Array> =>
      (await sampleFlow(fm, { n: 3, steps: 4, seed: 3, x0, guidance: { lambda: 0.5, task, rows: 8, logitScale: s, at } })).weights;
    for (const [at, f] of [['prediction', 1 / s], ['state', s]] as const) {
      const st = new BatchStream(task.train, 8, 3);
      const want = fm.sample({ n: 3, steps: 4, x0, guidance: { lambda: 0.5, at, grad: (x) => lastLayer(taskGradient(task, arch, lastLayer(x, s), st.next(x.length / P)).grad, f) } });
      expect(maxDiff(await scaled(at), want)).toBeLessThan(1e-6);
    }
    fm.dispose();
  });

  it('refuses what it cannot serve, naming the option', async () => {
    const grad = (x: Float32Array): Float32Array => new Float32Array(x.length);
    const vel = FlowMatcher.create({ arch, geometry: 'euclidean', prediction: 'velocity', field: small, device: 'cpu' });
    expect(() => vel.sample({ n: 2, steps: 3, guidance: { grad, lambda: 0.1, at: 'prediction' } })).toThrow(/x1-prediction flow/);
    expect(() => vel.sample({ n: 2, steps: 3, guidance: { grad, lambda: 0.1, at: 'prediction' } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    vel.dispose();
    const ref = FlowMatcher.create({ arch, geometry: 'geometric', semantics: 'reference', field: small, device: 'cpu' });
    expect(() => ref.sample({ n: 2, steps: 3, guidance: { grad, lambda: 0.1, at: 'prediction' } })).toThrow(/corrected semantics/);
    ref.dispose();
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: small, device: 'cpu' });
    expect(() => fm.sample({ n: 2, steps: 3, guidance: { grad, lambda: 0.1, at: 'endpoint' as 'state' } })).toThrow(/guidance\.at/);
    expect(() => fm.sample({ n: 2, steps: 3, guidance: { grad: () => new Float32Array(3), lambda: 0.1, at: 'prediction' } })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    fm.dispose();
  });
});
