/**
 * wsflow — generative flow models over neural-network weights (Euclidean, Normalized and Geometric flows), with
 * a native CPU/CUDA engine. Public exports only.
 */
export { WsfError, NoBinaryFoundError, DisposedError, OutputConflictError, isWsfError } from './errors.js';
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
export { saveTfModelFiles, loadTfModelFiles, TF_WEIGHTS_FILE } from './interop/tfjsFiles.js';
export { version } from './version.js';
export { VectorField } from './engine/VectorField.js';
export type { VectorFieldOptions, AdamOptions, BatchOptions, GraphMode, MemoryPlan } from './engine/VectorField.js';
export { readSafetensors, writeSafetensors, encodeSafetensors, decodeSafetensors, writeFileAtomic } from './io/safetensors.js';
export type { SafeTensor, SafeDType, SafetensorsFile } from './io/safetensors.js';
export { Rng } from './util/rng.js';
export type { Task, Split, TaskSpec, StandardizeMode } from './tasks/Task.js';
export { loadTask, TASK_NAMES } from './tasks/loadTask.js';
export type { LoadTaskOptions, TaskName } from './tasks/loadTask.js';
export { customTask, splitSizes, taskDataHash, DEFAULT_SPLIT, DEFAULT_SPLIT_SEED } from './tasks/customTask.js';
export type { CustomTaskOptions, SplitFractions, LabelledData } from './tasks/customTask.js';
export { loadWdbc, loadWdbcReference, readWdbc, WDBC_CSV } from './tasks/wdbc.js';
export { NumpyRandomState, sklearnTrainTestSplit } from './util/numpyRandom.js';
export type { WdbcOptions, WdbcData } from './tasks/wdbc.js';
export {
  loadMnist,
  loadMnistFull,
  loadFashionMnist,
  readMnist,
  readMnistFull,
  readFashionMnist,
  fashionMnistAvailable,
  mnistFullAvailable,
  parseIdx,
  MNIST_MEAN,
  MNIST_STD,
  MNIST_FULL_VAL,
  FASHION_SPLIT,
} from './tasks/mnist.js';
export type { ImageTaskOptions, ImageData, IdxArray } from './tasks/mnist.js';
export { Progress, createProgress } from './util/progress.js';
export type { ProgressOptions, ProgressFields, ProgressMode } from './util/progress.js';
export { buildZoo, zooRunInit, zooRunOrder, deriveSeed } from './zoo/buildZoo.js';
export type { BuildZooOptions, BuildZooResult, ZooProgress } from './zoo/buildZoo.js';
export { trainFromWeights } from './zoo/trainFromWeights.js';
export type { TrainFromWeightsOptions, TrainFromWeightsResult } from './zoo/trainFromWeights.js';
export { ZOO_PRESETS } from './zoo/presets.js';
export type { ZooPreset, ZooPresetName, ZooOptimizerOptions, ZooInitOptions, ZooSchedule } from './zoo/presets.js';
export { readZoo, writeZoo, readZooMetadata, encodeZoo, decodeZoo, zooMeta, ZOO_FORMAT, ZOO_FORMAT_VERSION, ZOO_TENSORS } from './zoo/Zoo.js';
export type { Zoo, ZooInput } from './zoo/Zoo.js';
export { linearSumAssignment } from './align/assignment.js';
export { permuteNetworks, identityPermutations, randomPermutations, invertPermutations, composePermutations, numHidden, hiddenOffsets, checkPermutations } from './align/permutation.js';
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
export { nearestNeighbourDistances, noiseBaseline, averageBaseline, gaussianBaseline, mixtureBaseline } from './eval/baselines.js';
export type { BatchTransform, NearestNeighbourResult, NeighbourStats, NoiseBaselineResult } from './eval/baselines.js';
export { taskGradient, BatchStream, plainSgd, publishedGradientLayout } from './eval/gradient.js';
export type { MiniBatch, TaskGradient, BatchStreamState } from './eval/gradient.js';
export { runDemo } from './pipeline/demo.js';
export type { DemoOptions, DemoSummary, DemoFlowResult, DemoDetails } from './pipeline/demo.js';
export { DEMO_PRESETS } from './pipeline/presets.js';
export type { DemoPreset, DemoScale } from './pipeline/presets.js';
export { FlowMatcher } from './flow/FlowMatcher.js';
export type { FlowOptions, WeightDataset, TrainLog, TrainOptions, SampleOptions, SampleGuidance, LikelihoodOptions, LikelihoodResult } from './flow/FlowMatcher.js';
export type { Coupling, OtCost } from './flow/coupling.js';
export type { PriorSpec } from './flow/prior.js';
export type { TimeDistribution, TimeGridKind } from './flow/time.js';
export { integrate } from './flow/solvers.js';
export type { SolverName, OdeProblem } from './flow/solvers.js';
export { integrateDivergence, gaussianLogDensity } from './flow/likelihood.js';
export type { DivergenceProblem, DivergenceResult, VelocityVjp, TraceSpec, ProbeKind } from './flow/likelihood.js';
export { alignZoo, alignZooFile } from './pipeline/align.js';
export type { AlignZooOptions, AlignZooResult } from './pipeline/align.js';
export { evaluateSamples } from './pipeline/evaluate.js';
export type { EvaluateSamplesOptions, SampleEvaluation, SetMetrics, BmaEntry, MeanStd } from './pipeline/evaluate.js';
export { sampleFlow, writeSamples, readWeightsFile, naturalLogitScale, trainedLogitScale } from './pipeline/sample.js';
export type { SampleFlowOptions, SampleFlowResult, WeightsFile } from './pipeline/sample.js';
export { trainFlow } from './pipeline/train.js';
export type { TrainFlowOptions, TrainFlowResult } from './pipeline/train.js';
export { runExperiment } from './reproduce/harness.js';
export type { Experiment, ExperimentContext, ExperimentOutput, ExperimentRecord, RunExperimentOptions, Scale } from './reproduce/harness.js';
export { EXPERIMENTS } from './reproduce/experiments.js';
