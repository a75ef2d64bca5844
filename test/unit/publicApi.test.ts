// The README's library example, run through the package root (lib/index.ts) on a small WDBC zoo: the exported
// names exist and compose, and the generated networks have the documented form.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as wsflow from '../../lib/index.js';
import { lossAccF64 } from '../helpers/mlpRef.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsflow-api-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('the package root', () => {
  it('runs the README example: zoo → align → FlowMatcher.fit → sampleAsync → evaluate', async () => {
    const { loadTask, readZoo, alignNetworks, FlowMatcher, evaluateNetworks, buildZoo } = wsflow;
    const file = path.join(tmp, 'zoo.safetensors');
    await buildZoo({ task: 'wdbc', runs: 2, epochs: 3, chunkSize: 2, schedule: { skipEpochs: 1, everyIters: 4 }, seed: 1, progress: false, out: file });
    const zoo = readZoo(file);
    const { aligned } = alignNetworks(zoo.arch, zoo.weights, { groups: zoo.run });
    const fm = FlowMatcher.create({ arch: zoo.arch, geometry: 'geometric', field: { D: 8, layers: 1 }, device: 'cpu' });
    const r = await fm.fit({ weights: aligned, run: zoo.run }, { steps: 4, batchSize: 4, lr: 2e-3, ema: 0.99 });
    expect(r.step).toBe(4);
    const nets = await fm.sampleAsync({ n: 6, steps: 4 });
    expect(nets.length).toBe(6 * zoo.arch.numParams);
    expect(Array.from(nets)).toEqual(Array.from(fm.sample({ n: 6, steps: 4 }))); // its synchronous twin
    // On the spheres: every hidden neuron's incoming weights have unit norm (canonical form).
    const [i0, h] = [zoo.arch.widths[0]!, zoo.arch.widths[1]!];
    for (let j = 0; j < h; j++) {
      let s = 0;
      for (let i = 0; i < i0; i++) s += nets[i * h + j]! ** 2;
      expect(Math.sqrt(s)).toBeCloseTo(1, 5);
    }
    const task = loadTask('wdbc');
    const ev = await evaluateNetworks(task, zoo.arch, nets);
    expect(ev.accuracy.length).toBe(6);
    // Each network's test accuracy and loss as an f64 forward pass in plain JS computes them.
    for (let k = 0; k < 6; k++) {
      const ref = lossAccF64(zoo.arch, nets, task.test.x, task.test.y, task.test.n, k);
      expect(ev.accuracy[k]).toBe(ref.acc);
      expect(ev.loss[k]).toAllClose(ref.loss, { atol: 1e-12, rtol: 1e-10 });
    }
    fm.dispose();
  });

  it('exports the flow, solver, likelihood and pipeline entry points', () => {
    for (const name of ['FlowMatcher', 'integrate', 'integrateDivergence', 'gaussianLogDensity', 'evaluateSamples', 'sampleFlow', 'writeSamples', 'readWeightsFile', 'VectorField', 'runDemo', 'alignZoo', 'alignZooFile', 'identityPermutations', 'trainFlow', 'runExperiment', 'publishedGradientLayout', 'taskGradient'] as const) {
      expect(typeof (wsflow as Record<string, unknown>)[name], name).toBe('function');
    }
    // The reproduce experiments, by name, as `wsflow reproduce --list` shows them.
    expect(Object.keys(wsflow.EXPERIMENTS)).toEqual(['gaussian', 'wdbc', 'wdbc-steps', 'mnist', 'mnist-steps', 'mnist-bma', 'fmnist-guidance', 'arch-transfer', 'learned-init', 'scaling']);
  });
});
