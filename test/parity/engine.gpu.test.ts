// Whole-engine parity: RtEngine<CudaOps> against RtEngine<CpuOps<float>> with the same parameters and inputs —
// forward (inference and training mode), MSE loss, every parameter gradient, one Adam step — over sparse and
// dense graphs, odd sizes, mixed architectures, heads 1–3, inFeatures 1/2, dirEmbed on/off (the cases and the
// tolerances, each with its reason, are in lib/internal/backendParity.ts). Skips without a CUDA device.
import { describe, expect, it } from 'vitest';
import { ENGINE_CASES, checkEngineCase } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';
import { Rng } from '../../lib/util/rng.js';
import { hasCuda } from '../helpers/native.js';

const cuda = hasCuda();
const timeout = cuda && binding().buildInfo().archs === 'emu' ? 1_200_000 : 120_000;

describe.skipIf(!cuda)('CUDA engine matches the CPU engine', () => {
  for (const c of ENGINE_CASES) {
    it(c.name, () => {
      const failed = checkEngineCase(binding(), 'cuda', c, 42).filter((r) => !r.pass);
      expect(failed.map((r) => `${r.name}: ${r.detail}`)).toEqual([]);
    }, timeout);
  }

  it('gradient clipping scales the Adam step the same way', () => {
    const failed = checkEngineCase(binding(), 'cuda', ENGINE_CASES[2]!, 7, 1e-3).filter((r) => !r.pass);
    expect(failed.map((r) => `${r.name}: ${r.detail}`)).toEqual([]);
  }, timeout);

  it('is deterministic: two engines give bitwise identical outputs and gradients', () => {
    const c = ENGINE_CASES[2]!;
    const runs = [0, 1].map(() => {
      const e = new (binding().NativeEngine)(c.config, 3, 'cuda', 'f32');
      e.setGraph(c.widths);
      const { P, G } = e.graphInfo();
      const rng = new Rng(11);
      const y = new Float32Array(P);
      e.forward(rng.fillNormal(new Float32Array(P)), Float32Array.from({ length: G }, () => rng.uniform()), y, true);
      e.zeroGrad();
      const loss = e.mse(rng.fillNormal(new Float32Array(P)), true);
      const g = new Float32Array(e.numParams());
      e.getGrads(g);
      e.dispose();
      return { y, g, loss };
    });
    expect(Buffer.from(runs[1]!.y.buffer).equals(Buffer.from(runs[0]!.y.buffer))).toBe(true);
    expect(Buffer.from(runs[1]!.g.buffer).equals(Buffer.from(runs[0]!.g.buffer))).toBe(true);
    expect(runs[1]!.loss).toBe(runs[0]!.loss);
  }, timeout);

  it('frees all of its device memory on dispose', () => {
    const before = binding().deviceMemory().live;
    const c = ENGINE_CASES[0]!;
    const e = new (binding().NativeEngine)(c.config, 1, 'cuda', 'f32');
    e.setGraph(c.widths);
    const { P, G } = e.graphInfo();
    e.forward(new Float32Array(P), new Float32Array(G), new Float32Array(P), true);
    e.mse(new Float32Array(P), true);
    e.adamStep(1e-3, 0.9, 0.999, 1e-8, 0, 0);
    expect(binding().deviceMemory().live).toBeGreaterThan(before);
    e.dispose();
    expect(binding().deviceMemory().live).toBe(before);
  }, timeout);
});
