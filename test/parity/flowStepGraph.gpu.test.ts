// The flow step's sync-free and CUDA-graph modes (native/core/flow_step.h, FlowStep::Mode; WSF_CUDA_GRAPH): the step
// enqueued without a mid-step wait (loss check and gradient clipping evaluated on the device), and that step recorded
// once as a CUDA graph and replayed with each step's inputs. Both must give exactly the plain mode's floats — the
// same kernels with the same arguments in the same order — over steps whose inputs all change (times, indices, prior
// and noise seeds, the learning rate under a schedule, the clipping scale), must re-record after an allocation, and
// must skip a step whose loss is not finite exactly as the plain mode does. On the emulator (native/dev/README.md) a
// call that a capturing stream refuses (a wait, an allocation) fails the recording, which the counters show.
// Skips without CUDA.
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { VectorField } from '../../lib/engine/VectorField.js';
import { FlowMatcher, type FlowOptions, type TrainOptions } from '../../lib/flow/FlowMatcher.js';
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
const N = 40;
const data = new Rng(3).fillNormal(new Float32Array(N * P), 0, 0.4);

restoreEnvAfterEach(['WSF_FUSED_STEP', 'WSF_CUDA_GRAPH', 'WSF_DEVICE_PRIOR', 'WSF_PROFILE']);

// 'cpu': the same fused step on the CPU engine (the reference the CUDA modes are held to, within float tolerance).
type Mode = 'plain' | 'sync' | 'graph' | 'cpu';
const ENV: Record<Mode, string> = { plain: '0', sync: 'sync', graph: '1', cpu: '0' };

interface Run {
  params: Float32Array;
  ema: Float32Array;
  norms: number[];
  losses: number[];
  info: { mode: string; syncFreeSteps: number; captures: number; replays: number; captureFailures: number };
  /** The emulator's host-wait count after each step (emulator builds only; else empty). */
  waits: number[];
  error?: string;
}

// atStep: called from the training log after that step (between two steps).
async function train(mode: Mode, opts: Partial<FlowOptions>, fit: Partial<TrainOptions>, weights = data, atStep?: [number, () => void]): Promise<Run> {
  process.env.WSF_FUSED_STEP = '1';
  process.env.WSF_CUDA_GRAPH = ENV[mode];
  delete process.env.WSF_DEVICE_PRIOR;
  const fm = FlowMatcher.create({ arch, field: { D: 8, layers: 2 }, seed: 2, device: mode === 'cpu' ? 'cpu' : 'cuda', ...opts });
  const norms: number[] = [];
  const losses: number[] = [];
  const waits: number[] = [];
  let error: string | undefined;
  let info: Run['info'] | undefined;
  try {
    // The counters are read after every step: the flow step (and its counters) is released when fit returns.
    const onLog: TrainOptions['onLog'] = (l) => {
      norms.push(l.gradNorm);
      losses.push(l.loss);
      info = fm.field.flowStepModeInfo();
      const w = binding().emuHostWaits?.();
      if (w !== undefined) waits.push(w);
      if (atStep !== undefined && l.step === atStep[0]) atStep[1]();
    };
    try {
      await fm.fit({ weights }, { steps: 8, batchSize: 4, ema: 0.9, logEvery: 1, onLog, ...fit });
    } catch (e) {
      error = (e as { code?: string }).code ?? String(e);
    }
    const ema = Float32Array.from((fm as unknown as { ema?: Float32Array }).ema ?? []);
    return { params: fm.field.getParams(), ema, norms, losses, info: info!, waits, ...(error !== undefined ? { error } : {}) };
  } finally {
    fm.dispose();
  }
}

function expectSame(a: Run, b: Run): void {
  expect(a.error).toBe(b.error);
  expect(a.norms).toEqual(b.norms);
  expect(a.losses).toEqual(b.losses);
  // Bit for bit: Float32Array equality compares every element exactly.
  expect(a.params).toEqual(b.params);
  expect(a.ema).toEqual(b.ema);
}

describe.skipIf(!cuda)('flow step without mid-step waits, and as a CUDA graph', () => {
  const configs: [string, Partial<FlowOptions>, Partial<TrainOptions>][] = [
    ['geometric, Gaussian prior on the device, cosine schedule with warm-up, clipping active', { geometry: 'geometric' }, { lr: 3e-3, schedule: 'cosine', warmup: 3, clipNorm: 0.05 }],
    ['euclidean (noise seeds on the device), mixture prior, weight decay', { geometry: 'euclidean', sigma: 1e-3, prior: { kind: 'mixture', components: 3 } }, { weightDecay: 0.01 }],
    ['normalized, OT coupling (x0 and x1 from the host), no EMA', { geometry: 'normalized', coupling: 'ot' }, { ema: 0, clipNorm: 1 }],
    ['geometric, zoo prior, chunked recompute-mode field', { geometry: 'geometric', prior: { kind: 'zoo', members: 7 }, field: { D: 8, layers: 2, recompute: true, chunkRows: 11 } }, {}],
  ];
  it.each(configs)('%s: sync-free and graph steps equal the plain step bit for bit, and the CPU engine to float tolerance', async (_name, opts, fit) => {
    const plain = await train('plain', opts, fit);
    const sync = await train('sync', opts, fit);
    const graph = await train('graph', opts, fit);
    expect(plain.error).toBeUndefined();
    expect(plain.info).toMatchObject({ mode: 'plain', syncFreeSteps: 0, captures: 0 });
    expect(sync.info).toMatchObject({ mode: 'sync', syncFreeSteps: 8, captures: 0, replays: 0 });
    // Recorded once the buffers have settled (the first steps allocate), replayed from then on, never refused.
    expect(graph.info.mode).toBe('graph');
    expect(graph.info.captureFailures).toBe(0);
    expect(graph.info.captures).toBe(1);
    expect(graph.info.replays).toBeGreaterThanOrEqual(5);
    expectSame(sync, plain);
    expectSame(graph, plain);
    // Not only CUDA against CUDA: the same steps on the CPU engine (flowStep.gpu.test.ts' bounds).
    const cpu = await train('cpu', opts, fit);
    expect(cpu.error).toBeUndefined();
    expect(maxRel(graph.params, cpu.params)).toBeLessThan(1e-3);
    expect(graph.losses).toHaveLength(cpu.losses.length);
    graph.losses.forEach((l, i) => expect(Math.abs(l - cpu.losses[i]!), `loss at step ${i + 1}`).toBeLessThan(1e-4 * Math.abs(cpu.losses[i]!) + 1e-6));
    if (graph.ema.length > 0) expect(maxRel(graph.ema, cpu.ema)).toBeLessThan(1e-3);
  }, timeout);

  it.skipIf(!emu)('the host waits once per sync-free or graph step (the loss and norm coming back), more often in a plain step (emulator count)', async () => {
    const perStep = (r: Run): number[] => {
      expect(r.error).toBeUndefined();
      expect(r.waits).toHaveLength(8);
      return r.waits.slice(1).map((w, i) => w - r.waits[i]!);
    };
    const opts: Partial<FlowOptions> = { geometry: 'geometric' };
    const plain = perStep(await train('plain', opts, { clipNorm: 1 }));
    const sync = perStep(await train('sync', opts, { clipNorm: 1 }));
    const graph = perStep(await train('graph', opts, { clipNorm: 1 }));
    // Steps 4–8: past the first steps' allocations and the graph's recording.
    for (const w of [...sync.slice(3), ...graph.slice(3)]) expect(w).toBe(1);
    for (const w of plain.slice(3)) expect(w).toBeGreaterThanOrEqual(2);
  }, timeout);

  it('records the step again after any device allocation (another field created and freed between two steps)', async () => {
    const other = (): void => {
      const v = VectorField.create({ arch, D: 8, layers: 1, device: 'cuda', seed: 1 });
      v.forward(new Float32Array(P), new Float32Array([0.5]));
      v.dispose();
    };
    const plain = await train('plain', { geometry: 'geometric' }, { steps: 12 }, data, [6, other]);
    const graph = await train('graph', { geometry: 'geometric' }, { steps: 12 }, data, [6, other]);
    expect(plain.error).toBeUndefined();
    expect(plain.losses).toHaveLength(12); // every step ran (the allocation between steps 6 and 7 included)
    expect(graph.info.captureFailures).toBe(0);
    expect(graph.info.captures).toBe(2);
    expectSame(graph, plain);
  }, timeout);

  it('skips a step whose loss is not finite, with the same error and parameters as the plain step', async () => {
    // One network of the training set is finite but huge (3e19: its squared error overflows the float loss): the
    // first batch that draws it fails. The seed puts that batch after the graph was recorded, so the device-side
    // gate is what keeps the parameters.
    const bad = Float32Array.from(data);
    bad.fill(3e19, 17 * P, 18 * P);
    const opts: Partial<FlowOptions> = { geometry: 'euclidean', layerScaling: false, precondition: false };
    const plain = await train('plain', opts, { steps: 40 }, bad);
    const graph = await train('graph', opts, { steps: 40 }, bad);
    expect(plain.error).toBe('ERR_NUMERIC');
    expect(graph.info.replays).toBeGreaterThanOrEqual(1);
    expectSame(graph, plain);
  }, timeout);

  it('runs plain while profiling (the profile needs a wait per region)', async () => {
    process.env.WSF_PROFILE = '1';
    const graph = await train('graph', { geometry: 'geometric' }, { steps: 4 });
    expect(graph.error).toBeUndefined();
    expect(graph.losses).toHaveLength(4);
    expect(graph.info).toMatchObject({ mode: 'graph', syncFreeSteps: 0, captures: 0 });
  }, timeout);
});
