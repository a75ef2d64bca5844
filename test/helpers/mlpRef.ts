// Independent f64 references written straight from METHOD.md §1.1–1.2 (no shared code with lib/eval).
import type { Architecture } from '../../lib/arch/Architecture.js';

/** Logits of network `index` of `flat` on one input row, in f64. */
export function forwardF64(arch: Architecture, flat: ArrayLike<number>, x: ArrayLike<number>, index = 0, xOff = 0): Float64Array {
  const P = arch.numParams;
  let h = new Float64Array(arch.widths[0]!);
  for (let i = 0; i < h.length; i++) h[i] = x[xOff + i]!;
  for (let l = 1; l <= arch.numLayers; l++) {
    const nIn = arch.widths[l - 1]!;
    const nOut = arch.widths[l]!;
    const out = new Float64Array(nOut);
    for (let j = 0; j < nOut; j++) {
      let s = flat[index * P + arch.biasIndex(l, j)]!;
      for (let i = 0; i < nIn; i++) s += flat[index * P + arch.weightIndex(l, i, j)]! * h[i]!;
      out[j] = l < arch.numLayers ? Math.max(0, s) : s;
    }
    h = out;
  }
  return h;
}

/** Mean cross-entropy and accuracy of one network over rows of x/y, in f64. */
export function lossAccF64(arch: Architecture, flat: ArrayLike<number>, x: Float32Array, y: Int32Array, n: number, index = 0): { loss: number; acc: number } {
  const d = arch.widths[0]!;
  let loss = 0;
  let correct = 0;
  for (let r = 0; r < n; r++) {
    const z = forwardF64(arch, flat, x, index, r * d);
    let max = -Infinity;
    let arg = 0;
    for (let c = 0; c < z.length; c++) if (z[c]! > max) [max, arg] = [z[c]!, c];
    let se = 0;
    for (const v of z) se += Math.exp(v - max);
    loss += Math.log(se) + max - z[y[r]!]!;
    if (arg === y[r]) correct++;
  }
  return { loss: loss / n, acc: correct / n };
}
