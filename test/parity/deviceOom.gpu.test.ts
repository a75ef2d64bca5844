// A full device: allocations that fail as on a GPU whose memory is spent, through the CUDA emulator's capacity
// (WSF_EMU_DEVICE_BYTES, native/dev/cuda_emu.h). A failed allocation must surface as ERR_OOM with a message that says
// what to change, leave the field or flow usable (the same outputs as before the failure), leak nothing, and the
// memory modes' 'auto' must pick a mode that fits the memory actually left. Emulator builds only (a real GPU cannot be
// filled on demand).
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { setFreeMemoryProbe, VectorField } from '../../lib/engine/VectorField.js';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { binding } from '../../lib/native/binding.js';
import type { NativeEngineConfig } from '../../lib/native/types.js';
import { Rng } from '../../lib/util/rng.js';
import { restoreEnvAfterEach } from '../helpers/env.js';
import { hasCuda } from '../helpers/native.js';

const emu = hasCuda() && binding().buildInfo().archs === 'emu';
const timeout = 600_000;

const arch = mlp([6, 5, 4, 3]);
const P = arch.numParams;
const B = 64;
const xt = new Rng(5).fillNormal(new Float32Array(B * P), 0, 0.3);
const small = xt.slice(0, 2 * P);

restoreEnvAfterEach(['WSF_EMU_DEVICE_BYTES', 'WSF_FUSED_STEP']);

/** Bytes allocated on the (emulated) device right now, as the device reports them. */
function deviceUsed(): number {
  const i = binding().cudaInfo();
  return i.totalMem - i.freeMem;
}

/** Leaves `extra` bytes free on the device from now on. */
function leaveFree(extra: number): void {
  process.env.WSF_EMU_DEVICE_BYTES = String(deviceUsed() + extra);
}

describe.skipIf(!emu)('a full device (emulated capacity)', () => {
  it('a training forward that does not fit fails with ERR_OOM naming recompute mode; the field keeps working and frees everything', () => {
    const live0 = binding().deviceMemory().live;
    const f = VectorField.create({ arch, D: 8, layers: 2, device: 'cuda', seed: 1, recompute: false });
    try {
      const ref = f.forward(small, 0.3);
      leaveFree(256 << 10);
      expect(() => f.forward(xt, 0.3, { training: true })).toThrow(
        expect.objectContaining({ code: 'ERR_OOM', message: expect.stringMatching(/^device out of memory allocating \d+ bytes; recompute mode/) }),
      );
      // Still usable with what is left, and the same numbers as before the failure.
      expect(f.forward(small, 0.3)).toEqual(ref);
      delete process.env.WSF_EMU_DEVICE_BYTES;
      const out = f.forward(xt, 0.3, { training: true });
      expect(out.subarray(0, 2 * P)).toEqual(ref);
    } finally {
      f.dispose();
    }
    expect(binding().deviceMemory().live).toBe(live0);
  }, timeout);

  it('a field that does not fit at all fails at creation with ERR_OOM and leaks nothing', () => {
    const live0 = binding().deviceMemory().live;
    leaveFree(4 << 10);
    expect(() => VectorField.create({ arch, D: 32, layers: 3, device: 'cuda', seed: 1 })).toThrow(expect.objectContaining({ code: 'ERR_OOM' }));
    expect(binding().deviceMemory().live).toBe(live0);
  }, timeout);

  it("recompute 'auto' reads what the device has left: room for recompute mode's step but not the default's (at its 60 % share) picks recompute, and the step runs", () => {
    const roomy = VectorField.create({ arch, D: 8, layers: 2, device: 'cuda', seed: 1 });
    try {
      roomy.forward(xt, 0.3, { training: true });
      expect(roomy.recomputing).toBe(false);
    } finally {
      roomy.dispose();
    }
    const f = VectorField.create({ arch, D: 8, layers: 2, device: 'cuda', seed: 1 });
    try {
      const plan = f.memoryPlan(B);
      const { default: full, recompute } = plan.training;
      expect(recompute).toBeLessThan(full);
      // 'auto' spends 60 % of what is free (the field's own bytes counted as free): room for recompute mode only.
      const held = f.bytesHeld;
      const cap = (recompute + full) / 2;
      leaveFree(Math.ceil(cap / 0.6) - held);
      const out = f.forward(xt, 0.3, { training: true });
      expect(out.every(Number.isFinite)).toBe(true);
      expect(f.recomputing).toBe(true);
    } finally {
      f.dispose();
    }
  }, timeout);

  it('sampling with little memory left splits the batch by what the device has free: the same networks, no failure', async () => {
    process.env.WSF_FUSED_STEP = '1';
    const data = new Rng(2).fillNormal(new Float32Array(40 * P), 0, 0.4);
    const fm = FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device: 'cuda', geometry: 'geometric' });
    try {
      await fm.fit({ weights: data }, { steps: 2, batchSize: 4 });
      const plenty = fm.sample({ n: 24, steps: 3, batchSize: 24, seed: 3 });
      const per = (fm.field as unknown as { native: { inferenceGraphBytes(): number } }).native.inferenceGraphBytes() / 24;
      fm.sample({ n: 1, steps: 1, batchSize: 1, seed: 3 }); // the field now holds a one-network graph
      // Room for a few networks' graph and activations (the sampler's own buffers come on top).
      leaveFree(Math.ceil(8 * per));
      const tight = fm.sample({ n: 24, steps: 3, batchSize: 24, seed: 3 });
      expect(tight).toEqual(plenty);
      // The control: told that memory is plentiful, the sampler takes the whole batch, which the device cannot hold.
      const prev = setFreeMemoryProbe(() => 1e12);
      try {
        expect(() => fm.sample({ n: 24, steps: 3, batchSize: 24, seed: 3 })).toThrow(expect.objectContaining({ code: 'ERR_OOM' }));
      } finally {
        setFreeMemoryProbe(prev);
      }
    } finally {
      fm.dispose();
    }
  }, timeout);

  it('training a flow on a device that cannot hold it rejects with ERR_OOM; the process and later flows are fine', async () => {
    process.env.WSF_FUSED_STEP = '1';
    const live0 = binding().deviceMemory().live;
    const data = new Rng(2).fillNormal(new Float32Array(40 * P), 0, 0.4);
    const fm = FlowMatcher.create({ arch, field: { D: 8, layers: 2, recompute: false }, seed: 2, device: 'cuda', geometry: 'geometric' });
    try {
      leaveFree(64 << 10);
      await expect(fm.fit({ weights: data }, { steps: 2, batchSize: 32 })).rejects.toMatchObject({ code: 'ERR_OOM' });
    } finally {
      fm.dispose();
    }
    expect(binding().deviceMemory().live).toBe(live0);
    delete process.env.WSF_EMU_DEVICE_BYTES;
    const again = FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device: 'cuda', geometry: 'geometric' });
    try {
      const r = await again.fit({ weights: data }, { steps: 2, batchSize: 32 });
      expect(Number.isFinite(r.loss)).toBe(true);
    } finally {
      again.dispose();
    }
    expect(binding().deviceMemory().live).toBe(live0);
  }, timeout);
});

describe.skipIf(!hasCuda())('memory counts across devices', () => {
  // The CPU engine keeps some pair-sized arrays in its fused ops' block scratch, so its own counts are smaller than a
  // CUDA engine's; asked for the CUDA layout (what `wsflow info --memory --device cuda` plans with) it must give the
  // CUDA engine's bytes exactly, in every memory mode and for an inference forward.
  it('a CPU engine counts what a CUDA engine holds, when asked for the CUDA layout', () => {
    const b = binding();
    const cfg: NativeEngineConfig = { D: 8, layers: 2, heads: 1, inputSlots: 6, hiddenSlots: 2, outputSlots: 3, mode: 'sparse', timeRule: 'all', dirEmbed: true, reverseValue: true, inFeatures: 1 };
    const archs = [[6, 5, 4, 3], [6, 4, 4, 3]];
    const cpu = new b.NativeEngine(cfg, 1, 'cpu', 'f32');
    try {
      cpu.setGraph(archs);
      const { P, G } = cpu.graphInfo();
      const x = new Rng(2).fillNormal(new Float32Array(P), 0, 0.3), t = new Float32Array(G).fill(0.4), out = new Float32Array(P);
      for (const [recompute, chunkRows] of [[false, 0], [true, 0], [true, 24]] as const) {
        const gpu = new b.NativeEngine({ ...cfg, recompute, chunkRows }, 1, 'cuda', 'f32');
        try {
          gpu.setGraph(archs);
          gpu.forward(x, t, out, true);
          expect(cpu.trainingBytes(recompute, chunkRows, 'cuda'), `training, recompute ${recompute}, chunks ${chunkRows}`).toBe(gpu.bytesHeld());
          expect(gpu.trainingBytes(recompute, chunkRows)).toBe(gpu.bytesHeld());
        } finally {
          gpu.dispose();
        }
      }
      // Default mode: the CPU layout is smaller (no ∂L/∂Pe).
      expect(cpu.trainingBytes(false, 0)).toBeLessThan(cpu.trainingBytes(false, 0, 'cuda'));
      const gpu = new b.NativeEngine(cfg, 1, 'cuda', 'f32');
      try {
        const base = gpu.bytesHeld(); // parameters and optimiser state: no graph yet
        gpu.setGraph(archs);
        gpu.forward(x, t, out, false);
        expect(base + gpu.inferenceGraphBytes()).toBe(gpu.bytesHeld());
        expect(cpu.inferenceGraphBytes('cuda')).toBe(gpu.inferenceGraphBytes());
        expect(cpu.inferenceGraphBytes()).toBeLessThan(cpu.inferenceGraphBytes('cuda'));
      } finally {
        gpu.dispose();
      }
      expect(() => cpu.inferenceGraphBytes('tpu' as 'cuda')).toThrow(/device must be 'cpu' or 'cuda'/);
    } finally {
      cpu.dispose();
    }
  }, timeout);
});
