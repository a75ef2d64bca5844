/**
 * wsflow — generative flow models over neural-network weights (Euclidean, Normalized and Geometric flows), with
 * a native CPU/CUDA engine. Public exports only.
 */
export { WsfError, NoBinaryFoundError, DisposedError, isWsfError } from './errors.js';
export type { WsfErrorCode } from './errors.js';
export { Architecture, mlp, parseWidths, checkBatch } from './arch/Architecture.js';
export { resolveDevice, cudaAvailable, parseDeviceRequest } from './device.js';
export type { Device, DeviceRequest } from './device.js';
export { runtimeInfo } from './info.js';
export type { RuntimeInfo } from './info.js';
export { Geometry, geometry } from './geometry/Geometry.js';
export type { GeometryKind, GeometrySemantics, GeometryOptions, OutOptions, LossOptions, LossResult } from './geometry/Geometry.js';
export { canonicalize, canonicalizeBackward } from './geometry/canonicalize.js';
export type { CanonicalizeOptions } from './geometry/canonicalize.js';
export { loadTf } from './interop/tf.js';
export type { TF } from './interop/tf.js';
export { toTfModel, fromTfModel } from './interop/tfjs.js';
export { version } from './version.js';
