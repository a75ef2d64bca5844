// Shared test switches for native and GPU suites.
import { binding } from '../../lib/native/binding.js';

/** True when a CUDA device can run kernels in this process. WSF_REQUIRE_CUDA=1 turns its absence into a failure. */
export function hasCuda(): boolean {
  const info = binding().cudaInfo();
  const ok = info.compiled && info.deviceCount > 0;
  if (!ok && process.env.WSF_REQUIRE_CUDA === '1') {
    throw new Error(`WSF_REQUIRE_CUDA=1 but CUDA is unavailable: ${info.error}`);
  }
  return ok;
}
