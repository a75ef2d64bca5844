/**
 * Builds a zoo: trains many base MLPs on a task with TF.js and keeps checkpoints on a schedule (METHOD.md §9).
 *
 * Runs are trained in chunks of `chunkSize` runs in lockstep ({@link BatchedMlp}): every run has its own
 * initialisation, its own data order and its own optimiser state; nothing couples runs, so a run's trajectory
 * does not depend on which other runs share its chunk.
 *
 * Per run r (seeding: xoshiro128** `Rng`s seeded with a fixed hash of (seed, r, stream)):
 * - initial weights from `Rng(deriveSeed(seed, r, 0))` ({@link zooRunInit});
 * - each epoch, the train split is visited in the order `Rng(deriveSeed(seed, r, 1)).permutation(nTrain)` (a new
 *   permutation per epoch from the same stream, {@link zooRunOrder}), in batches of `batchSize`; the last batch of
 *   an epoch may be smaller (PyTorch's `drop_last=False`), so an epoch has ⌈nTrain / batchSize⌉ steps;
 * - loss: mean cross-entropy over the batch; one optimiser step per batch.
 * - Checkpoint before batch i of epoch e when e ≥ skipEpochs and i % everyIters == 0. It holds the pre-update
 *   weights (the reference snapshots after `backward()` and before `optimizer.step()`; the gradient does not
 *   change the weights, so these are the weights after `iter = e·itersPerEpoch + i` updates). Its test accuracy
 *   and loss are measured on the task's test split at that moment.
 *
 * Resumability: every finished chunk is written atomically to `<out>.partial/chunk-NNNNN.safetensors` together
 * with a fingerprint of the options, the task data and the TF.js backend. Re-running with the same options skips
 * the finished chunks; the merged zoo is bit-identical to an uninterrupted build (same `created`), and the
 * partial folder is removed once the zoo is written.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Architecture, mlp } from '../arch/Architecture.js';
import { OutputConflictError, WsfError, isWsfError } from '../errors.js';
import { type TF, loadTf } from '../interop/tf.js';
import { f32, i32, readSafetensors, requireTensor, writeSafetensors } from '../io/safetensors.js';
import { checkLabelled, checkTaskArch, taskDataHash } from '../tasks/customTask.js';
import { type LoadTaskOptions, TASK_NAMES, type TaskName, loadTask } from '../tasks/loadTask.js';
import type { Task, TaskSpec } from '../tasks/Task.js';
import { type Progress, type ProgressOptions, createProgress } from '../util/progress.js';
import { Rng } from '../util/rng.js';
import { checkChoice, checkInt, checkNumber, checkOptionKeys, describe, optionKeys } from '../util/validate.js';
import { version } from '../version.js';
import { BatchedMlp, type FirstLayerMode, FlatOptimizer, type OptimizerSpec, autoFirstLayer } from './BatchedMlp.js';
import { ZOO_PRESETS, type ZooInitOptions, type ZooOptimizerOptions, type ZooPresetName, type ZooSchedule } from './presets.js';
import { ZOO_FORMAT_VERSION, type Zoo, readZoo, readZooMetadata, writeZoo } from './Zoo.js';

/** Options of {@link buildZoo}. Unset training fields come from the preset. */
export interface BuildZooOptions {
  /** A task, or the name of a built-in one (loaded with `taskOptions`). */
  readonly task: Task | TaskName;
  /** Options for `loadTask` when `task` is a name. */
  readonly taskOptions?: LoadTaskOptions;
  /** Destination zoo file (safetensors). Partial results go to `<out>.partial/`. */
  readonly out: string;
  /** Default: the task's name when it is a preset ('wdbc', 'wdbc-reference', 'mnist', 'mnist-full', 'fashion-mnist'), else 'generic'. */
  readonly preset?: ZooPresetName;
  /** Base MLP widths. Default: the task's `defaultArch`. Must start with numFeatures and end with numClasses. */
  readonly arch?: readonly number[] | string;
  /** Number of training runs. */
  readonly runs?: number;
  /** Epochs per run. */
  readonly epochs?: number;
  /** Mini-batch size. */
  readonly batchSize?: number;
  readonly optimizer?: ZooOptimizerOptions;
  readonly init?: ZooInitOptions;
  /** Checkpoint schedule; unset fields from the preset (skipEpochs at most `epochs` − 1, so shorter runs keep their last epoch). */
  readonly schedule?: Partial<ZooSchedule>;
  /** Base seed (integer in [0, 2³²)). Default 0. */
  readonly seed?: number;
  /** Runs trained together, and the unit of resumption. Default from the preset (≤ runs). */
  readonly chunkSize?: number;
  /** Use finished chunks in `<out>.partial/` (default true); false discards them. */
  readonly resume?: boolean;
  /** Replace an existing `out` built with other options (default false: an error). */
  readonly overwrite?: boolean;
  /** Stops the build between steps; finished chunks stay on disk and are resumed next time. */
  readonly signal?: AbortSignal;
  /** Called after every epoch of every chunk, when a chunk is finished or resumed, and at the end. */
  readonly onProgress?: (p: ZooProgress) => void;
  /** Console progress: a bar on a TTY, JSON lines otherwise; false = silent. Default: auto (silent with WSF_QUIET=1). */
  readonly progress?: ProgressOptions | boolean;
  /** `created` metadata. Default: the first start of this build (kept across resumes), from SOURCE_DATE_EPOCH if set. */
  readonly created?: string | Date;
  /** @internal force the first-layer kernel strategy (default: automatic by size). */
  readonly firstLayer?: FirstLayerMode;
}

/** A progress report of {@link buildZoo}. Steps count one optimiser step of one network. */
export interface ZooProgress {
  readonly phase: 'train' | 'chunk-done' | 'resumed' | 'done';
  /** Current chunk (0-based) and number of chunks. */
  readonly chunk: number;
  readonly chunks: number;
  /** Runs finished (trained or resumed) and runs in all. */
  readonly runsDone: number;
  readonly runs: number;
  /** Epochs finished in the current chunk. */
  readonly epoch: number;
  readonly epochs: number;
  readonly stepsDone: number;
  readonly stepsTotal: number;
  /** Mean train-batch loss over the chunk's runs at the last step, or null. */
  readonly trainLoss: number | null;
  /** Mean test accuracy over the chunk's runs at the last checkpoint, or null. */
  readonly testAcc: number | null;
}

/** What {@link buildZoo} returns. */
export interface BuildZooResult {
  /** The zoo file. */
  readonly file: string;
  /** The zoo, as {@link readZoo} would return it. */
  readonly zoo: Zoo;
  /** The TF.js backend that trained it. */
  readonly backend: string;
  /** Wall time of this call, seconds. */
  readonly seconds: number;
  readonly chunksTrained: number;
  readonly chunksResumed: number;
  /** True when `out` already held this zoo and nothing was trained. */
  readonly alreadyBuilt: boolean;
}

/** Fully resolved settings of a build (what the fingerprint and the metadata record). */
interface ZooConfig {
  task: Task;
  taskSpec: TaskSpec;
  arch: Architecture;
  runs: number;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerSpec;
  init: { scheme: 'normal'; std: number } | { scheme: 'uniform' };
  schedule: ZooSchedule;
  seed: number;
  chunkSize: number;
  firstLayer: FirstLayerMode;
  itersPerEpoch: number;
  snapshotsPerRun: number;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The seed of stream `stream` (0 = init, 1 = data order) of run `run`: a fixed 32-bit hash of the three. */
export function deriveSeed(seed: number, run: number, stream: number): number {
  let h = fmix32((seed >>> 0) ^ 0x5bd1e995);
  h = fmix32((h ^ (run >>> 0)) >>> 0);
  return fmix32((h + Math.imul(stream + 1, 0x9e3779b9)) >>> 0);
}

function normalizeInit(v: unknown): ZooConfig['init'] {
  if (v === null || typeof v !== 'object') throw new WsfError(`Expected \`init\` like {scheme: 'normal', std: 0.1} or {scheme: 'uniform'} but received ${describe(v)}`, 'ERR_INVALID');
  const o = v as { scheme?: unknown; std?: unknown };
  const scheme = checkChoice('init.scheme', o.scheme, ['normal', 'uniform'] as const);
  if (scheme === 'uniform') return { scheme };
  const std = checkNumber('init.std', o.std ?? 0.1, 0, 1e6);
  if (std <= 0) throw new WsfError(`Expected a positive \`init.std\` but received ${std}`, 'ERR_INVALID');
  return { scheme, std };
}

/**
 * One run's initial weights (length P, flat layout). `'normal'`: weights std·N(0, 1) in flat order, zero biases.
 * `'uniform'`: PyTorch `nn.Linear` — weights, then biases, each U(−1/√n_{l−1}, 1/√n_{l−1}), drawn in flat order.
 * @throws WsfError ERR_INVALID for a bad `init`
 */
export function zooRunInit(arch: Architecture, init: ZooInitOptions, seed: number, run: number): Float32Array {
  const spec = normalizeInit(init);
  const rng = new Rng(deriveSeed(seed, run, 0));
  const w = new Float32Array(arch.numParams);
  if (spec.scheme === 'normal') {
    for (let i = 0; i < arch.numWeights; i++) w[i] = spec.std * rng.normal();
    return w;
  }
  for (let l = 1; l <= arch.numLayers; l++) {
    const bound = 1 / Math.sqrt(arch.widths[l - 1]!);
    const o = arch.weightOffset(l);
    for (let i = 0; i < arch.widths[l - 1]! * arch.widths[l]!; i++) w[o + i] = -bound + 2 * bound * rng.uniform();
  }
  for (let l = 1; l <= arch.numLayers; l++) {
    const bound = 1 / Math.sqrt(arch.widths[l - 1]!);
    const o = arch.biasOffset(l);
    for (let j = 0; j < arch.widths[l]!; j++) w[o + j] = -bound + 2 * bound * rng.uniform();
  }
  return w;
}

/** One run's data order: for each epoch, a permutation of the train indices 0 … nTrain−1. */
/**
 * Gathers mini-batch `i` of every run into `xb`/`yb`, run-major: run r's `b` rows are the training rows
 * perms[r][i·bs … i·bs + b) (b = bs except for a last, shorter batch). Shared by buildZoo and trainFromWeights,
 * which must see identical batches for the same seed.
 */
export function gatherBatch(x: Float32Array, y: Int32Array, n0: number, perms: readonly Int32Array[], i: number, bs: number, b: number, xb: Float32Array, yb: Int32Array): void {
  for (let r = 0; r < perms.length; r++) {
    const perm = perms[r]!;
    for (let k = 0; k < b; k++) {
      const idx = perm[i * bs + k]!;
      xb.set(x.subarray(idx * n0, (idx + 1) * n0), (r * b + k) * n0);
      yb[r * b + k] = y[idx]!;
    }
  }
}

export function zooRunOrder(seed: number, run: number, epochs: number, nTrain: number): Int32Array[] {
  const rng = new Rng(deriveSeed(seed, run, 1));
  const out: Int32Array[] = [];
  for (let e = 0; e < epochs; e++) out.push(rng.permutation(nTrain));
  return out;
}

function normalizeOptimizer(v: unknown): OptimizerSpec {
  if (v === null || typeof v !== 'object') throw new WsfError(`Expected \`optimizer\` like {name: 'adam', lr: 1e-3} but received ${describe(v)}`, 'ERR_INVALID');
  const o = v as Record<string, unknown>;
  const name = checkChoice('optimizer.name', o.name, ['adam', 'sgd'] as const);
  const lr = checkNumber('optimizer.lr', o.lr, 0, 1e6);
  if (lr <= 0) throw new WsfError(`Expected a positive \`optimizer.lr\` but received ${lr}`, 'ERR_INVALID');
  const weightDecay = checkNumber('optimizer.weightDecay', o.weightDecay ?? 0, 0, 1e6);
  if (name === 'adam') {
    const beta1 = checkNumber('optimizer.beta1', o.beta1 ?? 0.9, 0, 0.999999999);
    const beta2 = checkNumber('optimizer.beta2', o.beta2 ?? 0.999, 0, 0.999999999);
    const eps = checkNumber('optimizer.eps', o.eps ?? 1e-8, 0, 1);
    if (eps <= 0) throw new WsfError(`Expected a positive \`optimizer.eps\` but received ${eps}`, 'ERR_INVALID');
    return { name, lr, beta1, beta2, eps, weightDecay };
  }
  const momentum = checkNumber('optimizer.momentum', o.momentum ?? 0, 0, 0.999999999);
  return { name, lr, momentum, weightDecay };
}

function checkTaskObject(t: unknown): Task {
  const o = t as Partial<Task> | null;
  if (o === null || typeof o !== 'object' || typeof o.name !== 'string' || o.train === undefined || o.test === undefined || o.val === undefined) {
    throw new WsfError(`Expected \`task\` to be a task name (${TASK_NAMES.join(', ')}) or a Task object but received ${describe(t)}`, 'ERR_INVALID');
  }
  const nf = checkInt('task.numFeatures', o.numFeatures, 1);
  const nc = checkInt('task.numClasses', o.numClasses, 2);
  checkLabelled('task.train', o.train, nf, nc);
  checkLabelled('task.val', o.val, nf, nc, true);
  checkLabelled('task.test', o.test, nf, nc);
  return o as Task;
}

function resolveConfig(opts: BuildZooOptions): ZooConfig {
  if (opts === null || typeof opts !== 'object') throw new WsfError(`Expected buildZoo options but received ${describe(opts)}`, 'ERR_INVALID');
  const task = typeof opts.task === 'string' ? loadTask(opts.task, opts.taskOptions ?? {}) : checkTaskObject(opts.task);
  const presetName: ZooPresetName = opts.preset ?? (task.name in ZOO_PRESETS && task.name !== 'generic' ? (task.name as ZooPresetName) : 'generic');
  const preset = ZOO_PRESETS[checkChoice('preset', presetName, Object.keys(ZOO_PRESETS) as ZooPresetName[])];
  const widths = opts.arch === undefined ? task.defaultArch : typeof opts.arch === 'string' ? mlp(opts.arch).widths : opts.arch;
  const arch = mlp(checkTaskArch('arch', widths, task.numFeatures, task.numClasses));
  const runs = checkInt('runs', opts.runs ?? preset.runs, 1, 1_000_000);
  const epochs = checkInt('epochs', opts.epochs ?? preset.epochs, 1, 1_000_000);
  const batchSize = checkInt('batchSize', opts.batchSize ?? preset.batchSize, 1, 1_000_000);
  const schedule: ZooSchedule = {
    // Unset, the preset's first kept epoch, moved to the last epoch for shorter runs (as the CLI does).
    skipEpochs: checkInt('schedule.skipEpochs', opts.schedule?.skipEpochs ?? Math.min(preset.schedule.skipEpochs, epochs - 1), 0, epochs - 1),
    everyIters: checkInt('schedule.everyIters', opts.schedule?.everyIters ?? preset.schedule.everyIters, 1, 1_000_000),
  };
  const seed = checkInt('seed', opts.seed ?? 0, 0, 2 ** 32 - 1);
  const chunkSize = Math.min(runs, checkInt('chunkSize', opts.chunkSize ?? preset.chunkSize, 1, 1_000_000));
  const firstLayer = opts.firstLayer === undefined ? autoFirstLayer(arch) : checkChoice('firstLayer', opts.firstLayer, ['stacked', 'per-run'] as const);
  const nTrain = task.train.n;
  const itersPerEpoch = Math.ceil(nTrain / batchSize);
  const snapshotsPerRun = (epochs - schedule.skipEpochs) * Math.ceil(itersPerEpoch / schedule.everyIters);
  const hash = taskDataHash(task);
  const taskSpec: TaskSpec =
    task.spec !== undefined
      ? { ...task.spec, hash }
      : { name: task.name, seed: null, sizes: [task.train.n, task.val.n, task.test.n], standardize: 'none', normalization: 'unknown (a user-implemented Task without spec)', scaling: null, hash };
  return {
    task,
    taskSpec,
    arch,
    runs,
    epochs,
    batchSize,
    optimizer: normalizeOptimizer(opts.optimizer ?? preset.optimizer),
    init: normalizeInit(opts.init ?? preset.init),
    schedule,
    seed,
    chunkSize,
    firstLayer,
    itersPerEpoch,
    snapshotsPerRun,
  };
}

/** The JSON record of everything that determines the zoo's numbers (fingerprinted; `created` is not in it). */
function configRecord(c: ZooConfig, backend: string): Record<string, unknown> {
  return {
    format_version: ZOO_FORMAT_VERSION,
    task: c.taskSpec,
    arch: c.arch.widths,
    runs: c.runs,
    epochs: c.epochs,
    batch_size: c.batchSize,
    optimizer: c.optimizer,
    init: c.init,
    schedule: scheduleRecord(c),
    seed: c.seed,
    chunk_size: c.chunkSize,
    first_layer: c.firstLayer,
    backend,
  };
}

function scheduleRecord(c: ZooConfig): Record<string, unknown> {
  return {
    epochs: c.epochs,
    batch_size: c.batchSize,
    skip_epochs: c.schedule.skipEpochs,
    every_iters: c.schedule.everyIters,
    iters_per_epoch: c.itersPerEpoch,
    snapshots_per_run: c.snapshotsPerRun,
    drop_last: false,
    shuffle: 'per run and epoch',
    snapshot: 'pre-update (after the gradient, before the optimizer step)',
  };
}

function resolveCreated(v: string | Date | undefined): string | undefined {
  if (v instanceof Date) {
    if (Number.isNaN(v.getTime())) throw new WsfError('Expected a valid Date for `created`', 'ERR_INVALID');
    return v.toISOString();
  }
  if (typeof v === 'string') return v;
  if (v !== undefined) throw new WsfError(`Expected a string or Date for \`created\` but received ${describe(v)}`, 'ERR_INVALID');
  const sde = process.env.SOURCE_DATE_EPOCH;
  if (sde !== undefined && /^\d+$/.test(sde)) return new Date(Number(sde) * 1000).toISOString();
  return undefined;
}

/** One trained (or resumed) chunk: `R` runs starting at `firstRun`, checkpoints run-major. */
interface ChunkResult {
  firstRun: number;
  R: number;
  weights: Float32Array;
  epoch: Int32Array;
  iter: Int32Array;
  testAcc: Float32Array;
  testLoss: Float32Array;
  init: Float32Array;
}

function chunkFile(dir: string, c: number): string {
  return path.join(dir, `chunk-${String(c).padStart(5, '0')}.safetensors`);
}

function writeChunk(file: string, ch: ChunkResult, fingerprint: string, config: string, created: string): void {
  const P = ch.init.length / ch.R;
  const run = new Int32Array(ch.testAcc.length);
  const S = ch.testAcc.length / ch.R;
  for (let r = 0; r < ch.R; r++) run.fill(ch.firstRun + r, r * S, (r + 1) * S);
  writeSafetensors(
    file,
    { weights: f32(ch.weights, [ch.testAcc.length, P]), run: i32(run), epoch: i32(ch.epoch), iter: i32(ch.iter), test_acc: f32(ch.testAcc), test_loss: f32(ch.testLoss), init: f32(ch.init, [ch.R, P]) },
    { fingerprint, config, created, first_run: String(ch.firstRun), runs: String(ch.R) },
  );
}

/**
 * Loads a chunk file of this build (`fingerprint`). Returns 'other' for a readable chunk of a build with other options
 * (told by its header alone, whatever its sizes), null when it is unreadable or inconsistent (it will be retrained).
 */
function readChunk(file: string, fingerprint: string, firstRun: number, R: number, S: number, P: number): { ch: ChunkResult; created: string } | { other: string } | null {
  try {
    const md = readZooMetadata(file); // the header alone: a chunk of another build is told without reading its data
    if (md.fingerprint !== fingerprint) return md.fingerprint === undefined ? null : { other: md.config ?? '' };
    const f = readSafetensors(file);
    const n = R * S;
    const w = requireTensor<Float32Array>(f, 'weights', 'F32', file);
    const init = requireTensor<Float32Array>(f, 'init', 'F32', file);
    const ep = requireTensor<Int32Array>(f, 'epoch', 'I32', file);
    const it = requireTensor<Int32Array>(f, 'iter', 'I32', file);
    const acc = requireTensor<Float32Array>(f, 'test_acc', 'F32', file);
    const loss = requireTensor<Float32Array>(f, 'test_loss', 'F32', file);
    if (w.data.length !== n * P || init.data.length !== R * P || ep.data.length !== n || it.data.length !== n || acc.data.length !== n || loss.data.length !== n) return null;
    if (f.metadata.first_run !== String(firstRun) || f.metadata.runs !== String(R)) return null;
    return {
      ch: { firstRun, R, weights: w.data, epoch: ep.data, iter: it.data, testAcc: acc.data, testLoss: loss.data, init: init.data },
      created: f.metadata.created ?? '',
    };
  } catch (e) {
    if (isWsfError(e)) return null;
    throw e;
  }
}

function differingKeys(a: string, b: string): string {
  try {
    const x = JSON.parse(a) as Record<string, unknown>;
    const y = JSON.parse(b) as Record<string, unknown>;
    const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])].filter((k) => JSON.stringify(x[k]) !== JSON.stringify(y[k]));
    return keys.length > 0 ? keys.join(', ') : 'unknown';
  } catch {
    return 'unknown';
  }
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface TrainContext {
  tf: TF;
  cfg: ZooConfig;
  chunk: number;
  chunks: number;
  runsBefore: number;
  stepsBefore: number;
  stepsTotal: number;
  signal: AbortSignal | undefined;
  progress: Progress;
  onProgress: ((p: ZooProgress) => void) | undefined;
  interrupted: () => WsfError;
}

/** Trains one chunk of runs from their initialisation to the last epoch, collecting checkpoints. */
async function trainChunk(ctx: TrainContext, firstRun: number, R: number): Promise<ChunkResult> {
  const { cfg, tf } = ctx;
  const { arch, task, epochs, batchSize: bs, itersPerEpoch: I, snapshotsPerRun: S } = cfg;
  const P = arch.numParams;
  const n0 = arch.widths[0]!;
  const nTrain = task.train.n;
  const theta = new Float32Array(R * P);
  for (let r = 0; r < R; r++) theta.set(zooRunInit(arch, cfg.init, cfg.seed, firstRun + r), r * P);
  const init = theta.slice();
  const orderRngs = Array.from({ length: R }, (_, r) => new Rng(deriveSeed(cfg.seed, firstRun + r, 1)));
  const model = new BatchedMlp(tf, arch, R, cfg.firstLayer);
  const opt = new FlatOptimizer(cfg.optimizer, R * P);
  const out: ChunkResult = {
    firstRun,
    R,
    weights: new Float32Array(R * S * P),
    epoch: new Int32Array(R * S),
    iter: new Int32Array(R * S),
    testAcc: new Float32Array(R * S),
    testLoss: new Float32Array(R * S),
    init,
  };
  const xb = new Float32Array(R * bs * n0);
  const yb = new Int32Array(R * bs);
  const tx = task.train.x;
  const ty = task.train.y;
  let s = 0;
  let lastYield = performance.now();
  let trainLoss: number | null = null;
  let testAcc: number | null = null;
  for (let e = 0; e < epochs; e++) {
    const perms = orderRngs.map((g) => g.permutation(nTrain));
    for (let i = 0; i < I; i++) {
      const b = Math.min(bs, nTrain - i * bs);
      if (e >= cfg.schedule.skipEpochs && i % cfg.schedule.everyIters === 0) {
        const ev = model.evaluate(theta, task.test.x, task.test.y);
        let sumAcc = 0;
        for (let r = 0; r < R; r++) {
          const k = r * S + s;
          out.weights.set(theta.subarray(r * P, (r + 1) * P), k * P);
          out.epoch[k] = e;
          out.iter[k] = e * I + i;
          out.testAcc[k] = ev.acc[r]!;
          out.testLoss[k] = ev.loss[r]!;
          sumAcc += ev.acc[r]!;
        }
        testAcc = sumAcc / R;
        s++;
      }
      gatherBatch(tx, ty, n0, perms, i, bs, b, xb, yb);
      const { loss, grad } = model.lossAndGrad(theta, xb.subarray(0, R * b * n0), yb.subarray(0, R * b), b);
      let sumLoss = 0;
      for (let r = 0; r < R; r++) {
        if (!Number.isFinite(loss[r]!)) {
          throw new WsfError(`Run ${firstRun + r} diverged: its training loss is ${loss[r]} at epoch ${e}, step ${i}; lower the learning rate or the init scale`, 'ERR_NUMERIC');
        }
        sumLoss += loss[r]!;
      }
      trainLoss = sumLoss / R;
      opt.step(theta, grad);
      const stepsDone = ctx.stepsBefore + R * (e * I + i + 1);
      ctx.progress.update(stepsDone, { chunk: `${ctx.chunk + 1}/${ctx.chunks}`, epoch: e + 1, loss: trainLoss, acc: testAcc });
      if (performance.now() - lastYield > 50) {
        await yieldToEventLoop();
        lastYield = performance.now();
      }
      if (ctx.signal?.aborted === true) throw ctx.interrupted();
    }
    ctx.onProgress?.({
      phase: 'train',
      chunk: ctx.chunk,
      chunks: ctx.chunks,
      runsDone: ctx.runsBefore,
      runs: cfg.runs,
      epoch: e + 1,
      epochs,
      stepsDone: ctx.stepsBefore + R * (e + 1) * I,
      stepsTotal: ctx.stepsTotal,
      trainLoss,
      testAcc,
    });
  }
  if (s !== S) throw new WsfError(`internal: expected ${S} checkpoints per run but took ${s}`, 'ERR_INVALID');
  return out;
}

const BUILD_ZOO_KEYS = optionKeys<BuildZooOptions>()(['task', 'taskOptions', 'out', 'preset', 'arch', 'runs', 'epochs', 'batchSize', 'optimizer', 'init', 'schedule', 'seed', 'chunkSize', 'resume', 'overwrite', 'signal', 'onProgress', 'progress', 'created', 'firstLayer'] as const);

/**
 * Trains `runs` base MLPs on a task with TF.js and writes their checkpoints as one zoo file (see the module doc
 * for the exact training and checkpoint semantics, and `Zoo.ts` for the file format).
 *
 * The build stops between steps when `signal` aborts; to stop on Ctrl-C, abort from a SIGINT handler
 * (`process.once('SIGINT', () => ac.abort())`). A killed process loses only the chunk in progress.
 *
 * @example await buildZoo({ task: 'wdbc', out: 'runs/wdbc.zoo.safetensors' }) // the thesis' 100 × 80 networks
 * @returns the zoo, its file, the backend and timings
 * @throws WsfError ERR_INVALID (bad options; `out` exists with other options and `overwrite` is not set; partial
 *   results were built with other options and `resume` is not false), ERR_IO (task data or files),
 *   ERR_NUMERIC (a run diverged), ERR_INTERRUPTED (aborted; finished chunks are kept for resumption)
 */
export async function buildZoo(opts: BuildZooOptions): Promise<BuildZooResult> {
  checkOptionKeys('buildZoo', opts, BUILD_ZOO_KEYS);
  const t0 = performance.now();
  const cfg = resolveConfig(opts);
  if (typeof opts.out !== 'string' || opts.out === '') throw new WsfError(`Expected \`out\` to be a file path but received ${describe(opts.out)}`, 'ERR_INVALID');
  const out = path.resolve(opts.out);
  const signal = opts.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new WsfError(`Expected an AbortSignal for \`signal\` but received ${describe(signal)}`, 'ERR_INVALID');
  const { tf, backend } = await loadTf();
  const config = JSON.stringify(configRecord(cfg, backend));
  const fingerprint = createHash('sha256').update(config).digest('hex');
  const progressOpts: ProgressOptions = opts.progress === false ? { silent: true } : opts.progress === true || opts.progress === undefined ? {} : opts.progress;
  const S = cfg.snapshotsPerRun;
  const P = cfg.arch.numParams;
  const chunks = Math.ceil(cfg.runs / cfg.chunkSize);
  const stepsPerRun = cfg.epochs * cfg.itersPerEpoch;
  const stepsTotal = cfg.runs * stepsPerRun;

  // An existing zoo: done if it is this one, else refuse unless asked to overwrite.
  if (fs.existsSync(out)) {
    let md: Record<string, string> | null = null;
    try {
      md = readZooMetadata(out);
    } catch {
      md = null;
    }
    if (md?.fingerprint === fingerprint && opts.overwrite !== true) {
      const zoo = readZoo(out);
      opts.onProgress?.({ phase: 'done', chunk: chunks - 1, chunks, runsDone: cfg.runs, runs: cfg.runs, epoch: cfg.epochs, epochs: cfg.epochs, stepsDone: stepsTotal, stepsTotal, trainLoss: null, testAcc: null });
      return { file: out, zoo, backend, seconds: (performance.now() - t0) / 1000, chunksTrained: 0, chunksResumed: 0, alreadyBuilt: true };
    }
    if (opts.overwrite !== true) {
      const why = md === null ? 'is not a readable zoo' : `was built with other options (differs in: ${differingKeys(md.config ?? '{}', config)})`;
      throw new OutputConflictError(`${out} already exists and ${why}`, 'overwrite');
    }
  }

  const partial = `${out}.partial`;
  if (opts.resume === false) fs.rmSync(partial, { recursive: true, force: true });
  const results: (ChunkResult | null)[] = new Array<ChunkResult | null>(chunks).fill(null);
  let created = resolveCreated(opts.created);
  let firstCreated: string | undefined;
  const notes: string[] = [];
  let resumed = 0;
  if (fs.existsSync(partial)) {
    // Every chunk is read before any is removed: chunks of a build with other options refuse the build and stay.
    const unreadable: string[] = [];
    for (let c = 0; c < chunks; c++) {
      const file = chunkFile(partial, c);
      if (!fs.existsSync(file)) continue;
      const firstRun = c * cfg.chunkSize;
      const R = Math.min(cfg.chunkSize, cfg.runs - firstRun);
      const got = readChunk(file, fingerprint, firstRun, R, S, P);
      if (got === null) {
        unreadable.push(file);
      } else if ('other' in got) {
        throw new OutputConflictError(`${partial} holds results of a build with other options (differs in: ${differingKeys(got.other, config)})`, 'fresh');
      } else {
        results[c] = got.ch;
        firstCreated ??= got.created;
        resumed++;
      }
    }
    for (const file of unreadable) {
      notes.push(`partial chunk ${file} is unreadable; it will be retrained`);
      fs.rmSync(file, { force: true });
    }
  }
  created ??= firstCreated !== undefined && firstCreated !== '' ? firstCreated : new Date().toISOString();
  const resumedRuns = results.reduce((a, ch) => a + (ch?.R ?? 0), 0);
  const bar = createProgress({ label: 'zoo', unit: 'steps', total: stepsTotal, initial: resumedRuns * stepsPerRun, ...progressOpts });
  for (const note of notes) bar.log(note);
  bar.log(
    `TF.js backend: ${backend}; ${cfg.runs} runs of ${cfg.arch.key} on ${cfg.task.name} (${cfg.task.train.n} train examples), ${cfg.epochs} epochs × ${cfg.itersPerEpoch} steps, ` +
      `${S} checkpoints per run, ${chunks} chunk(s) of ≤ ${cfg.chunkSize}${resumed > 0 ? `; resuming ${resumed} finished chunk(s) from ${partial}` : ''}`,
    { backend, runs: cfg.runs, chunks, resumed_chunks: resumed, networks: cfg.runs * S },
  );
  let trained = 0;
  let runsDone = resumedRuns;
  const interrupted = (): WsfError => {
    const done = results.filter((r) => r !== null).length;
    return new WsfError(`zoo build interrupted: ${done} of ${chunks} chunks are finished and saved in ${partial}; run buildZoo again with the same options to resume`, 'ERR_INTERRUPTED');
  };
  try {
    for (let c = 0; c < chunks; c++) {
      if (results[c] !== null) {
        opts.onProgress?.({ phase: 'resumed', chunk: c, chunks, runsDone, runs: cfg.runs, epoch: cfg.epochs, epochs: cfg.epochs, stepsDone: runsDone * stepsPerRun, stepsTotal, trainLoss: null, testAcc: null });
        continue;
      }
      if (signal?.aborted === true) throw interrupted();
      const firstRun = c * cfg.chunkSize;
      const R = Math.min(cfg.chunkSize, cfg.runs - firstRun);
      const ch = await trainChunk(
        { tf, cfg, chunk: c, chunks, runsBefore: runsDone, stepsBefore: results.reduce((a, x) => a + (x?.R ?? 0), 0) * stepsPerRun, stepsTotal, signal, progress: bar, onProgress: opts.onProgress, interrupted },
        firstRun,
        R,
      );
      writeChunk(chunkFile(partial, c), ch, fingerprint, config, created);
      results[c] = ch;
      trained++;
      runsDone += R;
      let accSum = 0;
      for (let k = 0; k < ch.testAcc.length; k++) if ((k + 1) % S === 0) accSum += ch.testAcc[k]!;
      opts.onProgress?.({ phase: 'chunk-done', chunk: c, chunks, runsDone, runs: cfg.runs, epoch: cfg.epochs, epochs: cfg.epochs, stepsDone: runsDone * stepsPerRun, stepsTotal, trainLoss: null, testAcc: accSum / R });
    }
  } catch (e) {
    bar.done();
    throw e;
  }

  // Merge the chunks in run order and write the zoo atomically.
  const n = cfg.runs * S;
  const weights = new Float32Array(n * P);
  const run = new Int32Array(n);
  const epoch = new Int32Array(n);
  const iter = new Int32Array(n);
  const testAcc = new Float32Array(n);
  const testLoss = new Float32Array(n);
  const init = new Float32Array(cfg.runs * P);
  for (const ch of results as ChunkResult[]) {
    const k0 = ch.firstRun * S;
    weights.set(ch.weights, k0 * P);
    epoch.set(ch.epoch, k0);
    iter.set(ch.iter, k0);
    testAcc.set(ch.testAcc, k0);
    testLoss.set(ch.testLoss, k0);
    init.set(ch.init, ch.firstRun * P);
    for (let r = 0; r < ch.R; r++) run.fill(ch.firstRun + r, k0 + r * S, k0 + (r + 1) * S);
  }
  const metadata: Record<string, string> = {
    task_spec: JSON.stringify(cfg.taskSpec),
    task_description: cfg.task.description,
    layout: 'flat: weights (in, out) layer by layer, then biases (METHOD.md §1.2)',
    runs: String(cfg.runs),
    optimizer: JSON.stringify(cfg.optimizer),
    init: JSON.stringify(cfg.init),
    schedule: JSON.stringify(scheduleRecord(cfg)),
    seed: String(cfg.seed),
    seeding: 'run r: init Rng(deriveSeed(seed, r, 0)); data order Rng(deriveSeed(seed, r, 1)).permutation(nTrain) each epoch; Rng = xoshiro128**',
    chunk_size: String(cfg.chunkSize),
    backend,
    created,
    wsflow_version: version,
    fingerprint,
    config,
  };
  const zoo = writeZoo(out, { arch: cfg.arch, task: cfg.task.name, weights, run, epoch, iter, testAcc, testLoss, init, metadata });
  fs.rmSync(partial, { recursive: true, force: true });
  let lastAcc = 0;
  for (let k = S - 1; k < n; k += S) lastAcc += testAcc[k]!;
  bar.done({ networks: n, 'last acc': lastAcc / cfg.runs });
  bar.log(`wrote ${n} networks to ${out}`, { file: out, networks: n, seconds: (performance.now() - t0) / 1000 });
  opts.onProgress?.({ phase: 'done', chunk: chunks - 1, chunks, runsDone: cfg.runs, runs: cfg.runs, epoch: cfg.epochs, epochs: cfg.epochs, stepsDone: stepsTotal, stepsTotal, trainLoss: null, testAcc: lastAcc / cfg.runs });
  return { file: out, zoo, backend, seconds: (performance.now() - t0) / 1000, chunksTrained: trained, chunksResumed: resumed, alreadyBuilt: false };
}
