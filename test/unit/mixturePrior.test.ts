// The 'mixture' prior: k-means against closed-form cluster means, the per-cluster Gaussian fits, the pairing of each
// training network with a draw from its own cluster, sampling by component weight, persistence and the typed errors.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlowMatcher } from '../../lib/flow/FlowMatcher.js';
import { componentsOf, fitMixturePrior, kmeans, nearestComponent } from '../../lib/flow/prior.js';
import { mixtureBaseline, mlp } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

const arch = mlp([4, 3, 2]);
const P = arch.numParams;

/** Networks around `centres` (one centre per cluster, spread `spread`); cluster c has sizes[c] rows, interleaved. */
function clustered(sizes: number[], sep: number, spread: number, seed: number): { x: Float32Array; truth: Int32Array; centres: Float32Array[] } {
  const rng = new Rng(seed);
  const centres = sizes.map(() => rng.fillNormal(new Float32Array(P), 0, sep));
  const truth: number[] = [];
  const left = [...sizes];
  while (left.some((n) => n > 0)) {
    for (let c = 0; c < sizes.length; c++) {
      if (left[c]! > 0) {
        truth.push(c);
        left[c]!--;
      }
    }
  }
  const x = new Float32Array(truth.length * P);
  truth.forEach((c, i) => {
    for (let p = 0; p < P; p++) x[i * P + p] = centres[c]![p]! + spread * rng.normal();
  });
  return { x, truth: Int32Array.from(truth), centres };
}

/** Saves `fm` to a fresh temporary file and loads it back; the loaded flow draws the same prior samples. */
function saveAndReload(fm: FlowMatcher, prefix: string): FlowMatcher {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), prefix)), 'flow.safetensors');
  fm.save(file);
  const loaded = FlowMatcher.load(file, { device: 'cpu' });
  expect(loaded.drawPriorSamples(5, 9)).toAllClose(fm.drawPriorSamples(5, 9), { atol: 0, rtol: 0 });
  return loaded;
}

/** True when two labelings define the same partition. */
function samePartition(a: Int32Array, b: Int32Array): boolean {
  const map = new Map<number, number>();
  const inv = new Map<number, number>();
  for (let i = 0; i < a.length; i++) {
    if ((map.get(a[i]!) ?? b[i]) !== b[i] || (inv.get(b[i]!) ?? a[i]) !== a[i]) return false;
    map.set(a[i]!, b[i]!);
    inv.set(b[i]!, a[i]!);
  }
  return true;
}

describe('mixture prior', () => {
  it('k-means recovers well-separated clusters; its centres are the clusters’ means (f64)', () => {
    const { x, truth } = clustered([5, 7, 4], 3, 0.05, 1);
    const r = kmeans(P, x, 3, new Rng(2));
    expect(samePartition(r.labels, truth)).toBe(true);
    for (let k = 0; k < 3; k++) {
      const rows = [...r.labels.keys()].filter((i) => r.labels[i] === k);
      for (let p = 0; p < P; p++) {
        const mean = rows.reduce((s, i) => s + x[i * P + p]!, 0) / rows.length;
        expect(Math.abs(r.centres[k * P + p]! - mean)).toBeLessThan(1e-12);
      }
    }
    // One cluster per row: every row is its own centre; more clusters than rows is a typed error.
    const own = kmeans(P, x.subarray(0, 4 * P), 4, new Rng(3));
    expect(new Set(own.labels).size).toBe(4);
    expect(() => kmeans(P, x.subarray(0, 4 * P), 5, new Rng(3))).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    // Two identical halves of a duplicated row set: the empty-cluster re-seed still yields K non-empty clusters.
    const dup = new Float32Array(6 * P);
    for (let i = 0; i < 6; i++) dup.set(x.subarray((i % 2) * P, (i % 2 + 1) * P), i * P);
    const d = kmeans(P, dup, 2, new Rng(4));
    expect(samePartition(d.labels, Int32Array.from([0, 1, 0, 1, 0, 1]))).toBe(true);
  });

  it('fits one Gaussian per cluster, weighted by cluster size; nearestComponent gives each network its cluster', () => {
    const { x, truth } = clustered([2, 6], 3, 0.05, 5);
    const { stats, labels } = fitMixturePrior(arch, { kind: 'mixture', components: 2 }, x, new Rng(6));
    expect(samePartition(labels, truth)).toBe(true);
    expect(nearestComponent(stats, x)).toEqual(labels);
    for (let k = 0; k < 2; k++) {
      const rows = [...labels.keys()].filter((i) => labels[i] === k);
      expect(stats.components[k]!.weight).toBeCloseTo(rows.length / 8, 15);
      expect(stats.components[k]!.basis.length).toBe(rows.length * P); // members (256) ≥ cluster size: all rows
      for (let p = 0; p < P; p++) {
        const mean = rows.reduce((s, i) => s + x[i * P + p]!, 0) / rows.length;
        expect(stats.components[k]!.mean[p]).toBeCloseTo(mean, 6);
      }
    }
  });

  it('trains each network from its own cluster’s Gaussian: the first velocity loss is within-cluster sized', async () => {
    // Two clusters 200 apart per coordinate (spread 0.01). A Euclidean velocity-prediction flow's first loss is
    // mean((v − (x1 − x0))²): ≈ (x1 − x0)² ~ 1e4–1e5 when x0 may come from the other cluster (the single 'zoo'
    // Gaussian spans both), but the field's output size alone (≲ 10) when x0 comes from the network's own cluster.
    const x = new Float32Array(8 * P);
    for (let i = 0; i < 8; i++) for (let p = 0; p < P; p++) x[i * P + p] = (i % 2 === 0 ? 100 : -100) + 0.01 * Math.sin(7 * i + p);
    const firstLoss = async (prior: { kind: 'zoo' } | { kind: 'mixture'; components: number }): Promise<number> => {
      const fm = FlowMatcher.create({ arch, geometry: 'euclidean', prediction: 'velocity', layerScaling: false, prior, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
      const losses: number[] = [];
      await fm.fit({ weights: x }, { steps: 3, batchSize: 8, lr: 0, logEvery: 1, onLog: (l) => losses.push(l.loss) });
      fm.dispose();
      return Math.max(...losses);
    };
    const mix = await firstLoss({ kind: 'mixture', components: 2 });
    const single = await firstLoss({ kind: 'zoo' });
    expect(single).toBeGreaterThan(1000);
    expect(mix).toBeLessThan(100);
  });

  it('component-ot pairs each start point with a near network of its own component: shorter pairs than independent', async () => {
    // Two clusters ±100 apart; inside each, networks sit at +5 or −5 (all coordinates) around the centre, so each
    // component's Gaussian spans that direction. Velocity prediction with lr 0: the loss ≈ mean((x1 − x0)²) over the
    // pairs — ≈ 50 per coordinate for independent pairs within the component (two variances of 25), far less when
    // OT over 32 members pairs draws on the + side with + networks. Both ≪ 1e4 (the other cluster).
    const x = new Float32Array(16 * P);
    for (let i = 0; i < 16; i++) for (let p = 0; p < P; p++) x[i * P + p] = (i % 2 === 0 ? 100 : -100) + (i % 4 < 2 ? 5 : -5) + 0.01 * Math.sin(7 * i + p);
    const meanLoss = async (coupling: 'independent' | 'component-ot'): Promise<number> => {
      const fm = FlowMatcher.create({ arch, geometry: 'euclidean', prediction: 'velocity', layerScaling: false, prior: { kind: 'mixture', components: 2 }, coupling, otPool: 4, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
      const losses: number[] = [];
      await fm.fit({ weights: x }, { steps: 40, batchSize: 8, lr: 0, logEvery: 1, onLog: (l) => losses.push(l.loss) });
      fm.dispose();
      return losses.reduce((a, b) => a + b, 0) / losses.length;
    };
    const ind = await meanLoss('independent');
    const ot = await meanLoss('component-ot');
    expect(ind).toBeGreaterThan(25);
    expect(ind).toBeLessThan(100);
    expect(ot).toBeLessThan(0.5 * ind);
    expect(() => FlowMatcher.create({ arch, prior: { kind: 'zoo' }, coupling: 'component-ot', device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/component-ot.*mixture/) }));
  });

  it('componentInput gives the field the mean of the component nearest each start point, and changes its output', async () => {
    // Two clusters ±100 apart (Euclidean flow, no layer scaling): the component means are the cluster means, computed
    // here in f64 from the data; each start point's input must be its own cluster's mean.
    const x = new Float32Array(16 * P);
    for (let i = 0; i < 16; i++) for (let p = 0; p < P; p++) x[i * P + p] = (i % 2 === 0 ? 100 : -100) + Math.sin(7 * i + p);
    const clusterMean = (parity: number): number[] => {
      const m = new Array<number>(P).fill(0);
      for (let i = parity; i < 16; i += 2) for (let p = 0; p < P; p++) m[p]! += x[i * P + p]! / 8;
      return m;
    };
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', layerScaling: false, prior: { kind: 'mixture', components: 2 }, componentInput: true, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
    await fm.fit({ weights: x }, { steps: 3, batchSize: 8 });
    const x0 = fm.drawPriorSamples(6, 5);
    const aux = fm.componentInputOf(x0)!;
    for (let b = 0; b < 6; b++) {
      const side = x0[b * P]! > 0 ? 0 : 1; // which cluster the draw is in
      expect(Array.from(aux.subarray(b * P, (b + 1) * P))).toAllClose(clusterMean(side), { atol: 1e-3, rtol: 1e-5 });
    }
    const loaded = saveAndReload(fm, 'wsf-cin-');
    expect(loaded.options.componentInput).toBe(true);
    expect(Array.from(loaded.componentInputOf(x0)!)).toEqual(Array.from(aux));
    expect(Array.from(loaded.sample({ n: 6, steps: 3, x0 }))).toEqual(Array.from(fm.sample({ n: 6, steps: 3, x0 })));
    // The field sees it: the same start points with the other component's means as input give other samples.
    const swapped = new Float32Array(aux.length);
    for (let b = 0; b < 6; b++) swapped.set(aux.subarray(((b + 1) % 6) * P, ((b + 1) % 6 + 1) * P), b * P);
    expect(Array.from(swapped)).not.toEqual(Array.from(aux)); // draws from both clusters
    const own = loaded.sample({ n: 6, steps: 3, x0 });
    (loaded as unknown as { componentAux: () => Float32Array }).componentAux = () => swapped;
    expect(Array.from(loaded.sample({ n: 6, steps: 3, x0 }))).not.toEqual(Array.from(own));
    const plain = FlowMatcher.create({ arch, geometry: 'euclidean', layerScaling: false, prior: { kind: 'mixture', components: 2 }, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
    expect(plain.componentInputOf(x0)).toBeUndefined();
    for (const f of [fm, loaded, plain]) f.dispose();
    expect(() => FlowMatcher.create({ arch, prior: { kind: 'zoo' }, componentInput: true, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/componentInput.*'zoo'/) }));
    expect(() => FlowMatcher.create({ arch, prior: { kind: 'mixture' }, componentInput: true, gradientFeatures: { task: 'wdbc' }, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/choose one/) }));
    expect(() => FlowMatcher.create({ arch, prior: { kind: 'mixture' }, componentInput: 'yes' as never, device: 'cpu' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
  });

  it('preconditions the Euclidean field by default only when the prior is fitted to the zoo', () => {
    const pre = (o: Omit<Parameters<typeof FlowMatcher.create>[0], 'arch'>): boolean => {
      const fm = FlowMatcher.create({ field: { D: 4, layers: 1 }, device: 'cpu', ...o, arch });
      const p = fm.options.precondition;
      fm.dispose();
      return p;
    };
    expect(pre({ geometry: 'euclidean' })).toBe(false);
    expect(pre({ geometry: 'euclidean', prior: { kind: 'mixture' } })).toBe(true);
    expect(pre({ geometry: 'euclidean', prior: { kind: 'zoo' } })).toBe(true);
    expect(pre({ geometry: 'euclidean', prior: { kind: 'mixture' }, semantics: 'reference' })).toBe(false);
    expect(pre({ geometry: 'euclidean', prior: { kind: 'mixture' }, precondition: false })).toBe(false);
    expect(pre({ geometry: 'geometric' })).toBe(true);
  });

  it('samples components by weight, each draw in its cluster’s span; saved and loaded with the flow', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-mixprior-'));
    const { x, centres } = clustered([2, 6], 3, 0.05, 7);
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'mixture', components: 2 }, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
    expect(() => fm.drawPriorSamples(2)).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/train the flow/) }));
    expect(fm.likelihoodUnsupported()).toMatch(/mixture/);
    await fm.fit({ weights: x }, { steps: 2, batchSize: 4 });
    const n = 4000;
    const d = fm.drawPriorSamples(n, 4);
    let nearSmall = 0;
    for (let i = 0; i < n; i++) {
      const dist = centres.map((c) => Math.hypot(...c.map((v, p) => v - d[i * P + p]!)));
      expect(Math.min(...dist)).toBeLessThan(2); // within its cluster (spread 0.05 per coordinate, P = 23; centres ~20 apart)
      if (dist[0]! < dist[1]!) nearSmall++;
    }
    // Weight 2/8: binomial share with σ = √(0.25·0.75/4000) ≈ 0.007.
    expect(Math.abs(nearSmall / n - 0.25)).toBeLessThan(0.035);
    const loaded = saveAndReload(fm, 'wsf-mixprior-');
    expect(loaded.sample({ n: 3, steps: 4, seed: 2 })).toAllClose(fm.sample({ n: 3, steps: 4, seed: 2 }), { atol: 0, rtol: 0 });
    expect(() => loaded.sample({ n: 1, steps: 2, arch: [4, 5, 2] })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE', message: expect.stringMatching(/mixture/) }));
    // Resuming from the checkpoint keeps the fitted mixture and continues bit-identically.
    const ck = path.join(dir, 'ck.safetensors');
    const a = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'mixture', components: 2 }, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
    await a.fit({ weights: x }, { steps: 4, batchSize: 4, checkpoint: ck, checkpointEvery: 2 });
    const b = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'mixture', components: 2 }, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
    await b.fit({ weights: x }, { steps: 2, batchSize: 4 });
    b.saveCheckpoint(ck);
    // It resumes at step 2 (a restart from step 0 with the same seed would end with the same parameters, so the start
    // step is what tells them apart).
    const c = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'mixture', components: 2 }, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
    let start = -1;
    await c.fit({ weights: x }, { steps: 4, batchSize: 4, checkpoint: ck, onStart: (s) => (start = s) });
    expect(start).toBe(2);
    expect(c.drawPriorSamples(5, 9)).toAllClose(b.drawPriorSamples(5, 9), { atol: 0, rtol: 0 });
    expect(c.field.getParams()).toAllClose(a.field.getParams(), { atol: 0, rtol: 0 });
    for (const f of [fm, loaded, a, b, c]) f.dispose();
  });

  it('by run: one component per run id, whatever k-means would find; saved with the flow', async () => {
    // Two runs whose networks interleave two far-apart places: k-means splits by place, 'run' keeps the runs.
    const { x, truth } = clustered([4, 4], 3, 0.05, 11);
    const runs = Int32Array.from(truth, (c, i) => 10 + ((i >> 1) % 2)); // run ids 10/11, unrelated to the places
    const { stats, labels } = fitMixturePrior(arch, { kind: 'mixture', by: 'run', components: 5 }, x, new Rng(1), runs);
    expect(stats.components).toHaveLength(2);
    expect(Array.from(stats.runs!)).toEqual([10, 11]);
    expect(Array.from(labels)).toEqual(Array.from(runs, (r) => r - 10));
    for (let k = 0; k < 2; k++) {
      const rows = [...runs.keys()].filter((i) => runs[i] === 10 + k);
      for (let p = 0; p < P; p++) expect(stats.components[k]!.mean[p]).toBeCloseTo(rows.reduce((s, i) => s + x[i * P + p]!, 0) / rows.length, 6);
    }
    // Networks map to their run's component; a run the fit never saw gets the nearest component mean.
    expect(Array.from(componentsOf(stats, x, runs))).toEqual(Array.from(labels));
    const unseen = componentsOf(stats, x.subarray(0, P), Int32Array.of(99));
    expect(unseen[0]).toBe(nearestComponent(stats, x.subarray(0, P))[0]);
    expect(() => fitMixturePrior(arch, { kind: 'mixture', by: 'run' }, x, new Rng(1))).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/run id/) }));
    // A flow trained by run keeps the run ids with its prior.
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'mixture', by: 'run' }, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
    await expect(fm.fit({ weights: x }, { steps: 1, batchSize: 4 })).rejects.toMatchObject({ code: 'ERR_INVALID' });
    await fm.fit({ weights: x, run: runs }, { steps: 1, batchSize: 4 });
    const loaded = saveAndReload(fm, 'wsf-mixrun-');
    fm.dispose();
    loaded.dispose();
    expect(mixtureBaseline(arch, x, { runs, count: 4, seed: 1 }).labels).toEqual(labels);
  });

  it('rejects a bad component count, a prior pool and trajectory coupling with typed errors', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ prior: { kind: 'mixture', components: 0 } }, /prior\.components/],
      [{ prior: { kind: 'mixture' }, priorPool: 4 }, /prior pool/],
      [{ prior: { kind: 'mixture' }, coupling: 'trajectory' }, /trajectory/],
    ];
    for (const [o, re] of bad) expect(() => FlowMatcher.create({ arch, field: { D: 8, layers: 1 }, device: 'cpu', ...o })).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(re) }));
  });

  it('mixtureBaseline draws every cluster in proportion (largest remainders), each draw from its own component', () => {
    const { x, truth, centres } = clustered([3, 5], 3, 0.05, 8);
    const r = mixtureBaseline(arch, x, { components: 2, count: 7, seed: 1 });
    expect(samePartition(r.labels, truth)).toBe(true);
    // Shares 7·3/8 = 2.625 and 4.375: floors 2 + 4, the larger remainder (0.625) takes the last draw.
    const small = r.labels[0]!; // row 0 belongs to cluster 0 (size 3)
    expect([...r.component].filter((k) => k === small).length).toBe(3);
    for (let i = 0; i < 7; i++) {
      const c = centres[r.component[i] === small ? 0 : 1]!;
      expect(Math.hypot(...c.map((v, p) => v - r.weights[i * P + p]!))).toBeLessThan(0.5);
    }
    expect(() => mixtureBaseline(arch, x, { components: 9 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
  });

  it('isotropic components (std): draws are N(cluster mean, std²·I); the flow saves and reloads them', async () => {
    const { x, truth } = clustered([3, 5], 3, 0.05, 9);
    const n = 2000;
    const r = mixtureBaseline(arch, x, { components: 2, count: n, std: 0.5, seed: 2 });
    const means = [0, 1].map((k) => {
      const rows = [...truth.keys()].filter((i) => r.labels[i] === k);
      return Float64Array.from({ length: P }, (_, p) => rows.reduce((s, i) => s + x[i * P + p]!, 0) / rows.length);
    });
    let ss = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      for (let p = 0; p < P; p++) {
        const d = r.weights[i * P + p]! - means[r.component[i]!]![p]!;
        ss += d * d;
        sum += d;
      }
    }
    const N = n * P;
    expect(Math.abs(sum / N)).toBeLessThan(5 * 0.5 / Math.sqrt(N)); // zero-mean deviations
    expect(Math.abs(Math.sqrt(ss / N) - 0.5)).toBeLessThan(0.01); // σ of the std estimate: 0.5/√(2N) ≈ 0.0017
    expect(() => mixtureBaseline(arch, x, { components: 2, std: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    // Spread 0: every draw is its component's mean.
    const z = mixtureBaseline(arch, x, { components: 2, count: 4, scale: 0, seed: 2 });
    for (let i = 0; i < 4; i++) for (let p = 0; p < P; p++) expect(z.weights[i * P + p]).toBeCloseTo(means[z.component[i]!]![p]!, 5);
    const fm = FlowMatcher.create({ arch, geometry: 'euclidean', prior: { kind: 'mixture', components: 2, std: 0.5 }, field: { D: 8, layers: 1 }, seed: 3, device: 'cpu' });
    await fm.fit({ weights: x }, { steps: 1, batchSize: 4 });
    const loaded = saveAndReload(fm, 'wsf-mixiso-');
    fm.dispose();
    loaded.dispose();
  });
});
