/**
 * Native geometry plans (the product-manifold tables of one architecture) and the shared argument checks of the
 * geometry facade. Internal: the public surface is {@link Geometry}, `canonicalize` and `canonicalizeBackward`.
 */
import { Architecture } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import { binding } from '../native/binding.js';
import type { NativeGeoKind, NativeGeometryPlan } from '../native/types.js';
import { checkF32, describe, invalidArgument } from '../util/validate.js';

/** @internal A fresh native plan for `arch` (owned by the caller, who disposes it). */
export function createPlan(arch: Architecture, kind: NativeGeoKind): NativeGeometryPlan {
  return new (binding().GeometryPlan)(Int32Array.from(arch.widths), kind);
}

const cache = new Map<string, NativeGeometryPlan>();

/**
 * @internal A process-wide plan per architecture for the standalone functions (canonicalisation needs only the
 * widths, so the Euclidean table, the smallest, is used). Device copies are made on first CUDA use.
 */
export function sharedPlan(arch: Architecture): NativeGeometryPlan {
  let p = cache.get(arch.key);
  if (p === undefined || p.disposed) {
    p = createPlan(arch, 'normalized');
    cache.set(arch.key, p);
  }
  return p;
}

/** @internal Disposes the shared plans (frees their device tables); tests use it before leak checks. */
export function disposeSharedPlans(): void {
  for (const p of cache.values()) p.dispose();
  cache.clear();
}

/** Checks `arch` is an {@link Architecture}. */
export function checkArch(arch: unknown): Architecture {
  if (!(arch instanceof Architecture)) throw invalidArgument('arch', 'an Architecture (from mlp(widths))', arch, 'ERR_INVALID');
  return arch;
}

/** Checks an options argument is undefined or a plain object. */
export function checkOptions<T extends object>(name: string, v: unknown): T {
  if (v === undefined) return {} as T;
  if (v === null || typeof v !== 'object' || Array.isArray(v) || ArrayBuffer.isView(v)) {
    throw new WsfError(`Expected an options object for \`${name}\` but received ${describe(v)}`, 'ERR_INVALID');
  }
  return v as T;
}

/** Returns `out` after checking it (Float32Array of exactly `length`), or a new zeroed array. */
export function outArray(name: string, out: unknown, length: number): Float32Array {
  if (out === undefined) return new Float32Array(length);
  return checkF32(name, out, length);
}
