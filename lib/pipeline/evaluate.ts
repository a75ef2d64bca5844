/**
 * Judging generated networks (what `wsflow eval` prints; also used by the demo and `reproduce`): accuracy and
 * loss of the samples, optionally the model-averaging curve, and, given the zoo the flow learned from, the
 * trained networks' own metrics, three baselines and memorisation (DESIGN.md, "Sample quality is measured"):
 * - trained + noise: trained networks plus isotropic Gaussian noise at the samples' mean nearest-neighbour distance;
 * - averages: means of k random trained networks;
 * - Gaussian: draws from the Gaussian with the zoo's mean and empirical covariance (gaussianBaseline);
 * - mixture (with `mixture`): draws from the mixture prior's fit of the zoo without a flow (mixtureBaseline),
 *   the baseline of a flow that starts from that prior;
 * - memorisation: the samples' distance to their nearest trained network against the zoo's own leave-one-out
 *   nearest-neighbour distance (ratio ≪ 1 suggests copies).
 *
 * Everything is measured in the space the flow works in: raw (aligned) weights for the Euclidean flow,
 * canonicalised weights (`canonicalize`, METHOD.md §3) for the Normalized and Geometric flows — so the trained
 * networks and the baselines are canonicalised too, as the thesis' "Target" rows were. Accuracy does not depend
 * on the space; the loss does (canonicalisation scales the logits).
 */
import { checkObject, checkOptionKeys, optionKeys } from '../util/validate.js';
import { type Architecture, toArchitecture } from '../arch/Architecture.js';
import { averageBaseline, gaussianBaseline, mixtureBaseline, nearestNeighbourDistances, noiseBaseline } from '../eval/baselines.js';
import { bmaCurve } from '../eval/bma.js';
import { evaluateNetworks } from '../eval/evaluate.js';
import type { Summary } from '../eval/stats.js';
import type { DeviceRequest } from '../device.js';
import { canonicalize } from '../geometry/canonicalize.js';
import type { Task } from '../tasks/Task.js';
import { Rng } from '../util/rng.js';

/** Mean and standard deviation. */
export interface MeanStd {
  readonly mean: number;
  readonly std: number;
}

/** Metrics of one set of networks. */
export interface SetMetrics {
  readonly count: number;
  readonly accuracy: Summary;
  readonly loss: Summary;
  /** Per-network test accuracies (for histograms). */
  readonly accuracies: readonly number[];
}

/** One point of a model-averaging curve. */
export interface BmaEntry {
  readonly n: number;
  readonly accuracy: MeanStd;
  readonly loss: MeanStd;
}

/** Result of {@link evaluateSamples}. */
export interface SampleEvaluation {
  readonly task: string;
  readonly split: string;
  /** Examples in the split. */
  readonly examples: number;
  readonly space: 'raw' | 'canonical';
  readonly samples: SetMetrics;
  readonly bma?: readonly BmaEntry[];
  /** The trained networks (a seeded subset of the zoo). */
  readonly trained?: SetMetrics & { readonly bma?: readonly BmaEntry[] };
  readonly baselines?: {
    /** `reached` is false when the samples' distance was beyond what noise reaches in the canonical space (the farthest noise is used). */
    readonly noise: SetMetrics & { readonly sigma: number; readonly distance: number; readonly reached: boolean };
    readonly average: SetMetrics & { readonly k: number };
    /** Draws from the Gaussian fitted to the zoo (mean and empirical covariance over `members` zoo networks). */
    readonly gaussian: SetMetrics & { readonly members: number };
    /** Draws from the Gaussian mixture of the `mixture` prior (k-means clusters of the zoo, one Gaussian each). */
    readonly mixture?: SetMetrics & { readonly components: number; readonly scale: number };
  };
  readonly memorisation?: {
    /** Samples' distance to their nearest trained network. */
    readonly sampleNN: Summary;
    /** The zoo's leave-one-out nearest-neighbour distances. */
    readonly zooLooNN: Summary;
    /** sampleNN.mean / zooLooNN.mean. */
    readonly ratio: number;
  };
  readonly seconds: number;
}

/** Options of {@link evaluateSamples}. */
export interface EvaluateSamplesOptions {
  readonly task: Task;
  readonly arch: Architecture;
  /** n × P generated networks. */
  readonly samples: Float32Array;
  /** Measure in canonicalised space (Normalized/Geometric flows). */
  readonly canonical: boolean;
  /** Ensemble sizes of the model-averaging curve (none when absent or empty). */
  readonly bma?: readonly number[];
  /** Random ensembles per size (default 10). */
  readonly bmaRepeats?: number;
  /** The zoo networks the flow learned from (T × P), for the comparisons. */
  readonly zoo?: Float32Array;
  /** Trained networks and baseline networks to evaluate (default max(samples, 256), at most T). */
  readonly refCount?: number;
  /** Networks per average in the averaging baseline (default 2). */
  readonly averageK?: number;
  /**
   * A mixture-fit baseline (the `mixture` prior's own draws, fitted to the raw zoo): `components` k-means clusters, or
   * with `runs` (the zoo's run ids) one cluster per run; none when absent.
   */
  readonly mixture?: { readonly components?: number; readonly runs?: Int32Array; readonly scale?: number };
  readonly seed?: number;
  readonly device?: DeviceRequest;
  /** Called with a short description before each stage. */
  readonly onStage?: (stage: string) => void;
}

function metrics(r: { accuracy: Float64Array; loss: Float64Array; accuracySummary: Summary; lossSummary: Summary }): SetMetrics {
  return { count: r.accuracy.length, accuracy: r.accuracySummary, loss: r.lossSummary, accuracies: Array.from(r.accuracy) };
}

function bmaEntries(points: readonly { n: number; accuracy: Summary; loss: Summary }[]): BmaEntry[] {
  return points.map((p) => ({ n: p.n, accuracy: { mean: p.accuracy.mean, std: p.accuracy.std }, loss: { mean: p.loss.mean, std: p.loss.std } }));
}

/** Rows `idx` of a B×P batch. */
function rows(x: Float32Array, P: number, idx: Int32Array): Float32Array {
  const out = new Float32Array(idx.length * P);
  idx.forEach((k, i) => out.set(x.subarray(k * P, (k + 1) * P), i * P));
  return out;
}

const EVALUATE_SAMPLES_KEYS = optionKeys<EvaluateSamplesOptions>()(['task', 'arch', 'samples', 'canonical', 'bma', 'bmaRepeats', 'zoo', 'refCount', 'averageK', 'mixture', 'seed', 'device', 'onStage']);

/**
 * Evaluates generated networks on the task's test split, and against the zoo when given (see the module doc).
 * @throws WsfError for bad arrays or options (the eval functions' checks), e.g. an ensemble size above the sample count
 */
export async function evaluateSamples(o: EvaluateSamplesOptions): Promise<SampleEvaluation> {
  checkObject('options', o, 'holding `task`, `arch`, `samples` and `canonical`');
  checkOptionKeys('evaluateSamples', o, EVALUATE_SAMPLES_KEYS);
  checkObject('task', o.task, '(a Task, from loadTask)');
  const t0 = performance.now();
  const task = o.task;
  const arch = toArchitecture('arch', o.arch);
  const P = arch.numParams;
  const seed = o.seed ?? 0;
  const dev = o.device !== undefined ? { device: o.device } : {};
  const space = (x: Float32Array): Float32Array => (o.canonical ? canonicalize(arch, x, dev) : x);
  const S = space(o.samples);
  const nS = S.length / P;
  o.onStage?.(`evaluating ${nS} samples on ${task.name}`);
  const ev = await evaluateNetworks(task, arch, S);
  const out: { -readonly [K in keyof SampleEvaluation]: SampleEvaluation[K] } = {
    task: task.name,
    split: ev.split,
    examples: ev.n,
    space: o.canonical ? 'canonical' : 'raw',
    samples: metrics(ev),
    seconds: 0,
  };
  const ns = o.bma ?? [];
  const bmaOpts = { ns, repeats: o.bmaRepeats ?? 10, seed };
  if (ns.length > 0) {
    o.onStage?.(`model averaging over n = ${ns.join(', ')}`);
    out.bma = bmaEntries((await bmaCurve(task, arch, S, bmaOpts)).points);
  }
  if (o.zoo !== undefined) {
    const T = o.zoo.length / P;
    const Z = space(o.zoo);
    const count = Math.min(T, o.refCount ?? Math.max(nS, 256));
    const idx = new Rng(seed * 7 + 11).permutation(T).slice(0, count).sort();
    const ref = rows(Z, P, idx);
    o.onStage?.(`evaluating ${count} trained networks`);
    const trained: SetMetrics & { bma?: readonly BmaEntry[] } = metrics(await evaluateNetworks(task, arch, ref));
    const refNs = ns.filter((n) => n <= count);
    if (refNs.length > 0) trained.bma = bmaEntries((await bmaCurve(task, arch, ref, { ...bmaOpts, ns: refNs })).points);
    out.trained = trained;
    o.onStage?.(`nearest-neighbour distances to ${T} trained networks`);
    const nn = nearestNeighbourDistances(arch, S, Z, { seed });
    out.memorisation = { sampleNN: strip(nn.samples), zooLooNN: strip(nn.trainLoo), ratio: nn.ratio };
    o.onStage?.('baselines');
    const distance = Math.max(nn.samples.mean, 1e-12);
    const noise = noiseBaseline(arch, ref, { distance, count, seed: seed + 1, ...(o.canonical ? { transform: space, saturate: true } : {}) });
    const k = Math.min(o.averageK ?? 2, count);
    const avg = averageBaseline(arch, ref, { k, count, seed: seed + 2 });
    const gauss = gaussianBaseline(arch, Z, { count, seed: seed + 3 });
    // Fitted to the raw zoo and then projected, as the flow's mixture prior is.
    const mo = o.mixture;
    const mix = mo !== undefined ? mixtureBaseline(arch, o.zoo, { components: Math.min(mo.components ?? 8, T), ...(mo.runs !== undefined ? { runs: mo.runs } : {}), ...(mo.scale !== undefined ? { scale: mo.scale } : {}), count, seed: seed + 4 }) : undefined;
    const K = mix === undefined ? 0 : new Set(mix.labels).size;
    out.baselines = {
      noise: { ...metrics(await evaluateNetworks(task, arch, space(noise.weights))), sigma: noise.sigma, distance: noise.meanDistance, reached: noise.reached },
      average: { ...metrics(await evaluateNetworks(task, arch, space(avg.weights))), k },
      gaussian: { ...metrics(await evaluateNetworks(task, arch, space(gauss.weights))), members: gauss.members },
      ...(mix !== undefined ? { mixture: { ...metrics(await evaluateNetworks(task, arch, space(mix.weights))), components: K, scale: mo?.scale ?? 1 } } : {}),
    };
  }
  out.seconds = (performance.now() - t0) / 1000;
  return out;
}

function strip(s: Summary): Summary {
  return { mean: s.mean, std: s.std, min: s.min, max: s.max, n: s.n };
}

/** The evaluation without per-network arrays (for printing as JSON). */
export function compactEvaluation(e: SampleEvaluation): unknown {
  return JSON.parse(JSON.stringify(e, (k, v: unknown) => (k === 'accuracies' ? undefined : v))) as unknown;
}
