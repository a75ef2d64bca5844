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
export { loadTf } from './interop/tf.js';
export type { TF } from './interop/tf.js';
export { toTfModel, fromTfModel } from './interop/tfjs.js';
export { version } from './version.js';
export { linearSumAssignment } from './align/assignment.js';
export { permuteNetworks, randomPermutations, invertPermutations, composePermutations, numHidden, hiddenOffsets, checkPermutations } from './align/permutation.js';
export { alignNetworks, nearestToMean } from './align/weightMatching.js';
export type { AlignOptions, AlignResult, DistanceStats } from './align/weightMatching.js';
export { evaluateNetworks } from './eval/evaluate.js';
export type { EvalResult, SplitEvalOptions } from './eval/evaluate.js';
export type { SplitName } from './eval/taskData.js';
export { summarize } from './eval/stats.js';
export type { Summary } from './eval/stats.js';
export { bmaCurve } from './eval/bma.js';
export type { BmaOptions, BmaPoint, BmaResult } from './eval/bma.js';
export { functionalDiversity } from './eval/diversity.js';
export type { DiversityOptions, DiversityResult } from './eval/diversity.js';
export { lossBarriers } from './eval/barriers.js';
export type { BarrierOptions, BarrierResult } from './eval/barriers.js';
export { nearestNeighbourDistances, noiseBaseline, averageBaseline } from './eval/baselines.js';
export type { BatchTransform, NearestNeighbourResult, NeighbourStats, NoiseBaselineResult } from './eval/baselines.js';
export { taskGradient, BatchStream } from './eval/gradient.js';
export type { MiniBatch, TaskGradient, BatchStreamState } from './eval/gradient.js';
