/**
 * Central finite differences in f64 (HOUSE_STYLE §2.9): step h = 1e-6·max(1, |x_i|), optionally only at
 * selected coordinates. Returns the numerical gradient of the scalar function f at x.
 */
export function fdGradient(f: (x: Float64Array) => number, x: Float64Array, coords?: readonly number[]): Float64Array {
  const g = new Float64Array(x.length).fill(Number.NaN);
  const xs = x.slice();
  const list = coords ?? Array.from({ length: x.length }, (_, i) => i);
  for (const i of list) {
    const xi = x[i]!;
    const h = 1e-6 * Math.max(1, Math.abs(xi));
    xs[i] = xi + h;
    const fp = f(xs);
    xs[i] = xi - h;
    const fm = f(xs);
    xs[i] = xi;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

/** Picks `coords` entries of `a` (for comparing only the checked coordinates). */
export function pick(a: ArrayLike<number>, coords: readonly number[]): number[] {
  return coords.map((i) => a[i]!);
}
