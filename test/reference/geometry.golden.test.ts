// Reference semantics vs the published implementation (geoopt 0.5.0 + weightflow, float32 on the CPU):
// test/fixtures/golden/geometry_ref.json (copied unmodified from shared/data/golden/).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalize, geometry, mlp } from '../../lib/index.js';

interface SphereCase {
  x: number[];
  y: number[];
  u: number[];
  expmap_x_u: number[];
  logmap_x_y: number[];
  dist_x_y: number[];
}
interface Golden {
  sphere: Record<'dim5' | 'dim30', SphereCase>;
  layers: number[];
  flat0: number[];
  flat1: number[];
  normalized0: number[];
  normalized1: number[];
  t: number;
  interpolated: number[];
  target_field: number[];
}

const golden = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'golden', 'geometry_ref.json'), 'utf8')) as Golden;

// Float32 vs float32 with a different summation order (torch's vectorised sums vs our sequential ones): a few ulp
// of values of magnitude ≤ 1, amplified at most ~10× by θ/‖w‖ and cos/sin of angles up to 4.5 rad.
const TOL = { atol: 2e-6, rtol: 1e-5 };

// A sphere of dimension K is the last layer of a [K, 1] MLP (one contiguous factor) followed by one bias.
function asNetworks(K: number, rows: number[], P: number): Float32Array {
  const n = rows.length / K;
  const out = new Float32Array(n * P);
  for (let r = 0; r < n; r++) for (let i = 0; i < K; i++) out[r * P + i] = rows[r * K + i]!;
  return out;
}
function sphereRows(K: number, flat: Float32Array, P: number): Float32Array {
  const n = flat.length / P;
  const out = new Float32Array(n * K);
  for (let r = 0; r < n; r++) for (let i = 0; i < K; i++) out[r * K + i] = flat[r * P + i]!;
  return out;
}

describe('reference semantics vs geoopt 0.5.0 (float32 golden vectors)', () => {
  for (const K of [5, 30] as const) {
    it(`expmap, logmap and dist on rows of dimension ${K}`, () => {
      const s = golden.sphere[`dim${K}`];
      const a = mlp([K, 1]);
      const g = geometry(a, 'geometric', { semantics: 'reference', device: 'cpu' });
      const P = a.numParams;
      const x = asNetworks(K, s.x, P);
      const y = asNetworks(K, s.y, P);
      const u = asNetworks(K, s.u, P);
      expect(sphereRows(K, g.expmap(x, u), P)).toAllClose(s.expmap_x_u, TOL);
      expect(sphereRows(K, g.logmap(x, y), P)).toAllClose(s.logmap_x_y, TOL);
      const d = g.dist(x, y);
      const sphereD = Array.from({ length: 4 }, (_, r) => d[r * g.numFactors]!);
      expect(sphereD).toAllClose(s.dist_x_y, TOL);
      // the near-identical pair shows geoopt's floor acos(1 − 1e-4) = 0.014142 (float32 acos: 0.0141434)
      expect(sphereD[3]).toBeCloseTo(0.0141434, 6);
      g.dispose();
    });
  }

  it('canonicalisation of two 30-16-16-2 networks matches the published normalisation (last-layer norm 1)', () => {
    const a = mlp(golden.layers);
    expect(a.numParams).toBe(802);
    const flat = Float32Array.from([...golden.flat0, ...golden.flat1]);
    const ref = [...golden.normalized0, ...golden.normalized1];
    // float32 divisions/multiplications in the same order as the reference: ≤ a few ulp
    expect(canonicalize(a, flat, { device: 'cpu' })).toAllClose(ref, { atol: 1e-6, rtol: 1e-6 });
    expect(canonicalize(a, flat, { device: 'cpu', lastLayerNorm: 1 })).toAllClose(ref, { atol: 1e-6, rtol: 1e-6 });
  });

  it('geodesic interpolation at t = 0.3 with the reference ops matches', () => {
    const a = mlp(golden.layers);
    const g = geometry(a, 'geometric', { semantics: 'reference', device: 'cpu' });
    const x0 = Float32Array.from(golden.normalized0);
    const x1 = Float32Array.from(golden.normalized1);
    expect(g.interpolate(x0, x1, golden.t)).toAllClose(golden.interpolated, TOL);
    expect(g.interpolate(x0, x1, Float32Array.of(golden.t))).toAllClose(golden.interpolated, TOL);
    // corrected semantics agree to float32 rounding here (all angles are large, far from the reference clamps)
    const corrected = geometry(a, 'geometric', { device: 'cpu' });
    expect(corrected.interpolate(x0, x1, golden.t)).toAllClose(golden.interpolated, { atol: 1e-6, rtol: 1e-5 });
    g.dispose();
    corrected.dispose();
  });

  it('the published target field u_t = Log_{x_t}(x1)/(1−t) matches once its last-layer block is transposed', () => {
    // The published target field stores its last-layer block in (out, in) order (METHOD.md §12.A.9). Our
    // layout is (in, out), so transpose that block of the golden vector before comparing.
    const a = mlp(golden.layers);
    const g = geometry(a, 'geometric', { semantics: 'reference', device: 'cpu' });
    const xt = Float32Array.from(golden.interpolated);
    const x1 = Float32Array.from(golden.normalized1);
    const u = g.logmap(xt, x1);
    for (let i = 0; i < u.length; i++) u[i]! /= 1 - golden.t;
    const L = a.numLayers;
    const nIn = a.widths[L - 1]!;
    const nOut = a.widths[L]!;
    const o = a.weightOffset(L);
    const expected = golden.target_field.slice();
    for (let i = 0; i < nIn; i++) for (let j = 0; j < nOut; j++) expected[o + i * nOut + j] = golden.target_field[o + j * nIn + i]!;
    // the last layer is one sphere, so only its order differs; biases: (b1 − b_t)/(1 − t)
    expect(u).toAllClose(expected, { atol: 1e-5, rtol: 1e-5 }); // ÷(1 − t) = ×1.43 on TOL-level differences
    // and untransposed it does not match (the quirk is real)
    let maxDiff = 0;
    for (let k = o; k < o + nIn * nOut; k++) maxDiff = Math.max(maxDiff, Math.abs(u[k]! - golden.target_field[k]!));
    expect(maxDiff).toBeGreaterThan(1e-2);
    g.dispose();
  });

  it('the reference loss has the distance floor: d(x, x)² = 0.014142² per sphere', () => {
    const a = mlp(golden.layers);
    const g = geometry(a, 'geometric', { semantics: 'reference', device: 'cpu' });
    const x = Float32Array.from(golden.normalized0);
    const { loss, grad } = g.loss(x, x);
    // Σ_s w_s d² with Σ_s w_s = 1 (mean over layers of means over spheres), biases contribute 0
    expect(loss).toBeCloseTo(0.0141434 ** 2, 8);
    expect(Math.max(...grad.map(Math.abs))).toBe(0); // outside the clamp range: zero gradient
    const c = geometry(a, 'geometric', { device: 'cpu' });
    expect(c.loss(x, x).loss).toBeLessThan(1e-10); // corrected: no floor
    g.dispose();
    c.dispose();
  });
});
