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
export { VectorField } from './engine/VectorField.js';
export type { VectorFieldOptions, AdamOptions, BatchOptions, GraphMode } from './engine/VectorField.js';
export { readSafetensors, writeSafetensors, encodeSafetensors, decodeSafetensors, writeFileAtomic } from './io/safetensors.js';
export type { SafeTensor, SafeDType, SafetensorsFile } from './io/safetensors.js';
export { Rng } from './util/rng.js';
export type { Task, Split, TaskSpec, StandardizeMode } from './tasks/Task.js';
export { loadTask, TASK_NAMES } from './tasks/loadTask.js';
export type { LoadTaskOptions, TaskName } from './tasks/loadTask.js';
export { customTask, splitSizes, taskDataHash, DEFAULT_SPLIT, DEFAULT_SPLIT_SEED } from './tasks/customTask.js';
export type { CustomTaskOptions, SplitFractions, LabelledData } from './tasks/customTask.js';
export { loadWdbc, readWdbc, WDBC_CSV } from './tasks/wdbc.js';
export type { WdbcOptions, WdbcData } from './tasks/wdbc.js';
export { loadMnist, loadFashionMnist, readMnist, readFashionMnist, fashionMnistAvailable, MNIST_MEAN, MNIST_STD, FASHION_SPLIT } from './tasks/mnist.js';
export type { ImageTaskOptions, ImageData } from './tasks/mnist.js';
export { Progress, createProgress } from './util/progress.js';
export type { ProgressOptions, ProgressFields, ProgressMode } from './util/progress.js';
export { buildZoo, zooRunInit, zooRunOrder, deriveSeed } from './zoo/buildZoo.js';
export type { BuildZooOptions, BuildZooResult, ZooProgress } from './zoo/buildZoo.js';
export { ZOO_PRESETS } from './zoo/presets.js';
export type { ZooPreset, ZooPresetName, ZooOptimizerOptions, ZooInitOptions, ZooSchedule } from './zoo/presets.js';
export { readZoo, writeZoo, readZooMetadata, encodeZoo, decodeZoo, zooMeta, ZOO_FORMAT, ZOO_FORMAT_VERSION, ZOO_TENSORS } from './zoo/Zoo.js';
export type { Zoo, ZooInput } from './zoo/Zoo.js';
