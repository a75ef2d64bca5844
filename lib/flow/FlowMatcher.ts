/**
 * Flow matching over network weights in three geometries (METHOD.md §5–§7):
 * - **euclidean**: raw (aligned) weights, linear interpolation x_t = (1−t)x0 + t·x1 + σε, MSE on x̂1;
 * - **normalized**: data and prior canonicalised (per-neuron scale normalisation, §3), predictions canonicalised
 *   (`normalizePred`), Euclidean interpolation and MSE;
 * - **geometric**: canonicalised, geodesic interpolation on the product of spheres (hidden neurons' incoming
 *   weights, the whole last layer) × Euclidean biases, squared geodesic-distance loss.
 *
 * The vector field predicts x̂1 (default) or a velocity. Sampling integrates dx/dt = v(x, t) with Euler,
 * midpoint or RK4 steps; in corrected semantics v = Log_x(x̂1)/(1−t) (Euclidean: (x̂1 − x)/(1−t)) and each step
 * is an exact exponential map followed by re-projection; reference semantics reproduces the published sampler
 * (v = x̂1 − x0, the non-tangent exponential step, noise only for t > 0.8, `steps − 1` steps, guidance gradients in
 * its (out, in) weight layout). Every difference between the two is a named option (see {@link FlowOptions},
 * {@link SampleOptions}, {@link SampleGuidance.layout}).
 *
 * **Architecture transfer.** One vector field serves any MLP with the same input width, output width and depth
 * (hidden widths are free), so {@link FlowMatcher.sample} can generate another architecture than the one the flow
 * was trained on (`arch`, e.g. 784-32-10 from a flow trained on 784-10-10, thesis §11.4): the prior, geometry and
 * canonicalisation are then those of the new architecture. With `layerScaling`, the per-layer scales measured on the
 * training data are reused layer by layer (one constant per layer's weight block and bias block; the depth is the
 * same, so each layer has its counterpart). They are not re-measured, since there is no data of the new
 * architecture; note that canonicalised last-layer entries shrink as 1/√(n_{L−1}·n_L), so a wider last hidden layer
 * feeds the field smaller inputs than it saw in training.
 */
import * as fs from 'node:fs';
import { Architecture, checkBatch, mlp } from '../arch/Architecture.js';
import type { DeviceRequest } from '../device.js';
import { asFileError, DisposedError, WsfError } from '../errors.js';
import { publishedGradientLayout, taskGradient, type MiniBatch } from '../eval/gradient.js';
import { VECTOR_FIELD_KEYS, VectorField, type FlowSampleOptions, type GraphMode, type MatmulPrecision, type VectorFieldOptions } from '../engine/VectorField.js';
import type { NativeFlowPrior } from '../native/types.js';
import { geometry, type Geometry, type GeometryKind } from '../geometry/Geometry.js';
import { f32, i32, readSafetensors, writeSafetensors, type SafeTensor } from '../io/safetensors.js';
import { fillNormalFast } from '../util/fastNormal.js';
import { Rng } from '../util/rng.js';
import { checkChoice, checkFiniteTensors, checkInt, checkNumber, checkObject, checkOptionKeys, describe, firstNonFinite, invalidArgument, optionKeys } from '../util/validate.js';
import { loadTask } from '../tasks/loadTask.js';
import type { Task } from '../tasks/Task.js';
import { version } from '../version.js';
import { couplingCost, otPairs, type Coupling, type OtCost } from './coupling.js';
import { drawProbes, gaussianLogDensity, integrateDivergence, type DivergenceProblem, type ProbeKind } from './likelihood.js';
import { checkPriorSpec, componentsOf, drawMixtureComponents, fitMixturePrior, fitZooPrior, isMixture, membersOf, nearestComponent, samplePrior, type MixturePriorStats, type PriorSpec, type PriorStats } from './prior.js';
import { integrate } from './solvers.js';
import { TIME_DISTRIBUTIONS, sampleTimes, timeGrid, type TimeDistribution, type TimeGridKind } from './time.js';

/** One training step's loss and gradient norm (before clipping). */
type StepResult = { loss: number; gradNorm: number };

/** Options of {@link FlowMatcher.create}. */
export interface FlowOptions {
  /** The base-network architecture. */
  arch: Architecture | readonly number[];
  /** 'euclidean', 'normalized' or 'geometric'. Default 'geometric'. */
  geometry?: GeometryKind;
  /** 'corrected' (default) or 'reference' (the published code's behaviour, for reproducing the thesis). */
  semantics?: 'corrected' | 'reference';
  /** Vector-field options (width, layers, graph mode …). Default: D 32, 5 layers, sparse graph. */
  field?: Omit<VectorFieldOptions, 'arch' | 'device' | 'seed'>;
  /**
   * Prior p0. Default Gaussian std 0.1 (the thesis). `{ kind: 'zoo' }` fits a Gaussian to the first training data
   * (mean and empirical covariance of `members` networks, default 256): on the MNIST zoo (D=16, 2,000 steps) it lifted
   * samples from 0.335 to 0.555 (results/trials); such a flow samples only its own architecture.
   * `{ kind: 'mixture', components: K }` fits one such Gaussian per k-means cluster of the training data and trains
   * each network against draws from its own cluster's Gaussian (see prior.ts).
   */
  prior?: PriorSpec;
  /** Draw priors from a fixed pool of this many samples (the published code uses the dataset size). Default 0: fresh draws every step. */
  priorPool?: number;
  /**
   * Gradient features (beyond the thesis): the field also sees, for every weight and bias of x_t, the task-loss
   * gradient of the network x_t on a fixed probe batch of `rows` training examples of the built-in task `task`
   * (normalised to unit RMS per network and layer block) — as a learned optimiser sees the task. Training and
   * sampling then evaluate one gradient per network and field call; the flow samples only for that task's
   * shapes. Default: off.
   */
  gradientFeatures?: { task: string; rows?: number } | null;
  /**
   * Probe features (beyond the thesis; Kofinas et al. 2024): the field also sees, for every neuron of x_t, its
   * activations on `probes` fixed training inputs of the built-in task `task` (at its bias; the logits for output
   * neurons) and, for every weight, its source neuron's activations (the input values in the first layer) — what the
   * network computes, without labels. Normalised to unit RMS per network and layer block. `probes` columns of the
   * field's input (default 8); training and sampling evaluate the networks on the probes at every field call.
   * Default: off.
   */
  probeFeatures?: { task: string; probes?: number } | null;
  /**
   * Component input (mixture prior only; beyond the thesis): the field also sees, for every weight and bias, the mean
   * of the mixture component a trajectory starts in (the component whose canonical mean is nearest the start point
   * x0), so it can learn each mode's map relative to its mean instead of having to recognise the mode from x_t.
   * Default false.
   */
  componentInput?: boolean;
  /**
   * Self-conditioning (beyond the thesis; after Chen et al. 2022, "Analog Bits"): the field also sees where its own
   * previous prediction x̂1 points from the state it is given — x̂1 − x_t, divided by its RMS over each network's
   * layer block as the other feature inputs are — as one more input column per weight and bias. In training, half of
   * the steps first predict x̂1 with that column at zero (no gradient) and then train with it; the other half train
   * with zeros. The sampler gives each field call the prediction of the call before it (zeros at the first), so the
   * field can refine its estimate along the path at no extra cost per step. (The raw prediction as the column slowed
   * training: WDBC loss after 600 steps 0.466 against 0.446 without self-conditioning; the normalised displacement
   * 0.444.) x1-prediction only; combines with the other feature inputs (its column comes last). Training costs one
   * more forward pass on half of the steps, on the host-orchestrated step. Default false.
   */
  selfCondition?: boolean;
  /**
   * Training-time distribution. Default 'logit-normal' (σ(N(0,1))) in corrected semantics, 'beta' (Beta(1,2), the
   * thesis) in reference semantics: on MNIST logit-normal times gave 0.449 vs 0.393 (averaged over 64: 0.730 vs 0.566)
   * at 10,000 steps, on WDBC the same quality (results/trials).
   */
  time?: TimeDistribution;
  /** Interpolant noise σ for the Euclidean/Normalized paths. Default 1e-4. */
  sigma?: number;
  /**
   * 'independent' (default), 'ot', 'trajectory' (needs the zoo's initial weights) or 'component-ot' (mixture prior
   * only): each training pair comes from an OT assignment between otPool·B members of one mixture component (the
   * batch network's own, plus random members of it) and as many draws of that component's Gaussian, one random pair
   * of it — both marginals stay exact, and the start point is paired with a network of its mode near it rather than a
   * random one, so the field has a map to learn instead of the component's mean.
   */
  coupling?: Coupling;
  /** OT cost. Default 'euclidean' (the published choice, also for the Geometric flow). */
  otCost?: OtCost;
  /**
   * OT coupling over a pool of this many batches (default 1: the published minibatch OT within each batch). With K > 1
   * each step draws K·B prior samples and K·B networks, solves the assignment over the pool and trains on B of its
   * pairs chosen at random, so both marginals stay exact while the pairing comes closer to the full OT map. With
   * 'component-ot' each pair's assignment is over max(2, K·B) members of one component.
   */
  otPool?: number;
  /** What the network predicts: 'x1' (default) or 'velocity'. */
  prediction?: 'x1' | 'velocity';
  /**
   * x̂1 = x_t + (1 − t)·F(x_t, t) instead of x̂1 = F. Default: true in corrected semantics with x1-prediction for
   * the Normalized and Geometric flows, and for the Euclidean flow when the prior is fitted to the zoo ('zoo' or
   * 'mixture'); false otherwise. Measured on the aligned WDBC zoo (600 steps, EMA 0.99, results/trials/wdbc.jsonl):
   * Geometric 0.982 ± 0.020 with it vs 0.977 ± 0.014 without, Normalized 0.980 vs 0.977; Euclidean from N(0, 0.1²)
   * 0.65 ± 0.26 vs 0.87 ± 0.12 (on raw weights far from the start the field must reproduce −x0 edge by edge), but from
   * the mixture prior, whose draws are already near the networks, 0.983 vs 0.973 (official MNIST: 0.892 vs 0.886).
   * Reference semantics keeps it off (the published model).
   */
  precondition?: boolean;
  /**
   * Scale each layer's weights and biases to unit RMS (from the data) on the way in and back on the way out.
   * Default: true for the Euclidean flow in corrected semantics, false otherwise. Measured on the aligned WDBC zoo
   * (600 steps, EMA 0.99; results/trials/wdbc.jsonl): Euclidean samples 0.958 ± 0.031 test accuracy with it vs
   * 0.865 ± 0.116 without (canonicalised weights of the sphere flows are on a common scale already).
   */
  layerScaling?: boolean;
  /** Frobenius norm of the canonicalised last layer. Default 1 (the published code; √C is the thesis' text). */
  lastLayerNorm?: number;
  /** Seed for parameters, priors, times and batches. Default 0. */
  seed?: number;
  /** 'auto' (default), 'cpu', 'cuda'. */
  device?: DeviceRequest;
}

const FLOW_KEYS = optionKeys<FlowOptions>()(['arch', 'geometry', 'semantics', 'field', 'prior', 'priorPool', 'gradientFeatures', 'probeFeatures', 'componentInput', 'selfCondition', 'time', 'sigma', 'coupling', 'otCost', 'otPool', 'prediction', 'precondition', 'layerScaling', 'lastLayerNorm', 'seed', 'device'] as const);
// FlowOptions.field is VectorFieldOptions without arch, device and seed, which the flow itself takes.
const FIELD_KEYS = VECTOR_FIELD_KEYS.filter((k) => k !== 'arch' && k !== 'device' && k !== 'seed');
const TRAIN_KEYS = optionKeys<TrainOptions>()(['steps', 'batchSize', 'lr', 'schedule', 'warmup', 'weightDecay', 'clipNorm', 'ema', 'checkpoint', 'checkpointMetadata', 'checkpointEvery', 'onLog', 'logEvery', 'signal', 'onStart'] as const);
const SAMPLE_KEYS = optionKeys<SampleOptions>()(['n', 'steps', 'grid', 'solver', 'batchSize', 'seed', 'x0', 'noise', 'renoise', 'guidance', 'useEma', 'velocity', 'onProgress', 'onStep', 'arch'] as const);
const GUIDANCE_KEYS = optionKeys<SampleGuidance>()(['grad', 'lambda', 'from', 'to', 'at', 'layout'] as const);
const LIKELIHOOD_KEYS = optionKeys<LikelihoodOptions>()(['steps', 'solver', 'exact', 'probes', 'probe', 'seed', 'batchSize', 'useEma', 'onProgress'] as const);

/** A set of networks to learn from (flat layout). */
export interface WeightDataset {
  /** n × P. */
  weights: Float32Array;
  /** Run id of each network (trajectory coupling). */
  run?: Int32Array;
  /**
   * Initial weights of each run, runs × P (trajectory coupling), in the same hidden-neuron order as the networks
   * paired with them. After `alignNetworks`, permute them as the networks were: give each network its own row,
   * `permuteNetworks(arch, init of run[i] for each i, aligned.perms)`, with `run` = 0 … n−1 (checkpoints of one run
   * may get different permutations); an unpermuted init pairs networks with a scrambled start.
   */
  init?: Float32Array;
}

/** One training log record. */
export interface TrainLog {
  step: number;
  loss: number;
  gradNorm: number;
  lr: number;
  elapsedS: number;
  stepsPerS: number;
}

/** Options of {@link FlowMatcher.fit}. */
export interface TrainOptions {
  /** Total optimiser steps (including any already done when resuming). */
  steps: number;
  /** Networks per step. Default 32. */
  batchSize?: number;
  /** Peak learning rate. Default 1e-3. */
  lr?: number;
  /** 'constant' (default) or 'cosine' decay to 0 after warm-up. */
  schedule?: 'constant' | 'cosine';
  /** Linear warm-up steps. Default 0. */
  warmup?: number;
  /** Decoupled weight decay. Default 0. */
  weightDecay?: number;
  /** Gradient-norm clipping (0 = off). Default 0. */
  clipNorm?: number;
  /** Exponential moving average of parameters with this decay (0 = off). Default 0. */
  ema?: number;
  /** Write a checkpoint here every `checkpointEvery` steps and at the end (atomic). */
  checkpoint?: string;
  /** Extra safetensors metadata written with every checkpoint (e.g. the task and zoo it was trained on). */
  checkpointMetadata?: Record<string, string>;
  /** Default 1000. */
  checkpointEvery?: number;
  /** Called every `logEvery` steps (default 50) with the running loss. */
  onLog?: (log: TrainLog) => void;
  logEvery?: number;
  /** Stops after the current step, writes a checkpoint, and rejects with ERR_INTERRUPTED. */
  signal?: AbortSignal;
  /**
   * Called once the data, the options and any checkpoint have been accepted, just before the first step, with the
   * step training starts from (an error before it is a refused start: nothing was trained or written).
   */
  onStart?: (step: number) => void;
}

/**
 * Task-gradient guidance for {@link FlowMatcher.sample}. `grad(x, t)` returns ∇L at the B·P networks `x` (flat layout),
 * one gradient per network; it is called once per velocity evaluation with t in [from, to] (default [0, 1]).
 */
export interface SampleGuidance {
  grad: (x: Float32Array, t: number) => Float32Array;
  /** Strength λ. */
  lambda: number;
  from?: number;
  to?: number;
  /**
   * Where the gradient acts. 'state' (default; the thesis' form): v ← v − λ·∇L(x_t), the gradient taken at the
   * current state (tangent-projected on the spheres for the Geometric flow). 'prediction' (beyond the thesis): the
   * field's prediction x̂1 takes one gradient step, x̂1 ← canon(x̂1 − λ·∇L(x̂1)) — a step in the flat layout, put back
   * on the spheres by the function-preserving canonicalisation for the Normalized and Geometric flows, i.e. one SGD
   * step of learning rate λ on the predicted network — and the sampler aims at the stepped prediction. The gradient is
   * taken at a network the field believes finished, not at a noisy state, and the velocity's pull towards x̂1 (which
   * grows as 1/(1 − t)) carries the step instead of undoing it. x1-prediction flows in corrected semantics; also
   * with the renoising sampler.
   */
  at?: 'state' | 'prediction';
  /**
   * The layout the gradient is applied in. 'flat' (the default in corrected semantics): ∇L in the flat layout, every
   * weight's gradient on that weight. 'published' (the default in reference semantics): as the published code did
   * (METHOD.md §12 item 3) — each layer's weight gradient flattened in PyTorch's (out, in) order and laid over the
   * flow's (in, out) coordinates, a fixed permutation of the weight part ({@link publishedGradientLayout}); biases as
   * in 'flat'. For replaying the thesis' guided runs; it is not a descent direction for the weights.
   */
  layout?: 'flat' | 'published';
}

/** Options of {@link FlowMatcher.sample}. */
export interface SampleOptions {
  /** Networks to generate. */
  n: number;
  /** Solver steps (reference semantics: grid points, so steps − 1 steps). Default 64. */
  steps?: number;
  /**
   * Spacing of the time grid (corrected semantics): 'uniform' (default), 'early' (denser near t = 0: t = s²) or
   * 'cosine' (denser near both ends). Reference semantics supports only 'uniform'.
   */
  grid?: TimeGridKind;
  /** 'euler' (default), 'midpoint' or 'rk4'. */
  solver?: 'euler' | 'midpoint' | 'rk4';
  /** Networks integrated at once (bounds memory). Default min(n, 256). */
  batchSize?: number;
  /** Seed of the prior draws and noise. Default 1. */
  seed?: number;
  /** Start points (n × P) instead of prior draws. */
  x0?: Float32Array;
  /** Stochastic sampling: noise of `scale`·√dt per step for t in [from, to] (reference: `scale` per step for t > 0.8). */
  noise?: { scale: number; from?: number; to?: number };
  /**
   * Renoising sampler (beyond the thesis; the flow-matching analogue of DDIM with η > 0): at each grid time t the
   * field predicts x̂1, the start point is extrapolated back along the path through x̂1 and x_t (x̂0 =
   * Interp(x̂1, x_t, 1/(1−t))), a share of it is replaced by a fresh prior draw z (x̃0 = ρ·x̂0 + √(1−ρ²)·z,
   * canonicalised), and the next state is Interp(x̃0, x̂1, t'). ρ is the share kept per 1/32 of the path (per step
   * ρ^(32·(t'−t))), so the amount of fresh noise does not depend on the number of steps; 1 gives the Euler sampler's
   * path (to rounding). With an exact field the state keeps the interpolant's marginals (exactly for Gaussian
   * coordinates, closely on the spheres); with a learned one, the field's errors along the path are partly forgotten: on official MNIST with the thesis' prior,
   * ρ = 0.6 lifts single samples of a D=32 × 5 field from 0.670 to 0.748 (results/FINDINGS.md, results/trials/mnist-full-sgd.jsonl). x1-prediction,
   * corrected semantics and a zero-mean prior ('gaussian' or 'init') only; not with guidance, `noise`, `velocity` or a
   * solver other than Euler. Default: off.
   */
  renoise?: number;
  /** Guidance by a task-loss gradient ∇L in the flat layout, for t in [from, to]; see {@link SampleGuidance}. */
  guidance?: SampleGuidance;
  /** Use the EMA parameters when present. Default true. */
  useEma?: boolean;
  /** Sampling velocity: 'riemannian' (corrected default) or 'x0-anchored' (reference default, v = x̂1 − x0). */
  velocity?: 'riemannian' | 'x0-anchored';
  /** Called after each batch with the number of networks done. */
  onProgress?: (done: number, total: number) => void;
  /** Called with each batch's state before every solver step and once at the end (t = 1), e.g. to record trajectories. */
  onStep?: (x: Float32Array, t: number, batchStart: number) => void;
  /**
   * Generate networks of this architecture instead of the flow's (architecture transfer): same input width, output
   * width and depth as the flow's architecture, any hidden widths. `x0`, the guidance gradient, `onStep` and the
   * result then use this architecture's flat layout (P = `arch.numParams`). Default: the flow's architecture.
   */
  arch?: Architecture | readonly number[];
}

/** The architecture a computation runs on, with its geometry and per-parameter scale (layerScaling). */
interface Target {
  readonly arch: Architecture;
  readonly geom: Geometry;
  readonly scale: Float32Array | undefined;
}

/** Options of {@link FlowMatcher.logLikelihood}. */
export interface LikelihoodOptions {
  /** Solver steps on the sampler's time grid (0, 1/steps, …, 1), walked backwards. Default 64. */
  steps?: number;
  /** 'euler' (default, as the sampler), 'midpoint' or 'rk4' (4 evaluations per step; far smaller ODE error). */
  solver?: 'euler' | 'midpoint' | 'rk4';
  /** Exact trace: one vector–Jacobian product per coordinate (P per evaluation; for small P). Default false. */
  exact?: boolean;
  /** Hutchinson probes per trajectory (fixed along it). Default 25. */
  probes?: number;
  /** Probe distribution: 'rademacher' (default; lower variance) or 'gaussian' (the published code). */
  probe?: ProbeKind;
  /** Seed of the probes. Default 1. */
  seed?: number;
  /** Networks integrated at once. Default min(n, 64). */
  batchSize?: number;
  /** Use the EMA parameters when present (as {@link FlowMatcher.sample}). Default true. */
  useEma?: boolean;
  /** Called after each batch with the number of networks done. */
  onProgress?: (done: number, total: number) => void;
}

/** The result of {@link FlowMatcher.logLikelihood}, one entry per network. */
export interface LikelihoodResult {
  /** log p̂1(x1) = log p0(x0) − ∫₀¹ tr(∂v/∂x) dt, in nats (ambient density on R^P). */
  logLikelihood: Float64Array;
  /** log p0(x0) under the prior N(mean, std²·I). */
  logPrior: Float64Array;
  /** ∫₀¹ tr(∂v/∂x)(x(t), t) dt along the trajectory through x1. */
  divergence: Float64Array;
  /** Monte-Carlo standard error of `divergence` (and so of `logLikelihood`); 0 with `exact`. */
  stderr: Float64Array;
  /** The start points x(0), n × P. */
  x0: Float32Array;
  /** Network forward passes and vector–Jacobian products used. */
  nfe: number;
  nvjp: number;
}

const FORMAT = 'wsflow.flow/1';

interface ResolvedOptions {
  geometry: GeometryKind;
  semantics: 'corrected' | 'reference';
  prior: PriorSpec;
  priorPool: number;
  gradientFeatures: { task: string; rows: number } | null;
  probeFeatures: { task: string; probes: number } | null;
  componentInput: boolean;
  selfCondition: boolean;
  time: TimeDistribution;
  sigma: number;
  coupling: Coupling;
  otCost: OtCost;
  otPool: number;
  prediction: 'x1' | 'velocity';
  precondition: boolean;
  layerScaling: boolean;
  lastLayerNorm: number;
  seed: number;
}

/** A boolean option. */
function checkFlag(name: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw invalidArgument(name, 'true or false', v);
  return v;
}

/**
 * Probe features of networks x (B×P of `a`): per network, entry p's K values (at (b·P + p)·K + k) are, for the bias of
 * neuron j of layer l, its activation on probe k (post-ReLU; the logit for output neurons), and for the weight from
 * neuron i of layer l−1, neuron i's activation on probe k (the input value for l = 1); then each network's weight and
 * bias block of every layer is divided by its RMS (1e-12 floor).
 */
export function probeActivations(a: Architecture, x: Float32Array, probes: Float32Array, K: number): Float32Array {
  const P = a.numParams;
  const B = x.length / P;
  const L = a.numLayers;
  const out = new Float32Array(B * P * K);
  const maxW = Math.max(...a.widths);
  let act = new Float64Array(maxW);
  let next = new Float64Array(maxW);
  for (let b = 0; b < B; b++) {
    const xb = b * P;
    for (let k = 0; k < K; k++) {
      const n0 = a.widths[0]!;
      for (let i = 0; i < n0; i++) act[i] = probes[k * n0 + i]!;
      for (let l = 1; l <= L; l++) {
        const nIn = a.widths[l - 1]!, nOut = a.widths[l]!;
        const wOff = a.weightOffset(l), bOff = a.biasOffset(l);
        for (let j = 0; j < nOut; j++) next[j] = x[xb + bOff + j]!;
        for (let i = 0; i < nIn; i++) {
          const ai = act[i]!;
          const row = xb + wOff + i * nOut;
          for (let j = 0; j < nOut; j++) {
            next[j] = next[j]! + ai * x[row + j]!;
            out[(row + j) * K + k] = ai;
          }
        }
        for (let j = 0; j < nOut; j++) {
          if (l < L && next[j]! < 0) next[j] = 0;
          out[(xb + bOff + j) * K + k] = next[j]!;
        }
        [act, next] = [next, act];
      }
    }
  }
  normaliseBlocks(out, a, K);
  return out;
}

/**
 * Divides each network's weight block and bias block of every layer (K values per entry, B×P×K) by its RMS, with a
 * 1e-12 floor: the scale the field's feature inputs are given in.
 */
function normaliseBlocks(v: Float32Array, a: Architecture, K: number): void {
  const P = a.numParams;
  const blocks = layerBlocks(a);
  for (let b = 0; b < v.length / (P * K); b++) {
    for (const [o, len] of blocks) {
      const q0 = (b * P + o) * K, q1 = q0 + len * K;
      let ss = 0;
      for (let q = q0; q < q1; q++) ss += v[q]! * v[q]!;
      const inv = 1 / Math.max(Math.sqrt(ss / (len * K)), 1e-12);
      for (let q = q0; q < q1; q++) v[q]! *= inv;
    }
  }
}

/** [offset, length] of each layer's weight block and bias block in the flat layout (per-layer scales and features). */
function layerBlocks(a: Architecture): [number, number][] {
  const blocks: [number, number][] = [];
  for (let l = 1; l <= a.numLayers; l++) blocks.push([a.weightOffset(l), a.widths[l - 1]! * a.widths[l]!], [a.biasOffset(l), a.widths[l]!]);
  return blocks;
}

/** The statistics of a `mixture` prior from a flow file's tensors, or undefined when the file has none. */
function readMixture(t: Record<string, SafeTensor>): MixturePriorStats | undefined {
  const w = t['__prior_mix_weight']?.data;
  const m = t['__prior_mix_members']?.data;
  const mean = t['__prior_mix_mean']?.data;
  const basis = t['__prior_mix_basis']?.data;
  if (!(w instanceof Float64Array) || !(m instanceof Int32Array) || !(mean instanceof Float32Array) || !(basis instanceof Float32Array)) return undefined;
  const K = w.length;
  const P = mean.length / K;
  let off = 0;
  const components = Array.from(w, (weight, k) => {
    const n = m[k]! * P;
    const c = { weight, mean: mean.subarray(k * P, (k + 1) * P), basis: basis.subarray(off, off + n) };
    off += n;
    return c;
  });
  const std = t['__prior_mix_std']?.data;
  const runs = t['__prior_mix_runs']?.data;
  return { components, ...(std instanceof Float64Array ? { std: std[0]! } : {}), ...(runs instanceof Int32Array ? { runs } : {}) };
}

/** {@link SampleGuidance.layout}'s default: the published code's layout in reference semantics, the flat one otherwise. */
export function defaultGuidanceLayout(semantics: 'corrected' | 'reference'): 'flat' | 'published' {
  return semantics === 'reference' ? 'published' : 'flat';
}

/** The guidance gradient at the B·P networks `x`, checked to have their length. */
function guidanceGradient(g: SampleGuidance, x: Float32Array, t: number): Float32Array {
  const grad: unknown = g.grad(x, t);
  if (!(grad instanceof Float32Array)) throw new WsfError(`Expected the guidance gradient (guidance.grad's return value) as a Float32Array of length ${x.length} but received ${describe(grad)}`, 'ERR_DTYPE');
  if (grad.length !== x.length) throw new WsfError(`guidance gradient has length ${grad.length}; expected ${x.length}`, 'ERR_SHAPE');
  const i = firstNonFinite(grad);
  if (i >= 0) throw new WsfError(`the guidance gradient (guidance.grad's return value) at t = ${t} is ${grad[i]} at element ${i}; expected finite values`, 'ERR_NUMERIC');
  return grad;
}

/**
 * A fingerprint of a dataset (every weight's bits, and the run ids): fit() recomputes what it derives from its data
 * (the layer scaling, the mixture components' members) when it is given other data.
 */
function dataFingerprint(data: WeightDataset): string {
  const w = data.weights;
  const bits = new Int32Array(w.buffer, w.byteOffset, w.length);
  let h1 = 0x811c9dc5;
  let h2 = 0x9e3779b9;
  for (let i = 0; i < bits.length; i++) {
    const x = bits[i]!;
    h1 = Math.imul(h1 ^ x, 16777619);
    h2 = Math.imul((h2 + x) | 0, 0x85ebca6b) ^ (h2 >>> 13);
  }
  let h3 = 0x27d4eb2f;
  for (const r of data.run ?? []) h3 = Math.imul(h3 ^ r, 16777619);
  return `${w.length}:${h1 >>> 0}:${h2 >>> 0}:${data.run === undefined ? '-' : h3 >>> 0}`;
}

/** A JSON metadata entry of a flow file (`fallback` when absent); ERR_IO naming the file when it does not parse. */
function metadataJson(file: string, metadata: Readonly<Record<string, string>>, key: string, fallback: unknown): unknown {
  const text = metadata[key];
  if (text === undefined) return fallback;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new WsfError(`${file}: the metadata entry \`${key}\` is not valid JSON; the file is damaged`, 'ERR_IO');
  }
}

/** A JSON-object metadata entry of a flow file (ERR_IO when absent: defaults would load another flow silently). */
function metadataObject<T>(file: string, metadata: Readonly<Record<string, string>>, key: string): T {
  if (metadata[key] === undefined) throw new WsfError(`${file}: the metadata entry \`${key}\` is missing; the file is damaged or not a wsflow flow`, 'ERR_IO');
  const v = metadataJson(file, metadata, key, {});
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new WsfError(`${file}: the metadata entry \`${key}\` is not an object; the file is damaged`, 'ERR_IO');
  return v as T;
}

/** fit()'s checked Adam settings (lr is the schedule's current rate). */
type AdamSettings = { lr: number; weightDecay: number; clipNorm: number };
/** fit()'s checked schedule, EMA, checkpoint and log settings. */
type FitSchedule = { lr: number; schedule: 'constant' | 'cosine'; warmup: number; emaDecay: number; every: number; logEvery: number };

/** A flow-matching model over the weights of one architecture. */
export class FlowMatcher {
  readonly arch: Architecture;
  readonly options: Readonly<ResolvedOptions>;
  readonly field: VectorField;
  readonly geom: Geometry;
  private rng: Rng;
  private scale: Float32Array | undefined;
  private ema: Float32Array | undefined;
  private pool: Float32Array | undefined;
  private priorStats: PriorStats | undefined;
  /** The mixture component of every row of the current training data (mixture prior), for the data key {@link dataKey}. */
  private priorLabels: { key: string; labels: Int32Array; members: Int32Array[] } | undefined;
  /** The task of the gradient features (loaded once, by create) and, built on first use, their probe batch. */
  /** gradientFeatures / probeFeatures: their task. */
  private featureTask: Task | undefined;
  private probe: MiniBatch | undefined;
  /** probeFeatures: the probe inputs (probes × n_0). */
  private probeInputs: Float32Array | undefined;
  /** componentInput: the mixture with its means in flow space (built on first use), and the aux of the trajectories in flight. */
  private componentMeans: MixturePriorStats | undefined;
  private startAux: Float32Array | undefined;
  /**
   * selfCondition, while sampling: the previous prediction x̂1 of the batch in flight, in flow space (undefined outside
   * a sampler and at a batch's first call, whose column is zero); `selfConditioning` is true while a sampler keeps it.
   */
  private prevPrediction: Float32Array | undefined;
  private selfConditioning = false;
  private order: Int32Array | undefined;
  private cursor = 0;
  private dataKey = '';
  /** The async call in progress (fit or sampleAsync): another is refused before it changes any state. */
  private activeCall: 'fit' | 'sampleAsync' | undefined;
  private disposed = false;
  /** During fit(): steps run as one native call on the field's device (see {@link FlowMatcher.fusedStep}). */
  private fused = false;
  /** During fit(): the fused step's training set is resident on the device (x1 gathered there by index). */
  private residentData = false;
  /** During fit(): the parameters' EMA is kept on the device by the fused step (this.ema synced on reads). */
  private deviceEma = false;
  /** During fit(): the fused step draws the prior on the device (gaussian, zoo and mixture priors without a pool). */
  private devicePrior = false;
  /** During sampling: the most networks per field forward (memory), undefined for no limit. */
  private forwardCap: number | undefined;
  /** Geometries of other architectures sampled by transfer, by key (freed in dispose()). */
  private readonly transferGeoms = new Map<string, Geometry>();

  private constructor(arch: Architecture, o: ResolvedOptions, field: VectorField, geom: Geometry) {
    this.arch = arch;
    this.options = Object.freeze(o);
    this.field = field;
    this.geom = geom;
    this.rng = new Rng(o.seed * 7919 + 17);
  }

  /**
   * Creates an untrained flow. Validates every option before any work.
   * @throws WsfError ERR_INVALID naming the bad option; ERR_NO_CUDA for an unavailable 'cuda'
   */
  static create(opts: FlowOptions): FlowMatcher {
    checkOptionKeys('FlowMatcher.create', opts, FLOW_KEYS);
    checkOptionKeys('FlowMatcher.create: field', opts.field, FIELD_KEYS);
    const arch = opts.arch instanceof Architecture ? opts.arch : mlp(opts.arch);
    const o: ResolvedOptions = {
      geometry: checkChoice('geometry', opts.geometry ?? 'geometric', ['euclidean', 'normalized', 'geometric'] as const),
      semantics: checkChoice('semantics', opts.semantics ?? 'corrected', ['corrected', 'reference'] as const),
      prior: opts.prior ?? { kind: 'gaussian', std: 0.1 },
      priorPool: checkInt('priorPool', opts.priorPool ?? 0, 0),
      gradientFeatures: opts.gradientFeatures === undefined || opts.gradientFeatures === null ? null : { task: String(opts.gradientFeatures.task), rows: checkInt('gradientFeatures.rows', opts.gradientFeatures.rows ?? 256, 1) },
      probeFeatures: opts.probeFeatures === undefined || opts.probeFeatures === null ? null : { task: String(opts.probeFeatures.task), probes: checkInt('probeFeatures.probes', opts.probeFeatures.probes ?? 8, 1, 64) },
      componentInput: checkFlag('componentInput', opts.componentInput ?? false),
      selfCondition: checkFlag('selfCondition', opts.selfCondition ?? false),
      time: checkChoice('time', opts.time ?? ((opts.semantics ?? 'corrected') === 'corrected' ? 'logit-normal' : 'beta'), TIME_DISTRIBUTIONS),
      sigma: checkNumber('sigma', opts.sigma ?? 1e-4, 0),
      coupling: checkChoice('coupling', opts.coupling ?? 'independent', ['independent', 'ot', 'trajectory', 'component-ot'] as const),
      otCost: checkChoice('otCost', opts.otCost ?? 'euclidean', ['euclidean', 'geodesic'] as const),
      otPool: checkInt('otPool', opts.otPool ?? 1, 1, 64),
      prediction: checkChoice('prediction', opts.prediction ?? 'x1', ['x1', 'velocity'] as const),
      precondition:
        opts.precondition ??
        ((opts.semantics ?? 'corrected') === 'corrected' && (opts.prediction ?? 'x1') === 'x1' && ((opts.geometry ?? 'geometric') !== 'euclidean' || opts.prior?.kind === 'zoo' || opts.prior?.kind === 'mixture')),
      layerScaling: opts.layerScaling ?? ((opts.semantics ?? 'corrected') === 'corrected' && opts.geometry === 'euclidean'),
      lastLayerNorm: checkNumber('lastLayerNorm', opts.lastLayerNorm ?? 1, Number.MIN_VALUE),
      seed: checkInt('seed', opts.seed ?? 0, 0, 2 ** 31),
    };
    checkChoice('prior.kind', o.prior.kind, ['gaussian', 'init', 'zoo', 'mixture'] as const);
    checkPriorSpec(o.prior);
    if ((o.prior.kind === 'zoo' || o.prior.kind === 'mixture') && o.coupling === 'trajectory') {
      throw new WsfError(`prior '${o.prior.kind}' does not fit coupling 'trajectory': training would start from the runs' initialisations and sampling from the zoo's Gaussian; use the 'init' or 'gaussian' prior with trajectory coupling`, 'ERR_INVALID');
    }
    if (o.coupling === 'component-ot' && o.prior.kind !== 'mixture') {
      throw new WsfError(`coupling 'component-ot' pairs start points and networks within the components of a mixture prior, but the prior is '${o.prior.kind}'; use prior { kind: 'mixture' } or coupling 'ot'`, 'ERR_INVALID');
    }
    if (o.prior.kind === 'mixture' && o.priorPool > 0) {
      throw new WsfError("prior 'mixture' draws each network's start point from its own cluster, which a fixed prior pool cannot; use priorPool 0", 'ERR_INVALID');
    }
    if (o.componentInput && o.prior.kind !== 'mixture') {
      throw new WsfError(`componentInput gives the field the mean of a trajectory's mixture component, but the prior is '${o.prior.kind}'; use prior { kind: 'mixture' }`, 'ERR_INVALID');
    }
    const auxSources = [o.componentInput ? 'componentInput' : '', o.gradientFeatures !== null ? 'gradientFeatures' : '', o.probeFeatures !== null ? 'probeFeatures' : ''].filter((x) => x !== '');
    if (auxSources.length > 1) {
      throw new WsfError(`${auxSources.join(' and ')} all feed the field's auxiliary inputs; choose one`, 'ERR_INVALID');
    }
    if (o.selfCondition && o.prediction !== 'x1') {
      throw new WsfError('selfCondition feeds the field its previous prediction of x1, so it needs prediction: "x1"', 'ERR_INVALID');
    }
    if (o.selfCondition && o.probeFeatures !== null && o.probeFeatures.probes > 63) {
      throw new WsfError(`selfCondition takes one of the field's 64 aux columns, so probeFeatures.probes must be at most 63 with it (got ${o.probeFeatures.probes})`, 'ERR_INVALID');
    }
    if (o.prediction === 'velocity' && o.precondition) {
      throw new WsfError('precondition applies to x1-prediction only; use prediction: "x1" or precondition: false', 'ERR_INVALID');
    }
    const fieldOpts = opts.field ?? {};
    const graph = fieldOpts.graph ?? 'sparse';
    // The published time rule exists for dense graphs only; sparse graphs always give time to every element.
    const fieldSemantics = o.semantics === 'reference' && graph === 'dense' ? 'reference' : 'corrected';
    let featureTask: Task | undefined;
    const features = o.gradientFeatures ?? o.probeFeatures;
    if (features !== null) {
      const task = loadTask(features.task); // ERR_INVALID for an unknown task name
      featureTask = task;
      const d = arch.widths[0]!;
      const C = arch.widths[arch.numLayers]!;
      if (task.numFeatures !== d || task.numClasses !== C) {
        throw new WsfError(`${o.gradientFeatures !== null ? 'gradientFeatures' : 'probeFeatures'}: task '${task.name}' has ${task.numFeatures} features and ${task.numClasses} classes, but ${arch.key} needs ${d} and ${C}`, 'ERR_INVALID');
      }
    }
    const auxInputs = (o.probeFeatures !== null ? o.probeFeatures.probes : o.gradientFeatures !== null || o.componentInput ? 1 : 0) + (o.selfCondition ? 1 : 0);
    const field = VectorField.create({ ...fieldOpts, arch, semantics: fieldOpts.semantics ?? fieldSemantics, seed: o.seed, ...(auxInputs > 0 ? { auxInputs } : {}), ...(opts.device !== undefined ? { device: opts.device } : {}) });
    const geom = geometry(arch, o.geometry, { semantics: o.semantics, lastLayerNorm: o.lastLayerNorm, device: field.device === 'cuda' ? 'cuda' : 'cpu' });
    const fm = new FlowMatcher(arch, o, field, geom);
    fm.featureTask = featureTask;
    return fm;
  }

  /** True for the flows that canonicalise data, priors and predictions. */
  get canonical(): boolean {
    return this.options.geometry !== 'euclidean';
  }

  // ------------------------------------------------------------------------------------------------------------
  // data preparation

  /** Validates a dataset and returns its network count. */
  private checkData(data: WeightDataset): number {
    const n = checkBatch(this.arch, 'data.weights', data.weights);
    if (this.options.coupling === 'trajectory') {
      if (data.run === undefined || data.init === undefined) {
        throw new WsfError("coupling 'trajectory' needs the zoo's per-network run ids (`run`) and per-run initial weights (`init`)", 'ERR_INVALID');
      }
      if (data.run.length !== n) throw new WsfError(`Expected \`data.run\` of length ${n} but received length ${data.run.length}`, 'ERR_SHAPE');
      const runs = checkBatch(this.arch, 'data.init', data.init);
      for (let i = 0; i < n; i++) {
        if (data.run[i]! < 0 || data.run[i]! >= runs) throw new WsfError(`data.run[${i}] = ${data.run[i]} is not a run in [0, ${runs})`, 'ERR_INVALID');
      }
    }
    return n;
  }

  /** Per-parameter scale (one value per layer's weight block and bias block): RMS over the data. */
  private computeScale(x1: Float32Array): Float32Array {
    const P = this.arch.numParams;
    const n = x1.length / P;
    const s = new Float32Array(P);
    for (const [o, len] of layerBlocks(this.arch)) {
      let ss = 0;
      for (let b = 0; b < n; b++) for (let k = 0; k < len; k++) ss += x1[b * P + o + k]! ** 2;
      const rms = Math.sqrt(ss / (n * len));
      s.fill(rms > 1e-12 ? rms : 1, o, o + len);
    }
    return s;
  }

  /** Canonicalises when the flow's geometry needs it. */
  private canon(x: Float32Array, tg: Target = this.own): Float32Array {
    return this.canonical ? tg.geom.canonicalize(x) : x;
  }

  /**
   * Checks that the flow can generate `arch` with {@link FlowMatcher.sample}'s `arch` option (same input width, output
   * width and depth as the flow's architecture) and returns it.
   * @throws WsfError ERR_SHAPE naming the expected form, ERR_INVALID for widths that are not an architecture
   */
  transferArch(arch: Architecture | readonly number[] | string): Architecture {
    return this.target(typeof arch === 'string' ? mlp(arch) : arch).arch;
  }

  /** The flow's own architecture, geometry and scale. */
  private get own(): Target {
    return { arch: this.arch, geom: this.geom, scale: this.scale };
  }

  /**
   * The target of a transfer to `a`: checks that the field can run it, builds (and caches) its geometry, and
   * maps the per-layer scales onto its layout.
   * @throws WsfError ERR_SHAPE when the depth, input width or output width differ from the flow's
   */
  private target(a: Architecture | readonly number[] | undefined): Target {
    if (a === undefined) return this.own;
    const arch = a instanceof Architecture ? a : mlp(a);
    if (arch.key === this.arch.key) return this.own;
    const w = this.arch.widths;
    const L = this.arch.numLayers;
    if (arch.numLayers !== L || arch.widths[0] !== w[0] || arch.widths[L] !== w[L]) {
      const want = [w[0], ...Array.from({ length: L - 1 }, () => '*'), w[L]].join('-');
      throw new WsfError(
        `Expected \`arch\` of the form ${want} (the flow was trained on ${this.arch.key}: same input width, output width and depth; hidden widths may differ) but received ${arch.key}`,
        'ERR_SHAPE',
      );
    }
    const hw = this.field.config.hiddenWidthSlots ?? 0;
    if (hw > 0 && arch.widths.slice(1, L).some((x) => x > hw)) {
      throw new WsfError(
        `Expected hidden layers of at most ${hw} neurons: this flow's field has one positional embedding per hidden neuron (hiddenIdentity, up to ${hw} per layer), so it cannot generate ${arch.key}; train it with hiddenIdentity off (wsflow train --hidden-identity off) to sample wider networks`,
        'ERR_SHAPE',
      );
    }
    if (this.options.prior.kind === 'zoo' || this.options.prior.kind === 'mixture') {
      throw new WsfError(
        `Expected the flow's own architecture ${this.arch.key}: this flow starts from the Gaussian${this.options.prior.kind === 'mixture' ? ' mixture' : ''} fitted to its ${this.arch.key} zoo (prior '${this.options.prior.kind}'), which has no counterpart for ${arch.key}; train it with another prior (wsflow train --prior gaussian) to sample other architectures`,
        'ERR_SHAPE',
      );
    }
    let geom = this.transferGeoms.get(arch.key);
    if (geom === undefined) {
      geom = geometry(arch, this.options.geometry, { semantics: this.options.semantics, lastLayerNorm: this.options.lastLayerNorm, device: this.geom.device });
      this.transferGeoms.set(arch.key, geom);
    }
    let scale: Float32Array | undefined;
    if (this.scale !== undefined) {
      // One constant per layer's weight block and bias block (computeScale), reused for the same layer.
      scale = new Float32Array(arch.numParams);
      for (let l = 1; l <= L; l++) {
        const wo = arch.weightOffset(l);
        scale.fill(this.scale[this.arch.weightOffset(l)]!, wo, wo + arch.widths[l - 1]! * arch.widths[l]!);
        const bo = arch.biasOffset(l);
        scale.fill(this.scale[this.arch.biasOffset(l)]!, bo, bo + arch.widths[l]!);
      }
    }
    return { arch, geom, scale };
  }

  /**
   * B prior draws into `out`, canonicalised for the Normalized/Geometric flows; with `components` (mixture prior) row
   * b comes from component components[b]. With `raw` the fresh draws are left for the caller to canonicalise (a
   * prior pool is canonical either way).
   */
  private drawPrior(B: number, out: Float32Array, components?: Int32Array, raw = false): Float32Array {
    const P = this.arch.numParams;
    if (this.options.priorPool > 0) {
      // (The mixture prior rejects a pool in create.)
      if (this.pool === undefined) {
        this.pool = this.canon(samplePrior(this.arch, this.options.prior, this.rng, new Float32Array(this.options.priorPool * P), this.priorStats));
      }
      for (let b = 0; b < B; b++) {
        const k = this.rng.int(this.options.priorPool);
        out.set(this.pool.subarray(k * P, (k + 1) * P), b * P);
      }
      return out;
    }
    if (components !== undefined) drawMixtureComponents(this.priorStats as MixturePriorStats, components, this.rng, out);
    else samplePrior(this.arch, this.options.prior, this.rng, out, this.priorStats);
    return this.canonical && !raw ? this.geom.canonicalize(out, { out: new Float32Array(out.length) }) : out;
  }

  /** Next batch of data indices (reshuffled every epoch). */
  private nextIndices(n: number, B: number): Int32Array {
    const idx = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      if (this.order === undefined || this.order.length !== n || this.cursor >= n) {
        this.order = this.rng.permutation(n);
        this.cursor = 0;
      }
      idx[b] = this.order[this.cursor++]!;
    }
    return idx;
  }

  // ------------------------------------------------------------------------------------------------------------
  // prediction

  /** Model input for x_t: scaled per layer when layerScaling is on. */
  private modelInput(xt: Float32Array, tg: Target = this.own): Float32Array {
    const scale = tg.scale;
    if (scale === undefined) return xt;
    const P = tg.arch.numParams;
    const out = new Float32Array(xt.length);
    for (let i = 0; i < xt.length; i++) out[i] = xt[i]! / scale[i % P]!;
    return out;
  }

  /**
   * The gradient features of networks x (B×P on the target's architecture): each network's task-loss gradient on
   * the fixed probe batch, divided by its RMS over each layer's weight block and bias block (1e-12 floor). Undefined
   * without gradient features.
   */
  private auxFor(x: Float32Array, tg: Target): Float32Array | undefined {
    if (this.options.componentInput) return this.startAux ?? this.componentAux(x);
    const task = this.featureTask;
    if (task === undefined) return undefined;
    const pf = this.options.probeFeatures;
    if (pf !== null) {
      if (this.probeInputs === undefined) {
        // K rows (zeros past a training split of fewer rows)
        this.probeInputs = new Float32Array(pf.probes * task.numFeatures);
        this.probeInputs.set(this.fixedTrainRows(task, pf.probes, 11).x);
      }
      return probeActivations(tg.arch, x, this.probeInputs, pf.probes);
    }
    const gf = this.options.gradientFeatures;
    if (gf === null) return undefined;
    this.probe ??= this.fixedTrainRows(task, gf.rows, 7);
    const g = taskGradient(task, tg.arch, x, this.probe).grad;
    normaliseBlocks(g, tg.arch, 1);
    return g;
  }

  /**
   * The field's aux input for networks x (flow space): `base` ({@link auxFor}'s columns for x), then (selfCondition)
   * one column with the previous prediction's displacement prev − x, divided by its RMS over each network's layer
   * blocks (zeros when `prev` is undefined).
   */
  private fieldAux(base: Float32Array | undefined, x: Float32Array, tg: Target, prev: Float32Array | undefined): Float32Array | undefined {
    if (!this.options.selfCondition) return base;
    const n = x.length;
    const col = new Float32Array(n);
    if (prev !== undefined) {
      for (let i = 0; i < n; i++) col[i] = prev[i]! - x[i]!;
      normaliseBlocks(col, tg.arch, 1);
    }
    if (base === undefined) return col;
    const K = base.length / n; // the other sources' columns per entry
    const out = new Float32Array(n * (K + 1));
    for (let i = 0; i < n; i++) {
      out.set(base.subarray(i * K, (i + 1) * K), i * (K + 1));
      out[i * (K + 1) + K] = col[i]!;
    }
    return out;
  }

  /** min(rows, n) rows of the task's training split, in a fixed order drawn from the flow's seed and `salt`. */
  private fixedTrainRows(task: Task, rows: number, salt: number): MiniBatch {
    const n = Math.min(rows, task.train.n);
    const idx = new Rng(this.options.seed * 131 + salt).permutation(task.train.n).slice(0, n);
    const d = task.numFeatures;
    const x = new Float32Array(n * d);
    const y = new Int32Array(n);
    idx.forEach((r, k) => {
      x.set(task.train.x.subarray(r * d, (r + 1) * d), k * d);
      y[k] = task.train.y[r]!;
    });
    return { x, y, n };
  }

  /**
   * The component input for trajectories starting at x0 (B×P, flow space): each row is the mean of the mixture
   * component nearest it — canonicalised for the Normalized/Geometric flows, layer-scaled as the field's input.
   */
  private componentAux(x0: Float32Array): Float32Array {
    const P = this.arch.numParams;
    if (this.componentMeans === undefined) {
      const comps = (this.priorStats as MixturePriorStats).components;
      const means = new Float32Array(comps.length * P);
      comps.forEach((c, k) => means.set(c.mean, k * P));
      const flow = this.canonical ? this.geom.canonicalize(means) : means;
      this.componentMeans = { components: comps.map((c, k) => ({ ...c, mean: flow.subarray(k * P, (k + 1) * P) })) };
    }
    const comps = this.componentMeans.components;
    const nearest = nearestComponent(this.componentMeans, x0);
    const out = new Float32Array(x0.length);
    nearest.forEach((k, b) => out.set(comps[k]!.mean, b * P));
    return this.modelInput(out);
  }

  /** @internal The component input the field sees for trajectories starting at x0 (componentInput flows), for tests. */
  componentInputOf(x0: Float32Array): Float32Array | undefined {
    checkBatch(this.arch, 'x0', x0);
    return this.options.componentInput ? this.componentAux(x0) : undefined;
  }

  /**
   * @internal The gradient features the field sees for networks x (B×P of the flow's architecture), for tests and
   * diagnostics; undefined without gradient features.
   */
  gradientFeaturesOf(x: Float32Array): Float32Array | undefined {
    checkBatch(this.arch, 'x', x);
    return this.options.gradientFeatures === null ? undefined : this.auxFor(x, this.own);
  }

  /**
   * @internal The probe features the field sees for networks x (B×P of the flow's architecture: K values per entry,
   * see {@link probeActivations}) and the probe inputs (K × n_0), for tests; undefined without probe features.
   */
  probeFeaturesOf(x: Float32Array): { features: Float32Array; probes: Float32Array } | undefined {
    checkBatch(this.arch, 'x', x);
    if (this.options.probeFeatures === null) return undefined;
    const features = this.auxFor(x, this.own)!;
    return { features, probes: this.probeInputs! };
  }

  /** The field's raw output F at (x, t) on the target's graph. */
  private fieldOutput(x: Float32Array, t: Float32Array, tg: Target): Float32Array {
    const aux = this.fieldAux(this.auxFor(x, tg), x, tg, this.prevPrediction);
    const input = this.modelInput(x, tg);
    const P = tg.arch.numParams;
    const B = x.length / P;
    const cap = this.forwardCap ?? B;
    const archOpt = tg.arch === this.arch ? {} : { arch: tg.arch };
    if (B <= cap) return this.field.forward(input, t, { ...archOpt, ...(aux !== undefined ? { aux } : {}) });
    // In chunks of `cap` networks (the sampler's memory cap): networks do not interact, so the same values.
    const out = new Float32Array(x.length);
    const A = this.field.config.auxFeatures ?? 0; // aux holds A values per entry
    for (let b0 = 0; b0 < B; b0 += cap) {
      const b1 = Math.min(B, b0 + cap);
      const part = this.field.forward(input.subarray(b0 * P, b1 * P), t.subarray(b0, b1), { ...archOpt, ...(aux !== undefined ? { aux: aux.subarray(b0 * P * A, b1 * P * A) } : {}) });
      out.set(part, b0 * P);
    }
    return out;
  }

  /**
   * x̂1 from the raw network output F (x1-prediction): x̂1 = s·F (+ x_t + (1−t)·s·F with preconditioning).
   */
  private toX1(F: Float32Array, xt: Float32Array, t: Float32Array, tg: Target = this.own): Float32Array {
    const P = tg.arch.numParams;
    const scale = tg.scale;
    const out = new Float32Array(F.length);
    for (let i = 0; i < F.length; i++) {
      const s = scale === undefined ? 1 : scale[i % P]!;
      out[i] = this.options.precondition ? xt[i]! + (1 - t[Math.floor(i / P)]!) * s * F[i]! : s * F[i]!;
    }
    return out;
  }

  /** ∂L/∂F from ∂L/∂x̂1 (the adjoint of {@link toX1}); for velocity prediction the scale only. */
  private toDF(dx: Float32Array, t: Float32Array): Float32Array {
    const P = this.arch.numParams;
    for (let i = 0; i < dx.length; i++) {
      const s = this.scale === undefined ? 1 : this.scale[i % P]!;
      dx[i] = this.options.precondition && this.options.prediction === 'x1' ? dx[i]! * (1 - t[Math.floor(i / P)]!) * s : dx[i]! * s;
    }
    return dx;
  }

  // ------------------------------------------------------------------------------------------------------------
  // training

  /** One training step on a batch; returns the loss and gradient norm. */
  private trainStep(data: WeightDataset, n: number, B: number, adam: AdamSettings): StepResult | Promise<StepResult> {
    const P = this.arch.numParams;
    const o = this.options;
    if (o.coupling === 'component-ot') {
      const [x0, x1] = this.componentOtPairs(data, n, B);
      return this.trainOnPairs(x0, x1, B, adam);
    }
    // OT pairs within the batch (published), or over a pool of otPool batches of which B random pairs are trained on
    // (each side keeps its exact marginal, the pairing comes closer to the full OT map).
    const K = o.coupling === 'ot' ? o.otPool : 1;
    const idx = this.nextIndices(n, K * B);
    // The fused step gathers x1 from its resident copy of the data and canonicalises fresh prior draws itself;
    // OT needs both on the host for the pairing.
    const onDevice = this.fused && o.coupling !== 'ot';
    const gatherOnDevice = onDevice && this.residentData;
    let x1 = new Float32Array(gatherOnDevice ? 0 : K * B * P);
    if (!gatherOnDevice) for (let b = 0; b < K * B; b++) x1.set(data.weights.subarray(idx[b]! * P, (idx[b]! + 1) * P), b * P);
    if (onDevice && this.devicePrior && o.coupling === 'independent') {
      // The device draws the prior from the seed words drawPrior would take from the stream, in the same order.
      return this.fusedStep(undefined, this.canonical, gatherOnDevice ? idx : undefined, gatherOnDevice ? undefined : x1, B, adam, this.priorSeeds(idx));
    }
    let x0: Float32Array;
    let canonX0 = false;
    if (o.coupling === 'trajectory') {
      x0 = new Float32Array(B * P);
      for (let b = 0; b < B; b++) {
        const r = data.run![idx[b]!]!;
        x0.set(data.init!.subarray(r * P, (r + 1) * P), b * P); // already canonicalised by fit()
      }
    } else {
      // Mixture prior: each network's start point comes from its own cluster's Gaussian.
      const labels = this.priorLabels?.labels;
      x0 = this.drawPrior(K * B, new Float32Array(K * B * P), labels !== undefined ? Int32Array.from(idx, (i) => labels[i]!) : undefined, onDevice);
      canonX0 = onDevice && this.canonical && o.priorPool === 0;
    }
    if (o.coupling === 'ot') {
      // The published resampling with replacement ('reference') belongs to its in-batch OT; a pool is our extension.
      const { i0, i1 } = otPairs(couplingCost(x0, x1, P, o.otCost, this.geom), K * B, K > 1 ? 'corrected' : o.semantics, this.rng);
      const rows = K > 1 ? this.rng.permutation(K * B) : undefined;
      const a = new Float32Array(B * P);
      const c = new Float32Array(B * P);
      for (let k = 0; k < B; k++) {
        const r = rows === undefined ? k : rows[k]!;
        a.set(x0.subarray(i0[r]! * P, (i0[r]! + 1) * P), k * P);
        c.set(x1.subarray(i1[r]! * P, (i1[r]! + 1) * P), k * P);
      }
      x0 = a;
      x1 = c;
    }
    if (onDevice) return this.fusedStep(x0, canonX0, gatherOnDevice ? idx : undefined, gatherOnDevice ? undefined : x1, B, adam);
    return this.trainOnPairs(x0, x1, B, adam);
  }

  /**
   * The rest of a training step as one native call on the field's device (VectorField.flowStep): the same random
   * draws in the same order as {@link trainOnPairsWith} (times, then the two seed words of the linear path's noise),
   * and the same operations — on the CPU the same floats; on CUDA without a host round trip per operation.
   */
  private fusedStep(
    x0: Float32Array | undefined,
    canonX0: boolean,
    idx: Int32Array | undefined,
    x1: Float32Array | undefined,
    B: number,
    adam: AdamSettings,
    prior?: { seeds: Int32Array; components?: Int32Array },
  ): Promise<StepResult> {
    const o = this.options;
    const t = sampleTimes(this.rng, o.time, new Float32Array(B));
    const noiseSeed: [number, number] = o.geometry === 'geometric' ? [0, 0] : [this.rng.nextU32(), this.rng.nextU32()];
    // Off the main thread: the event loop (timers, signals, progress) keeps running during the step.
    return this.field.flowStepAsync({ ...(idx !== undefined ? { idx } : { x1: x1! }), ...(x0 !== undefined ? { x0 } : { prior: prior! }), canonicalizeX0: canonX0, t, noiseSeed }, adam);
  }

  /**
   * The seed words (and mixture components) of one batch's prior draws, taken from the stream exactly as drawPrior
   * would take them: one pair for the Gaussian and zoo priors (one fillNormalFast over the batch), one pair per row
   * for the mixture (drawMixtureComponents draws each row with its own fillNormalFast).
   */
  private priorSeeds(idx: Int32Array): { seeds: Int32Array; components?: Int32Array } {
    const labels = this.priorLabels?.labels;
    if (this.options.prior.kind === 'mixture') {
      const seeds = new Int32Array(2 * idx.length);
      for (let b = 0; b < idx.length; b++) {
        seeds[2 * b] = this.rng.nextU32() | 0;
        seeds[2 * b + 1] = this.rng.nextU32() | 0;
      }
      return { seeds, components: Int32Array.from(idx, (i) => labels![i]!) };
    }
    return { seeds: Int32Array.of(this.rng.nextU32() | 0, this.rng.nextU32() | 0) };
  }

  /** The prior for the device, or null when it is drawn on the host (init prior, prior pool, no fitted statistics). */
  private devicePriorSpec(): NativeFlowPrior | null {
    const o = this.options;
    const P = this.arch.numParams;
    if (o.priorPool > 0 || o.coupling !== 'independent') return null;
    if (o.prior.kind === 'gaussian') return { kind: 'gaussian', mean: o.prior.mean ?? 0, std: o.prior.std ?? 0.1 };
    const stats = this.priorStats;
    if (stats === undefined) return null;
    if (o.prior.kind === 'zoo' && !isMixture(stats)) {
      return { kind: 'fit', means: stats.mean, basis: stats.basis, rows: Int32Array.of(0, stats.basis.length / P), std: 0, perRow: false };
    }
    if (o.prior.kind === 'mixture' && isMixture(stats) && this.priorLabels !== undefined) {
      const comps = stats.components;
      const means = new Float32Array(comps.length * P);
      comps.forEach((c, k) => means.set(c.mean, k * P));
      if (stats.std !== undefined) return { kind: 'fit', means, basis: null, rows: null, std: stats.std, perRow: true };
      const rows = new Int32Array(comps.length + 1);
      comps.forEach((c, k) => (rows[k + 1] = rows[k]! + c.basis.length / P));
      const basis = new Float32Array(rows[comps.length]! * P);
      comps.forEach((c, k) => basis.set(c.basis, rows[k]! * P));
      return { kind: 'fit', means, basis, rows, std: 0, perRow: true };
    }
    return null;
  }

  /**
   * B training pairs of the 'component-ot' coupling: for each batch network, a group of M = max(2, otPool·B) networks
   * of its mixture component (itself and M − 1 members drawn with replacement) and M draws of that component's
   * Gaussian, the OT assignment between them, and one of its pairs at random. The pair's network is a uniform member
   * of the component, and its start point an exact draw of the component's Gaussian.
   */
  private componentOtPairs(data: WeightDataset, n: number, B: number): [Float32Array, Float32Array] {
    const P = this.arch.numParams;
    const o = this.options;
    const { labels, members } = this.priorLabels!; // set by fit() for the mixture prior, which create() requires
    const M = Math.max(2, o.otPool * B);
    const idx = this.nextIndices(n, B);
    const x0 = new Float32Array(B * P);
    const x1 = new Float32Array(B * P);
    const g1 = new Float32Array(M * P);
    for (let b = 0; b < B; b++) {
      const c = labels[idx[b]!]!;
      const pool = members[c]!;
      g1.set(data.weights.subarray(idx[b]! * P, (idx[b]! + 1) * P), 0);
      for (let k = 1; k < M; k++) {
        const j = pool[this.rng.int(pool.length)]!;
        g1.set(data.weights.subarray(j * P, (j + 1) * P), k * P);
      }
      const g0 = this.drawPrior(M, new Float32Array(M * P), new Int32Array(M).fill(c));
      const { i0, i1 } = otPairs(couplingCost(g0, g1, P, o.otCost, this.geom), M, 'corrected', this.rng);
      const r = this.rng.int(M);
      x0.set(g0.subarray(i0[r]! * P, (i0[r]! + 1) * P), b * P);
      x1.set(g1.subarray(i1[r]! * P, (i1[r]! + 1) * P), b * P);
    }
    return [x0, x1];
  }

  /** The rest of a training step once the pairs (x0, x1) are drawn: times, interpolant, field, loss, Adam. */
  private trainOnPairs(x0: Float32Array, x1: Float32Array, B: number, adam: AdamSettings): StepResult | Promise<StepResult> {
    if (this.fused) return this.fusedStep(x0, false, undefined, x1, B, adam);
    if (!this.options.componentInput) return this.trainOnPairsWith(x0, x1, B, adam);
    this.startAux = this.componentAux(x0); // the field's input for these trajectories
    try {
      return this.trainOnPairsWith(x0, x1, B, adam);
    } finally {
      this.startAux = undefined;
    }
  }

  private trainOnPairsWith(x0: Float32Array, x1: Float32Array, B: number, adam: AdamSettings): { loss: number; gradNorm: number } {
    const P = this.arch.numParams;
    const o = this.options;
    const t = sampleTimes(this.rng, o.time, new Float32Array(B));
    // Interpolant: geodesic on the spheres (geometric), linear + σ noise otherwise.
    let xt: Float32Array;
    if (o.geometry === 'geometric') {
      xt = this.geom.interpolate(x0, x1, t);
    } else {
      xt = fillNormalFast(this.rng, new Float32Array(B * P), 0, o.sigma); // the σ noise, then the line
      for (let i = 0; i < xt.length; i++) {
        const tb = t[Math.floor(i / P)]!;
        xt[i] = (1 - tb) * x0[i]! + tb * x1[i]! + xt[i]!;
      }
    }
    const input = this.modelInput(xt);
    const base = this.auxFor(xt, this.own);
    let prev: Float32Array | undefined;
    if (o.selfCondition && this.rng.uniform() < 0.5) {
      // The field's own prediction with the self-conditioning column at zero, as its input (no gradient through it).
      const first = this.toX1(this.field.forward(input, t, { aux: this.fieldAux(base, xt, this.own, undefined)! }), xt, t);
      prev = this.canonical ? this.geom.canonicalize(first) : first;
    }
    const aux = this.fieldAux(base, xt, this.own, prev);
    const F = this.field.forward(input, t, { training: true, ...(aux !== undefined ? { aux } : {}) });
    let grad: Float32Array;
    let loss: number;
    if (o.prediction === 'x1') {
      const xhat = this.toX1(F, xt, t);
      if (this.canonical) {
        const xc = this.geom.canonicalize(xhat);
        const r = this.geom.loss(xc, x1);
        loss = r.loss;
        grad = this.geom.canonicalizeBackward(xhat, r.grad);
      } else {
        const r = this.geom.loss(xhat, x1);
        loss = r.loss;
        grad = r.grad;
      }
    } else {
      // Velocity prediction: target u_t = x1 − x0 (Euclidean paths) or Log_{x_t}(x1)/(1−t) (geometric), MSE.
      const v = this.toX1(F, xt, t); // scale only (precondition is off for velocity prediction)
      let u: Float32Array;
      if (o.geometry === 'geometric') {
        u = this.geom.logmap(xt, x1);
        for (let i = 0; i < u.length; i++) u[i] = u[i]! / Math.max(1 - t[Math.floor(i / P)]!, 1e-3);
      } else {
        u = new Float32Array(B * P);
        for (let i = 0; i < u.length; i++) u[i] = x1[i]! - x0[i]!;
      }
      grad = new Float32Array(B * P);
      let s = 0;
      for (let i = 0; i < u.length; i++) {
        const d = v[i]! - u[i]!;
        s += d * d;
        grad[i] = (2 * d) / u.length;
      }
      loss = s / u.length;
    }
    if (!Number.isFinite(loss)) throw new WsfError(`the training loss became ${loss}`, 'ERR_NUMERIC');
    this.field.zeroGrad();
    this.field.backward(this.toDF(grad, t));
    const gradNorm = this.field.step({ lr: adam.lr, weightDecay: adam.weightDecay, clipNorm: adam.clipNorm });
    return { loss, gradNorm };
  }

  /**
   * Trains the flow on a dataset. Resumes from `opts.checkpoint` when that file exists (same flow options and
   * data), writes checkpoints atomically, and keeps the last good checkpoint when training diverges.
   * @returns the final step and the running loss
   * @throws WsfError ERR_INVALID for bad options/data, ERR_NUMERIC when the loss or gradient becomes non-finite,
   *   ERR_INTERRUPTED when `signal` aborts (after writing a checkpoint)
   */
  async fit(data: WeightDataset, opts: TrainOptions): Promise<{ step: number; loss: number; seconds: number }> {
    this.checkIdle('fit');
    checkObject('data', data, 'holding `weights` (a Float32Array of n·P)');
    checkObject('opts', opts, 'of training options holding at least `steps`');
    checkOptionKeys('FlowMatcher.fit', opts, TRAIN_KEYS);
    checkOptionKeys('FlowMatcher.fit: data', data, ['weights', 'run', 'init']);
    const n = this.checkData(data);
    const steps = checkInt('steps', opts.steps, 0);
    const B = checkInt('batchSize', opts.batchSize ?? 32, 1, 1 << 20);
    const lr = checkNumber('lr', opts.lr ?? 1e-3, 0);
    const schedule = checkChoice('schedule', opts.schedule ?? 'constant', ['constant', 'cosine'] as const);
    const warmup = checkInt('warmup', opts.warmup ?? 0, 0);
    const emaDecay = checkNumber('ema', opts.ema ?? 0, 0, 1);
    const every = checkInt('checkpointEvery', opts.checkpointEvery ?? 1000, 1);
    const logEvery = checkInt('logEvery', opts.logEvery ?? 50, 1);
    const adam = { lr, weightDecay: checkNumber('weightDecay', opts.weightDecay ?? 0, 0), clipNorm: checkNumber('clipNorm', opts.clipNorm ?? 0, 0) };
    this.activeCall = 'fit';
    try {
      return await this.fitChecked(data, n, steps, B, adam, { lr, schedule, warmup, emaDecay, every, logEvery }, opts);
    } finally {
      this.activeCall = undefined;
    }
  }

  /** Refuses a call while fit() or sampleAsync() is in progress, before it changes any state; or after dispose(). */
  private checkIdle(what: string): void {
    if (this.disposed) throw new DisposedError('FlowMatcher');
    if (this.activeCall !== undefined) {
      throw new WsfError(`FlowMatcher.${what}: the flow is busy with ${this.activeCall}(); await it first`, 'ERR_CONTEXT_BUSY');
    }
  }

  /** fit() after its options were checked. */
  private async fitChecked(
    data: WeightDataset,
    n: number,
    steps: number,
    B: number,
    adam: AdamSettings,
    c: FitSchedule,
    opts: TrainOptions,
  ): Promise<{ step: number; loss: number; seconds: number }> {
    const emaDecay = c.emaDecay;
    // Canonicalise the data once (Normalized/Geometric); cache per dataset (every value and run id, fingerprinted).
    const key = dataFingerprint(data);
    let prepared = data;
    if (this.canonical) {
      prepared = { ...data, weights: this.geom.canonicalize(data.weights) };
      if (data.init !== undefined) prepared.init = this.geom.canonicalize(data.init);
    }
    if (this.options.layerScaling && (this.scale === undefined || this.dataKey !== key)) this.scale = this.computeScale(prepared.weights);
    this.dataKey = key;
    if (opts.checkpoint !== undefined && fs.existsSync(opts.checkpoint)) this.loadCheckpoint(opts.checkpoint);
    // The zoo prior is part of the model: fitted once, on the first training data (raw, as given), kept on resume.
    if (this.options.prior.kind === 'zoo' && this.priorStats === undefined) this.priorStats = fitZooPrior(this.arch, this.options.prior, data.weights, new Rng(this.options.seed * 31 + 5));
    if (this.options.prior.kind === 'mixture') {
      if (this.priorStats === undefined) this.priorStats = fitMixturePrior(this.arch, this.options.prior, data.weights, new Rng(this.options.seed * 31 + 5), data.run).stats;
      // Each training network's component: its run's (mixture by run), else the nearest component mean (its own
      // k-means cluster on the fitting data).
      if (this.priorLabels?.key !== key) {
        const labels = componentsOf(this.priorStats as MixturePriorStats, data.weights, data.run);
        this.priorLabels = { key, labels, members: membersOf(labels, (this.priorStats as MixturePriorStats).components.length) };
      }
    }
    if (emaDecay > 0 && this.ema === undefined) this.ema = this.field.getParams();
    this.beginFused(prepared.weights, emaDecay);
    try {
      opts.onStart?.(this.field.stepCount);
      return await this.fitLoop(prepared, n, steps, B, adam, c, opts);
    } finally {
      this.endFused();
    }
  }

  /**
   * Whether training steps can run as one native call (VectorField.flowStep): x1-prediction with an f32 field and
   * no auxiliary input (gradient features and component inputs are computed on the host). WSF_FUSED_STEP=0 turns it
   * off (the host-orchestrated step, for comparisons).
   */
  private fusedEligible(): boolean {
    const o = this.options;
    return process.env.WSF_FUSED_STEP !== '0' && o.prediction === 'x1' && !o.componentInput && !o.selfCondition && o.gradientFeatures === null && o.probeFeatures === null && this.field.dtype === 'f32';
  }

  /** Configures the fused step for this fit() and makes the (prepared) training set resident where it fits. */
  private beginFused(weights: Float32Array, emaDecay: number): void {
    this.fused = false;
    this.residentData = false;
    this.deviceEma = false;
    this.devicePrior = false;
    if (!this.fusedEligible()) return;
    this.configureFused();
    this.fused = true;
    try {
      this.field.setFlowData(weights);
      this.residentData = true;
    } catch (e) {
      // A zoo larger than the device's free memory: batches are uploaded per step instead.
      if ((e as WsfError).code !== 'ERR_OOM') throw e;
    }
    if (this.ema !== undefined) {
      this.field.setFlowEma(this.ema, emaDecay);
      this.deviceEma = true;
    }
    // The prior on the device: by default where the field runs on CUDA (on the CPU it would only copy the prior's
    // statistics); WSF_DEVICE_PRIOR=1 forces it (tests), 0 keeps the host draws.
    const want = process.env.WSF_DEVICE_PRIOR === '1' || (process.env.WSF_DEVICE_PRIOR !== '0' && this.field.device === 'cuda');
    const spec = want ? this.devicePriorSpec() : null;
    if (spec !== null) {
      try {
        this.field.setFlowPrior(spec);
        this.devicePrior = true;
      } catch (e) {
        if ((e as WsfError).code !== 'ERR_OOM') throw e;
      }
    }
  }

  /** Configures the field's device-resident step for this flow (geometry, canonicalisation, preconditioning, scale). */
  private configureFused(): void {
    const o = this.options;
    this.field.configureFlowStep(
      { sphere: o.geometry === 'geometric', canonical: this.canonical, mode: o.semantics === 'reference' ? 'reference' : 'accurate', lastNorm: o.lastLayerNorm, precondition: o.precondition, sigma: o.sigma },
      this.scale ?? null,
    );
  }

  /** Copies the device EMA into this.ema (while the fused step keeps it). */
  private syncEma(): void {
    if (this.deviceEma && this.ema !== undefined) this.field.getFlowEma(this.ema);
  }

  private endFused(): void {
    try {
      this.syncEma();
    } finally {
      if (this.fused) this.field.releaseFlowStep();
      this.fused = false;
      this.residentData = false;
      this.deviceEma = false;
      this.devicePrior = false;
    }
  }

  private async fitLoop(
    prepared: WeightDataset,
    n: number,
    steps: number,
    B: number,
    adam: AdamSettings,
    c: FitSchedule,
    opts: TrainOptions,
  ): Promise<{ step: number; loss: number; seconds: number }> {
    const { lr, schedule, warmup, emaDecay, every, logEvery } = c;
    const t0 = performance.now();
    const startStep = this.field.stepCount;
    let running = NaN;
    let lastLoss = NaN;
    const lrAt = (s: number): number => {
      const w = warmup > 0 && s < warmup ? (s + 1) / warmup : 1;
      if (schedule === 'cosine') {
        const p = Math.min(1, Math.max(0, (s - warmup) / Math.max(1, steps - warmup)));
        return lr * w * 0.5 * (1 + Math.cos(Math.PI * p));
      }
      return lr * w;
    };
    // The checkpoint on disk: the one resumed from, else none until the first is written.
    let lastCheckpointStep = opts.checkpoint !== undefined && fs.existsSync(opts.checkpoint) ? startStep : -1;
    for (let s = startStep; s < steps; s++) {
      adam.lr = lrAt(s);
      let r: { loss: number; gradNorm: number };
      try {
        r = await this.trainStep(prepared, n, Math.min(B, n > 0 ? B : 1), adam);
      } catch (e) {
        if ((e as WsfError).code === 'ERR_NUMERIC') {
          const firstDue = Math.min(steps, (Math.floor(startStep / every) + 1) * every);
          const where =
            opts.checkpoint === undefined ? '' : lastCheckpointStep >= 0 ? `; the last good checkpoint (step ${lastCheckpointStep}) is kept at ${opts.checkpoint}` : `; no checkpoint has been written (the first is due at step ${firstDue})`;
          throw new WsfError(`training diverged at step ${s + 1}: ${(e as Error).message}${where}. Try a lower learning rate or gradient clipping.`, 'ERR_NUMERIC', { cause: e });
        }
        throw e;
      }
      lastLoss = r.loss;
      running = Number.isNaN(running) ? r.loss : 0.98 * running + 0.02 * r.loss;
      if (this.ema !== undefined && !this.deviceEma) {
        const p = this.field.getParams();
        for (let i = 0; i < p.length; i++) this.ema[i] = emaDecay * this.ema[i]! + (1 - emaDecay) * p[i]!;
      }
      const done = s + 1;
      if (opts.onLog !== undefined && (done % logEvery === 0 || done === steps)) {
        const el = (performance.now() - t0) / 1000;
        opts.onLog({ step: done, loss: running, gradNorm: r.gradNorm, lr: adam.lr, elapsedS: el, stepsPerS: (done - startStep) / Math.max(el, 1e-9) });
      }
      if (opts.checkpoint !== undefined && (done % every === 0 || done === steps)) {
        this.saveCheckpoint(opts.checkpoint, opts.checkpointMetadata);
        lastCheckpointStep = done;
      }
      if (opts.signal?.aborted === true) {
        if (opts.checkpoint !== undefined) this.saveCheckpoint(opts.checkpoint, opts.checkpointMetadata);
        throw new WsfError(`training interrupted at step ${done}${opts.checkpoint !== undefined ? `; checkpoint written to ${opts.checkpoint}` : ''}`, 'ERR_INTERRUPTED');
      }
      if (done % 8 === 0) await new Promise<void>((res) => setImmediate(res)); // let timers, signals and progress run
    }
    return { step: this.field.stepCount, loss: Number.isNaN(running) ? lastLoss : running, seconds: (performance.now() - t0) / 1000 };
  }

  // ------------------------------------------------------------------------------------------------------------
  // sampling

  /**
   * x̂1 prediction at (x, t) for a batch, canonicalised for Normalized/Geometric (x1-prediction only). A
   * self-conditioned flow ({@link FlowOptions.selfCondition}) is given a zero column here, as at a sampler's first call.
   * @param x B·P states of the flow's architecture, or of `opts.arch` (see {@link SampleOptions.arch})
   * @throws WsfError ERR_SHAPE for an architecture the flow cannot run or a length that is not a multiple of P
   */
  predictX1(x: Float32Array, t: number, opts: { arch?: Architecture | readonly number[] } = {}): Float32Array {
    if (this.disposed) throw new DisposedError('FlowMatcher');
    return this.predictOn(x, t, this.target(opts.arch));
  }

  private predictOn(x: Float32Array, t: number, tg: Target): Float32Array {
    const B = checkBatch(tg.arch, 'x', x);
    checkNumber('t', t, 0, 1);
    const tt = new Float32Array(B).fill(t);
    const xhat = this.toX1(this.fieldOutput(x, tt, tg), x, tt, tg);
    const out = this.canonical ? tg.geom.canonicalize(xhat) : xhat;
    if (this.selfConditioning) this.prevPrediction = out.slice(); // callers may change what they are given
    return out;
  }

  /**
   * Velocity at (x, t) for the sampler. `guide` (x1-prediction flows) adjusts the prediction x̂1 before the velocity
   * is formed from it (guidance at the prediction).
   */
  private velocity(x: Float32Array, t: number, x0: Float32Array, mode: 'riemannian' | 'x0-anchored', tg: Target, guide?: (xhat: Float32Array) => Float32Array): Float32Array {
    const P = tg.arch.numParams;
    const B = x.length / P;
    if (this.options.prediction === 'velocity') {
      const tt = new Float32Array(B).fill(t);
      const v = this.toX1(this.fieldOutput(x, tt, tg), x, tt, tg);
      return this.options.geometry === 'geometric' && this.options.semantics === 'corrected' ? tg.geom.tangentProject(x, v) : v;
    }
    const xhat = guide === undefined ? this.predictOn(x, t, tg) : guide(this.predictOn(x, t, tg));
    if (mode === 'x0-anchored') {
      for (let i = 0; i < xhat.length; i++) xhat[i] = xhat[i]! - x0[i]!;
      return xhat;
    }
    const inv = 1 / Math.max(1 - t, 1e-4);
    const v = this.options.geometry === 'geometric' ? tg.geom.logmap(x, xhat) : xhat;
    if (this.options.geometry !== 'geometric') for (let i = 0; i < v.length; i++) v[i] = v[i]! - x[i]!;
    for (let i = 0; i < v.length; i++) v[i] = v[i]! * inv;
    return v;
  }

  /**
   * Guidance at the prediction ({@link SampleGuidance.at} 'prediction'): x̂1 − λ·∇L(x̂1) in the flat layout, canonicalised
   * (function-preserving) for the Normalized and Geometric flows.
   */
  private guidedPrediction(xhat: Float32Array, t: number, g: SampleGuidance, tg: Target): Float32Array {
    const grad = guidanceGradient(g, xhat, t);
    const out = new Float32Array(xhat.length);
    for (let i = 0; i < out.length; i++) out[i] = xhat[i]! - g.lambda * grad[i]!;
    return this.canon(out, tg);
  }

  /** Why this flow cannot be guided at the prediction ({@link SampleGuidance.at}), or undefined when it can. */
  guidanceAtPredictionUnsupported(): string | undefined {
    const o = this.options;
    return o.prediction === 'x1' && o.semantics === 'corrected' ? undefined : `guidance at the prediction needs an x1-prediction flow in corrected semantics (this flow: ${o.prediction} prediction, ${o.semantics} semantics)`;
  }

  /** The prediction adjustment for guidance at the prediction at time t, or undefined (no guidance there). */
  private predictionGuide(g: SampleGuidance | undefined, t: number, tg: Target): ((xhat: Float32Array) => Float32Array) | undefined {
    if (g === undefined || g.at !== 'prediction' || t < (g.from ?? 0) || t > (g.to ?? 1)) return undefined;
    return (xhat) => this.guidedPrediction(xhat, t, g, tg);
  }

  /**
   * Why the renoising sampler ({@link SampleOptions.renoise}) cannot serve this flow with these other sampling
   * options, or undefined when it can.
   */
  renoiseUnsupported(opts: Omit<SampleOptions, 'n'> = {}): string | undefined {
    const o = this.options;
    const need =
      o.semantics !== 'corrected' ? 'corrected semantics (the published sampler has no renoising form)'
      : o.prediction !== 'x1' ? 'an x1-prediction flow'
      : o.prior.kind !== 'gaussian' && o.prior.kind !== 'init' ? `a zero-mean prior ('gaussian' or 'init'), not '${o.prior.kind}'`
      : (opts.guidance !== undefined && opts.guidance.at !== 'prediction') || (opts.noise !== undefined && opts.noise.scale > 0) ? "no `noise` and no guidance other than at the prediction (guidance.at 'prediction')"
      : (opts.solver ?? 'euler') !== 'euler' ? "solver 'euler' (it replaces the solver)"
      : opts.velocity !== undefined && opts.velocity !== 'riemannian' ? "velocity 'riemannian'"
      : undefined;
    return need === undefined ? undefined : `renoise needs ${need}`;
  }

  /** Validates {@link SampleOptions.renoise} against the flow and the other sampling options; returns ρ. */
  private checkRenoise(opts: SampleOptions): number {
    const rho = checkNumber('renoise', opts.renoise!, 0, 1);
    const why = this.renoiseUnsupported(opts);
    if (why !== undefined) throw new WsfError(why, 'ERR_INVALID');
    return rho;
  }

  /**
   * The renoising sampler's path from x (canonical start points) over `grid` (see {@link SampleOptions.renoise});
   * returns the end states x̂1 (canonical for the Normalized/Geometric flows).
   */
  private renoisePath(x: Float32Array, grid: Float64Array, rho: number, rng: Rng, tg: Target, onStep: (x: Float32Array, t: number) => void, guidance?: SampleGuidance): Float32Array {
    const B = x.length / tg.arch.numParams;
    let y = x;
    for (let k = 0; k + 1 < grid.length; k++) {
      const t = grid[k]!;
      const t2 = grid[k + 1]!;
      onStep(y, t);
      const guide = this.predictionGuide(guidance, t, tg);
      const x1 = guide === undefined ? this.predictOn(y, t, tg) : guide(this.predictOn(y, t, tg));
      // The start point of the path through x̂1 and y (y itself at t = 0), then a share of it renewed.
      let s = t === 0 ? y : tg.geom.interpolate(x1, y, 1 / Math.max(1 - t, 1e-4));
      const keep = rho ** (32 * (t2 - t));
      if (keep < 1) {
        const z = this.drawPriorWith(rng, B, tg);
        const fresh = Math.sqrt(1 - keep * keep);
        const m = new Float32Array(s.length);
        for (let i = 0; i < m.length; i++) m[i] = keep * s[i]! + fresh * z[i]!;
        s = this.canon(m, tg);
      }
      y = t2 >= 1 ? x1 : tg.geom.interpolate(s, x1, t2);
    }
    onStep(y, grid[grid.length - 1]!);
    return y; // the last step lands on x̂1, which predictOn has already canonicalised
  }

  /** One step x → x + dt·v on the flow's geometry. */
  private move(x: Float32Array, v: Float32Array, dt: number, tg: Target): Float32Array {
    if (this.options.geometry === 'geometric') return tg.geom.eulerStep(x, v, dt);
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = x[i]! + dt * v[i]!;
    return out;
  }

  /**
   * Generates networks by integrating the learned flow from prior draws.
   * @returns n × P Float32Array, flat layout (P of `opts.arch` when given); canonicalised onto the spheres for
   *   Normalized/Geometric flows in corrected semantics (reference semantics returns the raw end state, as the
   *   published sampler)
   * @throws WsfError ERR_INVALID for bad options; ERR_SHAPE for an `x0` of the wrong length or an `arch` whose input
   *   width, output width or depth differ from the flow's
   */
  sample(opts: SampleOptions): Float32Array {
    if (this.disposed || this.activeCall === 'sampleAsync') this.checkIdle('sample');
    const gen = this.sampling(opts);
    try {
      let r = gen.next();
      while (r.done !== true) r = gen.next(this.field.flowSample(r.value.x, r.value.grid, r.value));
      return r.value;
    } catch (e) {
      gen.return(new Float32Array(0)); // runs the sampler's clean-up (parameters, device step) if a request failed
      throw e;
    }
  }

  /**
   * {@link sample} with the device sampler's batches off the main thread (a libuv pool worker; the field is busy until
   * each batch settles), so timers, signals and progress run while it works. Samplers that need the host between
   * steps (guidance, noise, per-step callbacks, other architectures) run as in {@link sample}.
   * @returns the same networks as {@link sample} with the same options
   */
  async sampleAsync(opts: SampleOptions): Promise<Float32Array> {
    this.checkIdle('sampleAsync');
    const gen = this.sampling(opts);
    this.activeCall = 'sampleAsync';
    try {
      let r = gen.next();
      while (r.done !== true) r = gen.next(await this.field.flowSampleAsync(r.value.x, r.value.grid, r.value));
      return r.value;
    } catch (e) {
      gen.return(new Float32Array(0));
      throw e;
    } finally {
      this.activeCall = undefined;
    }
  }

  /**
   * The sampler as a generator: host batches are integrated here; a batch for the device sampler is yielded as a
   * request whose end states the driver ({@link sample}, {@link sampleAsync}) sends back. Returns all networks.
   */
  private *sampling(opts: SampleOptions): Generator<{ x: Float32Array; grid: Float64Array } & FlowSampleOptions, Float32Array, Float32Array> {
    checkObject('opts', opts, 'of sampling options holding at least `n`');
    checkOptionKeys('FlowMatcher.sample', opts, SAMPLE_KEYS);
    checkOptionKeys('FlowMatcher.sample: guidance', opts.guidance, GUIDANCE_KEYS);
    const tg = this.target(opts.arch);
    const P = tg.arch.numParams;
    const n = checkInt('n', opts.n, 1);
    const steps = checkInt('steps', opts.steps ?? 64, 1, 1 << 20);
    const solver = checkChoice('solver', opts.solver ?? 'euler', ['euler', 'midpoint', 'rk4'] as const);
    const bs = checkInt('batchSize', opts.batchSize ?? Math.min(n, 256), 1);
    const sem = this.options.semantics;
    const vmode = checkChoice('velocity', opts.velocity ?? (sem === 'reference' ? 'x0-anchored' : 'riemannian'), ['riemannian', 'x0-anchored'] as const);
    if (opts.x0 !== undefined) {
      if (opts.x0 instanceof Float32Array && opts.x0.length !== n * P) throw new WsfError(`Expected \`x0\` of length n·P = ${n * P} but received length ${opts.x0.length}`, 'ERR_SHAPE');
      checkBatch(tg.arch, 'x0', opts.x0);
    }
    let guidance = opts.guidance;
    if (guidance !== undefined) {
      checkNumber('guidance.lambda', guidance.lambda);
      const at = checkChoice('guidance.at', guidance.at ?? 'state', ['state', 'prediction'] as const);
      const why = at === 'prediction' ? this.guidanceAtPredictionUnsupported() : undefined;
      if (why !== undefined) throw new WsfError(why, 'ERR_INVALID');
      const layout = checkChoice('guidance.layout', guidance.layout ?? defaultGuidanceLayout(sem), ['flat', 'published'] as const);
      if (layout === 'published') {
        const g = guidance;
        guidance = { ...g, grad: (x, t) => publishedGradientLayout(tg.arch, guidanceGradient(g, x, t)) };
      }
    }
    if (opts.noise !== undefined) checkNumber('noise.scale', opts.noise.scale, 0);
    const renoise = opts.renoise === undefined ? undefined : this.checkRenoise(opts);
    const rng = new Rng(checkInt('seed', opts.seed ?? 1, 0, 2 ** 31) * 104729 + 3);
    const gridKind = checkChoice('grid', opts.grid ?? 'uniform', ['uniform', 'early', 'cosine'] as const);
    if (gridKind !== 'uniform' && sem === 'reference') throw new WsfError(`grid '${gridKind}' needs corrected semantics (the published sampler's grid is uniform)`, 'ERR_INVALID');
    const grid = timeGrid(steps, sem, gridKind);
    // The sampler (Euler, midpoint or RK4) runs on the field's device in one call per batch when nothing needs the
    // host between steps (no guidance, noise or per-step callback; the flow's own architecture).
    const onDevice = this.fusedEligible() && guidance === undefined && !(opts.noise !== undefined && opts.noise.scale > 0) && renoise === undefined && opts.onStep === undefined && tg.arch === this.arch;
    const configureHere = onDevice && !this.fused; // during fit() the training step's configuration serves
    if (configureHere) this.configureFused();
    this.syncEma();
    // The field's memory for one forward stays within a share of the free memory: batches above the cap are
    // evaluated in sub-batches (the same networks; the batch size still decides the random draws).
    const cap = Math.min(bs, this.field.dtype === 'f32' ? this.field.inferenceBatchCap(tg.arch) : bs);
    this.forwardCap = cap < bs ? cap : undefined;
    const saved = opts.useEma !== false && this.ema !== undefined ? this.field.getParams() : undefined;
    if (saved !== undefined) this.field.setParams(this.ema!);
    const out = new Float32Array(n * P);
    this.selfConditioning = this.options.selfCondition;
    try {
      for (let start = 0; start < n; start += bs) {
        const B = Math.min(bs, n - start);
        this.prevPrediction = undefined; // each batch's first field call sees zeros
        let x = opts.x0 !== undefined ? this.canon(opts.x0.slice(start * P, (start + B) * P), tg) : this.drawPriorWith(rng, B, tg);
        if (onDevice) {
          // Sub-batches of at most `cap` networks (memory); trajectories are independent, so the same networks.
          for (let b0 = 0; b0 < B; b0 += cap) {
            const b1 = Math.min(B, b0 + cap);
            out.set(yield { x: x.subarray(b0 * P, b1 * P), grid, anchored: vmode === 'x0-anchored', canonicalEnd: this.canonical && sem === 'corrected', solver }, (start + b0) * P);
          }
          opts.onProgress?.(start + B, n);
          continue;
        }
        if (renoise !== undefined) {
          x = this.renoisePath(x, grid, renoise, rng, tg, (y, t) => opts.onStep?.(y, t, start), guidance);
          out.set(x, start * P);
          opts.onProgress?.(start + B, n);
          continue;
        }
        const x0 = x.slice();
        if (this.options.componentInput) this.startAux = this.componentAux(x0);
        const vel = (y: Float32Array, t: number): Float32Array => {
          const g = guidance;
          let v = this.velocity(y, t, x0, vmode, tg, this.predictionGuide(g, t, tg));
          if (g !== undefined && g.at !== 'prediction' && t >= (g.from ?? 0) && t <= (g.to ?? 1)) {
            const grad = guidanceGradient(g, y, t);
            const gt = this.options.geometry === 'geometric' && sem === 'corrected' ? tg.geom.tangentProject(y, grad) : grad;
            v = v.slice();
            for (let i = 0; i < v.length; i++) v[i] = v[i]! - g.lambda * gt[i]!;
          }
          return v;
        };
        x = integrate(x, grid, solver, {
          singularAtOne: this.options.prediction === 'x1' && !this.options.precondition && vmode !== 'x0-anchored',
          velocity: vel,
          move: (y, v, dt) => this.move(y, v, dt, tg),
          beforeStep: (y: Float32Array, t: number, dt: number) => {
            const z = opts.noise !== undefined && opts.noise.scale > 0 ? this.addNoise(y, t, dt, opts.noise, rng, tg) : y;
            opts.onStep?.(z, t, start);
            return z;
          },
        });
        opts.onStep?.(x, grid[grid.length - 1]!, start);
        if (this.canonical && sem === 'corrected') x = tg.geom.canonicalize(x);
        out.set(x, start * P);
        opts.onProgress?.(start + B, n);
      }
    } finally {
      if (saved !== undefined) this.field.setParams(saved);
      this.startAux = undefined;
      this.selfConditioning = false;
      this.prevPrediction = undefined;
      this.forwardCap = undefined;
      if (configureHere) this.field.releaseFlowStep();
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------------------------
  // likelihood

  /**
   * Log-likelihood of networks under a Euclidean flow by the instantaneous change of variables (METHOD.md §8.6):
   * the sampling ODE dx/dt = v(x, t) is integrated backwards from x(1) = x1 to t = 0 on the sampler's time grid,
   * and log p̂1(x1) = log p0(x0) − ∫₀¹ tr(∂v/∂x)(x(t), t) dt. The trace is exact (`exact: true`, P
   * vector–Jacobian products per evaluation) or Hutchinson's estimate with `probes` fixed probes per trajectory
   * (one VJP each: εᵀJε = (Jᵀε)·ε, through the engine's input gradient), whose standard error is reported.
   *
   * v is the corrected sampling velocity (x̂1 − x)/(1 − t) — with preconditioning x̂1 = x + (1 − t)·F, so v = F —
   * or the predicted velocity; layer scaling and EMA parameters are applied as in {@link sample}; 1 − t is
   * clamped at 1e-4 and the evaluation time at 1 − 1e-4 as the sampler does (Euler evaluates each step at its
   * left time, as the sampler's step did, so never at t = 1; midpoint and RK4 evaluate near t = 1, where an
   * un-preconditioned x1-prediction's velocity carries 1/(1 − t) — use Euler or preconditioning there). The
   * density is the AMBIENT one on
   * R^P (the same-sized ODE error as sampling applies; use 'rk4' for accuracy); the prior term uses covariance
   * std²·I (the published notebook used std·I — a bug, METHOD.md §12.A.8).
   *
   * Only Euclidean flows in corrected semantics with a Gaussian prior qualify: the Normalized and Geometric
   * flows live on products of spheres, where the ambient divergence is not a density on the manifold; the
   * reference sampler's velocity x̂1 − x0 depends on the unknown start x0, so it cannot be integrated
   * backwards; the 'init' prior has zero biases and no density on R^P.
   * @param x1 n × P networks (flat layout)
   * @returns per-network log-likelihoods (nats), prior terms, divergence integrals, standard errors, start points
   * @throws WsfError ERR_INVALID for a non-Euclidean flow, reference semantics, an 'init' prior or a bad option;
   *   ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for a bad or non-finite `x1`; ERR_NUMERIC when the integration
   *   becomes non-finite
   */
  logLikelihood(x1: Float32Array, opts: LikelihoodOptions = {}): LikelihoodResult {
    checkOptionKeys('FlowMatcher.logLikelihood', opts, LIKELIHOOD_KEYS);
    const o = this.options;
    const why = this.likelihoodUnsupported();
    if (why !== undefined) throw new WsfError(why, 'ERR_INVALID');
    const prior = o.prior as Extract<PriorSpec, { kind: 'gaussian' }>; // likelihoodUnsupported checked the kind
    const P = this.arch.numParams;
    const n = checkBatch(this.arch, 'x1', x1);
    const steps = checkInt('steps', opts.steps ?? 64, 1, 1 << 20);
    const solver = checkChoice('solver', opts.solver ?? 'euler', ['euler', 'midpoint', 'rk4'] as const);
    const exact = opts.exact ?? false;
    if (typeof exact !== 'boolean') throw new WsfError(`Expected a boolean for \`exact\` but received ${typeof exact}`, 'ERR_INVALID');
    const K = checkInt('probes', opts.probes ?? 25, 1, 1 << 16);
    const probe = checkChoice('probe', opts.probe ?? 'rademacher', ['rademacher', 'gaussian'] as const);
    const bs = checkInt('batchSize', opts.batchSize ?? Math.min(n, 64), 1);
    const mean = checkNumber('prior.mean', prior.mean ?? 0);
    const std = checkNumber('prior.std', prior.std ?? 0.1, Number.MIN_VALUE);
    const rng = new Rng(checkInt('seed', opts.seed ?? 1, 0, 2 ** 31) * 7177 + 5);
    const grid = timeGrid(steps, 'corrected');
    const res: LikelihoodResult = {
      logLikelihood: new Float64Array(n),
      logPrior: new Float64Array(n),
      divergence: new Float64Array(n),
      stderr: new Float64Array(n),
      x0: new Float32Array(n * P),
      nfe: 0,
      nvjp: 0,
    };
    const saved = opts.useEma !== false && this.ema !== undefined ? this.field.getParams() : undefined;
    if (saved !== undefined) this.field.setParams(this.ema!);
    try {
      for (let start = 0; start < n; start += bs) {
        const B = Math.min(bs, n - start);
        const x = Float64Array.from(x1.subarray(start * P, (start + B) * P));
        const trace = exact ? { kind: 'exact' as const } : { kind: 'hutchinson' as const, probes: drawProbes(probe, K, B * P, rng) };
        const r = integrateDivergence(x, this.divergenceProblem(), grid, solver, trace);
        const lp0 = gaussianLogDensity(r.x0, P, mean, std);
        for (let b = 0; b < B; b++) {
          const ll = lp0[b]! - r.divergence[b]!;
          if (!Number.isFinite(ll)) {
            throw new WsfError(`the likelihood integration of network ${start + b} became non-finite (log p0(x0) = ${lp0[b]}, ∫ tr = ${r.divergence[b]}); try more steps or 'rk4'`, 'ERR_NUMERIC');
          }
          res.logLikelihood[start + b] = ll;
          res.logPrior[start + b] = lp0[b]!;
          res.divergence[start + b] = r.divergence[b]!;
          res.stderr[start + b] = r.stderr[b]!;
        }
        res.x0.set(r.x0, start * P);
        res.nfe += r.nfe;
        res.nvjp += r.nvjp;
        opts.onProgress?.(start + B, n);
      }
    } finally {
      if (saved !== undefined) this.field.setParams(saved);
    }
    return res;
  }

  /** Why {@link logLikelihood} is not defined for this flow (a sentence), or undefined when it is. */
  likelihoodUnsupported(): string | undefined {
    const o = this.options;
    if (o.geometry !== 'euclidean') {
      return `log-likelihoods are defined for Euclidean flows only, not '${o.geometry}': the ${o.geometry} flow's samples live on products of spheres, where the ambient-space divergence of the velocity is not the change of a density on the manifold (METHOD.md §8.6)`;
    }
    if (o.semantics !== 'corrected') {
      return "log-likelihoods need semantics 'corrected': the reference sampler's velocity x̂1 − x0 depends on the trajectory's unknown start x0, so its ODE cannot be integrated backwards from x1";
    }
    if (o.gradientFeatures !== null) return 'log-likelihoods need a velocity whose input Jacobian the engine computes: gradient features depend on x_t through the task gradient, which the divergence would miss';
    if (o.selfCondition) return 'log-likelihoods need a velocity that is a function of (x, t): a self-conditioned field also depends on its previous prediction along the path';
    if (o.probeFeatures !== null) return 'log-likelihoods need a velocity whose input Jacobian the engine computes: probe features depend on x_t through the probe activations, which the divergence would miss';
    if (o.prior.kind === 'init') return "log-likelihoods need a Gaussian prior: the 'init' prior has zero biases, so it has no density on R^P";
    if (o.prior.kind === 'zoo' || o.prior.kind === 'mixture') return `log-likelihoods need an isotropic Gaussian prior: the '${o.prior.kind}' prior's covariance has rank ≤ its member count, so it has no density on R^P`;
    return undefined;
  }

  /**
   * The sampling velocity of a Euclidean flow (corrected semantics) with its input vector–Jacobian product, in
   * f64 on the host (the field runs in its own dtype). With s the layer scale (1 without layer scaling),
   * F = field(x/s, t) and c = max(1 − t, 1e-4):
   *   x1-prediction:  x̂1 = x + (1 − t)·s⊙F (precondition) or s⊙F;  v = (x̂1 − x)/c
   *   velocity:       v = s⊙F
   * and for a cotangent u, with g = J_Fᵀ(s⊙u) from the engine's input gradient:
   *   uᵀ∂v/∂x = ((1 − t)/c)·g/s (precondition: the identity terms cancel), (g/s − u)/c (plain x1), g/s (velocity).
   * @internal exposed to tests through logLikelihood and {@link likelihoodVelocity}
   */
  /**
   * True when {@link logLikelihood} depends on the time grid without a limit: a plain x1-prediction field (no
   * preconditioning), whose velocity (x̂1 − x)/(1 − t) contracts onto x̂1's image as t → 1, so the density of networks
   * off the flow's paths falls without bound as the grid is refined. Compare such figures at equal steps and solver.
   */
  likelihoodGridDependent(): boolean {
    return this.options.prediction === 'x1' && !this.options.precondition;
  }

  private divergenceProblem(): DivergenceProblem {
    const P = this.arch.numParams;
    const scale = this.scale;
    const x1pred = this.options.prediction === 'x1';
    const pre = this.options.precondition && x1pred;
    const field = this.field;
    const f64 = field.dtype === 'f64';
    return {
      dim: P,
      singularAtOne: x1pred && !pre,
      at: (x: Float64Array, t: number) => {
        const B = x.length / P;
        const xin = f64 ? new Float64Array(x.length) : new Float32Array(x.length);
        for (let i = 0; i < x.length; i++) xin[i] = scale === undefined ? x[i]! : x[i]! / scale[i % P]!;
        const tt = f64 ? new Float64Array(B).fill(t) : new Float32Array(B).fill(t);
        const F = field.forward(xin, tt, { training: true });
        const c = Math.max(1 - t, 1e-4);
        const v = new Float64Array(x.length);
        for (let i = 0; i < x.length; i++) {
          const sF = (scale === undefined ? 1 : scale[i % P]!) * F[i]!;
          v[i] = !x1pred ? sF : pre ? ((1 - t) * sF) / c : (sF - x[i]!) / c;
        }
        const du = f64 ? new Float64Array(x.length) : new Float32Array(x.length);
        const g = f64 ? new Float64Array(x.length) : new Float32Array(x.length);
        return {
          v,
          vjp: (u: Float64Array): Float64Array => {
            for (let i = 0; i < u.length; i++) du[i] = scale === undefined ? u[i]! : u[i]! * scale[i % P]!;
            field.inputVjp(du, { out: g });
            const out = new Float64Array(u.length);
            for (let i = 0; i < u.length; i++) {
              const gs = scale === undefined ? g[i]! : g[i]! / scale[i % P]!;
              out[i] = !x1pred ? gs : pre ? ((1 - t) * gs) / c : (gs - u[i]!) / c;
            }
            return out;
          },
        };
      },
    };
  }

  /**
   * @internal The velocity {@link logLikelihood} integrates and its VJP at (x, t), for tests (finite differences
   * against {@link sample}'s velocity).
   */
  likelihoodVelocity(x: Float64Array, t: number): { v: Float64Array; vjp(u: Float64Array): Float64Array } {
    return this.divergenceProblem().at(x, t);
  }

  /**
   * Raw draws from the flow's prior (not canonicalised: {@link sample} projects them), e.g. to start several samplers
   * from the same points through `x0`.
   * @param n number of draws
   * @param seed seed of the draws (default 1)
   * @throws WsfError ERR_INVALID for a bad count or a 'zoo' prior that has not been fitted (train first)
   */
  drawPriorSamples(n: number, seed = 1): Float32Array {
    checkInt('n', n, 1);
    return samplePrior(this.arch, this.options.prior, new Rng(checkInt('seed', seed, -(2 ** 31), 2 ** 32 - 1)), new Float32Array(n * this.arch.numParams), this.priorStats);
  }

  private drawPriorWith(rng: Rng, B: number, tg: Target): Float32Array {
    const x = samplePrior(tg.arch, this.options.prior, rng, new Float32Array(B * tg.arch.numParams), this.priorStats);
    return this.canon(x, tg);
  }

  private addNoise(x: Float32Array, t: number, dt: number, noise: { scale: number; from?: number; to?: number }, rng: Rng, tg: Target): Float32Array {
    if (this.options.semantics === 'reference') {
      if (t <= 0.8) return x; // the published window and per-step scale
      const y = fillNormalFast(rng, new Float32Array(x.length), 0, noise.scale);
      for (let i = 0; i < y.length; i++) y[i] = x[i]! + y[i]!;
      return y;
    }
    if (t < (noise.from ?? 0) || t > (noise.to ?? 1)) return x;
    const y = fillNormalFast(rng, new Float32Array(x.length), 0, noise.scale * Math.sqrt(dt));
    for (let i = 0; i < y.length; i++) y[i] = x[i]! + y[i]!;
    return this.options.geometry === 'geometric' ? tg.geom.project(y) : y;
  }

  // ------------------------------------------------------------------------------------------------------------
  // persistence

  private checkpointTensors(): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
    const { tensors, metadata } = this.field.stateTensors({ optimizer: true });
    this.syncEma();
    if (this.ema !== undefined) tensors['__ema'] = f32(this.ema);
    if (this.scale !== undefined) tensors['__scale'] = f32(this.scale);
    if (this.order !== undefined) tensors['__order'] = i32(this.order);
    if (this.pool !== undefined) tensors['__pool'] = f32(this.pool);
    if (this.priorStats !== undefined && isMixture(this.priorStats)) {
      // One tensor per field over all components: weights (K), means (K × P), member counts (K) and the bases stacked.
      const cs = this.priorStats.components;
      const P = cs[0]!.mean.length;
      tensors['__prior_mix_weight'] = { dtype: 'F64', shape: [cs.length], data: Float64Array.from(cs, (c) => c.weight) };
      tensors['__prior_mix_members'] = i32(Int32Array.from(cs, (c) => c.basis.length / P));
      const means = new Float32Array(cs.length * P);
      cs.forEach((c, k) => means.set(c.mean, k * P));
      tensors['__prior_mix_mean'] = { dtype: 'F32', shape: [cs.length, P], data: means };
      const bases = new Float32Array(cs.reduce((a, c) => a + c.basis.length, 0));
      let off = 0;
      for (const c of cs) {
        bases.set(c.basis, off);
        off += c.basis.length;
      }
      tensors['__prior_mix_basis'] = f32(bases);
      if (this.priorStats.runs !== undefined) tensors['__prior_mix_runs'] = i32(this.priorStats.runs);
      if (this.priorStats.std !== undefined) tensors['__prior_mix_std'] = { dtype: 'F64', shape: [1], data: Float64Array.of(this.priorStats.std) };
    } else if (this.priorStats !== undefined) {
      tensors['__prior_mean'] = f32(this.priorStats.mean);
      tensors['__prior_basis'] = f32(this.priorStats.basis);
    }
    return {
      tensors,
      metadata: {
        ...metadata,
        format: FORMAT,
        field_format: metadata.format ?? '',
        wsflow: version,
        flow: JSON.stringify(this.options),
        rng: JSON.stringify(this.rng.state()),
        cursor: String(this.cursor),
      },
    };
  }

  /** Writes the flow (parameters, optimiser, EMA, data cursor, RNG) to a safetensors file atomically. */
  saveCheckpoint(file: string, extra: Record<string, string> = {}): void {
    const { tensors, metadata } = this.checkpointTensors();
    writeSafetensors(file, tensors, { ...metadata, ...extra });
  }

  /**
   * Restores training state from {@link saveCheckpoint} (same flow options).
   * @throws WsfError ERR_IO for a foreign or damaged file (any non-finite float tensor), ERR_INVALID for other options
   */
  loadCheckpoint(file: string): void {
    const f = readSafetensors(file);
    if (f.metadata.format !== FORMAT) throw new WsfError(`${file}: not a wsflow flow checkpoint (format '${f.metadata.format ?? 'missing'}')`, 'ERR_IO');
    checkFiniteTensors(file, f.tensors);
    // Options added after a file was written take the value that reproduces its behaviour (gradientFeatures: none).
    const saved = { ...this.options, gradientFeatures: null, probeFeatures: null, selfCondition: false, ...metadataObject<Partial<ResolvedOptions>>(file, f.metadata, 'flow') };
    if (JSON.stringify(saved) !== JSON.stringify(this.options)) {
      throw new WsfError(`${file}: the checkpoint was written by a flow with different options; resume with the same options or remove the file`, 'ERR_INVALID');
    }
    // Everything is checked before any state changes, so a damaged file leaves the flow as it was.
    const P = this.arch.numParams;
    const rng = metadataJson(file, f.metadata, 'rng', [1, 2, 3, 4]);
    if (!Array.isArray(rng) || rng.length !== 4 || !rng.every((v) => Number.isInteger(v))) throw new WsfError(`${file}: the metadata entry \`rng\` is not a generator state (4 integers)`, 'ERR_IO');
    const cursor = Number(f.metadata.cursor ?? '0');
    if (!Number.isSafeInteger(cursor) || cursor < 0) throw new WsfError(`${file}: expected a data cursor (a whole number ≥ 0) in the metadata but found '${f.metadata.cursor}'`, 'ERR_IO');
    // (the EMA averages the field's parameters; the scale has one value per network parameter)
    for (const [name, length] of [['__ema', this.field.numParams], ['__scale', P]] as const) {
      const t = f.tensors[name];
      if (t !== undefined && (t.dtype !== 'F32' || t.data.length !== length)) throw new WsfError(`${file}: tensor \`${name}\` has ${t.data.length} ${t.dtype} values; expected ${length} F32`, 'ERR_IO');
    }
    try {
      this.field.loadStateTensors(f.tensors, file, Number(f.metadata.step ?? '0'));
    } catch (e) {
      throw asFileError(file, e);
    }
    this.ema = f.tensors['__ema']?.data as Float32Array | undefined;
    const sc = f.tensors['__scale']?.data as Float32Array | undefined;
    if (sc !== undefined) this.scale = sc;
    this.order = f.tensors['__order']?.data as Int32Array | undefined;
    this.pool = f.tensors['__pool']?.data as Float32Array | undefined;
    const pm = f.tensors['__prior_mean']?.data as Float32Array | undefined;
    const pb = f.tensors['__prior_basis']?.data as Float32Array | undefined;
    this.priorStats = pm !== undefined && pb !== undefined ? { mean: pm, basis: pb } : readMixture(f.tensors);
    this.priorLabels = undefined;
    this.componentMeans = undefined;
    this.rng.setState(rng as number[]);
    this.cursor = cursor;
  }

  /** Saves a trained flow for sampling (same file format as checkpoints). */
  save(file: string, extra: Record<string, string> = {}): void {
    this.saveCheckpoint(file, extra);
  }

  /**
   * Loads a flow written by {@link save} or a training checkpoint (`matmul`: the CPU engine's weight-product
   * precision, VectorFieldOptions.matmul; not stored in the file).
   * @throws WsfError ERR_IO for a missing, foreign or damaged file (a non-finite parameter, EMA or prior tensor included)
   */
  static load(file: string, opts: { device?: DeviceRequest; matmul?: MatmulPrecision } = {}): FlowMatcher {
    const f = readSafetensors(file);
    if (f.metadata.format !== FORMAT) throw new WsfError(`${file}: not a wsflow flow file (format '${f.metadata.format ?? 'missing'}')`, 'ERR_IO');
    const o = metadataObject<ResolvedOptions>(file, f.metadata, 'flow');
    const cfg = metadataObject<{ D: number; layers: number; heads: number; mode: GraphMode; timeRule: string; inFeatures: number; auxFeatures?: number; dirEmbed: boolean; reverseValue: boolean; inputSlots: number; hiddenSlots: number; outputSlots: number; hiddenWidthSlots?: number }>(file, f.metadata, 'config');
    let fm: FlowMatcher;
    try {
      fm = FlowMatcher.create({
        arch: mlp(f.metadata.arch ?? ''),
        ...o,
        field: {
          D: cfg.D, layers: cfg.layers, heads: cfg.heads, graph: cfg.mode, semantics: cfg.timeRule === 'reference' ? 'reference' : 'corrected',
          timeInput: cfg.inFeatures === 2, auxInputs: cfg.auxFeatures ?? 0, dirEmbed: cfg.dirEmbed, reverseValue: cfg.reverseValue,
          slots: { input: cfg.inputSlots, hidden: cfg.hiddenSlots, output: cfg.outputSlots, hiddenWidth: cfg.hiddenWidthSlots ?? 0 },
        },
        ...(opts.device !== undefined ? { device: opts.device } : {}),
      });
    } catch (e) {
      throw asFileError(file, e);
    }
    try {
      fm.loadCheckpoint(file);
      if (opts.matmul !== undefined) fm.field.setMatmul(opts.matmul);
    } catch (e) {
      fm.dispose();
      throw e;
    }
    return fm;
  }

  /** Frees the native field and geometry. Further calls throw ERR_DISPOSED. Idempotent. */
  dispose(): void {
    this.field.dispose(); // throws ERR_CONTEXT_BUSY (and frees nothing) while a call is in flight
    this.disposed = true;
    this.geom.dispose();
    for (const g of this.transferGeoms.values()) g.dispose();
    this.transferGeoms.clear();
  }
}
