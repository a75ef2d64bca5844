/**
 * Sampling networks from a trained flow in chunks (progress, Ctrl-C between chunks, optional task-gradient
 * guidance), and the samples file (what `wsflow sample` writes and `wsflow eval` reads).
 *
 * Samples file: safetensors with `weights` F32 [n, P] in the flat layout (METHOD.md §1.2) and `__metadata__`:
 * `format` = 'wsflow-samples', `format_version` = '1', `arch` (JSON widths), `task`, `flow` (the flow file),
 * `geometry`, `semantics`, `canonical` ('true' when the networks are canonicalised: Normalized/Geometric flows in
 * corrected semantics), `steps`, `solver`, `velocity`, `seed`, `batch`, `noise`, `renoise` (ρ or 'none'), `guidance` (JSON or 'none'), `zoo_file`,
 * `zoo_aligned`, `created`, `wsflow_version`, `flow_arch` (the architecture the flow was trained on, when the samples
 * are of another one: architecture transfer), and `partial` ('k of n') when sampling was interrupted.
 */
import { type Architecture, mlp, toArchitecture } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import { checkInt, checkNumber, checkObject } from '../util/validate.js';
import { taskGradient, BatchStream } from '../eval/gradient.js';
import type { FlowMatcher, SampleGuidance } from '../flow/FlowMatcher.js';
import type { TimeGridKind } from '../flow/time.js';
import { f32, readSafetensors, writeSafetensors } from '../io/safetensors.js';
import type { Task } from '../tasks/Task.js';
import type { Zoo } from '../zoo/Zoo.js';
import type { Progress } from '../util/progress.js';
import { version } from '../version.js';

export const SAMPLES_FORMAT = 'wsflow-samples';
export const SAMPLES_FORMAT_VERSION = 1;

/** Options of {@link sampleFlow}. */
export interface SampleFlowOptions {
  readonly n: number;
  /** Solver steps (default 64). */
  readonly steps?: number;
  readonly solver?: 'euler' | 'midpoint' | 'rk4';
  /** Spacing of the time grid (FlowMatcher's SampleOptions.grid; default 'uniform'). */
  readonly grid?: TimeGridKind;
  /** Seed (default 1). Chunk c uses seed·1,000,003 + c, so results depend on `seed` and `batch`. */
  readonly seed?: number;
  /** Networks integrated at once (default min(n, 256)); also the unit of progress and interruption. */
  readonly batch?: number;
  /** Stochastic sampling (see FlowMatcher's SampleOptions.noise). */
  readonly noise?: { scale: number; from?: number; to?: number };
  /** Sampling velocity (FlowMatcher's SampleOptions.velocity): 'riemannian' (corrected default) or the thesis' 'x0-anchored'. */
  readonly velocity?: 'riemannian' | 'x0-anchored';
  /** The renoising sampler's share kept per 1/32 of the path (see FlowMatcher's SampleOptions.renoise). */
  readonly renoise?: number;
  /**
   * Task-loss guidance: v ← v − λ·∇L, with ∇L from `rows` training examples per network and step. `logitScale`
   * (default 1) takes the gradient at the network with its last layer (weights and biases) multiplied by that factor
   * — L(s·W_L) differentiated with respect to W_L — for flows whose states hold the last layer at unit norm
   * (Normalized and Geometric): at unit norm the logits are small, the task loss stays large whatever the direction,
   * and its gradient never settles; at the trained networks' own logit scale (see {@link naturalLogitScale}) it does.
   * `at` 'prediction' instead takes one SGD step of rate λ from the field's prediction x̂1 (FlowMatcher's
   * SampleGuidance.at) — on the network with its last layer at scale `logitScale`, so λ is a learning rate as for the
   * trained networks. `layout` (FlowMatcher's SampleGuidance.layout): 'flat' (corrected semantics' default) or the
   * published code's permuted weight layout 'published' (reference semantics' default).
   */
  readonly guidance?: { lambda: number; task: Task; rows?: number; from?: number; to?: number; logitScale?: number; at?: SampleGuidance['at']; layout?: SampleGuidance['layout'] };
  /**
   * Generate this architecture instead of the flow's (architecture transfer; same input width, output width and
   * depth, any hidden widths — see FlowMatcher's SampleOptions.arch). Default: the flow's architecture.
   */
  readonly arch?: Architecture;
  /** Start points, n × P (of `arch` when given) in the flat layout, instead of prior draws. */
  readonly x0?: Float32Array;
  readonly signal?: AbortSignal;
  readonly progress?: Progress;
}

/** Result of {@link sampleFlow}. */
export interface SampleFlowResult {
  /** done × P networks (all n unless interrupted). */
  readonly weights: Float32Array;
  /** The architecture of `weights` (the flow's, or `arch`). */
  readonly arch: Architecture;
  /** Task-gradient evaluations per network (0 without guidance): the guided sampler's gradient budget. */
  readonly gradientEvals: number;
  readonly done: number;
  readonly complete: boolean;
  readonly seconds: number;
}

/** Seed of chunk `c`. */
function chunkSeed(seed: number, c: number): number {
  return (seed * 1_000_003 + c) % 2 ** 31;
}

/**
 * Generates `n` networks from a flow. On abort it stops between chunks and returns what is done
 * (`complete: false`) instead of throwing, so the caller can keep the partial result.
 * @throws WsfError ERR_INVALID for bad options (FlowMatcher's checks), ERR_SHAPE for a guidance task that does not fit,
 *   an `arch` the flow cannot generate, or an `x0` of the wrong length
 */
export async function sampleFlow(fm: FlowMatcher, o: SampleFlowOptions): Promise<SampleFlowResult> {
  const t0 = performance.now();
  checkObject('options', o, 'of sampling options holding at least `n`');
  const arch = o.arch === undefined ? fm.arch : toArchitecture('arch', o.arch);
  const P = arch.numParams;
  const n = checkInt('n', o.n, 1);
  if (o.batch !== undefined) checkInt('batch', o.batch, 1);
  if (o.seed !== undefined) checkInt('seed', o.seed, 0, 2 ** 31);
  if (o.x0 !== undefined && o.x0.length !== n * P) throw new WsfError(`Expected \`x0\` of length n·P = ${n}·${P} = ${n * P} (${arch.key}) but received length ${o.x0.length}`, 'ERR_SHAPE');
  let evals = 0;
  let firstChunk = true;
  const batch = Math.max(1, Math.min(n, o.batch ?? 256));
  const seed = o.seed ?? 1;
  let guidance: SampleGuidance | undefined;
  if (o.guidance !== undefined && o.guidance.lambda !== 0) {
    const g = o.guidance;
    const task = g.task;
    if (task.numFeatures !== arch.widths[0] || task.numClasses !== arch.widths[arch.numLayers]) {
      throw new WsfError(`guidance task '${task.name}' has ${task.numFeatures} features and ${task.numClasses} classes; the sampled networks are ${arch.key}`, 'ERR_SHAPE');
    }
    const stream = new BatchStream(task.train, g.rows ?? 64, seed);
    const s = checkNumber('guidance.logitScale', g.logitScale ?? 1, Number.MIN_VALUE);
    guidance = {
      lambda: g.lambda,
      grad: (x) => {
        if (firstChunk) evals++; // each call is one gradient per network of the chunk
        if (s === 1) return taskGradient(task, arch, x, stream.next(x.length / P)).grad;
        const grad = taskGradient(task, arch, scaleLastLayer(arch, x.slice(), s), stream.next(x.length / P)).grad;
        // At the state: the chain rule, ∂L(s·W)/∂W = s·∂L/∂(s·W). At the prediction: an SGD step of rate λ on the
        // network with its last layer at scale s, written in the unscaled coordinates: the last layer's step ÷ s.
        return scaleLastLayer(arch, grad, g.at === 'prediction' ? 1 / s : s);
      },
      ...(g.from !== undefined ? { from: g.from } : {}),
      ...(g.to !== undefined ? { to: g.to } : {}),
      ...(g.at !== undefined ? { at: g.at } : {}),
      ...(g.layout !== undefined ? { layout: g.layout } : {}),
    };
  }
  const out = new Float32Array(n * P);
  o.progress?.setTotal(n);
  let done = 0;
  for (let c = 0; done < n; c++) {
    if (o.signal?.aborted === true) break;
    const B = Math.min(batch, n - done);
    const w = await fm.sampleAsync({
      n: B,
      steps: o.steps ?? 64,
      solver: o.solver ?? 'euler',
      ...(o.grid !== undefined ? { grid: o.grid } : {}),
      seed: chunkSeed(seed, c),
      ...(o.noise !== undefined ? { noise: o.noise } : {}),
      ...(o.renoise !== undefined ? { renoise: o.renoise } : {}),
      ...(o.velocity !== undefined ? { velocity: o.velocity } : {}),
      ...(guidance !== undefined ? { guidance } : {}),
      ...(o.arch !== undefined ? { arch: o.arch } : {}),
      ...(o.x0 !== undefined ? { x0: o.x0.subarray(done * P, (done + B) * P) } : {}),
    });
    firstChunk = false;
    out.set(w, done * P);
    done += B;
    o.progress?.update(done);
    await new Promise<void>((res) => setImmediate(res));
  }
  o.progress?.done();
  return { weights: done === n ? out : out.slice(0, done * P), arch, gradientEvals: evals, done, complete: done === n, seconds: (performance.now() - t0) / 1000 };
}

/** A samples (or zoo) file read for evaluation. */
export interface WeightsFile {
  readonly arch: Architecture;
  readonly weights: Float32Array;
  readonly n: number;
  readonly metadata: Readonly<Record<string, string>>;
  /** 'wsflow-samples', 'wsflow-zoo' or another format string ('' when absent). */
  readonly format: string;
}

/** Writes a samples file atomically (see the module doc for the metadata). */
export function writeSamples(file: string, arch: Architecture, weights: Float32Array, metadata: Record<string, string>): void {
  const n = weights.length / arch.numParams;
  writeSafetensors(
    file,
    { weights: f32(weights, [n, arch.numParams]) },
    { wsflow_version: version, created: new Date().toISOString(), ...metadata, format: SAMPLES_FORMAT, format_version: String(SAMPLES_FORMAT_VERSION), arch: JSON.stringify(arch.widths) },
  );
}

/**
 * Reads a file with a `weights` tensor F32 [n, P] and an `arch` in its metadata (samples and zoo files), or
 * uses `arch` when the file has none.
 * @throws WsfError ERR_IO when the file is not readable, has no `weights`, or its shape does not fit the architecture
 */
export function readWeightsFile(file: string, arch?: Architecture): WeightsFile {
  const f = readSafetensors(file);
  const t = f.tensors.weights;
  if (t === undefined || t.dtype !== 'F32' || t.shape.length !== 2) throw new WsfError(`${file}: expected a tensor \`weights\` F32 [n, P] (a samples or zoo file)`, 'ERR_IO');
  let a = arch;
  if (a === undefined) {
    const widths = f.metadata.arch;
    if (widths === undefined) throw new WsfError(`${file}: no \`arch\` in the metadata; pass --arch`, 'ERR_IO');
    try {
      a = mlp(widths.startsWith('[') ? (JSON.parse(widths) as number[]) : widths);
    } catch {
      throw new WsfError(`${file}: metadata \`arch\` is '${widths}', not an architecture`, 'ERR_IO');
    }
  }
  if (t.shape[1] !== a.numParams) throw new WsfError(`${file}: \`weights\` has ${t.shape[1]} values per network but ${a.key} has ${a.numParams}`, 'ERR_IO');
  if (t.shape[0] === 0) throw new WsfError(`${file}: holds no networks (\`weights\` is [0, ${a.numParams}])`, 'ERR_IO');
  return { arch: a, weights: t.data as Float32Array, n: t.shape[0]!, metadata: f.metadata, format: f.metadata.format ?? '' };
}

/** Multiplies the last layer (weights and biases) of every network in `x` (B × P, flat layout) by `s`, in place. */
export function scaleLastLayer(arch: Architecture, x: Float32Array, s: number): Float32Array {
  const P = arch.numParams;
  const L = arch.numLayers;
  const w0 = arch.weightOffset(L);
  const nw = arch.widths[L - 1]! * arch.widths[L]!;
  const b0 = arch.biasOffset(L);
  const nb = arch.widths[L]!;
  for (let o = 0; o < x.length; o += P) {
    for (let k = o + w0; k < o + w0 + nw; k++) x[k] = x[k]! * s;
    for (let k = o + b0; k < o + b0 + nb; k++) x[k] = x[k]! * s;
  }
  return x;
}

/**
 * The factor by which networks' logits shrink when they are put in the canonical form of the Normalized and Geometric
 * flows (every hidden neuron's incoming weights at unit norm, its scale pushed into the next layer, the last layer's
 * weight matrix at unit norm): the median over `weights` (B × P, flat layout, raw networks) of the pushed last layer's
 * Frobenius norm. The `logitScale` to guide such a flow's samples at the trained networks' confidence.
 * @throws WsfError ERR_SHAPE when `weights` is not a whole number of networks
 */
export function naturalLogitScale(arch: Architecture, weights: Float32Array): number {
  const P = arch.numParams;
  if (weights.length === 0 || weights.length % P !== 0) throw new WsfError(`Expected B × ${P} weights (B ≥ 1) but received ${weights.length} values`, 'ERR_SHAPE');
  const L = arch.numLayers;
  const norms: number[] = [];
  for (let o = 0; o < weights.length; o += P) {
    // Scale carried into each layer's inputs: c_i for the neurons of the layer below (1 for the network's inputs).
    let carry = new Float64Array(arch.widths[0]!).fill(1);
    for (let l = 1; l <= L; l++) {
      const nin = arch.widths[l - 1]!;
      const nout = arch.widths[l]!;
      const w0 = o + arch.weightOffset(l);
      if (l === L) {
        let ss = 0;
        for (let i = 0; i < nin; i++) for (let j = 0; j < nout; j++) ss += (carry[i]! * weights[w0 + i * nout + j]!) ** 2;
        norms.push(Math.sqrt(ss));
        break;
      }
      const next = new Float64Array(nout);
      for (let j = 0; j < nout; j++) {
        let ss = 0;
        for (let i = 0; i < nin; i++) ss += (carry[i]! * weights[w0 + i * nout + j]!) ** 2;
        next[j] = Math.sqrt(ss);
      }
      carry = next;
    }
  }
  norms.sort((a, b) => a - b);
  return norms[Math.floor(norms.length / 2)]!;
}

/**
 * {@link naturalLogitScale} of a zoo's trained networks: the checkpoints of its last epoch. A scalar, so it serves
 * samples of another architecture too (architecture transfer: the scale of the networks the flow learned from).
 */
export function trainedLogitScale(zoo: Zoo): number {
  const P = zoo.arch.numParams;
  let last = -Infinity;
  for (const e of zoo.epoch) last = Math.max(last, e); // a loop: spreading 10⁵+ epochs overflows the argument stack
  const rows = [...zoo.epoch.keys()].filter((i) => zoo.epoch[i] === last);
  const trained = new Float32Array(rows.length * P);
  rows.forEach((r, k) => trained.set(zoo.weights.subarray(r * P, (r + 1) * P), k * P));
  return naturalLogitScale(zoo.arch, trained);
}
