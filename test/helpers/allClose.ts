/**
 * `expect(actual).toAllClose(expected, {atol, rtol})`: elementwise |a − e| ≤ atol + rtol·|e|, after checking
 * that NaN/Inf positions agree. On failure reports the count of mismatches, the first few, the worst index, the
 * max absolute and relative errors and the NMSE.
 */
import 'vitest';
import { compareArrays } from '../../lib/util/compare.js';

export { compareArrays };

export interface AllCloseOptions {
  atol?: number;
  rtol?: number;
}

type Arr = ArrayLike<number>;

export function allCloseMatcher(actual: unknown, expected: unknown, opts: AllCloseOptions = {}) {
  const atol = opts.atol ?? 1e-6;
  const rtol = opts.rtol ?? 1e-5;
  const toArr = (v: unknown): Arr => (typeof v === 'number' ? [v] : (v as Arr));
  const { pass, report } = compareArrays(toArr(actual), toArr(expected), atol, rtol);
  return {
    pass,
    message: () => (pass ? `expected arrays to differ, but all are within tolerance (${report})` : `arrays are not close: ${report}`),
  };
}

interface CustomMatchers<R = unknown> {
  toAllClose(expected: ArrayLike<number> | number, opts?: AllCloseOptions): R;
}

declare module 'vitest' {
  // eslint-disable-next-line @typescript-eslint/no-empty-object-type, @typescript-eslint/no-explicit-any
  interface Matchers<T = any> extends CustomMatchers<T> {}
}

/** The largest |a − b| / (|b| + 1e-3) over the elements (the parity tests' relative bound, floored near zero). */
export function maxRel(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (Math.abs(b[i]!) + 1e-3));
  return worst;
}
