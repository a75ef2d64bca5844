/**
 * Priors p0 over flat weight vectors.
 * - `gaussian`: every coordinate N(mean, std²) (the thesis: std 0.1, mean 0; the Gaussian toy: std 1).
 * - `init`: a network initialisation scheme — zero biases and weights N(0, std²) (`'normal'`, std 0.1 as the
 *   zoos' default init) or N(0, gain²/fan_in) (`'fanin'`, He-style).
 * Normalized and Geometric flows canonicalise prior samples (done by the flow, not here).
 */
import type { Architecture } from '../arch/Architecture.js';
import { fillNormalFast } from '../util/fastNormal.js';
import type { Rng } from '../util/rng.js';

/** Prior specification. */
export type PriorSpec =
  | { kind: 'gaussian'; std?: number; mean?: number }
  | { kind: 'init'; scheme?: 'normal' | 'fanin'; std?: number; gain?: number };

/** Draws B prior samples into `out` (length B·P). */
export function samplePrior(arch: Architecture, spec: PriorSpec, rng: Rng, out: Float32Array): Float32Array {
  const P = arch.numParams;
  const B = out.length / P;
  if (spec.kind === 'gaussian') {
    const std = spec.std ?? 0.1;
    const mean = spec.mean ?? 0;
    return fillNormalFast(rng, out, mean, std);
  }
  const scheme = spec.scheme ?? 'normal';
  for (let b = 0; b < B; b++) {
    const base = b * P;
    for (let l = 1; l <= arch.numLayers; l++) {
      const fanIn = arch.widths[l - 1]!;
      const std = scheme === 'normal' ? (spec.std ?? 0.1) : (spec.gain ?? Math.SQRT2) / Math.sqrt(fanIn);
      const o = base + arch.weightOffset(l);
      const n = fanIn * arch.widths[l]!;
      fillNormalFast(rng, out.subarray(o, o + n), 0, std);
      out.fill(0, base + arch.biasOffset(l), base + arch.biasOffset(l) + arch.widths[l]!);
    }
  }
  return out;
}
