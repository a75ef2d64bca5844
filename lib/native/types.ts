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
}

/** The whole addon. Families extend this interface as they land. */
export interface NativeBinding extends NativeDeviceOps {
  /** Absolute path of the loaded `.node` file (set by the loader). */
  readonly __path?: string;
}
