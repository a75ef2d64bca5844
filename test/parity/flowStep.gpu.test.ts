// The device-resident flow training step on CUDA (native/core/flow_step.h), prior drawn on the device: against the
// host-orchestrated step on the same device (WSF_FUSED_STEP=0: the same kernels called one by one on host arrays), against the fused step on
// the CPU, and its device memory (the resident training set counted while training, everything freed after).
// Skips without CUDA; runs in CI on the emulated kernels (native/dev/README.md).
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { FlowMatcher, type FlowOptions } from '../../lib/flow/FlowMatcher.js';
import { binding } from '../../lib/native/binding.js';
import { Rng } from '../../lib/util/rng.js';
import { restoreEnvAfterEach } from '../helpers/env.js';
import { maxRel } from '../helpers/allClose.js';
import { hasCuda } from '../helpers/native.js';

const cuda = hasCuda();
const emu = cuda && binding().buildInfo().archs === 'emu';
const timeout = emu ? 600_000 : 60_000;

const arch = mlp([6, 5, 4, 3]);
const P = arch.numParams;
const rng = new Rng(3);
const N = 40;
const data = rng.fillNormal(new Float32Array(N * P), 0, 0.4);

restoreEnvAfterEach(['WSF_FUSED_STEP', 'WSF_DEVICE_PRIOR']);

async function train(opts: Partial<FlowOptions>, device: 'cpu' | 'cuda', fused: boolean, steps = 6): Promise<{ params: Float32Array; ema: Float32Array; loss: number; regions: string[]; held: number }> {
  process.env.WSF_FUSED_STEP = fused ? '1' : '0';
  delete process.env.WSF_DEVICE_PRIOR; // the default: the prior on the device where the field runs on CUDA
  const fm = FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device, ...opts });
  try {
    fm.field.setProfiling(true);
    let held = 0;
    const r = await fm.fit({ weights: data }, { steps, batchSize: 4, ema: 0.9, logEvery: 1, onLog: () => { held = Math.max(held, fm.field.bytesHeld); } });
    const ema = Float32Array.from((fm as unknown as { ema: Float32Array }).ema);
    return { params: fm.field.getParams(), ema, loss: r.loss, regions: Object.keys(fm.field.profile()), held };
  } finally {
    fm.dispose();
  }
}

describe.skipIf(!cuda)('fused flow step on CUDA', () => {
  const configs: [string, Partial<FlowOptions>][] = [
    ['geometric', { geometry: 'geometric' }],
    ['normalized', { geometry: 'normalized' }],
    ['euclidean, layer scaling', { geometry: 'euclidean', layerScaling: true, precondition: true }],
    ['geometric, mixture prior drawn on the device', { geometry: 'geometric', prior: { kind: 'mixture', components: 3 } }],
    ['euclidean, zoo prior drawn on the device', { geometry: 'euclidean', prior: { kind: 'zoo', members: 7 } }],
    ['geometric, chunked recompute-mode field (11 pairs per chunk)', { geometry: 'geometric', field: { D: 8, layers: 2, recompute: true, chunkRows: 11 } }],
  ];
  it.each(configs)('%s: matches the host-orchestrated CUDA step and the fused CPU step', async (_name, opts) => {
    const fused = await train(opts, 'cuda', true);
    const host = await train(opts, 'cuda', false);
    const cpu = await train(opts, 'cpu', true);
    expect(fused.regions).toContain('flow.inputs');
    expect(fused.regions).toContain('flow.prior'); // on CUDA the prior is drawn on the device by default
    expect(host.regions).not.toContain('flow.inputs');
    // Same kernels and the same double arithmetic; on a GPU the noise draws' log/cos/sin may move a last bit.
    if (emu) {
      expect(maxRel(fused.params, host.params)).toBe(0);
      expect(maxRel(fused.ema, host.ema)).toBe(0);
    } else {
      expect(maxRel(fused.params, host.params)).toBeLessThan(1e-5);
      expect(maxRel(fused.ema, host.ema)).toBeLessThan(1e-5);
    }
    expect(Math.abs(fused.loss - host.loss)).toBeLessThanOrEqual(1e-6 * Math.abs(host.loss));
    // Against the CPU: the engine's FP32 parity after six Adam steps (reduction orders differ).
    expect(maxRel(fused.params, cpu.params)).toBeLessThan(1e-3);
    expect(Math.abs(fused.loss - cpu.loss)).toBeLessThan(1e-4 * Math.abs(cpu.loss) + 1e-6);
  }, timeout);

  it.each([
    ['geometric, Euler', { geometry: 'geometric' }, 'euler'],
    ['euclidean, layer scaling, Euler', { geometry: 'euclidean', layerScaling: true, precondition: true }, 'euler'],
    ['geometric, reference semantics, Euler', { geometry: 'geometric', semantics: 'reference' }, 'euler'],
    ['geometric, RK4', { geometry: 'geometric' }, 'rk4'],
    ['normalized, midpoint', { geometry: 'normalized' }, 'midpoint'],
  ] as [string, Partial<FlowOptions>, 'euler' | 'midpoint' | 'rk4'][])('the sampler on the device (%s) matches the host sampler on CUDA and the CPU', async (_name, opts, solver) => {
    process.env.WSF_FUSED_STEP = '1';
    const fms = (['cuda', 'cpu'] as const).map((device) => FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device, ...opts }));
    try {
      // The same parameters on both devices (the CUDA flow's), so only the sampler's arithmetic differs.
      await fms[0]!.fit({ weights: data }, { steps: 4, batchSize: 4 });
      await fms[1]!.fit({ weights: data }, { steps: 1, batchSize: 4 });
      fms[1]!.field.setParams(fms[0]!.field.getParams());
      const dev = fms[0]!.sample({ n: 5, steps: 6, batchSize: 3, seed: 4, solver });
      const cpu = fms[1]!.sample({ n: 5, steps: 6, batchSize: 3, seed: 4, solver });
      process.env.WSF_FUSED_STEP = '0';
      const host = fms[0]!.sample({ n: 5, steps: 6, batchSize: 3, seed: 4, solver });
      if (emu) expect(maxRel(dev, host)).toBe(0);
      else expect(maxRel(dev, host)).toBeLessThan(1e-5);
      expect(maxRel(dev, cpu)).toBeLessThan(1e-3);
    } finally {
      for (const f of fms) f.dispose();
    }
  }, timeout);

  it('the renoising sampler (host loop over the field) gives the same networks on CUDA as on the CPU', async () => {
    const fms = (['cuda', 'cpu'] as const).map((device) => FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device, geometry: 'geometric', prior: { kind: 'gaussian', std: 0.5 } }));
    try {
      await fms[0]!.fit({ weights: data }, { steps: 4, batchSize: 4 });
      await fms[1]!.fit({ weights: data }, { steps: 1, batchSize: 4 });
      fms[1]!.field.setParams(fms[0]!.field.getParams());
      const dev = fms[0]!.sample({ n: 5, steps: 6, batchSize: 3, seed: 4, renoise: 0.7 });
      const cpu = fms[1]!.sample({ n: 5, steps: 6, batchSize: 3, seed: 4, renoise: 0.7 });
      expect(maxRel(dev, cpu)).toBeLessThan(1e-3);
      expect(maxRel(dev, fms[0]!.sample({ n: 5, steps: 6, batchSize: 3, seed: 4 }))).toBeGreaterThan(1e-3); // not the Euler path
    } finally {
      for (const f of fms) f.dispose();
    }
  }, timeout);

  it.skipIf(!emu)('the device sampler does not stop the host at every step: one wait per 16 field evaluations (emulator count)', async () => {
    process.env.WSF_FUSED_STEP = '1';
    const fm = FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device: 'cuda', geometry: 'geometric' });
    try {
      await fm.fit({ weights: data }, { steps: 2, batchSize: 4 });
      const waits = (steps: number, solver: 'euler' | 'midpoint' | 'rk4'): number => {
        const w0 = binding().emuHostWaits!();
        fm.sample({ n: 3, steps, batchSize: 3, seed: 4, solver });
        return binding().emuHostWaits!() - w0;
      };
      waits(4, 'rk4'); // the first call allocates the sampler's buffers
      // The waits outside the loop (the EMA swapped in, the start points, the result) are the same for every length
      // of one solver; in the loop, one per chunk of 16 evaluations (Euler 1 per step, midpoint 2, RK4 4).
      for (const [solver, perStep] of [['euler', 1], ['midpoint', 2], ['rk4', 4]] as const) {
        const base = waits(4, solver);
        expect(waits(20, solver) - base).toBe(Math.ceil((20 * perStep) / 16) - Math.ceil((4 * perStep) / 16));
      }
    } finally {
      fm.dispose();
    }
  }, timeout);

  it('holds the training set on the device while training and frees everything after', async () => {
    const before = binding().deviceMemory().live;
    const fused = await train({ geometry: 'geometric' }, 'cuda', true, 2);
    const host = await train({ geometry: 'geometric' }, 'cuda', false, 2);
    expect(fused.held - host.held).toBeGreaterThanOrEqual(N * P * 4);
    expect(binding().deviceMemory().live).toBe(before);
  }, timeout);
});
