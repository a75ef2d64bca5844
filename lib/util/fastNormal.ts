/**
 * Normal draws for the flow's hot loops (prior draws, interpolant noise), generated natively: the JavaScript
 * Box–Muller stream costs ~80 ns a value (5–10 ms for one MNIST batch of 8 networks, more than the GPU's whole
 * training step budget), the native counter-based generator (native/core/random.h) a few ns on every core.
 * A 64-bit seed is drawn from the caller's seeded {@link Rng}, so results stay reproducible and resumable from
 * that stream's state; the values depend on the seed and the index only, not on the thread count.
 */
import { binding } from '../native/binding.js';
import type { Rng } from './rng.js';

/** Fills `out` with N(mean, std²) draws seeded from `rng` (two 32-bit words of its stream). */
export function fillNormalFast(rng: Rng, out: Float32Array, mean = 0, std = 1): Float32Array {
  const hi = rng.nextU32();
  const lo = rng.nextU32();
  binding().fillNormal(out, hi, lo, mean, std);
  return out;
}
