/**
 * A report of the runtime: package and Node versions, the loaded binary and its build flags, CUDA status, the
 * active backend, CPU threads and the TF.js backend. Used by `wsflow info` and benchmarks.
 */
import * as os from 'node:os';
import { resolveDevice, type Device } from './device.js';
import { binding } from './native/binding.js';
import type { CpuIsaName, NativeBuildInfo, NativeCudaInfo } from './native/types.js';
import { version } from './version.js';

/** What `wsflow info --json` prints. */
export interface RuntimeInfo {
  wsflow: string;
  node: string;
  platform: string;
  cpus: { model: string; count: number };
  binding: string;
  build: NativeBuildInfo;
  cuda: NativeCudaInfo;
  backend: Device;
  threads: number;
  /**
   * The CPU engine's float kernels: `active` (AVX-512, AVX2, or the portable vector kernels — NEON on arm64, SSE2 on
   * x86 without AVX2) and what this CPU allows (`detected`; WSF_NO_AVX2 / WSF_NO_AVX512 lower it).
   */
  /** The CPU float kernels in use, the best this CPU allows, and whether bf16 weight products (VectorField `matmul:
   *  'bf16'`, AVX-512 BF16) are available. */
  cpuKernels: { active: CpuIsaName; detected: CpuIsaName; bf16: boolean };
  /**
   * How flows train and sample here: `fused` — one native call per training step and per sampled batch, with the
   * training set and EMA on the engine's device (WSF_FUSED_STEP=0: host-orchestrated); `devicePrior` — prior draws
   * made on the device too (default on the CUDA backend; WSF_DEVICE_PRIOR=0|1 overrides).
   */
  flowStep: { fused: boolean; devicePrior: boolean };
  tfjs?: string;
}

/** Collects the runtime report. `tfjs: true` also loads TF.js to report its backend (slower). */
export async function runtimeInfo(opts: { tfjs?: boolean } = {}): Promise<RuntimeInfo> {
  const b = binding();
  const info: RuntimeInfo = {
    wsflow: version,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: { model: os.cpus()[0]?.model ?? 'unknown', count: os.cpus().length },
    binding: b.__path ?? '',
    build: b.buildInfo(),
    cuda: b.cudaInfo(),
    backend: resolveDevice(),
    threads: b.numThreads(),
    cpuKernels: b.cpuIsa(),
    flowStep: { fused: false, devicePrior: false },
  };
  const fused = process.env.WSF_FUSED_STEP !== '0';
  info.flowStep = { fused, devicePrior: fused && (process.env.WSF_DEVICE_PRIOR === '1' || (process.env.WSF_DEVICE_PRIOR !== '0' && info.backend === 'cuda')) };
  if (opts.tfjs === true) {
    const { loadTf } = await import('./interop/tf.js');
    info.tfjs = (await loadTf()).backend;
  }
  return info;
}
