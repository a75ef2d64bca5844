/**
 * Independent plain-TS references for the geometry tests, written from the formulas of METHOD.md §3 and §7 (and
 * lib/geometry/Geometry.ts's documentation) in f64 on number arrays, without calling native code. Deliberately
 * textbook forms (acos rather than atan2, slerp-free compositions) so they share no code path with the addon.
 */
import type { Architecture } from '../../lib/arch/Architecture.js';
import type { Rng } from '../../lib/util/rng.js';

export type Vec = number[];
export type Semantics = 'accurate' | 'reference';
const EPS = 1e-4; // geoopt EPS[float32]

/** Flat indices (within one network) of each sphere factor, then of the Euclidean block. */
export function factorIndices(arch: Architecture, euclidean = false): { spheres: number[][]; euclid: number[] } {
  const P = arch.numParams;
  if (euclidean) return { spheres: [], euclid: Array.from({ length: P }, (_, i) => i) };
  const spheres: number[][] = [];
  const L = arch.numLayers;
  for (let l = 1; l <= L; l++) {
    const nIn = arch.widths[l - 1]!;
    const n = arch.widths[l]!;
    if (l < L) {
      for (let j = 0; j < n; j++) spheres.push(Array.from({ length: nIn }, (_, i) => arch.weightIndex(l, i, j)));
    } else {
      spheres.push(Array.from({ length: nIn * n }, (_, i) => arch.weightOffset(L) + i));
    }
  }
  return { spheres, euclid: Array.from({ length: P - arch.numWeights }, (_, i) => arch.numWeights + i) };
}

export const dot = (a: Vec, b: Vec): number => a.reduce((s, v, i) => s + v * b[i]!, 0);
export const norm = (a: Vec): number => Math.sqrt(dot(a, a));
export const scale = (a: Vec, s: number): Vec => a.map((v) => v * s);
export const add = (a: Vec, b: Vec): Vec => a.map((v, i) => v + b[i]!);
export const sub = (a: Vec, b: Vec): Vec => a.map((v, i) => v - b[i]!);
const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));

export function project(x: Vec): Vec {
  const n = norm(x);
  return n === 0 ? x.map((_, i) => (i === 0 ? 1 : 0)) : scale(x, 1 / n);
}
export function tangent(x: Vec, u: Vec): Vec {
  return sub(u, scale(x, dot(x, u)));
}
export function expmap(x: Vec, u: Vec, mode: Semantics): Vec {
  const n = norm(u);
  if (mode === 'reference') return n > EPS ? add(scale(x, Math.cos(n)), scale(u, Math.sin(n) / n)) : project(add(x, u));
  const y = n === 0 ? x.slice() : add(scale(x, Math.cos(n)), scale(u, Math.sin(n) / n));
  return project(y);
}
export function dist(x: Vec, y: Vec, mode: Semantics): number {
  if (mode === 'reference') return Math.acos(clamp(dot(x, y), -1 + EPS, 1 - EPS));
  return Math.acos(clamp(dot(project(x), project(y)), -1, 1));
}
export function logmap(x: Vec, y: Vec, mode: Semantics): Vec {
  if (mode === 'reference') {
    const d = sub(y, x);
    const w = sub(d, scale(x, dot(x, d)));
    const th = dist(x, y, 'reference');
    return th > EPS ? scale(w, th / Math.max(norm(w), EPS)) : w;
  }
  // at x̂ = x/‖x‖ (x itself on the sphere)
  const xh = project(x);
  const c = dot(xh, y);
  const w = sub(y, scale(xh, c));
  const nw = norm(w);
  return nw === 0 ? w : scale(w, Math.acos(clamp(c / norm(y), -1, 1)) / nw);
}
export function interpolate(x0: Vec, x1: Vec, t: number, mode: Semantics): Vec {
  return expmap(mode === 'reference' ? x0 : project(x0), scale(logmap(x0, x1, mode), t), mode);
}
export function eulerStep(x: Vec, v: Vec, dt: number, mode: Semantics): Vec {
  if (mode === 'reference') return expmap(x, scale(v, dt), 'reference');
  const xh = project(x);
  return project(expmap(xh, scale(tangent(xh, v), dt), 'accurate'));
}

/** Gathers / scatters a factor of network b of a flat batch. */
export function gather(flat: ArrayLike<number>, P: number, b: number, idx: number[]): Vec {
  return idx.map((i) => flat[b * P + i]!);
}
export function scatter(flat: { [i: number]: number }, P: number, b: number, idx: number[], v: Vec): void {
  idx.forEach((i, k) => (flat[b * P + i] = v[k]!));
}

/** Applies a per-factor op to every network and factor (`eu` on the Euclidean block). */
export function mapFactors(
  arch: Architecture,
  euclidean: boolean,
  B: number,
  sph: (b: number, idx: number[]) => Vec,
  eu: (b: number, idx: number[]) => Vec,
): Float64Array {
  const P = arch.numParams;
  const out = new Float64Array(B * P);
  const { spheres, euclid } = factorIndices(arch, euclidean);
  for (let b = 0; b < B; b++) {
    for (const idx of spheres) scatter(out, P, b, idx, sph(b, idx));
    scatter(out, P, b, euclid, eu(b, euclid));
  }
  return out;
}

/** Loss of METHOD.md §5.3 (geometric) or the MSE (euclidean), per network and batch mean. */
export function loss(arch: Architecture, euclidean: boolean, pred: ArrayLike<number>, target: ArrayLike<number>, B: number, mode: Semantics): { loss: number; perNetwork: number[] } {
  const P = arch.numParams;
  const { spheres, euclid } = factorIndices(arch, euclidean);
  const L = arch.numLayers;
  const per: number[] = [];
  for (let b = 0; b < B; b++) {
    let l = 0;
    let s = 0;
    for (let layer = 1; layer <= L && !euclidean; layer++) {
      const mine = spheres.filter((_, k) => arch.sphereLayer[k] === layer);
      let m = 0;
      for (const idx of mine) m += dist(gather(pred, P, b, idx), gather(target, P, b, idx), mode) ** 2;
      s += m / mine.length;
    }
    l += euclidean ? 0 : s / L;
    const d = sub(gather(pred, P, b, euclid), gather(target, P, b, euclid));
    l += dot(d, d) / euclid.length;
    per.push(l);
  }
  return { loss: per.reduce((a, v) => a + v, 0) / B, perNetwork: per };
}

/**
 * Canonicalisation (METHOD.md §3) of one network in f64, returning the result, the per-hidden-neuron scales r
 * (layer by layer) and ρ.
 */
export function canonicalizeRef(arch: Architecture, flat: ArrayLike<number>, c = 1): { y: Float64Array; r: number[][]; rho: number } {
  const y = Float64Array.from({ length: arch.numParams }, (_, i) => flat[i]!);
  const L = arch.numLayers;
  const r: number[][] = [];
  for (let l = 1; l < L; l++) {
    const rl: number[] = [];
    for (let j = 0; j < arch.widths[l]!; j++) {
      let ss = 0;
      for (let i = 0; i < arch.widths[l - 1]!; i++) ss += y[arch.weightIndex(l, i, j)]! ** 2;
      const rj = ss === 0 ? 1 : Math.sqrt(ss);
      rl.push(rj);
      for (let i = 0; i < arch.widths[l - 1]!; i++) y[arch.weightIndex(l, i, j)]! /= rj;
      y[arch.biasIndex(l, j)]! /= rj;
      for (let k = 0; k < arch.widths[l + 1]!; k++) y[arch.weightIndex(l + 1, j, k)]! *= rj;
    }
    r.push(rl);
  }
  let ss = 0;
  const o = arch.weightOffset(L);
  const nA = arch.widths[L - 1]! * arch.widths[L]!;
  for (let i = 0; i < nA; i++) ss += y[o + i]! ** 2;
  const rho = Math.sqrt(ss);
  for (let i = 0; i < nA; i++) y[o + i] = (y[o + i]! / rho) * c;
  for (let j = 0; j < arch.widths[L]!; j++) y[arch.biasIndex(L, j)] = (y[arch.biasIndex(L, j)]! / rho) * c;
  return { y, r, rho };
}

/** MLP forward in f64 on the flat layout: every layer's post-activation (ReLU for hidden, identity for the last). */
export function forwardLayers(arch: Architecture, flat: ArrayLike<number>, x: Vec): Vec[] {
  const outs: Vec[] = [];
  let h = x;
  for (let l = 1; l <= arch.numLayers; l++) {
    const o: Vec = [];
    for (let j = 0; j < arch.widths[l]!; j++) {
      let s = flat[arch.biasIndex(l, j)]!;
      for (let i = 0; i < arch.widths[l - 1]!; i++) s += flat[arch.weightIndex(l, i, j)]! * h[i]!;
      o.push(l < arch.numLayers ? Math.max(0, s) : s);
    }
    outs.push(o);
    h = o;
  }
  return outs;
}

/** Random points on the product manifold (spheres normalised in f64; biases N(0, 0.1²)), f64 and f32 copies. */
export function randomPoints(arch: Architecture, B: number, rng: Rng, euclidean = false): { f64: Float64Array; f32: Float32Array } {
  const P = arch.numParams;
  const f64 = rng.fillNormal(new Float64Array(B * P));
  const { spheres, euclid } = factorIndices(arch, euclidean);
  for (let b = 0; b < B; b++) {
    for (const idx of spheres) scatter(f64, P, b, idx, project(gather(f64, P, b, idx)));
    for (const i of euclid) f64[b * P + i]! *= 0.1;
  }
  return { f64, f32: Float32Array.from(f64) };
}

/** Random tangent vectors at `x` with each sphere factor's norm drawn uniformly from [lo, hi). */
export function randomTangents(arch: Architecture, x: ArrayLike<number>, B: number, rng: Rng, lo: number, hi: number): Float64Array {
  const P = arch.numParams;
  const u = rng.fillNormal(new Float64Array(B * P));
  const { spheres } = factorIndices(arch);
  for (let b = 0; b < B; b++) {
    for (const idx of spheres) {
      const t = tangent(gather(x, P, b, idx), gather(u, P, b, idx));
      scatter(u, P, b, idx, scale(t, (lo + (hi - lo) * rng.uniform()) / norm(t)));
    }
  }
  return u;
}
