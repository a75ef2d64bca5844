// Options objects of the public entry points reject keys they do not take: a misspelt option (`stpes: 1000`) would
// otherwise be ignored and its default used silently. ERR_INVALID names the key, the nearest known one and the list;
// the lists are checked complete against the option interfaces at compile time (optionKeys).
import { describe, expect, it } from 'vitest';
import { alignNetworks } from '../../lib/align/weightMatching.js';
import { mlp } from '../../lib/arch/Architecture.js';
import { VectorField } from '../../lib/engine/VectorField.js';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { checkOptionKeys } from '../../lib/util/validate.js';
import { buildZoo } from '../../lib/zoo/buildZoo.js';
import { bmaCurve, evaluateNetworks, functionalDiversity, loadTask, lossBarriers, runDemo, trainFromWeights } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

const invalid = (re: RegExp) => expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(re) });

describe('unknown option keys', () => {
  it('checkOptionKeys: names the key, suggests the nearest one when close, lists what the function takes', () => {
    expect(() => checkOptionKeys('f', { steps: 1, lr: 2 }, ['steps', 'lr'])).not.toThrow();
    expect(() => checkOptionKeys('f', undefined, ['steps'])).not.toThrow();
    expect(() => checkOptionKeys('f', { stpes: 1 }, ['steps', 'lr'])).toThrow(invalid(/^f: unknown option `stpes` \(did you mean `steps`\?\); it takes steps, lr$/));
    expect(() => checkOptionKeys('f', { batchsize: 1 }, ['batchSize', 'lr'])).toThrow(invalid(/did you mean `batchSize`/));
    expect(() => checkOptionKeys('f', { temperature: 1 }, ['steps', 'lr'])).toThrow(invalid(/^f: unknown option `temperature`; it takes steps, lr$/));
  });

  it('VectorField.create, FlowMatcher.create (and its field), fit, sample, logLikelihood, alignNetworks, buildZoo, evaluation, loadTask, trainFromWeights and runDemo check their keys', async () => {
    const arch = mlp([3, 2, 2]);
    expect(() => VectorField.create({ arch, D: 4, layer: 2 } as never)).toThrow(invalid(/^VectorField\.create: unknown option `layer` \(did you mean `layers`\?\)/));
    expect(() => FlowMatcher.create({ arch, geometri: 'euclidean' } as never)).toThrow(invalid(/^FlowMatcher\.create: unknown option `geometri` \(did you mean `geometry`\?\)/));
    expect(() => FlowMatcher.create({ arch, field: { D: 4, width: 8 } } as never)).toThrow(invalid(/^FlowMatcher\.create: field: unknown option `width`/));
    // arch, device and seed belong to the flow, not to its field
    expect(() => FlowMatcher.create({ arch, field: { D: 4, seed: 1 } } as never)).toThrow(invalid(/field: unknown option `seed`/));
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', field: { D: 4, layers: 1 }, device: 'cpu' });
    try {
      const weights = new Rng(1).fillNormal(new Float32Array(8 * arch.numParams), 0, 0.3);
      await expect(fm.fit({ weights }, { steps: 1, batchSize: 4, stepz: 3 } as never)).rejects.toThrow(invalid(/^FlowMatcher\.fit: unknown option `stepz` \(did you mean `steps`\?\)/));
      await fm.fit({ weights }, { steps: 1, batchSize: 4 });
      expect(() => fm.sample({ n: 2, step: 4 } as never)).toThrow(invalid(/^FlowMatcher\.sample: unknown option `step` \(did you mean `steps`\?\)/));
      await expect(fm.sampleAsync({ n: 2, solvr: 'rk4' } as never)).rejects.toThrow(invalid(/did you mean `solver`/));
      expect(() => fm.sample({ n: 2, guidance: { grad: (x: Float32Array) => x, lambda: 1, start: 0.5 } } as never)).toThrow(invalid(/^FlowMatcher\.sample: guidance: unknown option `start`/));
      expect(fm.sample({ n: 2, steps: 2 }).length).toBe(2 * arch.numParams);
      expect(() => fm.logLikelihood(weights.subarray(0, arch.numParams), { step: 4 } as never)).toThrow(invalid(/^FlowMatcher\.logLikelihood: unknown option `step`/));
      expect(() => alignNetworks(arch, weights, { iterations: 3 } as never)).toThrow(invalid(/^alignNetworks: unknown option `iterations`/));
      await expect(buildZoo({ task: 'wdbc', out: '/tmp/never-written.safetensors', epoch: 3 } as never)).rejects.toThrow(invalid(/^buildZoo: unknown option `epoch` \(did you mean `epochs`\?\)/));
      // evaluation, tasks, re-training and the demo
      const task = loadTask('wdbc');
      const wdbc = mlp([30, 16, 16, 2]);
      const nets = new Rng(2).fillNormal(new Float32Array(2 * wdbc.numParams), 0, 0.1);
      expect((await evaluateNetworks(task, wdbc, nets, { split: 'test' })).accuracy.length).toBe(2);
      await expect(evaluateNetworks(task, wdbc, nets, { splt: 'test' } as never)).rejects.toThrow(invalid(/^evaluateNetworks: unknown option `splt` \(did you mean `split`\?\)/));
      await expect(bmaCurve(task, wdbc, nets, { n: [1, 2] } as never)).rejects.toThrow(invalid(/^bmaCurve: unknown option `n` \(did you mean `ns`\?\)/));
      await expect(functionalDiversity(task, wdbc, nets, { inputs: 8 } as never)).rejects.toThrow(invalid(/^functionalDiversity: unknown option `inputs`/));
      await expect(lossBarriers(task, wdbc, nets, { pair: 1 } as never)).rejects.toThrow(invalid(/^lossBarriers: unknown option `pair` \(did you mean `pairs`\?\)/));
      await expect(trainFromWeights(task, wdbc, nets, { steps: 1, optimiser: 'sgd' } as never)).rejects.toThrow(invalid(/^trainFromWeights: unknown option `optimiser` \(did you mean `optimizer`\?\)/));
      expect(() => loadTask('wdbc', { standardise: true } as never)).toThrow(invalid(/^loadTask: unknown option `standardise` \(did you mean `standardize`\?\)/));
      await expect(runDemo({ scale: 'quick', geometry: 'euclidean' } as never)).rejects.toThrow(invalid(/^runDemo: unknown option `geometry` \(did you mean `geometries`\?\)/));
    } finally {
      fm.dispose();
    }
  });
});
