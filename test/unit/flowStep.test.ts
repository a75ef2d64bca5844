// The device-resident flow training step (native/core/flow_step.h, VectorField.flowStep) on the CPU backend:
// its elementwise ops against the TypeScript step's formulas (f64, rounded once), its normal draws against the
// host's, whole training runs against the host-orchestrated step (WSF_FUSED_STEP=0) bit for bit, which flows take
// it, and its errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { setFreeMemoryProbe, VectorField } from '../../lib/engine/VectorField.js';
import { FlowMatcher, type FlowOptions } from '../../lib/flow/FlowMatcher.js';
import { runOp, type OpCase } from '../../lib/internal/backendParity.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { drawGaussianFit } from '../../lib/flow/prior.js';
import { binding } from '../../lib/native/binding.js';
import { Rng } from '../../lib/util/rng.js';
import type { WsfError } from '../../lib/errors.js';
import { restoreEnvAfterEach } from '../helpers/env.js';

const arch = mlp([6, 5, 4, 3]);
const P = arch.numParams;
const rng0 = new Rng(3);
const N = 40;
const data = rng0.fillNormal(new Float32Array(N * P), 0, 0.4);
const run = Int32Array.from({ length: N }, (_, i) => i % 5);
const init = rng0.fillNormal(new Float32Array(5 * P), 0, 0.2);

restoreEnvAfterEach(['WSF_FUSED_STEP', 'WSF_DEVICE_PRIOR']);

/** Trains a small flow for `steps` steps with the fused step on or off; returns its parameters, loss and profile. */
async function train(opts: Partial<FlowOptions>, fused: boolean, steps = 10, checkpoint?: string, devicePrior = false): Promise<{ params: Float32Array; ema: Float32Array; loss: number; regions: string[] }> {
  process.env.WSF_FUSED_STEP = fused ? '1' : '0';
  process.env.WSF_DEVICE_PRIOR = devicePrior ? '1' : '0';
  const fm = FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device: 'cpu', ...opts });
  try {
    fm.field.setProfiling(true);
    const r = await fm.fit({ weights: data, run, init }, { steps, batchSize: 4, ema: 0.9, ...(checkpoint !== undefined ? { checkpoint, checkpointEvery: 3 } : {}) });
    const ema = (fm as unknown as { ema: Float32Array }).ema;
    return { params: fm.field.getParams(), ema: Float32Array.from(ema), loss: r.loss, regions: Object.keys(fm.field.profile()) };
  } finally {
    fm.dispose();
  }
}

function countDiffering(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) d++;
  return a.length === b.length ? d : Number.POSITIVE_INFINITY;
}

function opOut(c: OpCase, key: string): Float32Array {
  return runOp(binding(), 'cpu', c).outputs[key]!;
}

describe('flow step ops (CPU) against the TypeScript step formulas', () => {
  const rng = new Rng(11);
  const B = 3;
  const Pn = 17;
  const n = B * Pn;
  const t = Float32Array.from(rng.fillNormal(new Float32Array(B), 0, 1), (x) => 1 / (1 + Math.exp(-x)));
  const scale = Float32Array.from(rng.fillNormal(new Float32Array(Pn), 0, 1), (x) => 0.05 + Math.abs(x));
  const a = rng.fillNormal(new Float32Array(n), 0, 1);
  const b = rng.fillNormal(new Float32Array(n), 0, 0.3);
  const c = rng.fillNormal(new Float32Array(n), 0, 1e-3);

  it('flow_path = (1 − t)·x0 + t·x1 + noise, rounded once', () => {
    const got = opOut({ name: 'p', op: 'flow_path', inputs: { x0: a, x1: b, noise: c, t }, outputs: { xt: { len: n } }, scalars: { B, P: Pn }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'xt');
    const want = Float32Array.from({ length: n }, (_, i) => {
      const tb = t[Math.floor(i / Pn)]!;
      return (1 - tb) * a[i]! + tb * b[i]! + c[i]!;
    });
    expect(Array.from(got)).toEqual(Array.from(want));
  });

  it('flow_input = x / scale', () => {
    const got = opOut({ name: 'i', op: 'flow_input', inputs: { x: a, scale }, outputs: { y: { len: n } }, scalars: { B, P: Pn }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'y');
    expect(Array.from(got)).toEqual(Array.from(a, (x, i) => Math.fround(x / scale[i % Pn]!)));
  });

  it.each([true, false])('flow_to_x1 and flow_to_dF (precondition %s)', (pre) => {
    const got = opOut({ name: 'x', op: 'flow_to_x1', inputs: { F: a, xt: b, t, scale }, outputs: { xhat: { len: n } }, scalars: { B, P: Pn, precondition: pre }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'xhat');
    const want = Float32Array.from({ length: n }, (_, i) => {
      const s = scale[i % Pn]!;
      return pre ? b[i]! + (1 - t[Math.floor(i / Pn)]!) * s * a[i]! : s * a[i]!;
    });
    expect(Array.from(got)).toEqual(Array.from(want));
    const d = opOut({ name: 'd', op: 'flow_to_dF', inputs: { t, scale }, outputs: { d: { len: n, init: c } }, scalars: { B, P: Pn, precondition: pre }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'd');
    const wantD = Float32Array.from({ length: n }, (_, i) => {
      const s = scale[i % Pn]!;
      return pre ? c[i]! * (1 - t[Math.floor(i / Pn)]!) * s : c[i]! * s;
    });
    expect(Array.from(d)).toEqual(Array.from(wantD));
    const noScale = opOut({ name: 'x', op: 'flow_to_x1', inputs: { F: a, xt: b, t }, outputs: { xhat: { len: n } }, scalars: { B, P: Pn, precondition: pre, scale: null }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'xhat');
    expect(Array.from(noScale)).toEqual(Array.from({ length: n }, (_, i) => Math.fround(pre ? b[i]! + (1 - t[Math.floor(i / Pn)]!) * a[i]! : a[i]!)));
  });

  it('ema_update = decay·ema + (1 − decay)·p', () => {
    const got = opOut({ name: 'e', op: 'ema_update', inputs: { p: a }, outputs: { ema: { len: n, init: b } }, scalars: { n, decay: 0.999 }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'ema');
    expect(Array.from(got)).toEqual(Array.from(b, (e, i) => Math.fround(0.999 * e + (1 - 0.999) * a[i]!)));
  });

  it('fill_normal_rows gives each row the host draws of its own seed; gaussian_fit_draw is drawGaussianFit', () => {
    const ld = 9;
    const counts = Int32Array.of(9, 1, 4);
    const seeds = Int32Array.of(0x12345678, -5, 7, 8, -1, 0);
    const got = opOut({ name: 'r', op: 'fill_normal_rows', inputs: { counts, seeds }, outputs: { out: { len: 3 * ld, init: new Float32Array(3 * ld).fill(-9) } }, scalars: { rows: 3, ld, mean: 0, stddev: 0.5 }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'out');
    for (let r = 0; r < 3; r++) {
      const want = new Float32Array(counts[r]!);
      binding().fillNormal(want, seeds[2 * r]! >>> 0, seeds[2 * r + 1]! >>> 0, 0, 0.5);
      expect(Array.from(got.subarray(r * ld, r * ld + counts[r]!)), `row ${r}`).toEqual(Array.from(want));
      expect(Array.from(got.subarray(r * ld + counts[r]!, (r + 1) * ld)).every((v) => v === -9), `row ${r} padding untouched`).toBe(true);
    }
    // Two components (2 and 3 basis rows), three rows of draws.
    const Pg = 11;
    const means = rng.fillNormal(new Float32Array(2 * Pg), 0, 1);
    const basis = rng.fillNormal(new Float32Array(5 * Pg), 0, 0.1);
    const row0 = Int32Array.of(0, 2, 5);
    const comp = Int32Array.of(1, 0, 1);
    const eps = rng.fillNormal(new Float32Array(3 * 3), 0, 1);
    const out = opOut({ name: 'g', op: 'gaussian_fit_draw', inputs: { eps, comp, mean: means, basis, row0 }, outputs: { out: { len: 3 * Pg } }, scalars: { ld_eps: 3, B: 3, P: Pg }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'out');
    for (let b = 0; b < 3; b++) {
      const c = comp[b]!;
      const m = row0[c + 1]! - row0[c]!;
      const want = drawGaussianFit(means.subarray(c * Pg, (c + 1) * Pg), basis.subarray(row0[c]! * Pg, row0[c + 1]! * Pg), eps.subarray(b * 3, b * 3 + m), new Float32Array(Pg));
      expect(Array.from(out.subarray(b * Pg, (b + 1) * Pg)), `row ${b}`).toEqual(Array.from(want));
    }
    const iso = opOut({ name: 'g', op: 'gaussian_fit_draw', inputs: { eps: basis.subarray(0, 3 * Pg), comp, mean: means }, outputs: { out: { len: 3 * Pg } }, scalars: { ld_eps: Pg, B: 3, P: Pg, basis: null, row0: null }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'out');
    expect(Array.from(iso)).toEqual(Array.from({ length: 3 * Pg }, (_, i) => Math.fround(basis[i]! + means[comp[Math.floor(i / Pg)]! * Pg + (i % Pg)]!)));
  });

  it('flow_velocity = (x̂ − x)·inv with both stores rounded; flow_axpy = x + dt·v', () => {
    const v = opOut({ name: 'v', op: 'flow_velocity', inputs: { xhat: a, x: b }, outputs: { v: { len: n } }, scalars: { n, inv: 1 / 0.37 }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'v');
    expect(Array.from(v)).toEqual(Array.from(a, (x, i) => Math.fround(Math.fround(x - b[i]!) * (1 / 0.37))));
    const y = opOut({ name: 'y', op: 'flow_axpy', inputs: { x: a, v: c }, outputs: { y: { len: n } }, scalars: { n, dt: 1 / 7 }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'y');
    expect(Array.from(y)).toEqual(Array.from(a, (x, i) => Math.fround(x + (1 / 7) * c[i]!)));
  });

  it('flow_rk4_combine = (k1 + 2·k2 + 2·k3 + k4)/6 in solvers.ts\' order', () => {
    const k4 = rng.fillNormal(new Float32Array(n), 0, 1);
    const v = opOut({ name: 'r', op: 'flow_rk4_combine', inputs: { k1: a, k2: b, k3: c, k4 }, outputs: { v: { len: n } }, scalars: { n }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'v');
    expect(Array.from(v)).toEqual(Array.from(a, (x, i) => Math.fround((x + 2 * b[i]! + 2 * c[i]! + k4[i]!) / 6)));
  });

  it('fill_normal gives the host draws (binding.fillNormal) for the same seed', () => {
    for (const len of [1, 2, 1001]) {
      const got = opOut({ name: 'f', op: 'fill_normal', inputs: {}, outputs: { out: { len } }, scalars: { n: len, seed_hi: 0x9e3779b9, seed_lo: 77, mean: 0.25, stddev: 1.5 }, tol: { atol: 0, rtol: 0, nmse: 0 } }, 'out');
      const want = new Float32Array(len);
      binding().fillNormal(want, 0x9e3779b9, 77, 0.25, 1.5);
      expect(Array.from(got)).toEqual(Array.from(want));
    }
  });
});

describe('fused flow training step (CPU) against the host-orchestrated step', () => {
  const configs: [string, Partial<FlowOptions>][] = [
    ['geometric', { geometry: 'geometric' }],
    ['normalized', { geometry: 'normalized' }],
    ['euclidean, layer scaling, precondition', { geometry: 'euclidean', layerScaling: true, precondition: true }],
    ['geometric, mixture prior', { geometry: 'geometric', prior: { kind: 'mixture', components: 3 } }],
    ['geometric, OT pool 2', { geometry: 'geometric', coupling: 'ot', otPool: 2 }],
    ['normalized, trajectory coupling', { geometry: 'normalized', coupling: 'trajectory', prior: { kind: 'init' } }],
    ['geometric, component OT', { geometry: 'geometric', prior: { kind: 'mixture', components: 2 }, coupling: 'component-ot' }],
    ['geometric, reference semantics', { geometry: 'geometric', semantics: 'reference' }],
    ['geometric, prior pool', { geometry: 'geometric', priorPool: 16 }],
    ['geometric, recompute-mode field', { geometry: 'geometric', field: { D: 8, layers: 3, recompute: true } }],
    ['geometric, chunked recompute-mode field (13 pairs per chunk)', { geometry: 'geometric', field: { D: 8, layers: 3, recompute: true, chunkRows: 13 } }],
  ];
  it.each(configs)('%s: the same parameters and loss bit for bit, through the fused step', async (_name, opts) => {
    const fused = await train(opts, true);
    const host = await train(opts, false);
    expect(fused.regions).toContain('flow.inputs');
    expect(fused.regions).toContain('flow.loss');
    expect(host.regions).not.toContain('flow.inputs');
    expect(fused.loss).toBe(host.loss);
    expect(Number.isFinite(fused.loss)).toBe(true);
    expect(countDiffering(fused.params, host.params)).toBe(0);
    expect(countDiffering(fused.ema, host.ema)).toBe(0); // the EMA kept on the device
    expect(countDiffering(fused.ema, fused.params)).toBeGreaterThan(0);
  });

  it('checkpoints written during fused training hold the same EMA and parameters as the host step', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-fused-'));
    try {
      await train({ geometry: 'geometric' }, true, 7, path.join(dir, 'fused.safetensors'));
      await train({ geometry: 'geometric' }, false, 7, path.join(dir, 'host.safetensors'));
      const a = readSafetensors(path.join(dir, 'fused.safetensors')).tensors;
      const b = readSafetensors(path.join(dir, 'host.safetensors')).tensors;
      expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
      expect(a['__ema']).toBeDefined();
      for (const k of Object.keys(a)) expect(countDiffering(a[k]!.data as Float32Array, b[k]!.data as Float32Array), k).toBe(0);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const priors: [string, Partial<FlowOptions>][] = [
    ['Gaussian prior', { geometry: 'euclidean', prior: { kind: 'gaussian', std: 0.2, mean: 0.01 } }],
    ['zoo prior', { geometry: 'geometric', prior: { kind: 'zoo', members: 7 } }],
    ['mixture prior (k-means)', { geometry: 'geometric', prior: { kind: 'mixture', components: 3 } }],
    ['mixture prior by run', { geometry: 'normalized', prior: { kind: 'mixture', by: 'run', members: 4 } }],
    ['isotropic mixture prior', { geometry: 'geometric', prior: { kind: 'mixture', components: 3, std: 0.05 } }],
  ];
  it.each(priors)('%s drawn on the device: bit for bit the host draws', async (_name, opts) => {
    const dev = await train(opts, true, 10, undefined, true);
    const host = await train(opts, false);
    expect(dev.regions).toContain('flow.prior');
    expect(dev.loss).toBe(host.loss);
    expect(countDiffering(dev.params, host.params)).toBe(0);
    expect(countDiffering(dev.ema, host.ema)).toBe(0);
  });

  it('priors the device does not draw (init prior, prior pool, OT pairs) stay on the host under WSF_DEVICE_PRIOR=1', async () => {
    for (const opts of [{ prior: { kind: 'init' as const } }, { priorPool: 8 }, { coupling: 'ot' as const }]) {
      const r = await train({ geometry: 'geometric', ...opts }, true, 2, undefined, true);
      expect(r.regions, JSON.stringify(opts)).toContain('flow.inputs');
      expect(r.regions, JSON.stringify(opts)).not.toContain('flow.prior');
    }
  });

  it('flows with auxiliary inputs or velocity prediction keep the host step', async () => {
    const v = await train({ geometry: 'euclidean', prediction: 'velocity', precondition: false }, true, 2);
    expect(v.regions).not.toContain('flow.inputs');
    const c = await train({ geometry: 'geometric', prior: { kind: 'mixture', components: 2 }, componentInput: true }, true, 2);
    expect(c.regions).not.toContain('flow.inputs');
  });
});

describe('device sampler (CPU) against the host sampler', () => {
  const samplers: [string, Partial<FlowOptions>][] = [
    ['geometric', { geometry: 'geometric' }],
    ['normalized', { geometry: 'normalized' }],
    ['euclidean, layer scaling, precondition', { geometry: 'euclidean', layerScaling: true, precondition: true }],
    ['geometric, reference semantics (x0-anchored, no final canonicalisation)', { geometry: 'geometric', semantics: 'reference' }],
    ['euclidean, reference semantics', { geometry: 'euclidean', semantics: 'reference' }],
  ];
  it.each(samplers.flatMap(([name, o]) => (['euler', 'midpoint', 'rk4'] as const).map((solver) => [`${name}, ${solver}`, o, solver] as const)))('%s: the same networks bit for bit, EMA parameters, batches of 3', async (_name, opts, solver) => {
    process.env.WSF_FUSED_STEP = '1';
    const fm = FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device: 'cpu', ...opts });
    try {
      await fm.fit({ weights: data }, { steps: 8, batchSize: 4, ema: 0.9 });
      fm.field.setProfiling(true);
      const dev = fm.sample({ n: 5, steps: 7, batchSize: 3, seed: 4, solver });
      expect(Object.keys(fm.field.profile())).toContain('flow.velocity');
      process.env.WSF_FUSED_STEP = '0';
      fm.field.setProfiling(true);
      const host = fm.sample({ n: 5, steps: 7, batchSize: 3, seed: 4, solver });
      expect(Object.keys(fm.field.profile())).not.toContain('flow.velocity');
      expect(countDiffering(dev, host)).toBe(0);
      // Given start points, and without the EMA.
      const x0 = new Rng(9).fillNormal(new Float32Array(2 * P), 0, 0.2);
      process.env.WSF_FUSED_STEP = '1';
      const a = fm.sample({ n: 2, steps: 3, x0, useEma: false });
      process.env.WSF_FUSED_STEP = '0';
      expect(countDiffering(a, fm.sample({ n: 2, steps: 3, x0, useEma: false }))).toBe(0);
    } finally {
      fm.dispose();
    }
  });

  it('sampling inside fit() (a log callback) leaves training unchanged', async () => {
    const run = async (fused: boolean, sampling = true): Promise<{ params: Float32Array; samples: Float32Array[] }> => {
      process.env.WSF_FUSED_STEP = fused ? '1' : '0';
      const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: { D: 8, layers: 2 }, seed: 2, device: 'cpu' });
      const samples: Float32Array[] = [];
      try {
        await fm.fit({ weights: data }, { steps: 9, batchSize: 4, ema: 0.9, ...(sampling ? { logEvery: 3, onLog: () => samples.push(fm.sample({ n: 3, steps: 4, seed: 1 })) } : {}) });
        return { params: fm.field.getParams(), samples };
      } finally {
        fm.dispose();
      }
    };
    const f = await run(true);
    const h = await run(false);
    expect(f.samples.length).toBe(3);
    // Against the same training without any sampling, on each path (a fault both paths shared would pass f vs h).
    expect(countDiffering(f.params, (await run(true, false)).params)).toBe(0);
    expect(countDiffering(h.params, (await run(false, false)).params)).toBe(0);
    expect(countDiffering(f.params, h.params)).toBe(0);
    f.samples.forEach((x, i) => expect(countDiffering(x, h.samples[i]!), `samples at log ${i}`).toBe(0));
  });

  it('sampleAsync gives the same networks as sample, on the device path (off the main thread) and the host path', async () => {
    process.env.WSF_FUSED_STEP = '1';
    const fm = FlowMatcher.create({ arch: mlp([784, 10, 10]), geometry: 'geometric', field: { D: 16, layers: 3 }, seed: 2, device: 'cpu' });
    try {
      const zoo = new Rng(5).fillNormal(new Float32Array(8 * fm.arch.numParams), 0, 0.3);
      await fm.fit({ weights: zoo }, { steps: 2, batchSize: 4, ema: 0.5 });
      const want = fm.sample({ n: 6, steps: 6, batchSize: 4, seed: 3 });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 2);
      const pending = fm.sampleAsync({ n: 6, steps: 6, batchSize: 4, seed: 3 });
      await new Promise<void>((res) => setImmediate(res));
      expect(() => fm.field.getParams()).toThrow(expect.objectContaining({ code: 'ERR_CONTEXT_BUSY' }));
      const got = await pending;
      clearInterval(timer);
      expect(countDiffering(got, want)).toBe(0);
      expect(ticks).toBeGreaterThan(0);
      // The host path (a noisy sampler) and the device RK4 sampler through sampleAsync.
      for (const o of [{ noise: { scale: 0.05 } }, { solver: 'rk4' as const }]) {
        const want2 = fm.sample({ n: 2, steps: 2, seed: 3, ...o });
        expect(countDiffering(await fm.sampleAsync({ n: 2, steps: 2, seed: 3, ...o }), want2), JSON.stringify(o)).toBe(0);
      }
    } finally {
      fm.dispose();
    }
  });

  it('with little free memory the sampler evaluates batches in sub-batches: the same networks, less memory', async () => {
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: { D: 8, layers: 2 }, seed: 2, device: 'cpu' });
    try {
      await fm.fit({ weights: data }, { steps: 3, batchSize: 4, ema: 0.5 });
      const runs: { fused: string; out: Float32Array; held: number }[] = [];
      for (const fused of ['1', '0']) {
        process.env.WSF_FUSED_STEP = fused;
        const plenty = fm.sample({ n: 7, steps: 4, batchSize: 7, seed: 2 });
        const heldPlenty = fm.field.bytesHeld;
        const per = (fm.field as unknown as { native: { inferenceGraphBytes(): number } }).native.inferenceGraphBytes() / 7;
        const prev = setFreeMemoryProbe(() => (2.5 * per) / 0.6); // room for about two networks per forward
        try {
          const tight = fm.sample({ n: 7, steps: 4, batchSize: 7, seed: 2 });
          expect(countDiffering(tight, plenty), `fused ${fused}`).toBe(0);
          expect(fm.field.bytesHeld, `fused ${fused}`).toBeLessThan(heldPlenty);
          runs.push({ fused, out: tight, held: fm.field.bytesHeld });
          // The host sampler (a noisy one) chunks the field's forward the same way; so does RK4 on the device.
          const o = { n: 5, steps: 2, batchSize: 5, seed: 2 };
          const tightNoise = fm.sample({ ...o, noise: { scale: 0.05 } });
          const tightRk4 = fm.sample({ ...o, solver: 'rk4' });
          setFreeMemoryProbe(prev);
          expect(countDiffering(tightNoise, fm.sample({ ...o, noise: { scale: 0.05 } })), `noise, fused ${fused}`).toBe(0);
          expect(countDiffering(tightRk4, fm.sample({ ...o, solver: 'rk4' })), `rk4, fused ${fused}`).toBe(0);
        } finally {
          setFreeMemoryProbe(prev);
        }
      }
      expect(countDiffering(runs[0]!.out, runs[1]!.out)).toBe(0);
    } finally {
      fm.dispose();
    }
  });

  it('a failing device batch restores the parameters the sampler swapped for the EMA', async () => {
    process.env.WSF_FUSED_STEP = '1';
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: { D: 8, layers: 2 }, seed: 2, device: 'cpu' });
    try {
      await fm.fit({ weights: data }, { steps: 4, batchSize: 4, ema: 0.5 });
      const before = fm.field.getParams();
      const f = fm.field as unknown as { flowSample: () => Float32Array };
      const real = f.flowSample;
      f.flowSample = () => {
        throw new Error('device lost');
      };
      expect(() => fm.sample({ n: 2, steps: 2 })).toThrow(/device lost/);
      f.flowSample = real;
      expect(countDiffering(fm.field.getParams(), before)).toBe(0); // not left at the EMA
      expect(fm.sample({ n: 2, steps: 2 }).every(Number.isFinite)).toBe(true); // and the device sampler works again
    } finally {
      fm.dispose();
    }
  });

  it('guidance, noise and per-step callbacks keep the host sampler', async () => {
    process.env.WSF_FUSED_STEP = '1';
    const fm = FlowMatcher.create({ arch, geometry: 'geometric', field: { D: 8, layers: 2 }, seed: 2, device: 'cpu' });
    try {
      await fm.fit({ weights: data }, { steps: 2, batchSize: 4 });
      for (const o of [{ noise: { scale: 0.1 } }, { onStep: () => undefined }, { guidance: { lambda: 0.1, grad: (x: Float32Array) => new Float32Array(x.length) } }]) {
        fm.field.setProfiling(true);
        fm.sample({ n: 2, steps: 2, ...o });
        expect(Object.keys(fm.field.profile()), JSON.stringify(o)).not.toContain('flow.velocity');
      }
    } finally {
      fm.dispose();
    }
  });
});

describe('VectorField.flowStep errors', () => {
  const field = () => VectorField.create({ arch, D: 8, layers: 1, seed: 1, device: 'cpu' });
  const cfg = { sphere: true, canonical: true, mode: 'accurate' as const, lastNorm: 1, precondition: true, sigma: 0 };
  const batch = (B: number) => ({ x0: new Rng(5).fillNormal(new Float32Array(B * P), 0, 0.1), canonicalizeX0: true, t: new Float32Array(B).fill(0.5), noiseSeed: [0, 0] as const });

  it('refuses a step before configuration, an index outside the data, and a bad data length; the field stays usable', () => {
    const f = field();
    try {
      expect(() => f.flowStep({ ...batch(2), idx: Int32Array.of(0, 1) })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
      f.configureFlowStep(cfg, null);
      expect(() => f.flowStep({ ...batch(2), idx: Int32Array.of(0, 1) })).toThrow(/no training set is resident/);
      expect(() => f.setFlowData(new Float32Array(P + 1))).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
      f.setFlowData(data);
      expect(() => f.flowStep({ ...batch(2), idx: Int32Array.of(0, N) })).toThrow(/idx\[1\] = 40 is outside the resident training set \(0 … 39\)/);
      expect(() => f.flowStep({ ...batch(2), idx: Int32Array.of(0, 1), x1: data.subarray(0, 2 * P) })).toThrow(/exactly one of idx and x1/);
      expect(() => f.flowStep({ ...batch(2), idx: Int32Array.of(0) })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
      expect(() => f.flowStep({ ...batch(2), x0: new Float32Array(2 * P - 1), idx: Int32Array.of(0, 1) })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
      expect(() => f.flowStep({ ...batch(2), t: new Float32Array(0), idx: Int32Array.of(0, 1) })).toThrow(/at least one network/);
      const before = f.getParams();
      const r = f.flowStep({ ...batch(2), idx: Int32Array.of(3, 7) }, { lr: 1e-3 });
      expect(Number.isFinite(r.loss) && r.loss > 0).toBe(true);
      expect(r.gradNorm).toBeGreaterThan(0);
      expect(f.getParams()).not.toEqual(before);
      expect(f.stepCount).toBe(1);
    } finally {
      f.dispose();
    }
    expect(() => f.flowStep({ ...batch(2), idx: Int32Array.of(0, 1) })).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
  });

  it('a non-finite loss skips the step: ERR_NUMERIC, parameters and step count unchanged', () => {
    const f = field();
    try {
      f.configureFlowStep({ ...cfg, sphere: false, canonical: false }, null);
      const x1 = new Float32Array(2 * P).fill(Number.NaN);
      const before = f.getParams();
      expect(() => f.flowStep({ ...batch(2), x1 })).toThrow(expect.objectContaining({ code: 'ERR_NUMERIC' }));
      expect(f.getParams()).toEqual(before);
      expect(f.stepCount).toBe(0);
    } finally {
      f.dispose();
    }
  });

  it('checks the device prior: seeds and components required, components in range', () => {
    const f = field();
    try {
      f.configureFlowStep(cfg, null);
      f.setFlowData(data);
      const t = new Float32Array(2).fill(0.5);
      const base = { idx: Int32Array.of(0, 1), canonicalizeX0: true, t, noiseSeed: [0, 0] as const };
      expect(() => f.flowStep({ ...base, prior: { seeds: Int32Array.of(1, 2) } })).toThrow(/no prior is set on the device/);
      const means = data.subarray(0, 2 * P);
      f.setFlowPrior({ kind: 'fit', means, basis: null, rows: null, std: 0.1, perRow: true });
      expect(() => f.flowStep({ ...base, prior: { seeds: Int32Array.of(1, 2, 3, 4) } })).toThrow(/needs each row's component/);
      expect(() => f.flowStep({ ...base, prior: { seeds: Int32Array.of(1, 2, 3, 4), components: Int32Array.of(0, 2) } })).toThrow(/component\[1\] = 2 is outside the prior's 2 components/);
      expect(() => f.flowStep({ ...base, prior: { seeds: Int32Array.of(1, 2, 3), components: Int32Array.of(0, 1) } })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
      expect(() => f.flowStep({ ...base, x0: new Float32Array(2 * P), prior: { seeds: Int32Array.of(1, 2) } })).toThrow(/exactly one of `x0` and `prior`/);
      expect(() => f.setFlowPrior({ kind: 'fit', means, basis: new Float32Array(3 * P), rows: Int32Array.of(0, 1, 2), std: 0, perRow: true })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
      expect(() => f.setFlowPrior({ kind: 'fit', means: new Float32Array(P + 1), basis: null, rows: null, std: 0.1, perRow: true })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
      const r = f.flowStep({ ...base, prior: { seeds: Int32Array.of(1, 2, 3, 4), components: Int32Array.of(1, 0) } });
      expect(Number.isFinite(r.loss)).toBe(true);
    } finally {
      f.dispose();
    }
  });

  it('the device sampler needs a configuration and whole networks', () => {
    const f = field();
    try {
      const grid = Float64Array.of(0, 0.5, 1);
      expect(() => f.flowSample(new Float32Array(P), grid, { anchored: false, canonicalEnd: true })).toThrow(/call flowConfigure first/);
      f.configureFlowStep(cfg, null);
      expect(() => f.flowSample(new Float32Array(P + 2), grid, { anchored: false, canonicalEnd: true })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
      expect(() => f.flowSample(new Float32Array(P), Float64Array.of(0), { anchored: false, canonicalEnd: true })).toThrow(/at least 2 points/);
      expect(f.flowSample(new Rng(2).fillNormal(new Float32Array(2 * P), 0, 0.3), grid, { anchored: false, canonicalEnd: true }).every(Number.isFinite)).toBe(true);
    } finally {
      f.dispose();
    }
  });

  it('flowStepAsync runs off the main thread: the same result, timers fire during the step, the field is busy until it settles', async () => {
    // A step long enough to see the event loop run: MNIST 784-10-10 at D=32 (hundreds of ms on a 2-core CPU).
    const march = mlp([784, 10, 10]);
    const Pm = march.numParams;
    const zoo = new Rng(4).fillNormal(new Float32Array(8 * Pm), 0, 0.3);
    const fields = [0, 1].map(() => VectorField.create({ arch: march, D: 32, layers: 5, seed: 1, device: 'cpu' }));
    try {
      for (const f of fields) {
        f.configureFlowStep(cfg, null);
        f.setFlowData(zoo);
      }
      const mk = (): Parameters<VectorField['flowStep']>[0] => ({ idx: Int32Array.of(0, 1, 2, 3), x0: new Rng(6).fillNormal(new Float32Array(4 * Pm), 0, 0.1), canonicalizeX0: true, t: Float32Array.of(0.2, 0.4, 0.6, 0.8), noiseSeed: [0, 0] });
      const sync = fields[0]!.flowStep(mk(), { lr: 1e-3 });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 2);
      const t0 = performance.now();
      const pending = fields[1]!.flowStepAsync(mk(), { lr: 1e-3 });
      expect(() => fields[1]!.getParams()).toThrow(expect.objectContaining({ code: 'ERR_CONTEXT_BUSY' }));
      expect(() => fields[1]!.dispose()).toThrow(expect.objectContaining({ code: 'ERR_CONTEXT_BUSY' }));
      const r = await pending;
      const ms = performance.now() - t0;
      clearInterval(timer);
      expect(r).toEqual(sync);
      expect(countDiffering(fields[1]!.getParams(), fields[0]!.getParams())).toBe(0);
      // Timers ran while the step worked (the loop was not blocked for the step's duration).
      expect(ticks).toBeGreaterThanOrEqual(Math.min(10, Math.floor(ms / 20)));
    } finally {
      for (const f of fields) f.dispose();
    }
  });

  it('flowStepAsync rejects with the step\'s code and the caller\'s stack; the field is usable after', async () => {
    const f = field();
    try {
      f.configureFlowStep({ ...cfg, sphere: false, canonical: false }, null);
      const x1 = new Float32Array(2 * P).fill(Number.NaN);
      const err = await f.flowStepAsync({ ...batch(2), x1 }).then(
        () => undefined,
        (e: unknown) => e as WsfError,
      );
      expect(err).toMatchObject({ code: 'ERR_NUMERIC', message: expect.stringMatching(/training loss became/) });
      expect(err!.stack).toMatch(/flowStep\.test\.ts/);
      expect(f.stepCount).toBe(0);
      const ok = await f.flowStepAsync({ ...batch(2), x1: data.subarray(0, 2 * P) });
      expect(Number.isFinite(ok.loss)).toBe(true);
      expect(f.stepCount).toBe(1);
    } finally {
      f.dispose();
    }
  });

  it('is refused on an f64 field', () => {
    const f = VectorField.create({ arch, D: 8, layers: 1, seed: 1, dtype: 'f64' });
    try {
      expect(() => f.configureFlowStep(cfg, null)).toThrow(/f32 fields only/);
    } finally {
      f.dispose();
    }
  });
});
