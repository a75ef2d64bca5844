// Shared test switches for native and GPU suites.
import { binding } from '../../lib/native/binding.js';
import type { CpuIsaName } from '../../lib/native/types.js';

/** True when a CUDA device can run kernels in this process. WSF_REQUIRE_CUDA=1 turns its absence into a failure. */
export function hasCuda(): boolean {
  const info = binding().cudaInfo();
  const ok = info.compiled && info.deviceCount > 0;
  if (!ok && process.env.WSF_REQUIRE_CUDA === '1') {
    throw new Error(`WSF_REQUIRE_CUDA=1 but CUDA is unavailable: ${info.error}`);
  }
  return ok;
}

/** The CPU kernels' instruction-set levels from the portable loops up to the one this CPU allows. */
export function cpuIsaLevels(): CpuIsaName[] {
  const order: readonly CpuIsaName[] = ['portable', 'avx2', 'avx512'];
  return order.slice(0, order.indexOf(binding().cpuIsa().detected) + 1);
}

/** Runs fn with the CPU kernels capped at `level` on `threads` threads, restoring both after (also on failure). */
export function withCpuIsa<T>(level: CpuIsaName, threads: number, fn: () => T): T {
  const b = binding();
  const level0 = b.cpuIsa().active, threads0 = b.numThreads();
  try {
    if (b.setCpuIsa(level) !== level) throw new Error(`could not set the CPU kernels to ${level}`);
    b.setNumThreads(threads);
    return fn();
  } finally {
    b.setNumThreads(threads0);
    b.setCpuIsa(level0);
  }
}
