/**
 * The vector-field network: a relational transformer over the weight graphs of a batch of MLPs, predicting the
 * endpoint x̂1 (flat layout) from a noisy state x_t and time t (METHOD.md §2). Runs on the native engine (CPU or
 * CUDA); parameters, gradients and Adam state stay native. One parameter set serves every MLP whose input
 * width, output width and depth fit the positional slots it was created with (hidden widths are free), so a
 * flow trained on 784-10-10 runs on 784-32-10.
 */
import * as os from 'node:os';
import { Architecture, checkBatch, mlp, toArchitecture } from '../arch/Architecture.js';
import { resolveDevice, type Device, type DeviceRequest } from '../device.js';
import { asFileError, DisposedError, WsfError } from '../errors.js';
import { readSafetensors, writeSafetensors, f32, type SafeTensor } from '../io/safetensors.js';
import { binding } from '../native/binding.js';
import type { NativeEngineConfig, NativeEngineInstance, NativeFlowPrior, NativeFlowStepConfig, NativeParamInfo } from '../native/types.js';
import { checkChoice, checkFinite, checkFiniteTensors, checkInt, checkNumber, checkOptionKeys, describe, firstNonFinite, optionKeys } from '../util/validate.js';
import { version } from '../version.js';

/** The weight graphs the field can attend over: see {@link VectorFieldOptions.graph}. */
export const GRAPH_MODES = ['sparse', 'dense', 'hybrid', 'virtual'] as const;
/** One of {@link GRAPH_MODES}. */
export type GraphMode = (typeof GRAPH_MODES)[number];

/** Every key of {@link VectorFieldOptions} (checked complete at compile time). */
export const VECTOR_FIELD_KEYS = optionKeys<VectorFieldOptions>()(['arch', 'D', 'layers', 'heads', 'graph', 'semantics', 'timeInput', 'auxInput', 'auxInputs', 'dirEmbed', 'reverseValue', 'seed', 'device', 'slots', 'hiddenIdentity', 'recompute', 'chunkRows', 'matmul', 'dtype'] as const);

/** Options of {@link VectorField.create}. */
export interface VectorFieldOptions {
  /** The architecture the field is built for (sets the positional slots). */
  arch: Architecture | readonly number[];
  /** Embedding width D (state width D+1). Default 32. */
  D?: number;
  /** Relational-transformer layers. Default 5. */
  layers?: number;
  /** Attention heads (must divide D). Default 1. */
  heads?: number;
  /**
   * 'sparse' (default): the real weight pairs both ways plus self loops. 'dense': all N² pairs (the published
   * model). 'hybrid': the sparse pairs plus all pairs among the non-input neurons, so hidden and output neurons
   * exchange messages directly in every layer (180 extra pairs per 784-10-10 network). 'virtual': the sparse
   * pairs plus one virtual node per network joined to every neuron both ways, so every neuron reads a summary of
   * the whole network in every layer (2N + 1 extra pairs: 1,609 per 784-10-10 network; the node has its own
   * positional embedding and no output).
   */
  graph?: GraphMode;
  /**
   * 'corrected' (default): time reaches every node and pair. 'reference': the published time rule (input
   * neurons and real forward pairs get 1 instead of t) — dense graphs only.
   */
  semantics?: 'corrected' | 'reference';
  /** Feed t to the input MLPs as well as the time channel. Default false (published). */
  timeInput?: boolean;
  /**
   * One more input feature per weight and bias, read from a caller-supplied array in the flat layout (`aux` of
   * {@link VectorField.forward}; e.g. the task-loss gradient at x_t). No gradient flows into it. Default false.
   * The same as `auxInputs: 1`.
   */
  auxInput?: boolean;
  /**
   * A more input features per weight and bias (0…64; e.g. a neuron's activations on A probe inputs), read from the
   * `aux` array of {@link VectorField.forward}: A values per entry of `xt`, entry p's at p·A … p·A + A − 1. No
   * gradient flows into them. Default 0 (1 with `auxInput: true`).
   */
  auxInputs?: number;
  /** Learned embedding of the pair direction. Default: true for sparse, false for dense. */
  dirEmbed?: boolean;
  /** Reverse pairs carry the weight value. Default: true for sparse, false for dense. */
  reverseValue?: boolean;
  /** Parameter-initialisation seed. Default 0. */
  seed?: number;
  /** 'auto' (default), 'cpu' or 'cuda'. */
  device?: DeviceRequest;
  /**
   * Slots override: largest input width, number of hidden layers and output width supported; `hiddenWidth` (> 0)
   * gives every hidden neuron its own slot, up to that many per layer (see `hiddenIdentity`).
   */
  slots?: { input: number; hidden: number; output: number; hiddenWidth?: number };
  /**
   * Give every hidden neuron its own positional embedding (as input and output neurons have), instead of one per
   * hidden layer. Not in the published model: it breaks the field's permutation equivariance on purpose, which
   * suits aligned data (alignment has fixed an order of the hidden neurons) and rules out sampling wider networks
   * than the field was built for. Default false. Sets `slots.hiddenWidth` to the architecture's widest hidden layer.
   */
  hiddenIdentity?: boolean;
  /**
   * Trade compute for memory in training: keep only each layer's output states and recompute a layer's other
   * activations during the backward pass (one more forward of all layers but the last; gradients identical bit for
   * bit). Measured on a 2-core CPU: MNIST 784-10-10 (D=32, batch 8) holds 422 MiB instead of 1,164 MiB and takes
   * 19–25 % longer per step; WDBC (D=64, batch 32) 322 instead of 882 MiB, 21–27 % longer. Default 'auto': on for a
   * batch whose training step would otherwise need more than {@link RECOMPUTE_AUTO_SHARE} of the memory free on the
   * field's device (CUDA) or host (CPU) when its graph is first trained, else off. Results are the same either way.
   */
  recompute?: boolean | 'auto';
  /**
   * With recompute mode: run the per-pair work of each layer (the attention's pair projections, the pair MLP, the
   * input MLP and the output head on pairs) in chunks of about this many pairs, keeping only the full-size pair
   * states and one pair-sized block. For graphs whose recompute step still does not fit: MLP 784-128-128-10 at D=32,
   * batch 8 holds 2,698 MiB (65,536-pair chunks) instead of 5,690 MiB (recompute) and 15,857 MiB (default) on the
   * CPU, at 0.6 % more time than recompute mode there. The model is the same;
   * the parameter gradients' sums are cut into chunks, so they agree with the other modes to rounding, not bit for
   * bit. A number > 0 turns recompute on (`recompute: false` with it is an error); 0 never chunks. Default 'auto':
   * chunks only when recompute mode is on and its step would still need more than {@link RECOMPUTE_AUTO_SHARE} of the
   * free memory — then the largest power of two from 2^20 down to 4,096 pairs that fits (4,096 when none does).
   */
  chunkRows?: number | 'auto';
  /**
   * Precision of the CPU engine's matrix products in its per-pair work — the pair MLP and pair update, the
   * attention's pair projections and the input MLPs' hidden layers; forward, data and weight gradients: 'f32'
   * (default) or 'bf16', which rounds both operands of those products to bfloat16 (8 significant bits) and sums in
   * float, on CPUs with AVX-512 BF16 (`wsflow info` says whether this one has it; elsewhere, on CUDA and for the f64
   * reference it throws ERR_INVALID). Products too small to gain (a single 16-column panel: most of a D ≤ 16 field's),
   * the per-node products, layer norms, attention scores and the optimiser stay float. Faster, less exact; see the
   * README's CPU speed section for what it was measured to change. Not saved with the field ({@link setMatmul} sets
   * it on a loaded one).
   */
  matmul?: MatmulPrecision;
  /** @internal 'f64' selects the CPU double-precision reference (gradient checks). */
  dtype?: 'f32' | 'f64';
}

/** Precision of the CPU engine's weight products (VectorFieldOptions.matmul). */
export type MatmulPrecision = 'f32' | 'bf16';
/** The values of {@link MatmulPrecision}. */
export const MATMUL_PRECISIONS: readonly MatmulPrecision[] = ['f32', 'bf16'];

/** A rejection from a pool thread as a WsfError with its code and the stack captured when the call was queued. */
function withStack(e: unknown, trace: Error): WsfError {
  const err = new WsfError((e as Error).message, (e as WsfError).code ?? 'ERR_INVALID', { cause: e });
  err.stack = `${err.name}: ${err.message}\n${(trace.stack ?? '').split('\n').slice(1).join('\n')}`;
  return err;
}

/**
 * recompute 'auto' turns recompute mode on when a batch's training step would need more than this share of the
 * memory free on the field's device (what the field already holds counted as free).
 */
export const RECOMPUTE_AUTO_SHARE = 0.6;
/** The chunk sizes chunkRows 'auto' tries (powers of two, largest first). */
const AUTO_CHUNK_MAX = 2 ** 20;
const AUTO_CHUNK_MIN = 4096;

/** Batches above this many parameters in all have their graph's host memory checked before it is built. */
const GRAPH_CHECK_PARAMS = 1 << 22;
/**
 * Host bytes per pair of a batch's weight graph, an upper estimate: 43–62 measured (wsflow info --memory, 4,096 and
 * 16,384 networks of 30-16-16-2, sparse and dense graphs).
 */
const GRAPH_BYTES_PER_PAIR = 64;

function gib(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(1)} GiB` : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

let freeMemoryProbe = (device: Device): number => (device === 'cuda' ? binding().cudaInfo().freeMem : os.freemem());

/**
 * What training and sampling a batch would hold on a device, by the engine's exact count of its own allocations
 * (parameters, gradients, Adam state, the graph's index arrays, activations); a CUDA device adds its kernels'
 * scratch (tens of MiB). The counts are the same on the CPU and on CUDA (both store f32).
 */
export interface MemoryPlan {
  /** Networks in the batch, and pairs and nodes of its graph. */
  networks: number;
  pairs: number;
  nodes: number;
  /** Bytes held by a training step: default mode, recompute mode, and chunked recompute mode per chunk size tried by 'auto' (below the pair count). */
  training: { default: number; recompute: number; chunked: { chunkRows: number; bytes: number }[] };
  /** Bytes sampling adds per network of a batch (graph and inference activations), on top of the parameters and optimiser state. */
  inferencePerNetwork: number;
  /** What the memory options' 'auto' would choose with `freeBytes` free on `device` (what the field holds counted as free). */
  auto: { device: Device; freeBytes: number; recompute: boolean; chunkRows: number; bytes: number; fits: boolean };
}

/**
 * The memory modes 'auto' picks for a training step whose bytes in each mode are `bytes(recompute, chunkRows)`, given
 * `cap` bytes to spend: recompute when the default mode needs more than the cap; then, with recompute on and still
 * over the cap, the largest power-of-two chunk below the pair count that fits (the smallest tried when none does).
 * Explicit settings (`recompute` / `chunk` not 'auto') are kept.
 */
function pickMemoryMode(bytes: (recompute: boolean, chunkRows: number) => number, pairs: number, cap: number, recompute: boolean | 'auto', chunk: number | 'auto'): { recompute: boolean; chunkRows: number } {
  const rc = recompute === 'auto' ? bytes(false, 0) > cap : recompute;
  if (chunk !== 'auto') return { recompute: rc, chunkRows: rc ? chunk : 0 };
  if (!rc || bytes(true, 0) <= cap) return { recompute: rc, chunkRows: 0 };
  const fit = autoChunkSizes(pairs).find((c) => bytes(true, c) <= cap);
  return { recompute: true, chunkRows: fit ?? AUTO_CHUNK_MIN };
}

/**
 * The chunk sizes 'auto' tries, largest first: powers of two from AUTO_CHUNK_MAX down to AUTO_CHUNK_MIN, below the
 * graph's pair count (chunks of at least all pairs would only add the chunk buffers).
 */
function autoChunkSizes(pairs: number): number[] {
  const out: number[] = [];
  for (let c = AUTO_CHUNK_MAX; c >= AUTO_CHUNK_MIN; c /= 2) if (c < pairs) out.push(c);
  return out;
}

/** @internal Replaces the free-memory probe behind recompute 'auto' (tests); returns the previous one. */
export function setFreeMemoryProbe(probe: (device: Device) => number): (device: Device) => number {
  const prev = freeMemoryProbe;
  freeMemoryProbe = probe;
  return prev;
}

/** The native Adam arguments (lr, beta1, beta2, eps, weightDecay, clipNorm), validated, with their defaults. */
function adamArgs(opts: AdamOptions): [number, number, number, number, number, number] {
  return [
    checkNumber('lr', opts.lr ?? 1e-3, 0),
    checkNumber('beta1', opts.beta1 ?? 0.9, 0, 1),
    checkNumber('beta2', opts.beta2 ?? 0.999, 0, 1),
    checkNumber('eps', opts.eps ?? 1e-8, 0),
    checkNumber('weightDecay', opts.weightDecay ?? 0, 0),
    checkNumber('clipNorm', opts.clipNorm ?? 0, 0),
  ];
}

/** @internal The device sampler's options ({@link VectorField.flowSample}). */
export interface FlowSampleOptions {
  /** The published x0-anchored velocity instead of the Riemannian one. */
  anchored: boolean;
  /** Canonicalise the end state. */
  canonicalEnd: boolean;
  /** Default 'euler'. */
  solver?: 'euler' | 'midpoint' | 'rk4';
}

/** @internal One batch of the device-resident flow step ({@link VectorField.flowStep}). */
export interface FlowStepBatch {
  /** Rows of the resident training set as x1 (or give `x1`). */
  idx?: Int32Array;
  x1?: Float32Array;
  /** The start points (or give `prior`: the seed words of the prior drawn on the device). */
  x0?: Float32Array;
  prior?: { seeds: Int32Array; components?: Int32Array };
  canonicalizeX0: boolean;
  t: Float32Array;
  noiseSeed: readonly [number, number];
}

/** Adam / AdamW hyper-parameters for {@link VectorField.step}. */
export interface AdamOptions {
  /** Learning rate. Default 1e-3. */
  lr?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (AdamW). Default 0. */
  weightDecay?: number;
  /** Clip the global gradient norm to this value (0 = off). Default 0. */
  clipNorm?: number;
}

/** Batch description: one architecture for all B networks, or one per network (mixed batch). */
export interface BatchOptions {
  /** Architecture of every network in the batch (default: the field's architecture). */
  arch?: Architecture;
  /** Per-network architectures (mixed batch); `xt` is then the concatenation of their flat vectors. */
  archs?: readonly Architecture[];
  /** The extra inputs of an `auxInput(s)` field: A values per weight and bias (entry p's at p·A…), so A times as long as `xt` (required there, not allowed otherwise). */
  aux?: Float32Array | Float64Array;
}

const FORMAT = 'wsflow.vectorfield/1';

/**
 * Checks a batch of flat states is finite, naming the network and parameter of the first offending value (P: the
 * networks' parameter count; 0 for a batch of mixed architectures, where the element is named).
 */
function checkFiniteBatch(name: string, x: Float32Array | Float64Array, P: number): void {
  const i = firstNonFinite(x);
  if (i >= 0) throw new WsfError(`Expected finite values in \`${name}\` but ${P > 0 ? `network ${Math.floor(i / P)}, parameter ${i % P}` : `element ${i}`} is ${x[i]}`, 'ERR_NUMERIC');
}

/** The relational-transformer vector field. */
export class VectorField {
  /** The resolved native configuration. */
  readonly config: Readonly<NativeEngineConfig>;
  /** The architecture the field was built for. */
  readonly arch: Architecture;
  /** Where it runs. */
  readonly device: Device;
  /** Host dtype. */
  readonly dtype: 'f32' | 'f64';
  private native: NativeEngineInstance | undefined;
  private graphKey = '';
  /** The recompute option; 'auto' is decided per batch graph at its first training pass. */
  private recomputeMode: boolean | 'auto' = 'auto';
  private recomputeKey = '';
  /** Whether the current graph trains in recompute mode (fixed at construction unless the option is 'auto'). */
  get recomputing(): boolean {
    return this.recomputeMode === 'auto' ? this.autoRecompute : this.recomputeMode;
  }
  private autoRecompute = false;
  /** The chunkRows option; 'auto' is decided with recompute at a batch graph's first training pass. */
  private chunkMode: number | 'auto' = 'auto';
  private autoChunkRows = 0;
  /** Pairs per chunk in chunked recompute mode for the current graph (0: not chunked). */
  get chunkRows(): number {
    if (!this.recomputing) return 0;
    return this.chunkMode === 'auto' ? this.autoChunkRows : this.chunkMode;
  }
  private batchArchs: Architecture[] = [];
  private totalP = 0;

  private constructor(native: NativeEngineInstance, config: NativeEngineConfig, arch: Architecture, device: Device, dtype: 'f32' | 'f64') {
    this.native = native;
    this.config = Object.freeze({ ...config });
    this.arch = arch;
    this.device = device;
    this.dtype = dtype;
  }

  /**
   * Creates a field with freshly initialised parameters (METHOD.md §2.4).
   * @throws WsfError ERR_INVALID for a bad option, ERR_NO_CUDA when 'cuda' is unavailable
   */
  static create(opts: VectorFieldOptions): VectorField {
    checkOptionKeys('VectorField.create', opts, VECTOR_FIELD_KEYS);
    const arch = opts.arch instanceof Architecture ? opts.arch : mlp(opts.arch);
    const graph = checkChoice('graph', opts.graph ?? 'sparse', GRAPH_MODES);
    const semantics = checkChoice('semantics', opts.semantics ?? 'corrected', ['corrected', 'reference'] as const);
    if (semantics === 'reference' && graph !== 'dense') {
      throw new WsfError("semantics 'reference' (the published time rule) needs graph 'dense': on sparse graphs it would give real edges no time input", 'ERR_INVALID');
    }
    const D = checkInt('D', opts.D ?? 32, 1, 4096);
    const heads = checkInt('heads', opts.heads ?? 1, 1, D);
    if (D % heads !== 0) throw new WsfError(`Expected heads to divide D (D = ${D}) but received ${heads}`, 'ERR_INVALID');
    const hiddenWidths = arch.widths.slice(1, arch.numLayers);
    const auxCols = checkInt('auxInputs', opts.auxInputs ?? (opts.auxInput === true ? 1 : 0), 0, 64);
    if (opts.auxInput === true && auxCols === 0) throw new WsfError('auxInput: true and auxInputs: 0 contradict each other', 'ERR_INVALID');
    const chunkOpt = opts.chunkRows ?? 'auto';
    const chunkGiven = chunkOpt === 'auto' ? 0 : checkInt('chunkRows', chunkOpt, 0, 2 ** 30);
    if (chunkGiven > 0 && opts.recompute === false) {
      throw new WsfError(`chunkRows ${chunkGiven} needs recompute mode, but recompute is false (leave it out or set it true)`, 'ERR_INVALID');
    }
    const slots = opts.slots ?? { input: arch.widths[0]!, hidden: arch.numLayers - 1, output: arch.widths[arch.numLayers]!, hiddenWidth: opts.hiddenIdentity === true ? Math.max(1, ...hiddenWidths) : 0 };
    const config: NativeEngineConfig = {
      D,
      layers: checkInt('layers', opts.layers ?? 5, 0, 64),
      heads,
      inputSlots: checkInt('slots.input', slots.input, 1),
      hiddenSlots: checkInt('slots.hidden', slots.hidden, 0),
      outputSlots: checkInt('slots.output', slots.output, 1),
      hiddenWidthSlots: checkInt('slots.hiddenWidth', slots.hiddenWidth ?? 0, 0, 1 << 20),
      mode: graph,
      timeRule: semantics === 'reference' ? 'reference' : 'all',
      dirEmbed: opts.dirEmbed ?? graph !== 'dense',
      reverseValue: opts.reverseValue ?? graph !== 'dense',
      inFeatures: opts.timeInput === true ? 2 : 1,
      ...(auxCols > 0 ? { auxFeatures: auxCols } : {}),
      ...(opts.recompute === true || chunkGiven > 0 ? { recompute: true } : {}),
      ...(chunkGiven > 0 ? { chunkRows: chunkGiven } : {}),
    };
    const dtype = opts.dtype ?? 'f32';
    const device = dtype === 'f64' ? 'cpu' : resolveDevice(opts.device);
    const seed = checkInt('seed', opts.seed ?? 0, 0, 2 ** 53);
    const rc = opts.recompute ?? 'auto';
    if (rc !== true && rc !== false && rc !== 'auto') throw new WsfError(`Expected \`recompute\` true, false or 'auto' but received ${JSON.stringify(rc)}`, 'ERR_INVALID');
    const native = new (binding().NativeEngine)(config, seed, device, dtype);
    const field = new VectorField(native, config, arch, device, dtype);
    field.recomputeMode = chunkGiven > 0 ? true : rc;
    field.chunkMode = chunkOpt === 'auto' ? 'auto' : chunkGiven;
    if (opts.matmul !== undefined) {
      try {
        field.setMatmul(opts.matmul);
      } catch (e) {
        field.dispose();
        throw e;
      }
    }
    return field;
  }

  private get n(): NativeEngineInstance {
    if (this.native === undefined) throw new DisposedError('VectorField');
    return this.native;
  }

  /** Number of trainable parameters. */
  get numParams(): number {
    return this.n.numParams();
  }

  /** Named parameter tensors and their offsets in {@link getParams}' vector. */
  paramTable(): NativeParamInfo[] {
    return this.n.paramTable();
  }

  /** Completed optimiser steps. */
  get stepCount(): number {
    return this.n.getStepCount();
  }

  /**
   * Turns the per-region time profile on or off (and clears it). Regions synchronise the device, so profiling
   * slows training a little; `WSF_PROFILE=1` turns it on for every field.
   */
  setProfiling(on: boolean): void {
    this.n.setProfiling(on);
  }

  /**
   * Sets the precision of the CPU engine's weight products (see {@link VectorFieldOptions.matmul}); takes effect from
   * the next call. 'bf16' throws ERR_INVALID on CUDA, for the f64 reference and on CPUs without AVX-512 BF16.
   */
  setMatmul(precision: MatmulPrecision): void {
    if (!MATMUL_PRECISIONS.includes(precision)) {
      throw new WsfError(`Expected \`matmul\` ${MATMUL_PRECISIONS.map((m) => `'${m}'`).join(' or ')} but received ${JSON.stringify(precision)}`, 'ERR_INVALID');
    }
    this.n.setMatmul(precision);
  }

  /** The precision of the CPU engine's weight products now in effect ('f32' unless set). */
  get matmul(): MatmulPrecision {
    return this.n.matmul();
  }

  /** Seconds and call counts per engine region ('fwd.attention', 'bwd.qkv', 'adam', …) since profiling started. */
  profile(): Record<string, { seconds: number; calls: number }> {
    return this.n.profile();
  }

  /** Bytes of native (host or device) memory the field holds right now. */
  get bytesHeld(): number {
    return this.n.bytesHeld() + this.n.flowBytesHeld();
  }

  /**
   * @internal The most networks of `arch` one inference forward should take so that the graph and activations stay
   * within RECOMPUTE_AUTO_SHARE of the free memory (at least 1): from the engine's count for a one-network graph
   * (memory is linear in the networks). Networks do not interact, so a sampler may split a batch this way without
   * changing any result.
   */
  inferenceBatchCap(arch: Architecture = this.arch): number {
    // The current graph serves when it holds networks of this architecture only (no rebuild), else one network's.
    const same = this.batchArchs.length > 0 && this.batchArchs.every((a) => a.key === arch.key);
    if (!same) this.prepareBatch(arch, 1);
    const per = Math.max(1, this.n.inferenceGraphBytes() / this.batchArchs.length);
    return Math.max(1, Math.floor((RECOMPUTE_AUTO_SHARE * freeMemoryProbe(this.device)) / per));
  }

  /**
   * With recompute 'auto': at the first training pass on a batch graph, recompute mode when the default mode's
   * training memory (the engine's own count, trainingBytes) exceeds RECOMPUTE_AUTO_SHARE of the free memory.
   */
  /**
   * Refuses a batch whose weight graph would not fit in the host's free memory (the process would be killed by the
   * system instead of failing): its pairs counted from one network of each architecture, at GRAPH_BYTES_PER_PAIR.
   */
  private checkGraphFits(archs: Architecture[]): void {
    const perArch = new Map<string, number>();
    for (const a of archs) {
      if (perArch.has(a.key)) continue;
      this.n.setGraph([[...a.widths]]);
      this.graphKey = '';
      perArch.set(a.key, this.n.graphInfo().M);
    }
    const pairs = archs.reduce((s, a) => s + perArch.get(a.key)!, 0);
    const need = GRAPH_BYTES_PER_PAIR * pairs;
    const free = freeMemoryProbe('cpu');
    if (need > free) {
      throw new WsfError(`the weight graph of this batch (${archs.length} networks, ${pairs.toLocaleString('en-US')} pairs) needs about ${gib(need)} of host memory and ${gib(free)} is free: use a smaller batch`, 'ERR_OOM');
    }
  }

  private decideRecompute(): void {
    if ((this.recomputeMode !== 'auto' && this.chunkMode !== 'auto') || this.recomputeKey === this.graphKey) return;
    this.recomputeKey = this.graphKey;
    const free = freeMemoryProbe(this.device);
    const pick = pickMemoryMode((r, c) => this.n.trainingBytes(r, c), this.n.graphInfo().M, this.autoCap(free), this.recomputeMode, this.chunkMode);
    // On the CPU an allocation past the free memory is not an error but the system's out-of-memory kill: refuse a
    // batch whose step cannot fit even in the mode picked (a device allocation fails with ERR_OOM by itself). The
    // counts are upper bounds there (the CPU's fused ops hold less), so only a step over twice the free memory.
    const need = this.n.trainingBytes(pick.recompute, pick.chunkRows);
    if (this.device === 'cpu' && need - this.n.bytesHeld() > 2 * free) {
      this.recomputeKey = '';
      throw new WsfError(`a training step on this batch needs about ${gib(need)} of memory${pick.recompute ? ` even in recompute mode${pick.chunkRows > 0 ? ` with chunks of ${pick.chunkRows} pairs` : ''}` : ''} and ${gib(free)} is free: use a smaller batch`, 'ERR_OOM');
    }
    if (this.recomputeMode === 'auto') {
      this.autoRecompute = pick.recompute;
      this.n.setRecompute(pick.recompute);
    }
    if (this.chunkMode === 'auto') {
      this.autoChunkRows = pick.chunkRows;
      this.n.setChunkRows(pick.chunkRows);
    }
  }

  /** The bytes the memory modes' 'auto' may spend: its share of the free memory, counting what the field holds. */
  private autoCap(freeBytes: number): number {
    return RECOMPUTE_AUTO_SHARE * (freeBytes + this.n.bytesHeld());
  }

  /**
   * What a training step and sampling on a batch of `networks` networks of `arch` (default: the field's) would hold,
   * counted by the engine without allocating activations, and what the memory options' 'auto' would choose with the
   * memory free on `device` (default: the field's). Sets the field's batch graph to that batch: a backward pass needs
   * a new training-mode forward afterwards.
   */
  memoryPlan(networks: number, opts: { arch?: Architecture; device?: Device } = {}): MemoryPlan {
    const B = checkInt('networks', networks, 1, 1 << 20);
    const arch = opts.arch ?? this.arch;
    const device = opts.device ?? this.device;
    this.prepareBatch(arch, B);
    const n = this.n;
    const { M, N } = n.graphInfo();
    // Counted for the planned device's engine layout (a CPU field can plan for a GPU: wsflow info --memory).
    const bytes = (r: boolean, c: number): number => n.trainingBytes(r, c, device);
    const chunked = autoChunkSizes(M).map((c) => ({ chunkRows: c, bytes: bytes(true, c) }));
    const freeBytes = freeMemoryProbe(device);
    const pick = pickMemoryMode(bytes, M, this.autoCap(freeBytes), this.recomputeMode, this.chunkMode);
    const need = bytes(pick.recompute, pick.chunkRows);
    return {
      networks: B,
      pairs: M,
      nodes: N,
      training: { default: bytes(false, 0), recompute: bytes(true, 0), chunked },
      inferencePerNetwork: n.inferenceGraphBytes(device) / B,
      auto: { device, freeBytes, ...pick, bytes: need, fits: need <= freeBytes + n.bytesHeld() },
    };
  }

  /**
   * Runs `fn`; a device out-of-memory in a training-mode call is rethrown (same code, ERR_OOM) with what would fit:
   * recompute mode or a smaller batch.
   */
  private withOomHint<R>(training: boolean, fn: () => R): R {
    try {
      return fn();
    } catch (e) {
      throw training ? this.oomHint(e) : e;
    }
  }

  /** A training-mode error, with the recompute hint when it is a device out-of-memory outside recompute mode. */
  private oomHint(e: unknown): unknown {
    if ((e as WsfError).code !== 'ERR_OOM' || this.recomputing) return e;
    return new WsfError(`${(e as Error).message}; recompute mode keeps about a third of the training activations (VectorField recompute: true, wsflow train --recompute), or use a smaller batch`, 'ERR_OOM', { cause: e });
  }

  /** Sets the batch's graph (cached while the architectures stay the same). Returns the total flat length. */
  private prepare(xt: Float32Array | Float64Array, opts: BatchOptions): number {
    let archs: Architecture[];
    if (opts.archs !== undefined) {
      if (opts.archs.length === 0) throw new WsfError('Expected at least one architecture in `archs`', 'ERR_INVALID');
      archs = opts.archs.map((a, i) => toArchitecture(`archs[${i}]`, a));
      const total = archs.reduce((s, a) => s + a.numParams, 0);
      if (xt.length !== total) {
        throw new WsfError(`Expected \`xt\` of length ${total} (the ${archs.length} networks' parameters) but received length ${xt.length}`, 'ERR_SHAPE');
      }
    } else {
      const arch = opts.arch === undefined ? this.arch : toArchitecture('arch', opts.arch);
      if (!(xt instanceof Float32Array) && this.dtype === 'f32') checkBatch(arch, 'xt', xt);
      const P = arch.numParams;
      if (xt.length === 0 || xt.length % P !== 0) {
        throw new WsfError(`Expected \`xt\` of length B·P (P = ${P} for ${arch.key}) but received length ${xt.length}`, 'ERR_SHAPE');
      }
      archs = Array.from({ length: xt.length / P }, () => arch);
    }
    return this.setArchs(archs, xt.length);
  }

  /** The graph of B networks of `arch` (cached like {@link prepare}). */
  private prepareBatch(arch: Architecture, B: number): number {
    return this.setArchs(Array.from({ length: B }, () => arch), B * arch.numParams);
  }

  private setArchs(archs: Architecture[], total: number): number {
    const key = archs.map((a) => a.key).join('|');
    if (key !== this.graphKey) {
      if (total > GRAPH_CHECK_PARAMS) this.checkGraphFits(archs);
      this.n.setGraph(archs.map((a) => [...a.widths]));
      this.graphKey = key;
      this.batchArchs = archs;
      this.totalP = total;
    }
    return archs.length;
  }

  private times(t: Float32Array | Float64Array | number, B: number): Float32Array | Float64Array {
    const Arr = this.dtype === 'f64' ? Float64Array : Float32Array;
    if (typeof t === 'number') {
      checkNumber('t', t, 0, 1);
      return new Arr(B).fill(t);
    }
    if (!(t instanceof Float32Array || t instanceof Float64Array)) {
      throw new WsfError(`Expected \`t\` as a number in [0, 1] or a Float32Array of B = ${B} times but received ${describe(t)}`, 'ERR_DTYPE');
    }
    if (t.length !== B) throw new WsfError(`Expected \`t\` of length B = ${B} but received length ${t.length}`, 'ERR_SHAPE');
    for (let i = 0; i < B; i++) {
      const v = t[i]!;
      if (!(v >= 0 && v <= 1)) throw new WsfError(`Expected times in [0, 1] in \`t\` but t[${i}] is ${v}`, Number.isFinite(v) ? 'ERR_INVALID' : 'ERR_NUMERIC');
    }
    return t;
  }

  private checkKind(name: string, a: Float32Array | Float64Array, length: number): void {
    const want = this.dtype === 'f64' ? Float64Array : Float32Array;
    if (!(a instanceof want)) throw new WsfError(`Expected ${want.name} for \`${name}\` but received ${a.constructor.name}`, 'ERR_DTYPE');
    if (a.length !== length) throw new WsfError(`Expected \`${name}\` of length ${length} but received length ${a.length}`, 'ERR_SHAPE');
  }

  /**
   * Predicts x̂1 for a batch.
   * @param xt B·P states in the flat layout (Float32Array)
   * @param t per-network times in [0, 1] (length B) or one number for all
   * @param opts `training: true` keeps activations for {@link backward}; `out` receives the result
   * @returns x̂1, B·P, flat layout
   * @throws WsfError ERR_SHAPE / ERR_DTYPE for bad arrays, ERR_NUMERIC for a non-finite value in `xt`, `t` or `aux`,
   *   ERR_INVALID for a time outside [0, 1], ERR_DISPOSED after dispose()
   */
  forward<A extends Float32Array | Float64Array>(xt: A, t: Float32Array | Float64Array | number, opts: BatchOptions & { training?: boolean; out?: A } = {}): A {
    checkOptionKeys('VectorField.forward', opts, ['arch', 'archs', 'aux', 'training', 'out']);
    const B = this.prepare(xt, opts);
    this.checkKind('xt', xt, xt.length);
    const out = opts.out ?? (new (xt.constructor as { new (n: number): A })(xt.length));
    this.checkKind('out', out, xt.length);
    const A = this.config.auxFeatures ?? 0;
    if ((A > 0) !== (opts.aux !== undefined)) {
      throw new WsfError(A > 0 ? `This field has ${A} aux input${A > 1 ? 's' : ''} (auxInputs): pass \`aux\`, ${A} value${A > 1 ? 's' : ''} per weight and bias (${A} × the length of \`xt\`)` : '`aux` given to a field without an aux input (create it with auxInput: true or auxInputs: A)', 'ERR_INVALID');
    }
    if (opts.aux !== undefined) this.checkKind('aux', opts.aux, xt.length * A);
    const times = this.times(t, B);
    checkFiniteBatch('xt', xt, opts.archs === undefined ? xt.length / B : 0);
    if (opts.aux !== undefined) checkFinite('aux', opts.aux);
    if (opts.training === true) this.decideRecompute();
    this.withOomHint(opts.training === true, () => this.n.forward(xt, times, out, opts.training ?? false, opts.aux ?? null));
    return out;
  }

  /**
   * Accumulates parameter gradients from ∂L/∂x̂1 (B·P, flat layout) after a training-mode forward. Activations
   * are kept, so several backward passes may follow one forward.
   * @param opts `inputGrad` (B·P, the field's dtype) receives ∂L/∂x_t, overwritten: the gradient through the
   *   input MLPs to the raw weights and biases the field was given (the time input gets none)
   * @throws WsfError ERR_INVALID without a training-mode forward; ERR_SHAPE / ERR_DTYPE for bad arrays
   */
  backward<A extends Float32Array | Float64Array>(dxhat: A, opts: { inputGrad?: A } = {}): void {
    if (this.totalP === 0) throw new WsfError('backward needs a training-mode forward pass first', 'ERR_INVALID');
    this.checkKind('dxhat', dxhat, this.totalP);
    if (opts.inputGrad !== undefined) this.checkKind('inputGrad', opts.inputGrad, this.totalP);
    this.n.backward(dxhat, opts.inputGrad ?? null, true);
  }

  /**
   * Vector–Jacobian product with respect to the input at the last training-mode forward (x_t, t):
   * uᵀ·∂x̂1/∂x_t, B·P in the flat layout. Leaves the accumulated parameter gradients untouched and skips their
   * computation (about half the cost of {@link backward}). Networks in a batch do not interact, so the Jacobian
   * is block-diagonal over the B networks.
   * @param u cotangent on x̂1, B·P (the field's dtype)
   * @param opts `out` receives the result
   * @throws WsfError ERR_INVALID without a training-mode forward; ERR_SHAPE / ERR_DTYPE for bad arrays
   */
  inputVjp<A extends Float32Array | Float64Array>(u: A, opts: { out?: A } = {}): A {
    if (this.totalP === 0) throw new WsfError('inputVjp needs a training-mode forward pass first', 'ERR_INVALID');
    this.checkKind('u', u, this.totalP);
    const out = opts.out ?? (new (u.constructor as { new (n: number): A })(u.length));
    this.checkKind('out', out, this.totalP);
    this.n.backward(u, out, false);
    return out;
  }

  /**
   * Forward (training mode) plus the fused MSE loss mean((x̂1 − target)²) over all B·P entries and its backward.
   * Gradients accumulate; call {@link zeroGrad} first (or use {@link trainStepMse}).
   * @returns the loss
   */
  lossAndGradMse<A extends Float32Array | Float64Array>(xt: A, t: Float32Array | Float64Array | number, target: A, opts: BatchOptions & { out?: A } = {}): number {
    this.forward(xt, t, { ...opts, training: true });
    this.checkKind('target', target, xt.length);
    return this.n.mse(target, true);
  }

  /** Clears accumulated gradients. */
  zeroGrad(): void {
    this.n.zeroGrad();
  }

  /**
   * One Adam step with the accumulated gradients.
   * @returns the global gradient norm before clipping
   * @throws WsfError ERR_NUMERIC when the gradient is not finite (the step is skipped)
   */
  step(opts: AdamOptions = {}): number {
    return this.n.adamStep(...adamArgs(opts));
  }

  /** zeroGrad + MSE forward/backward + Adam step; returns the loss. */
  trainStepMse(xt: Float32Array, t: Float32Array | number, target: Float32Array, opts: BatchOptions & AdamOptions = {}): number {
    this.zeroGrad();
    const batch: BatchOptions = { ...(opts.arch !== undefined ? { arch: opts.arch } : {}), ...(opts.archs !== undefined ? { archs: opts.archs } : {}), ...(opts.aux !== undefined ? { aux: opts.aux } : {}) };
    const loss = this.lossAndGradMse(xt, t, target, batch);
    this.step(opts);
    return loss;
  }

  /**
   * @internal Configures the device-resident flow-matching step ({@link flowStep}; native/core/flow_step.h) for
   * networks of the field's own architecture. `scale` (P values) is the per-layer input scale, or null.
   * @throws WsfError ERR_INVALID on an f64 field or for bad options
   */
  configureFlowStep(opts: Omit<NativeFlowStepConfig, 'widths'>, scale: Float32Array | null): void {
    if (this.dtype !== 'f32') throw new WsfError('the device-resident flow step runs on f32 fields only', 'ERR_INVALID');
    if (scale !== null) this.checkKind('scale', scale, this.arch.numParams);
    this.n.flowConfigure({ ...opts, widths: [...this.arch.widths] }, scale);
  }

  /**
   * @internal The flow step's training set (n·P, flat layout; canonical for the Normalized/Geometric flows): copied
   * to the device on CUDA, used in place on the CPU (keep it unchanged while training).
   * @throws WsfError ERR_OOM when the device cannot hold it, ERR_SHAPE for a length that is not n·P
   */
  setFlowData(weights: Float32Array): void {
    this.n.flowSetData(weights);
  }

  /**
   * @internal Keeps an exponential moving average of the parameters on the field's device, updated after every
   * {@link flowStep}: ema = decay·ema + (1 − decay)·params, starting from `init` (numParams values).
   */
  setFlowEma(init: Float32Array, decay: number): void {
    this.n.flowSetEma(init, checkNumber('ema', decay, 0, 1));
  }

  /** @internal The device EMA of {@link setFlowEma}, copied into `out` (numParams values). */
  getFlowEma(out: Float32Array): Float32Array {
    this.n.flowGetEma(out);
    return out;
  }

  /**
   * @internal The prior the flow step draws on the device when a batch gives `prior` seeds instead of `x0` (null: none).
   * @throws WsfError ERR_OOM when the device cannot hold a fitted prior's means and basis
   */
  setFlowPrior(prior: NativeFlowPrior | null): void {
    this.n.flowSetPrior(prior);
  }

  /**
   * @internal The Euler sampler of a configured flow step ({@link configureFlowStep}) on the field's device: from the
   * start points x0 (B·P, canonical for the Normalized/Geometric flows) over the time `grid`, the field in inference
   * mode; `anchored` selects the published x0-anchored velocity, `canonicalEnd` canonicalises the end state.
   * @returns the end states, B·P
   */
  flowSample(x0: Float32Array, grid: Float64Array, opts: FlowSampleOptions): Float32Array {
    const out = this.prepareSample(x0);
    this.n.flowSample(x0, grid, opts.anchored, opts.canonicalEnd, out, opts.solver ?? 'euler');
    return out;
  }

  /**
   * @internal {@link flowSample} on a libuv pool thread (the event loop keeps running); the field is busy
   * (ERR_CONTEXT_BUSY) until the Promise settles.
   */
  async flowSampleAsync(x0: Float32Array, grid: Float64Array, opts: FlowSampleOptions): Promise<Float32Array> {
    const out = this.prepareSample(x0);
    const trace = new Error('flowSampleAsync');
    try {
      return await this.n.flowSampleAsync(x0, grid, opts.anchored, opts.canonicalEnd, out, opts.solver ?? 'euler');
    } catch (e) {
      throw withStack(e, trace);
    }
  }

  /** Checks sampler start points, sets the batch's graph and returns the output array. */
  private prepareSample(x0: Float32Array): Float32Array {
    const P = this.arch.numParams;
    if (x0.length === 0 || x0.length % P !== 0) throw new WsfError(`Expected \`x0\` of length B·P (P = ${P}) but received length ${x0.length}`, 'ERR_SHAPE');
    this.prepareBatch(this.arch, x0.length / P);
    return new Float32Array(x0.length);
  }

  /** @internal Frees the flow step's buffers and its copy of (or reference to) the training set. */
  releaseFlowStep(): void {
    this.n.flowRelease();
  }

  /**
   * @internal How the flow step runs on CUDA (after the flow is configured, i.e. once training started):
   * 'plain', 'sync' (no wait mid-step) or 'graph' (recorded once as a CUDA graph, then replayed); the same floats in
   * all three. Default: the environment's WSF_CUDA_GRAPH (unset/0: plain, sync, 1: graph). No effect on the CPU.
   */
  setFlowStepMode(mode: 'plain' | 'sync' | 'graph'): void {
    this.n.flowSetMode(mode);
  }
  /** @internal The flow step's mode and counters (steps run sync-free, graph recordings, replays, failed recordings). */
  flowStepModeInfo(): ReturnType<NativeEngineInstance['flowModeInfo']> {
    return this.n.flowModeInfo();
  }

  /**
   * @internal One flow-matching training step on the field's device: x1 from the resident training set (`idx`) or
   * given (`x1`), x0 given (canonicalised there when `canonicalizeX0`), times `t`, the linear path's noise from
   * `noiseSeed`; interpolant, forward, x̂1, loss, backward and Adam without host round trips.
   * @returns the loss and the gradient norm before clipping
   * @throws WsfError ERR_NUMERIC when the loss or the gradient is not finite (the step is skipped)
   */
  flowStep(batch: FlowStepBatch, opts: AdamOptions = {}): { loss: number; gradNorm: number } {
    const args = this.flowStepArgs(batch, opts);
    const [loss, gradNorm] = this.withOomHint(true, () => this.n.flowStep(...args));
    return { loss, gradNorm };
  }

  /**
   * @internal {@link flowStep} off the main thread (a libuv pool thread): the event loop keeps running during the
   * step. The arrays are copied before it starts; until the Promise settles every other call on this field throws
   * ERR_CONTEXT_BUSY.
   * @throws (rejects) WsfError with the step's code (ERR_NUMERIC, ERR_OOM, ...), its stack from this call
   */
  async flowStepAsync(batch: FlowStepBatch, opts: AdamOptions = {}): Promise<{ loss: number; gradNorm: number }> {
    const args = this.flowStepArgs(batch, opts);
    const trace = new Error('flowStepAsync'); // the caller's stack, for a rejection from the pool thread
    try {
      const [loss, gradNorm] = await this.n.flowStepAsync(...args);
      return { loss, gradNorm };
    } catch (e) {
      throw this.oomHint(withStack(e, trace));
    }
  }

  /** Checks a flow-step batch, sets the batch's graph and returns the native arguments. */
  private flowStepArgs(batch: FlowStepBatch, opts: AdamOptions): Parameters<NativeEngineInstance['flowStep']> {
    const B = batch.t.length;
    if (B === 0) throw new WsfError('Expected a batch of at least one network (`t` is empty)', 'ERR_SHAPE');
    if ((batch.x0 === undefined) === (batch.prior === undefined)) throw new WsfError('Expected exactly one of `x0` and `prior` (the start points, or the seeds of the device prior)', 'ERR_INVALID');
    if (batch.x0 !== undefined && batch.x0.length !== B * this.arch.numParams) {
      throw new WsfError(`Expected \`x0\` of length B·P = ${B * this.arch.numParams} but received length ${batch.x0.length}`, 'ERR_SHAPE');
    }
    this.prepareBatch(this.arch, B);
    this.decideRecompute();
    return [
      batch.idx ?? null,
      batch.x1 ?? null,
      batch.x0 ?? null,
      batch.prior?.seeds ?? null,
      batch.prior?.components ?? null,
      batch.canonicalizeX0,
      batch.t,
      batch.noiseSeed[0],
      batch.noiseSeed[1],
      ...adamArgs(opts),
    ];
  }

  /** A copy of all parameters (flat, in {@link paramTable} order). */
  getParams(): Float32Array {
    const out = new Float32Array(this.numParams);
    if (this.dtype === 'f64') {
      const d = new Float64Array(this.numParams);
      this.n.getParams(d);
      out.set(d);
    } else {
      this.n.getParams(out);
    }
    return out;
  }

  /** Overwrites all parameters. */
  setParams(p: Float32Array | Float64Array): void {
    const Arr = this.dtype === 'f64' ? Float64Array : Float32Array;
    const v = p instanceof Arr ? p : Arr.from(p);
    this.checkKind('params', v, this.numParams);
    checkFinite('params', v);
    this.n.setParams(v);
  }

  /** A copy of the accumulated gradients. */
  getGrads(): Float32Array | Float64Array {
    const out = this.dtype === 'f64' ? new Float64Array(this.numParams) : new Float32Array(this.numParams);
    this.n.getGrads(out);
    return out;
  }

  /** Tensors and metadata of a checkpoint (parameters, optionally the Adam state). */
  stateTensors(opts: { optimizer?: boolean } = {}): { tensors: Record<string, SafeTensor>; metadata: Record<string, string> } {
    const params = this.getParams();
    const tensors: Record<string, SafeTensor> = {};
    for (const p of this.paramTable()) tensors[p.name] = f32(params.slice(p.offset, p.offset + p.size), p.shape);
    if (opts.optimizer === true && this.dtype === 'f32') {
      const m = new Float32Array(this.numParams);
      const v = new Float32Array(this.numParams);
      this.n.getAdam(m, v);
      tensors['__adam_m'] = f32(m);
      tensors['__adam_v'] = f32(v);
    }
    const metadata: Record<string, string> = {
      format: FORMAT,
      wsflow: version,
      config: JSON.stringify(this.config),
      arch: this.arch.key,
      step: String(this.stepCount),
    };
    return { tensors, metadata };
  }

  /** Restores parameters (and the Adam state when present) from {@link stateTensors}' output. */
  loadStateTensors(tensors: Record<string, SafeTensor>, source = 'checkpoint', step?: number): void {
    const params = new Float32Array(this.numParams);
    for (const p of this.paramTable()) {
      const t = tensors[p.name];
      if (t === undefined) throw new WsfError(`${source}: missing parameter tensor \`${p.name}\``, 'ERR_IO');
      if (t.dtype !== 'F32' || t.data.length !== p.size) {
        throw new WsfError(`${source}: parameter \`${p.name}\` has ${t.data.length} ${t.dtype} values; expected ${p.size} F32 (shape [${p.shape.join(', ')}])`, 'ERR_IO');
      }
      params.set(t.data as Float32Array, p.offset);
    }
    this.setParams(params);
    const m = tensors['__adam_m'];
    const v = tensors['__adam_v'];
    if ((m === undefined) !== (v === undefined)) throw new WsfError(`${source}: holds one of the Adam moments \`__adam_m\`, \`__adam_v\` without the other`, 'ERR_IO');
    if (m !== undefined && v !== undefined) {
      for (const [name, t] of [['__adam_m', m], ['__adam_v', v]] as const) {
        if (t.dtype !== 'F32' || t.data.length !== this.numParams) {
          throw new WsfError(`${source}: Adam moment \`${name}\` has ${t.data.length} ${t.dtype} values; expected ${this.numParams} F32`, 'ERR_IO');
        }
      }
      const vd = v.data as Float32Array;
      for (let i = 0; i < vd.length; i++) {
        if (!(vd[i]! >= 0)) throw new WsfError(`${source}: Adam second moment \`__adam_v\` is negative (${vd[i]} at element ${i}); the file is damaged`, 'ERR_IO');
      }
      if (this.dtype === 'f32') this.n.setAdam(m.data as Float32Array, vd);
    }
    if (step !== undefined) {
      if (!Number.isSafeInteger(step) || step < 0) throw new WsfError(`${source}: expected a step count (a whole number ≥ 0) in the metadata but found ${step}`, 'ERR_IO');
      this.n.setStepCount(step);
    }
  }

  /**
   * Saves parameters (+ Adam state with `optimizer: true`) and the configuration as a safetensors file,
   * atomically. `metadata` entries are added to the file's `__metadata__`.
   */
  save(file: string, opts: { optimizer?: boolean; metadata?: Record<string, string> } = {}): void {
    const { tensors, metadata } = this.stateTensors(opts);
    writeSafetensors(file, tensors, { ...metadata, ...(opts.metadata ?? {}) });
  }

  /**
   * Loads a field saved with {@link save}, on any device (`matmul`: as {@link VectorFieldOptions.matmul}).
   * @throws WsfError ERR_IO for a missing, corrupt or foreign file
   */
  static load(file: string, opts: { device?: DeviceRequest; matmul?: MatmulPrecision } = {}): VectorField {
    const f = readSafetensors(file);
    if (f.metadata.format !== FORMAT) {
      throw new WsfError(`${file}: not a wsflow vector-field file (format '${f.metadata.format ?? 'missing'}', expected '${FORMAT}')`, 'ERR_IO');
    }
    checkFiniteTensors(file, f.tensors);
    let cfg: NativeEngineConfig;
    try {
      cfg = JSON.parse(f.metadata.config ?? '') as NativeEngineConfig;
    } catch {
      throw new WsfError(`${file}: unreadable config metadata`, 'ERR_IO');
    }
    if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new WsfError(`${file}: the config metadata is not an object`, 'ERR_IO');
    let vf: VectorField;
    try {
      vf = VectorField.create({
        arch: mlp(f.metadata.arch ?? ''),
        D: cfg.D,
        layers: cfg.layers,
        heads: cfg.heads,
        graph: cfg.mode,
        semantics: cfg.timeRule === 'reference' ? 'reference' : 'corrected',
        timeInput: cfg.inFeatures === 2,
        auxInputs: cfg.auxFeatures ?? 0,
        ...(cfg.recompute === true ? { recompute: true } : {}),
        ...(cfg.chunkRows !== undefined && cfg.chunkRows > 0 ? { chunkRows: cfg.chunkRows } : {}),
        dirEmbed: cfg.dirEmbed,
        reverseValue: cfg.reverseValue,
        slots: { input: cfg.inputSlots, hidden: cfg.hiddenSlots, output: cfg.outputSlots, hiddenWidth: cfg.hiddenWidthSlots ?? 0 },
        ...(opts.device !== undefined ? { device: opts.device } : {}),
      });
    } catch (e) {
      throw asFileError(file, e);
    }
    try {
      try {
        vf.loadStateTensors(f.tensors, file, Number(f.metadata.step ?? '0'));
      } catch (e) {
        throw asFileError(file, e);
      }
      if (opts.matmul !== undefined) vf.setMatmul(opts.matmul); // (an option's error, not the file's)
    } catch (e) {
      vf.dispose();
      throw e;
    }
    return vf;
  }

  /** Frees the native engine. Further calls throw ERR_DISPOSED. Idempotent. */
  dispose(): void {
    this.native?.dispose();
    this.native = undefined;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** The architectures of the current batch graph. */
  get batchArchitectures(): readonly Architecture[] {
    return this.batchArchs;
  }
}
