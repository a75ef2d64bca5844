// The native counter-based normal generator behind the flow's prior draws and interpolant noise
// (native/core/random.h, lib/util/fastNormal.ts): its distribution against closed forms, reproducibility from the
// caller's seeded stream, independence from the thread count and from the length of the fill.
import { afterAll, describe, expect, it } from 'vitest';
import { binding } from '../../lib/native/binding.js';
import { fillNormalFast } from '../../lib/util/fastNormal.js';
import { Rng } from '../../lib/util/rng.js';

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 via erf; |error| < 1.5e-7, enough for a KS bound of ~3e-3). */
function phi(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-z * z);
  return x >= 0 ? 0.5 * (1 + erf) : 0.5 * (1 - erf);
}

describe('fillNormalFast (native counter-based normals)', () => {
  const threads = binding().numThreads();
  afterAll(() => binding().setNumThreads(threads));

  it('N(mean, std²): sample mean, variance, skewness, kurtosis and the Kolmogorov–Smirnov distance', () => {
    const n = 400_001; // odd: the last pair is half used
    const x = fillNormalFast(new Rng(3), new Float32Array(n), 0.5, 2);
    let s = 0;
    for (const v of x) s += v;
    const mean = s / n;
    let m2 = 0, m3 = 0, m4 = 0;
    for (const v of x) {
      const d = v - mean;
      m2 += d * d;
      m3 += d * d * d;
      m4 += d * d * d * d;
    }
    m2 /= n;
    m3 /= n;
    m4 /= n;
    expect(Math.abs(mean - 0.5)).toBeLessThan(4 * 2 / Math.sqrt(n));
    expect(Math.abs(m2 / 4 - 1)).toBeLessThan(4 * Math.sqrt(2 / n));
    expect(Math.abs(m3 / m2 ** 1.5)).toBeLessThan(4 * Math.sqrt(6 / n));
    expect(Math.abs(m4 / (m2 * m2) - 3)).toBeLessThan(4 * Math.sqrt(24 / n));
    const z = Float64Array.from(x, (v) => (v - 0.5) / 2).sort();
    let ks = 0;
    for (let i = 0; i < n; i++) ks = Math.max(ks, Math.abs(phi(z[i]!) - (i + 0.5) / n));
    expect(ks).toBeLessThan(1.63 / Math.sqrt(n) + 1e-6); // 1 % critical value
    expect(x[n - 1]).not.toBe(0); // the odd last element is written
  });

  it('the same seed gives the same values; the stream advances by two words per fill; neighbours are uncorrelated', () => {
    const a = fillNormalFast(new Rng(9), new Float32Array(1000));
    const b = fillNormalFast(new Rng(9), new Float32Array(1000));
    expect(Array.from(b)).toEqual(Array.from(a));
    const r = new Rng(9);
    const first = fillNormalFast(r, new Float32Array(1000));
    const second = fillNormalFast(r, new Float32Array(1000));
    expect(Array.from(second)).not.toEqual(Array.from(first));
    // one fill takes exactly two words of the stream
    const once = new Rng(9);
    fillNormalFast(once, new Float32Array(10));
    const probe = new Rng(9);
    probe.nextU32();
    probe.nextU32();
    expect(once.nextU32()).toBe(probe.nextU32());
    let c = 0;
    for (let i = 0; i + 1 < a.length; i += 2) c += a[i]! * a[i + 1]!; // the two halves of each Box–Muller pair
    expect(Math.abs(c / 500)).toBeLessThan(4 / Math.sqrt(500));
  });

  it('values depend on the index only: any thread count and any fill length give the same prefix', () => {
    binding().setNumThreads(1);
    const one = fillNormalFast(new Rng(4), new Float32Array(100_003));
    binding().setNumThreads(Math.max(2, threads));
    const many = fillNormalFast(new Rng(4), new Float32Array(100_003));
    const shorter = fillNormalFast(new Rng(4), new Float32Array(77));
    expect(Buffer.from(many.buffer).equals(Buffer.from(one.buffer))).toBe(true);
    expect(Array.from(shorter)).toEqual(Array.from(one.subarray(0, 77)));
  });

  it('bad arguments are a typed error', () => {
    expect(() => binding().fillNormal(new Float32Array(2), -1, 0, 0, 1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => binding().fillNormal(new Float32Array(2), 0, 0, 0, -1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
  });
});
