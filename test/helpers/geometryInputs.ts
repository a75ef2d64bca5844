/**
 * Inputs for parity and precision tests: points on the product manifold, tangent vectors, raw vectors and times,
 * with the special branches planted in geometric kind (B ≥ 3): network 0 sphere 0 antipodal, network 1's last
 * sphere zero, network 2 sphere 1 at a small angle (1e-3…2e-3 rad).
 */
import type { Architecture } from '../../lib/arch/Architecture.js';
import type { NativeGeoKind, NativeGeoMode } from '../../lib/native/types.js';
import { Rng } from '../../lib/util/rng.js';
import * as ref from './geometryRef.js';

/**
 * Points on the manifold with the special branches planted: antipodal, zero and small-angle factors. In reference
 * semantics an exactly antipodal pair is ill-conditioned by design (geoopt's logmap scales the rounding noise
 * w ≈ 1e-7 by θ/max(‖w‖, 1e-4) ≈ 3e4), so there the pair is near-antipodal instead, at π − 0.3: closer to π, geoopt's gradient
 * −2θ/√(1−c²)·y amplifies the float32 rounding of c = ⟨x,y⟩ by ≈ 1/sin²θ (400× at π − 0.05).
 */
export function plantedInputs(arch: Architecture, kind: NativeGeoKind, B: number, seed: number, mode: NativeGeoMode = 'accurate') {
  const P = arch.numParams;
  const eu = kind !== 'geometric';
  const rng = new Rng(seed);
  const x = ref.randomPoints(arch, B, rng, eu).f32;
  const y = ref.randomPoints(arch, B, rng, eu).f32;
  const u = Float32Array.from(ref.randomTangents(arch, x, B, rng, 0.05, 3));
  const raw = rng.fillNormal(new Float32Array(B * P), 0, 0.3);
  const t = rng.fillUniform(new Float32Array(B));
  const { spheres } = ref.factorIndices(arch, eu);
  if (spheres.length > 0 && B >= 3) {
    const s0 = spheres[0]!;
    if (mode === 'accurate') {
      for (const i of s0) y[i] = -x[i]!; // network 0, sphere 0: antipodal
    } else {
      const far = ref.randomTangents(arch, x, B, rng, Math.PI - 0.3, Math.PI - 0.3 + 1e-9);
      ref.scatter(y, P, 0, s0, ref.expmap(ref.gather(x, P, 0, s0), ref.gather(far, P, 0, s0), 'accurate'));
    }
    const s1 = spheres[spheres.length - 1]!;
    for (const i of s1) raw[P + i] = 0; // network 1, last sphere: zero factor
    for (const i of s1) x[P + i] = 0;
    const s2 = spheres[Math.min(1, spheres.length - 1)]!;
    const small = ref.randomTangents(arch, x, B, rng, 1e-3, 2e-3);
    const yy = ref.expmap(ref.gather(x, P, 2, s2), ref.gather(small, P, 2, s2), 'accurate');
    ref.scatter(y, P, 2, s2, yy); // network 2, sphere 1: a small angle (series branches)
  }
  return { x, y, u, raw, t };
}

