/**
 * The exact TypeScript type of every export of the native addon (the one contract file between lib/ and
 * native/binding/). JS names are the camelCase forms of the C++ names. Families add their members here.
 */

/** CUDA build and device information (`cudaInfo()`). */
/** Instruction-set level of the CPU matrix-product kernels. */
export type CpuIsaName = 'avx512' | 'avx2' | 'portable';

export interface NativeCudaInfo {
  compiled: boolean;
  deviceCount: number;
  error: string;
  archs: string;
  runtimeVersion: number;
  driverVersion: number;
  name: string;
  ccMajor: number;
  ccMinor: number;
  totalMem: number;
  freeMem: number;
  multiprocessors: number;
  /**
   * CUDA builds: the kernel versions in effect, chosen once per process from WSF_GEMM (v2 default; v1, tc, tf32 —
   * the tensor-core ones fall back to v2 below compute capability 8.0), WSF_SPLITK_ROWS (512) and WSF_ATTN_WARPS (4).
   */
  kernels?: { gemm: 'v1' | 'v2' | 'tc' | 'tf32'; splitkRows: number; attentionWarps: number; flowStep: 'plain' | 'sync' | 'graph' };
}

/** Build flags of the loaded binary (`buildInfo()`). */
export interface NativeBuildInfo {
  cuda: boolean;
  archs: string;
  compiler: string;
  napiVersion: number;
  buildType: string;
}

/** Device-memory accounting of allocations made through the addon. */
export interface NativeDeviceMemory {
  inUse: number;
  peak: number;
  live: number;
}

/** Device ops (native/binding/ops_device.cc). */
export interface NativeDeviceOps {
  init(errorClass: new (message: string, code: string) => Error): void;
  cudaInfo(): NativeCudaInfo;
  buildInfo(): NativeBuildInfo;
  numThreads(): number;
  setNumThreads(n: number): void;
  /** Measured float FMA throughput (GFLOP/s) of all CPU pool threads at once; 0 without AVX2+FMA. For benchmarks. */
  cpuFmaPeak(seconds?: number): number;
  /** Instruction set of the CPU float kernels: the one in use and the best this CPU (and WSF_NO_AVX2/512) allows; `bf16`:
   *  whether bf16 products (VectorField `matmul: 'bf16'`) are available (AVX-512 BF16 at the active level, no WSF_NO_BF16). */
  cpuIsa(): { active: CpuIsaName; detected: CpuIsaName; bf16: boolean };
  /** Caps the CPU kernels' instruction set (tests, side-by-side benchmarks); returns the level now in use. All levels
   *  give bit-identical products. */
  setCpuIsa(cap: CpuIsaName): CpuIsaName;
  /** out[i] = mean + std·N(0,1), counter-based from the 64-bit seed (seedHi·2³² + seedLo); thread-count independent. */
  fillNormal(out: Float32Array, seedHi: number, seedLo: number, mean: number, std: number): void;
  deviceMemory(): NativeDeviceMemory;
  resetDevicePeak(): void;
  deviceSynchronize(): void;
  /** Development: per-op GPU time accounting of the CUDA engine on/off (see native/core/device.h). @internal */
  setDeviceProfiling(on: boolean): void;
  /** Development: per-op GPU time since the last call, largest first; clears the table. @internal */
  takeDeviceProfile(): { op: string; ms: number; count: number }[];
}

/** Configuration of the native relational-transformer engine (see native/binding/ops_engine.cc). */
export interface NativeEngineConfig {
  D: number;
  layers: number;
  heads: number;
  inputSlots: number;
  hiddenSlots: number;
  outputSlots: number;
  /** 0 (or absent): one positional slot per hidden layer (published); > 0: one per hidden neuron, up to this width. */
  hiddenWidthSlots?: number;
  mode: 'sparse' | 'dense' | 'hybrid' | 'virtual';
  timeRule: 'all' | 'reference';
  dirEmbed: boolean;
  reverseValue: boolean;
  inFeatures: 1 | 2;
  /** A > 0: A more input columns per weight and bias, from the `aux` array of forward (P × A; absent or 0: none). */
  auxFeatures?: number;
  /** Training keeps only each layer's output states and recomputes the rest in the backward pass (default false). */
  recompute?: boolean;
  /** With recompute: pair-wise work in chunks of about this many pairs, keeping only full-size pair states (0: none). */
  chunkRows?: number;
}

/** One named parameter tensor inside the engine's flat parameter buffer. */
export interface NativeParamInfo {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

/** Host array type of an engine: Float32Array (f32, CPU or CUDA) or Float64Array (f64 CPU reference). */
export type HostArray = Float32Array | Float64Array;

/** The native engine object (ops_engine.cc). Arrays must match the engine's dtype. */
export interface NativeEngineInstance {
  setGraph(widths: number[][]): void;
  forward(xt: HostArray, t: HostArray, out: HostArray, training: boolean, aux?: HostArray | null): void;
  /**
   * Backward from ∂L/∂x̂1: accumulates parameter gradients (left untouched when `paramGrads` is false) and, with
   * `dxt`, writes ∂L/∂x_t (P_total, overwritten).
   */
  backward(dxhat: HostArray, dxt?: HostArray | null, paramGrads?: boolean): void;
  mse(target: HostArray, backward: boolean): number;
  zeroGrad(): void;
  adamStep(lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, clipNorm: number): number;
  getParams(out: HostArray): void;
  setParams(params: HostArray): void;
  getGrads(out: HostArray): void;
  getAdam(m: HostArray, v: HostArray): void;
  setAdam(m: HostArray, v: HostArray): void;
  getStepCount(): number;
  setStepCount(step: number): void;
  paramTable(): NativeParamInfo[];
  graphInfo(): { G: number; N: number; M: number; P: number };
  numParams(): number;
  bytesHeld(): number;
  /**
   * bytesHeld after a training-mode forward on the current graph with recompute mode on or off, by an engine on
   * `device` (default: this one's; the CPU's fused ops keep some pair-sized arrays in block scratch). @internal
   */
  trainingBytes(recompute: boolean, chunkRows?: number, device?: 'cpu' | 'cuda'): number;
  /** Chunked recompute mode's pairs per chunk (0: none) between training passes. @internal */
  setChunkRows(n: number): void;
  /** The current graph's index arrays plus its inference activations, in bytes (on `device`, as trainingBytes). @internal */
  inferenceGraphBytes(device?: 'cpu' | 'cuda'): number;
  /** Recompute mode between training passes (activations reallocated on the next forward). @internal */
  setRecompute(on: boolean): void;
  setProfiling(on: boolean): void;
  profile(): Record<string, { seconds: number; calls: number }>;
  /** Precision of the CPU float engine's products against packed weights (ERR_INVALID for 'bf16' where unavailable). */
  setMatmul(precision: 'f32' | 'bf16'): void;
  matmul(): 'f32' | 'bf16';
  /** Development diagnostics: a copy of an internal array by name (native/core/rt_engine.h debug_get). @internal */
  debugBuffer(name: string): Float64Array;
  /** The device-resident flow step (native/core/flow_step.h), f32 engines only. @internal */
  flowConfigure(opts: NativeFlowStepConfig, scale: Float32Array | null): void;
  /** @internal */
  flowSetData(data: Float32Array): void;
  /** @internal Returns [loss, gradNorm]. */
  flowStep(...args: NativeFlowStepArgs): [number, number];
  /** @internal flowStep on a libuv pool thread; the engine throws ERR_CONTEXT_BUSY for any call until it settles. */
  flowStepAsync(...args: NativeFlowStepArgs): Promise<[number, number]>;
  /** @internal */
  flowBytesHeld(): number;
  /** @internal Frees the step's buffers and drops its training set. */
  flowRelease(): void;
  /**
   * @internal How flowStep runs on CUDA: 'plain' (the loss and gradient norm read back mid-step), 'sync' (inputs up
   * in one batch of asynchronous copies, the step enqueued without a wait, the loss check and clipping on the
   * device) or 'graph' ('sync', recorded once as a CUDA graph and replayed). Same floats in all three. Default: the
   * environment's WSF_CUDA_GRAPH (unset/0 plain, sync, 1 graph). CPU engines always run 'plain'.
   */
  flowSetMode(mode: 'plain' | 'sync' | 'graph'): void;
  /** @internal The mode and its counters (steps run sync-free, graph recordings, replays, failed recordings). */
  flowModeInfo(): { mode: 'plain' | 'sync' | 'graph'; syncFreeSteps: number; captures: number; replays: number; captureFailures: number };
  /** @internal Keeps the parameters' EMA on the device (numParams values), updated after every flowStep. */
  flowSetEma(init: Float32Array, decay: number): void;
  /** @internal */
  flowGetEma(out: Float32Array): void;
  /** @internal The Euler sampler on the device from x0 (B·P) over `grid`; writes the end state to `out`. */
  flowSample(x0: Float32Array, grid: Float64Array, anchored: boolean, canonicalEnd: boolean, out: Float32Array, solver?: 'euler' | 'midpoint' | 'rk4'): void;
  /** @internal flowSample on a libuv pool thread; resolves with `out`. */
  flowSampleAsync(x0: Float32Array, grid: Float64Array, anchored: boolean, canonicalEnd: boolean, out: Float32Array, solver?: 'euler' | 'midpoint' | 'rk4'): Promise<Float32Array>;
  /** @internal The prior drawn on the device when flowStep gets no x0 (null: none). */
  flowSetPrior(prior: NativeFlowPrior | null): void;
  dispose(): void;
}

/**
 * A prior for the device-resident flow step (ops_engine.cc flowSetPrior): N(mean, std²), or fitted Gaussians — K
 * means (K·P) with the basis rows rows[c] … rows[c+1]−1 of component c (or isotropic `std` without a basis), one
 * component and noise stream per row when `perRow` (the mixture prior). @internal
 */
export type NativeFlowPrior =
  | { kind: 'gaussian'; mean: number; std: number }
  | { kind: 'fit'; means: Float32Array; basis: Float32Array | null; rows: Int32Array | null; std: number; perRow: boolean };

/**
 * flowStep's arguments: idx, x1, x0, priorSeeds, priorComp, canonX0, t, seedHi, seedLo, lr, beta1, beta2, eps,
 * weightDecay, clipNorm. @internal
 */
export type NativeFlowStepArgs = [
  idx: Int32Array | null,
  x1: Float32Array | null,
  x0: Float32Array | null,
  priorSeeds: Int32Array | null,
  priorComp: Int32Array | null,
  canonX0: boolean,
  t: Float32Array,
  seedHi: number,
  seedLo: number,
  lr: number,
  beta1: number,
  beta2: number,
  eps: number,
  weightDecay: number,
  clipNorm: number,
];

/** The device-resident flow step's configuration (ops_engine.cc flowConfigure). @internal */
export interface NativeFlowStepConfig {
  widths: number[];
  sphere: boolean;
  canonical: boolean;
  mode: 'accurate' | 'reference';
  lastNorm: number;
  precondition: boolean;
  sigma: number;
}

/** Engine ops (native/binding/ops_engine.cc). */
export interface NativeEngineOps {
  NativeEngine: new (config: NativeEngineConfig, seed: number, device: 'cpu' | 'cuda', dtype: 'f32' | 'f64') => NativeEngineInstance;
}

/** An argument of {@link NativeTestOps.opsTestRun}: an array (payload between two guards), the name of another
 * array argument (an alias), a size or scalar, a flag, or null (a null pointer). For wsflow's own tests. */
export type NativeOpArg = Float32Array | Int32Array | string | number | boolean | null;

/**
 * Internal test entry point (native/binding/ops_test.cc): runs one relational-transformer op on the chosen
 * backend and copies every Float32Array back in full (guards included). Returns the result of mse/sum_squares,
 * else NaN. For wsflow's own tests, not a stable interface (declared, not hidden: {@link NativeBinding} extends it, and
 * a declaration file naming a stripped type fails to compile with skipLibCheck off).
 */
export interface NativeTestOps {
  opsTestRun(device: 'cpu' | 'cuda', op: string, args: Record<string, NativeOpArg>, guard: number): number;
  /** CUDA-emulator builds only (native/dev): how often the host has waited for the (emulated) device so far. */
  emuHostWaits?(): number;
}

/** The whole addon. Families extend this interface as they land. */
/** Where a native op runs. */
export type NativeDevice = 'cpu' | 'cuda';
/** Geometry semantics: stable formulas (`'accurate'`) or geoopt 0.5.0 float32 (`'reference'`). */
export type NativeGeoMode = 'accurate' | 'reference';
/** Which geometry a plan describes: 'euclidean' and 'normalized' have no sphere factors. */
export type NativeGeoKind = 'euclidean' | 'normalized' | 'geometric';

/**
 * A geometry plan (native/binding/ops_geometry.cc): the product-manifold tables of one architecture, with device
 * copies made on first CUDA use. Arrays are `[B·P]` unless stated; B = x.length / P. Outputs come first and are
 * overwritten; an output may be exactly one of the inputs (in place) but must not partly overlap one.
 */
export interface NativeGeometryPlan {
  readonly numParams: number;
  readonly numSpheres: number;
  /** numSpheres + 1: the Euclidean block is the last factor. */
  readonly numFactors: number;
  /** First Euclidean flat index (number of weights; 0 for 'euclidean'/'normalized'). */
  readonly euclideanOffset: number;
  readonly numLayers: number;
  readonly disposed: boolean;
  /** Frees the device copies; later calls throw ERR_DISPOSED. */
  dispose(): void;
  project(out: Float32Array, x: Float32Array, device: NativeDevice, mode: NativeGeoMode): void;
  tangentProject(out: Float32Array, x: Float32Array, u: Float32Array, device: NativeDevice, mode: NativeGeoMode): void;
  expmap(out: Float32Array, x: Float32Array, u: Float32Array, device: NativeDevice, mode: NativeGeoMode): void;
  logmap(out: Float32Array, x: Float32Array, y: Float32Array, device: NativeDevice, mode: NativeGeoMode): void;
  /** out: `[B·F]`, F = numFactors. */
  dist(out: Float32Array, x: Float32Array, y: Float32Array, device: NativeDevice, mode: NativeGeoMode): void;
  /** t: `[B]`. */
  interpolate(out: Float32Array, x0: Float32Array, x1: Float32Array, t: Float32Array, device: NativeDevice, mode: NativeGeoMode): void;
  eulerStep(out: Float32Array, x: Float32Array, v: Float32Array, dt: number, device: NativeDevice, mode: NativeGeoMode): void;
  /** perNetwork: `[B]`; grad: `[B·P]` or null (not computed). Returns the batch loss. */
  loss(perNetwork: Float32Array, grad: Float32Array | null, pred: Float32Array, target: Float32Array, device: NativeDevice, mode: NativeGeoMode): number;
  canonicalize(out: Float32Array, x: Float32Array, lastNorm: number, device: NativeDevice): void;
  canonicalizeBackward(dx: Float32Array, x: Float32Array, dout: Float32Array, lastNorm: number, device: NativeDevice): void;
  /** @internal f64 CPU twin (gradient checks). */
  projectF64(out: Float64Array, x: Float64Array, mode: NativeGeoMode): void;
  /** @internal */
  tangentProjectF64(out: Float64Array, x: Float64Array, u: Float64Array, mode: NativeGeoMode): void;
  /** @internal */
  expmapF64(out: Float64Array, x: Float64Array, u: Float64Array, mode: NativeGeoMode): void;
  /** @internal */
  logmapF64(out: Float64Array, x: Float64Array, y: Float64Array, mode: NativeGeoMode): void;
  /** @internal */
  distF64(out: Float64Array, x: Float64Array, y: Float64Array, mode: NativeGeoMode): void;
  /** @internal */
  interpolateF64(out: Float64Array, x0: Float64Array, x1: Float64Array, t: Float64Array, mode: NativeGeoMode): void;
  /** @internal */
  eulerStepF64(out: Float64Array, x: Float64Array, v: Float64Array, dt: number, mode: NativeGeoMode): void;
  /** @internal */
  lossF64(perNetwork: Float64Array, grad: Float64Array | null, pred: Float64Array, target: Float64Array, mode: NativeGeoMode): number;
  /** @internal */
  canonicalizeF64(out: Float64Array, x: Float64Array, lastNorm: number): void;
  /** @internal */
  canonicalizeBackwardF64(dx: Float64Array, x: Float64Array, dout: Float64Array, lastNorm: number): void;
  /**
   * @internal Times one op on natively generated data resident on `device` (no transfers): the median per-call
   * time of samples of `callsPerSample` back-to-back calls, each sample ending with a device synchronisation.
   */
  benchmark(op: NativeGeoBenchOp, B: number, device: NativeDevice, mode: NativeGeoMode, minSeconds: number): NativeBenchResult;
}

/** @internal Ops timed by {@link NativeGeometryPlan.benchmark} (`loss` includes the gradient). */
export type NativeGeoBenchOp =
  | 'project'
  | 'tangentProject'
  | 'expmap'
  | 'logmap'
  | 'dist'
  | 'interpolate'
  | 'eulerStep'
  | 'loss'
  | 'lossNoGrad'
  | 'canonicalize'
  | 'canonicalizeBackward';

/** @internal */
export interface NativeBenchResult {
  medianMs: number;
  samples: number;
  callsPerSample: number;
}

/** Geometry ops (native/binding/ops_geometry.cc). */
export interface NativeGeometryOps {
  /** widths: n_0…n_L. @throws ERR_INVALID for bad widths or an unknown kind. */
  GeometryPlan: new (widths: Int32Array, kind: NativeGeoKind) => NativeGeometryPlan;
}

/** The whole addon. Families extend this interface as they land. */
export interface NativeBinding extends NativeDeviceOps, NativeEngineOps, NativeGeometryOps, NativeTestOps {
  /** Absolute path of the loaded `.node` file (set by the loader). */
  readonly __path?: string;
}
