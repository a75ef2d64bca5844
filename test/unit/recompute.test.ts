// Recompute mode (VectorField `recompute`, RtConfig::recompute): training keeps only each layer's output states and
// recomputes the rest in the backward pass, with the input MLP's activations and ∂L/∂Pe sharing the work set's
// block. Everything it returns must equal the default mode's bit for bit — outputs, parameter and input gradients,
// repeated backward passes, input-only VJPs, Adam steps — while holding less memory.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { setFreeMemoryProbe, VectorField, type VectorFieldOptions } from '../../lib/engine/VectorField.js';
import { WsfError } from '../../lib/errors.js';
import { Rng } from '../../lib/util/rng.js';

function same(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) d++;
  return a.length === b.length ? d : Number.POSITIVE_INFINITY;
}

interface Run {
  out: Float32Array;
  grads: Float32Array;
  inputGrad: Float32Array;
  twice: Float32Array;
  vjp: Float32Array;
  params: Float32Array;
  held: number;
}

function runField(opts: Omit<VectorFieldOptions, 'recompute'>, recompute: boolean, B: number): Run {
  const arch = mlp(opts.arch as number[]);
  const P = arch.numParams;
  const rng = new Rng(17);
  const xt = rng.fillNormal(new Float32Array(B * P), 0, 0.3);
  const t = Float32Array.from({ length: B }, (_, i) => (i + 0.5) / B);
  const dy = rng.fillNormal(new Float32Array(B * P), 0, 1);
  const u = rng.fillNormal(new Float32Array(B * P), 0, 1);
  const aux = opts.auxInput === true ? { aux: rng.fillNormal(new Float32Array(B * P), 0, 1) } : {};
  const f = VectorField.create({ ...opts, recompute, seed: 5, device: 'cpu' });
  try {
    const out = f.forward(xt, t, { training: true, ...aux });
    f.zeroGrad();
    const inputGrad = new Float32Array(B * P);
    f.backward(dy, { inputGrad });
    const grads = Float32Array.from(f.getGrads());
    f.backward(dy); // a second backward after the same forward accumulates the same gradient again
    const twice = Float32Array.from(f.getGrads());
    const vjp = f.inputVjp(u);
    f.step({ lr: 1e-2 });
    // A second step on the same batch (the forward after an Adam step).
    f.forward(xt, t, { training: true, ...aux });
    f.zeroGrad();
    f.backward(dy);
    f.step({ lr: 1e-2 });
    return { out, grads, inputGrad, twice, vjp, params: f.getParams(), held: f.bytesHeld };
  } finally {
    f.dispose();
  }
}

describe('recompute mode', () => {
  const cases: [string, Omit<VectorFieldOptions, 'recompute'>, number][] = [
    ['sparse 6-5-4-3, 3 layers, 2 heads', { arch: [6, 5, 4, 3], D: 8, layers: 3, heads: 2 }, 3],
    ['dense, time input, 4 layers', { arch: [5, 4, 3], D: 8, layers: 4, graph: 'dense', timeInput: true }, 2],
    ['hybrid, aux input', { arch: [6, 5, 4, 3], D: 12, layers: 2, graph: 'hybrid', auxInput: true }, 2],
    ['one layer', { arch: [6, 5, 3], D: 8, layers: 1 }, 2],
    ['hidden identity, D=32', { arch: [20, 10, 10], D: 32, layers: 5, hiddenIdentity: true }, 2],
  ];
  it.each(cases)('%s: the same outputs, gradients, VJPs and Adam steps bit for bit, less memory', (_name, opts, B) => {
    const base = runField(opts, false, B);
    const rc = runField(opts, true, B);
    expect(same(rc.out, base.out)).toBe(0);
    expect(same(rc.grads, base.grads)).toBe(0);
    expect(same(rc.inputGrad, base.inputGrad)).toBe(0);
    expect(same(rc.twice, base.twice)).toBe(0);
    expect(same(rc.vjp, base.vjp)).toBe(0);
    expect(same(rc.params, base.params)).toBe(0);
    expect(base.grads.some((g) => g !== 0)).toBe(true);
    // (Bytes held include parameters and Adam state; on these toy graphs with ≥ 2 layers recompute mode holds
    // 0.49–0.71 of the default — the hybrid two-layer case the most, since the default CPU backward keeps no ∂L/∂Pe.)
    if ((opts.layers ?? 5) > 1) expect(rc.held).toBeLessThan(0.75 * base.held);
  });

  it('MNIST 784-10-10 (D=32, batch 8): the training step holds under half a gigabyte', () => {
    const arch = mlp([784, 10, 10]);
    const B = 8;
    const rng = new Rng(2);
    const xt = rng.fillNormal(new Float32Array(B * arch.numParams), 0, 0.3);
    const held: number[] = [];
    for (const recompute of [false, true]) {
      const f = VectorField.create({ arch, D: 32, layers: 5, seed: 1, device: 'cpu', recompute });
      try {
        f.forward(xt, 0.5, { training: true });
        held.push(f.bytesHeld);
      } finally {
        f.dispose();
      }
    }
    expect(held[0]!).toBeGreaterThan(1e9); // the default keeps every layer's activations (~1.2 GB)
    expect(held[1]!).toBeLessThan(0.5e9);
  });

  it('a device out-of-memory in training names recompute mode (and stays ERR_OOM); inference errors pass unchanged', () => {
    const f = VectorField.create({ arch: [6, 5, 3], D: 8, layers: 2, device: 'cpu' });
    try {
      // The native engine's forward replaced by one that fails as a full device would (its methods are read-only).
      const holder = f as unknown as { native: object };
      const real = holder.native as Record<string | symbol, unknown>;
      holder.native = new Proxy(real, {
        get: (target, key) => {
          if (key === 'forward') {
            return () => {
              throw new WsfError('device out of memory allocating 123 bytes', 'ERR_OOM');
            };
          }
          const v = target[key];
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const xt = new Float32Array(mlp([6, 5, 3]).numParams);
      expect(() => f.forward(xt, 0.5, { training: true })).toThrow(expect.objectContaining({ code: 'ERR_OOM', message: expect.stringMatching(/allocating 123 bytes; recompute mode .*wsflow train --recompute/) }));
      expect(() => f.forward(xt, 0.5)).toThrow(expect.objectContaining({ code: 'ERR_OOM', message: 'device out of memory allocating 123 bytes' }));
    } finally {
      f.dispose();
    }
  });

  it('the engine predicts its training memory exactly (trainingBytes = bytesHeld after a training forward)', () => {
    const cases: [Omit<VectorFieldOptions, 'recompute'>, number][] = [
      [{ arch: [6, 5, 4, 3], D: 8, layers: 3, heads: 2 }, 3],
      [{ arch: [5, 4, 3], D: 8, layers: 4, graph: 'dense', timeInput: true }, 2],
      [{ arch: [6, 5, 4, 3], D: 12, layers: 2, graph: 'hybrid', auxInput: true }, 2],
      [{ arch: [6, 5, 3], D: 8, layers: 1 }, 1],
      [{ arch: [6, 5, 3], D: 8, layers: 0 }, 2],
      [{ arch: [20, 10, 10], D: 32, layers: 5, hiddenIdentity: true }, 2],
    ];
    for (const [opts, B] of cases) {
      for (const recompute of [false, true]) {
        const f = VectorField.create({ ...opts, recompute, device: 'cpu' });
        try {
          const P = mlp(opts.arch as number[]).numParams;
          const aux = opts.auxInput === true ? { aux: new Float32Array(B * P) } : {};
          f.forward(new Float32Array(B * P), 0.5, { training: true, ...aux });
          const native = (f as unknown as { native: { trainingBytes(r: boolean, c?: number, d?: string): number } }).native;
          expect(native.trainingBytes(recompute), `${JSON.stringify(opts)} recompute ${recompute}`).toBe(f.bytesHeld);
          expect(native.trainingBytes(recompute, undefined, 'cpu')).toBe(f.bytesHeld);
          // The CUDA layout (planned from the CPU: wsflow info --memory --device cuda; checked against a CUDA engine
          // in test/parity/deviceOom.gpu.test.ts) holds ∂L/∂Pe, which the CPU's default-mode backward does not.
          if (!recompute && (opts.layers ?? 5) > 0) expect(native.trainingBytes(false, undefined, 'cuda')).toBeGreaterThan(f.bytesHeld);
          expect(() => native.trainingBytes(recompute, undefined, 'gpu')).toThrow(/device must be 'cpu' or 'cuda', got 'gpu'/);
        } finally {
          f.dispose();
        }
      }
    }
  });

  it('the engine predicts its inference memory exactly (inferenceGraphBytes = what an inference forward adds)', () => {
    // On the CPU an inference forward holds no pair-MLP intermediates (the fused op keeps them in block scratch).
    const cases: [VectorFieldOptions, number][] = [
      [{ arch: [6, 5, 4, 3], D: 8, layers: 3, heads: 2 }, 3],
      [{ arch: [5, 4, 3], D: 8, layers: 4, graph: 'dense', timeInput: true }, 2],
      [{ arch: [6, 5, 4, 3], D: 12, layers: 2, graph: 'hybrid', auxInput: true, recompute: true }, 2],
      [{ arch: [20, 10, 10], D: 32, layers: 5, hiddenIdentity: true, recompute: true, chunkRows: 50 }, 2],
    ];
    for (const [opts, B] of cases) {
      const f = VectorField.create({ ...opts, device: 'cpu' });
      try {
        const base = f.bytesHeld;
        const P = mlp(opts.arch as number[]).numParams;
        const aux = opts.auxInput === true ? { aux: new Float32Array(B * P) } : {};
        f.forward(new Float32Array(B * P), 0.5, aux);
        const native = (f as unknown as { native: { inferenceGraphBytes(): number } }).native;
        expect(base + native.inferenceGraphBytes(), JSON.stringify(opts)).toBe(f.bytesHeld);
        // and less than a training forward of the same batch holds (unless that runs in chunks)
        if (opts.chunkRows === undefined) {
          f.forward(new Float32Array(B * P), 0.5, { training: true, ...aux });
          expect(base + native.inferenceGraphBytes()).toBeLessThan(f.bytesHeld);
        }
      } finally {
        f.dispose();
      }
    }
  });

  it("'auto' (the default) turns recompute on when the step would need more than 60 % of the free memory", () => {
    const arch = mlp([20, 10, 10]);
    const xt = new Rng(3).fillNormal(new Float32Array(2 * arch.numParams), 0, 0.3);
    // The free memory set between the two modes: the default step fits in it but not in auto's 60 % share of it.
    const planner = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu' });
    const plan = planner.memoryPlan(2).training;
    const held = planner.bytesHeld;
    planner.dispose();
    const free = plan.default - held / 2;
    expect(plan.default).toBeGreaterThan(0.6 * (free + held));
    expect(plan.recompute).toBeLessThanOrEqual(0.6 * (free + held));
    const prev = setFreeMemoryProbe(() => free);
    try {
      const tight = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu' });
      const roomy = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu', recompute: false });
      try {
        tight.forward(xt, 0.5, { training: true });
        roomy.forward(xt, 0.5, { training: true });
        expect(tight.recomputing).toBe(true);
        expect(roomy.recomputing).toBe(false);
        expect(tight.bytesHeld).toBeLessThan(roomy.bytesHeld);
      } finally {
        tight.dispose();
        roomy.dispose();
      }
      // Almost nothing free: a CPU step that cannot fit in any mode is refused (the system would kill the process).
      setFreeMemoryProbe(() => 1000);
      const none = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu' });
      try {
        expect(() => none.forward(xt, 0.5, { training: true })).toThrow(expect.objectContaining({ code: 'ERR_OOM', message: expect.stringMatching(/training step on this batch needs about 3 MiB of memory even in recompute mode with chunks of 4096 pairs and 0 MiB is free: use a smaller batch/) }));
        expect(none.forward(xt, 0.5).length).toBe(xt.length); // inference is not refused
      } finally {
        none.dispose();
      }
      setFreeMemoryProbe(() => 1e15); // plenty
      const f = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu' });
      try {
        f.forward(xt, 0.5, { training: true });
        expect(f.recomputing).toBe(false);
      } finally {
        f.dispose();
      }
    } finally {
      setFreeMemoryProbe(prev);
    }
    expect(() => VectorField.create({ arch, device: 'cpu', recompute: 'sometimes' as unknown as boolean })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
  });

  it('is kept by save/load', () => {
    const f = VectorField.create({ arch: [6, 5, 3], D: 8, layers: 2, recompute: true, device: 'cpu' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-rc-'));
    try {
      const file = path.join(dir, 'f.safetensors');
      f.save(file);
      const g = VectorField.load(file, { device: 'cpu' });
      expect(g.config.recompute).toBe(true);
      g.dispose();
    } finally {
      f.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
