/**
 * The exact TypeScript type of every export of the native addon (the one contract file between lib/ and
 * native/binding/). JS names are the camelCase forms of the C++ names. Families add their members here.
 */

/** CUDA build and device information (`cudaInfo()`). */
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
  mode: 'sparse' | 'dense';
  timeRule: 'all' | 'reference';
  dirEmbed: boolean;
  reverseValue: boolean;
  inFeatures: 1 | 2;
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
  forward(xt: HostArray, t: HostArray, out: HostArray, training: boolean): void;
  backward(dxhat: HostArray): void;
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
  dispose(): void;
}

/** Engine ops (native/binding/ops_engine.cc). */
export interface NativeEngineOps {
  NativeEngine: new (config: NativeEngineConfig, seed: number, device: 'cpu' | 'cuda', dtype: 'f32' | 'f64') => NativeEngineInstance;
}

/** An argument of {@link NativeTestOps.opsTestRun}: an array (payload between two guards), the name of another
 * array argument (an alias), a size or scalar, a flag, or null (a null pointer). @internal */
export type NativeOpArg = Float32Array | Int32Array | string | number | boolean | null;

/**
 * Internal test entry point (native/binding/ops_test.cc): runs one relational-transformer op on the chosen
 * backend and copies every Float32Array back in full (guards included). Returns the result of mse/sum_squares,
 * else NaN. @internal
 */
export interface NativeTestOps {
  opsTestRun(device: 'cpu' | 'cuda', op: string, args: Record<string, NativeOpArg>, guard: number): number;
}

/** The whole addon. Families extend this interface as they land. */
export interface NativeBinding extends NativeDeviceOps, NativeEngineOps, NativeTestOps {
  /** Absolute path of the loaded `.node` file (set by the loader). */
  readonly __path?: string;
}
