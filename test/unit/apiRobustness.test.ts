// Bad input to the public API gives a typed error that names what was expected, before any state changes; damaged
// files are ERR_IO naming the file, and a failed load frees what it built. Each case was a defect found by an audit of
// the API (2026-12-07): NaN input with a finite output, a rejected concurrent fit() that changed the running one,
// native memory kept by failed loads, damaged metadata read as NaN, misspelt nested options ignored.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { VectorField } from '../../lib/engine/VectorField.js';
import { evaluateNetworks } from '../../lib/eval/evaluate.js';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { readSafetensors, writeSafetensors, type SafeTensor } from '../../lib/io/safetensors.js';
import { alignZoo } from '../../lib/pipeline/align.js';
import { evaluateSamples } from '../../lib/pipeline/evaluate.js';
import { sampleFlow } from '../../lib/pipeline/sample.js';
import { trainFlow } from '../../lib/pipeline/train.js';
import { EXPERIMENTS } from '../../lib/reproduce/experiments.js';
import { runExperiment } from '../../lib/reproduce/harness.js';
import { loadTask } from '../../lib/tasks/loadTask.js';
import { Rng } from '../../lib/util/rng.js';
import { buildZoo } from '../../lib/zoo/buildZoo.js';

const arch = mlp([4, 5, 2]);
const P = arch.numParams;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-robust-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const code = (c: string, message?: RegExp) => expect.objectContaining({ code: c, ...(message !== undefined ? { message: expect.stringMatching(message) } : {}) });
const field = () => VectorField.create({ arch, D: 8, layers: 1, seed: 1, device: 'cpu' });
const flow = (o: Record<string, unknown> = {}) => FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 8, layers: 1 }, seed: 1, device: 'cpu', ...o });
const zooWeights = (n: number, seed = 3) => new Rng(seed).fillNormal(new Float32Array(n * P), 0, 0.5);

/** Rewrites a safetensors file with `edit` applied to its tensors and metadata. */
function rewrite(src: string, dst: string, edit: (t: Record<string, SafeTensor>, m: Record<string, string>) => void): string {
  const f = readSafetensors(src);
  const tensors = { ...f.tensors } as Record<string, SafeTensor>;
  const metadata = { ...f.metadata };
  edit(tensors, metadata);
  writeSafetensors(dst, tensors, metadata);
  return dst;
}

/**
 * Runs `failingLoads` and checks that every object `cls.create` built on the way was disposed (a load failing after
 * create used to keep the native engine).
 */
function expectFreedOnFailure(cls: typeof VectorField | typeof FlowMatcher, failingLoads: () => void): void {
  const disposed = vi.spyOn(cls.prototype, 'dispose');
  const created = vi.spyOn(cls as { create: (...a: never[]) => unknown }, 'create');
  try {
    failingLoads();
    const built = created.mock.results.filter((r) => r.type === 'return').length;
    expect(disposed.mock.calls.length).toBe(built);
  } finally {
    disposed.mockRestore();
    created.mockRestore();
  }
}

describe('VectorField: non-finite and out-of-range input', () => {
  it('forward refuses NaN or Inf in xt (a Float32Array too), aux and t, naming where', () => {
    const vf = field();
    try {
      const x = zooWeights(2);
      x[P + 3] = NaN;
      expect(() => vf.forward(x, 0.5)).toThrow(code('ERR_NUMERIC', /`xt`.*network 1, parameter 3 is NaN/));
      x[P + 3] = Infinity;
      expect(() => vf.lossAndGradMse(x, 0.5, zooWeights(2))).toThrow(code('ERR_NUMERIC', /network 1, parameter 3 is Infinity/));
      x[P + 3] = 0;
      expect(() => vf.forward(x, new Float32Array([0.2, NaN]))).toThrow(code('ERR_NUMERIC', /t\[1\] is NaN/));
      expect(() => vf.forward(x, new Float32Array([7, 0.5]))).toThrow(code('ERR_INVALID', /\[0, 1\].*t\[0\] is 7/));
      expect(() => vf.forward(x, '0.5' as unknown as number)).toThrow(code('ERR_DTYPE', /`t` as a number in \[0, 1\]/));
      expect(() => vf.forward(x, 0.5, { trainig: true } as never)).toThrow(code('ERR_INVALID', /trainig.*training/));
      // Valid input still runs, and the architecture may be given as widths.
      const y = vf.forward(x, new Float32Array([0, 1]));
      expect(y.length).toBe(2 * P);
      expect(Array.from(vf.forward(x, 0.5, { arch: [4, 5, 2] as never }))).toEqual(Array.from(vf.forward(x, 0.5)));
      expect(() => vf.setParams(new Float32Array(vf.numParams).fill(NaN))).toThrow(code('ERR_NUMERIC', /`params`/));
    } finally {
      vf.dispose();
    }
  });

  it('an aux field refuses non-finite aux inputs', () => {
    const vf = VectorField.create({ arch, D: 8, layers: 1, seed: 1, device: 'cpu', auxInputs: 1 });
    try {
      const aux = new Float32Array(P);
      aux[2] = NaN;
      expect(() => vf.forward(zooWeights(1), 0.5, { aux })).toThrow(code('ERR_NUMERIC', /`aux`.*element 2/));
    } finally {
      vf.dispose();
    }
  });

  it('create checks `recompute` before it builds the engine', () => {
    expect(() => VectorField.create({ arch, D: 8, layers: 1, device: 'cpu', recompute: 'yes' as never })).toThrow(code('ERR_INVALID', /recompute/));
  });
});

describe('VectorField.load of a damaged file: ERR_IO naming the file, and nothing kept', () => {
  const good = path.join(dir, 'field.safetensors');
  {
    const vf = field();
    vf.lossAndGradMse(zooWeights(2), 0.5, zooWeights(2, 4));
    vf.step({ lr: 1e-3 });
    vf.save(good, { optimizer: true });
    vf.dispose();
  }
  const cases: [string, (t: Record<string, SafeTensor>, m: Record<string, string>) => void, RegExp][] = [
    ['a parameter tensor missing', (t) => delete t[Object.keys(t).find((k) => !k.startsWith('__'))!], /missing parameter tensor/],
    ['config null', (_t, m) => (m.config = 'null'), /config metadata is not an object/],
    ['config {}', (_t, m) => (m.config = '{}'), /field\.safetensors-bad: damaged or foreign file/],
    ['no arch', (_t, m) => delete m.arch, /damaged or foreign file.*architecture/],
    ['a step that is not a number', (_t, m) => (m.step = 'abc'), /step count.*NaN/],
    ['a negative Adam second moment', (t) => (t['__adam_v'] = { ...t['__adam_v']!, data: new Float32Array(t['__adam_v']!.data.length).fill(-1) }), /negative/],
    ['a short Adam first moment', (t) => (t['__adam_m'] = { dtype: 'F32', shape: [3], data: new Float32Array(3) }), /`__adam_m` has 3 F32 values/],
    ['one Adam moment without the other', (t) => delete t['__adam_v'], /without the other/],
  ];
  for (const [what, edit, message] of cases) {
    it(what, () => {
      const bad = rewrite(good, path.join(dir, 'field.safetensors-bad'), edit);
      expectFreedOnFailure(VectorField, () => expect(() => VectorField.load(bad, { device: 'cpu' })).toThrow(code('ERR_IO', message)));
    });
  }
  it('the undamaged file loads, Adam state and step included', () => {
    const vf = VectorField.load(good, { device: 'cpu' });
    try {
      expect(vf.stepCount).toBe(1);
    } finally {
      vf.dispose();
    }
  });
});

describe('FlowMatcher', () => {
  it('a concurrent fit() is refused before it changes the running one', async () => {
    const data = zooWeights(16);
    const other = zooWeights(16, 9);
    const alone = flow();
    await alone.fit({ weights: data }, { steps: 30, batchSize: 4, ema: 0.9 });
    const fm = flow();
    try {
      const running = fm.fit({ weights: data }, { steps: 30, batchSize: 4, ema: 0.9 });
      await expect(fm.fit({ weights: other }, { steps: 31, batchSize: 4 })).rejects.toThrow(code('ERR_CONTEXT_BUSY', /busy with fit\(\)/));
      await expect(fm.sampleAsync({ n: 2, steps: 2 })).rejects.toThrow(code('ERR_CONTEXT_BUSY'));
      await running;
      expect(Array.from(fm.field.getParams())).toEqual(Array.from(alone.field.getParams()));
      expect(Array.from(fm.sample({ n: 2, steps: 4 }))).toEqual(Array.from(alone.sample({ n: 2, steps: 4 })));
      // Idle again: a second fit is accepted.
      await fm.fit({ weights: data }, { steps: 31, batchSize: 4 });
      expect(fm.field.stepCount).toBe(31);
    } finally {
      fm.dispose();
      alone.dispose();
    }
  });

  it('fit() sees new data even when its size and first and last values are those of the old', async () => {
    const a = zooWeights(8);
    const b = a.slice();
    for (let i = 1; i < b.length - 1; i++) b[i] = b[i]! * 10;
    const fm = flow();
    const fresh = flow();
    try {
      await fm.fit({ weights: a }, { steps: 1, batchSize: 4 });
      await fm.fit({ weights: b }, { steps: 2, batchSize: 4 });
      await fresh.fit({ weights: b }, { steps: 1, batchSize: 4 });
      // The Euclidean flow's per-layer scaling (RMS of each layer block) follows the data it was last given.
      const scale = (f: FlowMatcher) => Array.from((f as unknown as { scale: Float32Array }).scale);
      expect(scale(fm)).toEqual(scale(fresh));
    } finally {
      fm.dispose();
      fresh.dispose();
    }
  });

  it('bad arguments give typed errors: missing options, seeds, start points, times, misspelt nested options', async () => {
    const fm = flow();
    try {
      await expect(fm.fit({ weights: zooWeights(4) }, undefined as never)).rejects.toThrow(code('ERR_INVALID', /steps.*`opts`/));
      await expect(fm.fit(undefined as never, { steps: 1 })).rejects.toThrow(code('ERR_INVALID', /weights.*`data`/));
      await expect(fm.fit({ weights: zooWeights(4), runs: new Int32Array(4) } as never, { steps: 1 })).rejects.toThrow(code('ERR_INVALID', /runs.*run/));
      for (const seed of [NaN, Infinity, 'abc', -1]) expect(() => fm.sample({ n: 1, steps: 2, seed: seed as number }), String(seed)).toThrow(code('ERR_INVALID', /seed/));
      const x0 = zooWeights(2);
      x0[5] = NaN;
      expect(() => fm.sample({ n: 2, steps: 2, x0 })).toThrow(code('ERR_NUMERIC', /`x0`.*network 0, parameter 5/));
      expect(() => fm.sample({ n: 2, steps: 2, x0: Array.from(x0) as never })).toThrow(code('ERR_DTYPE', /`x0`/));
      expect(() => fm.sample(undefined as never)).toThrow(code('ERR_INVALID', /`opts`/));
      expect(() => fm.predictX1(zooWeights(1), 2)).toThrow(code('ERR_INVALID', /`t`/));
      expect(() => fm.predictX1(zooWeights(1), NaN)).toThrow(code('ERR_INVALID', /`t`/));
      const grad = (v: number | number[]) => ({ lambda: 0.1, grad: (x: Float32Array) => (Array.isArray(v) ? v : new Float32Array(x.length).fill(v)) as Float32Array });
      expect(() => fm.sample({ n: 1, steps: 2, guidance: grad(NaN) })).toThrow(code('ERR_NUMERIC', /guidance gradient.*NaN/));
      expect(() => fm.sample({ n: 1, steps: 2, guidance: grad([1, 2]) })).toThrow(code('ERR_DTYPE', /guidance gradient.*Array of length 2/));
    } finally {
      fm.dispose();
    }
    expect(() => flow({ prior: { kind: 'gaussian', sdt: 0.5 } })).toThrow(code('ERR_INVALID', /sdt.*std/));
    expect(() => flow({ prior: { kind: 'mixture', components: 2, member: 3 } })).toThrow(code('ERR_INVALID', /member.*members/));
  });

  it('after dispose(), calls say the flow was disposed', async () => {
    const fm = flow();
    fm.dispose();
    fm.dispose();
    await expect(fm.fit({ weights: zooWeights(4) }, { steps: 1 })).rejects.toThrow(expect.objectContaining({ code: 'ERR_DISPOSED', message: 'FlowMatcher has been disposed' }));
    expect(() => fm.sample({ n: 1 })).toThrow(code('ERR_DISPOSED', /FlowMatcher/));
    expect(() => fm.predictX1(zooWeights(1), 0.5)).toThrow(code('ERR_DISPOSED', /FlowMatcher/));
  });

  it('a mixture prior with more components than networks names prior.components', async () => {
    const fm = flow({ prior: { kind: 'mixture' } });
    try {
      await expect(fm.fit({ weights: zooWeights(3) }, { steps: 1 })).rejects.toThrow(code('ERR_INVALID', /prior\.components is 8 \(the default\).*3 training networks/));
    } finally {
      fm.dispose();
    }
  });
});

describe('FlowMatcher.load of a damaged file: ERR_IO naming the file, and nothing kept', () => {
  const good = path.join(dir, 'flow.safetensors');
  it('writes a good flow', async () => {
    const fm = flow();
    await fm.fit({ weights: zooWeights(8) }, { steps: 2, batchSize: 4, ema: 0.9 });
    fm.save(good);
    fm.dispose();
    FlowMatcher.load(good, { device: 'cpu' }).dispose();
  });
  const cases: [string, (t: Record<string, SafeTensor>, m: Record<string, string>) => void, RegExp][] = [
    ['flow options that are not JSON', (_t, m) => (m.flow = '{bad'), /`flow` is not valid JSON/],
    ['no flow options (they would default to another flow)', (_t, m) => delete m.flow, /`flow` is missing/],
    ['config that is not JSON', (_t, m) => (m.config = '{bad'), /`config` is not valid JSON/],
    ['an rng state that is not JSON', (_t, m) => (m.rng = '[1,'), /`rng` is not valid JSON/],
    ['an rng state of the wrong form', (_t, m) => (m.rng = '[1,2]'), /not a generator state/],
    ['no arch', (_t, m) => delete m.arch, /damaged or foreign file.*architecture/],
    ['a cursor that is not a number', (_t, m) => (m.cursor = 'abc'), /data cursor.*'abc'/],
    ['an EMA of the wrong length', (t) => (t['__ema'] = { dtype: 'F32', shape: [3], data: new Float32Array(3) }), /`__ema` has 3 F32 values/],
    ['a parameter tensor missing', (t) => delete t[Object.keys(t).find((k) => !k.startsWith('__'))!], /missing parameter tensor/],
  ];
  for (const [what, edit, message] of cases) {
    it(what, () => {
      const bad = rewrite(good, path.join(dir, 'flow-bad.safetensors'), edit);
      expectFreedOnFailure(FlowMatcher, () => {
        expect(() => FlowMatcher.load(bad, { device: 'cpu' })).toThrow(code('ERR_IO', /flow-bad\.safetensors/));
        expect(() => FlowMatcher.load(bad, { device: 'cpu' })).toThrow(code('ERR_IO', message));
      });
    });
  }
});

describe('pipeline functions: typed errors for missing or misspelt options', () => {
  const task = loadTask('wdbc');
  const warch = mlp(task.defaultArch);

  it('sampleFlow checks n, batch and seed', async () => {
    const fm = FlowMatcher.create({ arch: warch, geometry: 'euclidean', field: { D: 8, layers: 1 }, device: 'cpu' });
    try {
      await expect(sampleFlow(fm, { n: -1 })).rejects.toThrow(code('ERR_INVALID', /`n`/));
      await expect(sampleFlow(fm, { n: 0 })).rejects.toThrow(code('ERR_INVALID', /`n`/));
      await expect(sampleFlow(fm, { n: 2, batch: 0 })).rejects.toThrow(code('ERR_INVALID', /`batch`/));
      await expect(sampleFlow(fm, { n: 2, seed: NaN })).rejects.toThrow(code('ERR_INVALID', /`seed`/));
    } finally {
      fm.dispose();
    }
  });

  it('trainFlow, evaluateSamples, alignZoo and runExperiment reject missing and misspelt options', async () => {
    await expect(trainFlow({} as never)).rejects.toThrow(code('ERR_INVALID'));
    await expect(trainFlow(undefined as never)).rejects.toThrow(code('ERR_INVALID', /`options`/));
    await expect(evaluateSamples({} as never)).rejects.toThrow(code('ERR_INVALID', /`task`/));
    await expect(alignZoo(null as never)).rejects.toThrow(code('ERR_INVALID', /`zoo`/));
    await expect(runExperiment(EXPERIMENTS.wdbc!, { scal: 'quick', device: 'cpu' } as never)).rejects.toThrow(code('ERR_INVALID', /scal.*scale/));
  });

  it('trainFlow checks the flow options before it makes the output folder', async () => {
    const zoo = await buildZoo({ task: 'wdbc', runs: 2, epochs: 1, seed: 1, out: path.join(dir, 'zoo-a') });
    const out = path.join(dir, 'never-made');
    await expect(trainFlow({ zoo: zoo.zoo, zooFile: 'z', out, flow: { geometry: 'spherical' as never }, train: { steps: 1 } })).rejects.toThrow(code('ERR_INVALID', /geometry/));
    expect(fs.existsSync(out)).toBe(false);
  });

  it('buildZoo with fewer epochs than the preset skips keeps checkpoints of the last epoch', async () => {
    const r = await buildZoo({ task: 'wdbc', runs: 1, epochs: 2, seed: 1, out: path.join(dir, 'zoo-b') });
    expect(r.zoo.n).toBeGreaterThan(0);
    expect(JSON.parse(r.zoo.metadata.schedule ?? '{}')).toMatchObject({ skip_epochs: 1 });
  });

  it('evaluateNetworks takes an architecture or its widths', async () => {
    const w = new Rng(1).fillNormal(new Float32Array(2 * warch.numParams), 0, 0.1);
    const a = await evaluateNetworks(task, warch, w);
    const b = await evaluateNetworks(task, [...task.defaultArch], w);
    expect(Array.from(b.accuracy)).toEqual(Array.from(a.accuracy));
    await expect(evaluateNetworks(task, { widths: [1] } as never, w)).rejects.toThrow(code('ERR_INVALID', /Architecture/));
  });
});

describe('host memory: a batch that cannot fit is refused, not killed', () => {
  it("a batch whose weight graph exceeds the host's free memory is ERR_OOM before the graph is built", async () => {
    const { setFreeMemoryProbe } = await import('../../lib/engine/VectorField.js');
    const big = mlp([784, 32, 10]);
    const vf = VectorField.create({ arch: big, D: 8, layers: 1, seed: 1, device: 'cpu' });
    const prev = setFreeMemoryProbe(() => 64 * 2 ** 20);
    try {
      // 256 networks of 784-32-10: 6.5 M parameters, some 13 M pairs: about 0.8 GiB of graph against 64 MiB free.
      expect(() => vf.memoryPlan(256)).toThrow(code('ERR_OOM', /weight graph of this batch \(256 networks, .* pairs\) needs about \d+ MiB of host memory and 64 MiB is free: use a smaller batch/));
      setFreeMemoryProbe(() => 1e15);
      expect(vf.memoryPlan(256).networks).toBe(256);
    } finally {
      setFreeMemoryProbe(prev);
      vf.dispose();
    }
  });
});
