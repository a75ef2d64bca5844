// Self-conditioning (FlowOptions.selfCondition): what the field is given as its extra input column — the displacement
// of a previous prediction from the state, RMS-normalised per network and layer block — in training (its own
// first-pass prediction on about half of the steps, zeros otherwise) and in sampling (the previous call's prediction,
// zeros at the first), recomputed here in f64 from the field's recorded inputs and outputs; its combination with probe
// features, persistence and the typed errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import type { VectorField } from '../../lib/engine/VectorField.js';
import { mlp } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

const arch = mlp([4, 3, 2]);
const P = arch.numParams;
const small = { D: 8, layers: 1 };

interface Call {
  xt: Float32Array;
  t: Float32Array;
  aux: Float32Array | undefined;
  training: boolean;
  out: Float32Array;
}

/** Records every call of the field's forward (inputs copied, output kept). */
function record(field: VectorField): Call[] {
  const calls: Call[] = [];
  type Forward = (xt: Float32Array, t: Float32Array, o?: { aux?: Float32Array; training?: boolean }) => Float32Array;
  const orig = field.forward.bind(field) as unknown as Forward;
  (field as unknown as { forward: Forward }).forward = (xt, t, o) => {
    const out = orig(xt, t, o);
    calls.push({ xt: xt.slice(), t: t.slice(), aux: o?.aux?.slice(), training: o?.training === true, out: out.slice() });
    return out;
  };
  return calls;
}

/**
 * (prev − x) per entry, each network's weight and bias block of every layer divided by its RMS (f64 reference of the
 * column; a block that is all zero stays zero).
 */
function column(a: ReturnType<typeof mlp>, prev: ArrayLike<number>, x: ArrayLike<number>): number[] {
  const Q = a.numParams;
  const d = Array.from(prev, (v, i) => v - x[i]!);
  for (let b = 0; b < d.length / Q; b++) {
    for (let l = 1; l <= a.numLayers; l++) {
      for (const [o, len] of [[a.weightOffset(l), a.widths[l - 1]! * a.widths[l]!], [a.biasOffset(l), a.widths[l]!]] as const) {
        let ss = 0;
        for (let k = 0; k < len; k++) ss += d[b * Q + o + k]! ** 2;
        const rms = Math.max(Math.sqrt(ss / len), 1e-12);
        for (let k = 0; k < len; k++) d[b * Q + o + k]! /= rms;
      }
    }
  }
  return d;
}

const data = new Rng(5).fillNormal(new Float32Array(16 * P), 0.2, 0.5);

describe('self-conditioning', () => {
  it('trains half of the steps on its own first-pass prediction and the rest on zeros', async () => {
    // Euclidean flow, Gaussian prior: no preconditioning, so x̂1 = s⊙F with the layer scale s, and the field is given
    // x_t/s; s is constant over each layer block, so the column is the normalised F − x_t/s of the first pass.
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', selfCondition: true, field: small, seed: 4, device: 'cpu' });
    expect(fm.options.precondition).toBe(false);
    expect(fm.options.layerScaling).toBe(true);
    expect(fm.field.config.auxFeatures).toBe(1);
    const calls = record(fm.field);
    await fm.fit({ weights: data }, { steps: 40, batchSize: 4 });
    const training = calls.filter((c) => c.training);
    expect(training.length).toBe(40);
    let twoPass = 0;
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i]!;
      if (!c.training) continue;
      const prev = i > 0 && !calls[i - 1]!.training ? calls[i - 1] : undefined;
      if (prev === undefined) {
        expect(Array.from(c.aux!).every((v) => v === 0)).toBe(true);
        continue;
      }
      twoPass++;
      // The first pass saw the same x_t and t with a zero column.
      expect(Array.from(prev.xt)).toEqual(Array.from(c.xt));
      expect(Array.from(prev.t)).toEqual(Array.from(c.t));
      expect(Array.from(prev.aux!).every((v) => v === 0)).toBe(true);
      expect(c.aux!).toAllClose(column(arch, prev.out, prev.xt), { atol: 1e-5, rtol: 1e-4 });
      expect(Array.from(c.aux!).some((v) => v !== 0)).toBe(true);
    }
    // Binomial(40, ½): the seed fixes it; anything outside [8, 32] would mean the coin is not fair.
    expect(twoPass).toBeGreaterThanOrEqual(8);
    expect(twoPass).toBeLessThanOrEqual(32);
    expect(calls.length).toBe(40 + twoPass);
    fm.dispose();
  });

  it('samples with each field call given the previous call’s prediction (zeros first), per batch', async () => {
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', selfCondition: true, field: small, seed: 4, device: 'cpu' });
    await fm.fit({ weights: data }, { steps: 5, batchSize: 4 });
    const x0 = fm.drawPriorSamples(5, 3);
    const calls = record(fm.field);
    const steps = 4;
    fm.sample({ n: 5, steps, x0, batchSize: 3 }); // two batches: 3 + 2 networks
    expect(calls.length).toBe(2 * steps);
    for (const [b, from] of [[0, 0], [1, steps]] as const) {
      const B = b === 0 ? 3 : 2;
      expect(calls[from]!.aux!.length).toBe(B * P);
      expect(Array.from(calls[from]!.aux!).every((v) => v === 0)).toBe(true);
      // From the state each call is given, where the previous call's prediction lies.
      for (let k = 1; k < steps; k++) expect(calls[from + k]!.aux!).toAllClose(column(arch, calls[from + k - 1]!.out, calls[from + k]!.xt), { atol: 1e-5, rtol: 1e-4 });
    }
    // The same with the thesis' x0-anchored velocity, which forms its velocity in the prediction's own array.
    calls.length = 0;
    fm.sample({ n: 3, steps, x0: x0.slice(0, 3 * P), velocity: 'x0-anchored' });
    for (let k = 1; k < steps; k++) expect(calls[k]!.aux!).toAllClose(column(arch, calls[k - 1]!.out, calls[k]!.xt), { atol: 1e-5, rtol: 1e-4 });
    // Outside a sampler the column is zero: predictX1 is the first call's prediction.
    const tail = calls.length;
    fm.predictX1(x0.slice(0, 3 * P), 0);
    expect(Array.from(calls[tail]!.aux!).every((v) => v === 0)).toBe(true);
    fm.dispose();
  });

  it('feeds the Geometric flow its canonicalised prediction, after the probe features of each entry', async () => {
    const a = mlp([30, 3, 2]);
    const Q = a.numParams;
    const K = 2;
    const fm = FlowMatcher.create({ arch: a, geometry: 'geometric', selfCondition: true, probeFeatures: { task: 'wdbc', probes: K }, field: small, seed: 2, device: 'cpu' });
    expect(fm.field.config.auxFeatures).toBe(K + 1);
    expect(fm.options.precondition).toBe(true);
    await fm.fit({ weights: new Rng(6).fillNormal(new Float32Array(8 * Q), 0, 0.3) }, { steps: 4, batchSize: 4 });
    const x0 = fm.drawPriorSamples(2, 9);
    const calls = record(fm.field);
    fm.sample({ n: 2, steps: 2, x0 });
    expect(calls.length).toBe(2);
    const [c1, c2] = calls as [Call, Call];
    for (const c of [c1, c2]) {
      // The first K columns of every entry are the probe features of the state the field is given.
      const probe = fm.probeFeaturesOf(c.xt)!.features;
      for (let i = 0; i < 2 * Q; i++) for (let k = 0; k < K; k++) expect(c.aux![i * (K + 1) + k]).toBe(probe[i * K + k]);
    }
    const last = (c: Call): number[] => Array.from({ length: 2 * Q }, (_, i) => c.aux![i * (K + 1) + K]!);
    expect(last(c1).every((v) => v === 0)).toBe(true);
    // x̂1 = x_t + (1 − t)·F at t = 0 (preconditioning), then onto the spheres; the column is its displacement from the
    // second call's state.
    const xhat = new Float32Array(2 * Q);
    for (let i = 0; i < xhat.length; i++) xhat[i] = c1.xt[i]! + c1.out[i]!;
    expect(last(c2)).toAllClose(column(a, fm.geom.canonicalize(xhat), c2.xt), { atol: 1e-5, rtol: 1e-4 });
    fm.dispose();
  });

  it('is kept by save/load, changes the samples, and refuses what it cannot serve', async () => {
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', selfCondition: true, field: small, seed: 4, device: 'cpu' });
    await fm.fit({ weights: data }, { steps: 5, batchSize: 4 });
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-selfcond-')), 'flow.safetensors');
    fm.save(file);
    const loaded = FlowMatcher.load(file, { device: 'cpu' });
    expect(loaded.options.selfCondition).toBe(true);
    expect(loaded.field.config.auxFeatures).toBe(1);
    const x0 = fm.drawPriorSamples(3, 2);
    const a = fm.sample({ n: 3, steps: 4, x0 });
    expect(Array.from(loaded.sample({ n: 3, steps: 4, x0 }))).toEqual(Array.from(a));
    // The column matters: with it held at zero the same start points end elsewhere.
    Object.defineProperty(loaded, 'selfConditioning', { get: () => false, set: () => undefined });
    expect(Array.from(loaded.sample({ n: 3, steps: 4, x0 }))).not.toEqual(Array.from(a));
    expect(fm.likelihoodUnsupported()).toMatch(/previous prediction/);
    // A flow without the option loads as one without it, and its file does not resume a self-conditioned flow.
    const plain = FlowMatcher.create({ arch, geometry: 'euclidean', field: small, seed: 4, device: 'cpu' });
    expect(plain.options.selfCondition).toBe(false);
    const plainFile = path.join(path.dirname(file), 'plain.safetensors');
    plain.save(plainFile);
    expect(() => fm.loadCheckpoint(plainFile)).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    for (const f of [fm, loaded, plain]) f.dispose();
    expect(() => FlowMatcher.create({ arch, selfCondition: true, prediction: 'velocity', precondition: false, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/selfCondition.*"x1"/) }));
    expect(() => FlowMatcher.create({ arch, selfCondition: 'yes' as never, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => FlowMatcher.create({ arch: [30, 3, 2], selfCondition: true, probeFeatures: { task: 'wdbc', probes: 64 }, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/at most 63/) }));
  });
});
