/**
 * Tasks from user data, and the split/standardisation machinery the built-in tasks share.
 *
 * Split: `Rng(seed).permutation(n)` (xoshiro128**, see `lib/util/rng.ts`); the first `nTrain` indices form the
 * train split, the next `nVal` the validation split, the rest the test split, each in permutation order. Sizes
 * from fractions: `nVal = round(n·val)`, `nTest = round(n·test)`, `nTrain = n − nVal − nTest` (WDBC: 569 →
 * 455/57/57, like scikit-learn's `train_test_split` sizes; the permutation itself is not scikit-learn's).
 *
 * Standardisation (z-score per feature, computed in f64, population std, a zero std replaced by 1):
 * `'train'` fits mean/std on the train split only (default; no test statistics leak into training), `'all'`
 * fits them on every example before splitting (what the thesis' reference code did with `StandardScaler`),
 * `'none'` leaves features as they are.
 */
import { createHash } from 'node:crypto';
import { WsfError } from '../errors.js';
import { sklearnTrainTestSplit } from '../util/numpyRandom.js';
import { Rng } from '../util/rng.js';
import { checkChoice, checkInt, checkNumber, describe } from '../util/validate.js';
import type { Split, StandardizeMode, Task, TaskSpec } from './Task.js';

/** Fractions of the examples in each split; they must sum to 1. */
export interface SplitFractions {
  readonly train: number;
  readonly val: number;
  readonly test: number;
}

/** Seed of every built-in split unless overridden. */
export const DEFAULT_SPLIT_SEED = 42;
/** 80/10/10. */
export const DEFAULT_SPLIT: SplitFractions = Object.freeze({ train: 0.8, val: 0.1, test: 0.1 });

/** Labelled examples: `x` is n × numFeatures row-major, `y` holds n labels. */
export interface LabelledData {
  readonly x: Float32Array;
  readonly y: Int32Array;
}

/** Options of {@link customTask}. Give either `x` and `y` (split here) or `train` and `test` (and `val`). */
export interface CustomTaskOptions {
  /** Short identifier, e.g. 'iris'. */
  readonly name: string;
  /** Input dimension. */
  readonly numFeatures: number;
  /** Number of classes (≥ 2); labels are 0 … numClasses−1. */
  readonly numClasses: number;
  /** All features, n × numFeatures row-major. */
  readonly x?: Float32Array;
  /** All labels, length n. */
  readonly y?: Int32Array;
  /** Split fractions when `x`/`y` are given. Default 80/10/10 ({@link DEFAULT_SPLIT}). */
  readonly split?: SplitFractions;
  /** Split seed when `x`/`y` are given. Default {@link DEFAULT_SPLIT_SEED} (42). */
  readonly seed?: number;
  /** Splits given by the user instead of `x`/`y` (`val` may be omitted: an empty split). */
  readonly train?: LabelledData;
  readonly val?: LabelledData;
  readonly test?: LabelledData;
  /** Feature standardisation; `true` = 'train', `false` = 'none'. Default 'train'. */
  readonly standardize?: StandardizeMode | boolean;
  /** Default `[numFeatures, 16, 16, numClasses]`. */
  readonly defaultArch?: readonly number[];
  /** Default: a line with the name, sizes and preprocessing. */
  readonly description?: string;
}

/**
 * Split sizes [train, val, test] for `n` examples: `nVal = round(n·val)`, `nTest = round(n·test)`, the rest train.
 * @throws WsfError ERR_INVALID when fractions are negative, do not sum to 1, or leave an empty train or test split
 */
export function splitSizes(n: number, fractions: SplitFractions = DEFAULT_SPLIT): [number, number, number] {
  checkInt('n', n, 2);
  if (fractions === null || typeof fractions !== 'object') throw new WsfError(`Expected split fractions {train, val, test} but received ${describe(fractions)}`, 'ERR_INVALID');
  const tr = checkNumber('split.train', fractions.train, 0, 1);
  const va = checkNumber('split.val', fractions.val, 0, 1);
  const te = checkNumber('split.test', fractions.test, 0, 1);
  if (Math.abs(tr + va + te - 1) > 1e-9) {
    throw new WsfError(`Expected split fractions that sum to 1 but received train ${tr} + val ${va} + test ${te} = ${tr + va + te}`, 'ERR_INVALID');
  }
  const nVal = Math.round(n * va);
  const nTest = Math.round(n * te);
  const nTrain = n - nVal - nTest;
  if (nTrain < 1 || nTest < 1) {
    throw new WsfError(`Split fractions ${JSON.stringify(fractions)} of ${n} examples give ${nTrain}/${nVal}/${nTest} (train/val/test); train and test need at least one example each`, 'ERR_INVALID');
  }
  return [nTrain, nVal, nTest];
}

/** @internal Everything a built-in or custom task is assembled from. */
export interface TaskParts {
  name: string;
  numFeatures: number;
  numClasses: number;
  train: LabelledData;
  val: LabelledData;
  test: LabelledData;
  seed: number | null;
  standardize: StandardizeMode;
  normalization: string | null;
  defaultArch: readonly number[];
  description: string;
}

function gatherRows(x: Float32Array, y: Int32Array, nf: number, idx: Int32Array): LabelledData {
  const xo = new Float32Array(idx.length * nf);
  const yo = new Int32Array(idx.length);
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k]!;
    xo.set(x.subarray(i * nf, (i + 1) * nf), k * nf);
    yo[k] = y[i]!;
  }
  return { x: xo, y: yo };
}

/** @internal Seeded split of all examples into train/val/test (see the module doc). */
export function splitData(x: Float32Array, y: Int32Array, nf: number, sizes: readonly [number, number, number], seed: number): [LabelledData, LabelledData, LabelledData] {
  const n = y.length;
  const perm = new Rng(seed).permutation(n);
  const [a, b] = [sizes[0], sizes[0] + sizes[1]];
  return [gatherRows(x, y, nf, perm.subarray(0, a)), gatherRows(x, y, nf, perm.subarray(a, b)), gatherRows(x, y, nf, perm.subarray(b))];
}

/**
 * @internal The published code's split: scikit-learn's `train_test_split` twice with the same `random_state` —
 * 80 % train / 20 % held out, then the held-out rows 50/50 into val (the first part returned) and test — rebuilt
 * index for index by {@link sklearnTrainTestSplit}. For WDBC (569 rows, seed 42): 455/57/57.
 */
export function sklearnSplitData(x: Float32Array, y: Int32Array, nf: number, seed: number): [LabelledData, LabelledData, LabelledData] {
  const first = sklearnTrainTestSplit(y.length, 0.2, seed);
  const second = sklearnTrainTestSplit(first.test.length, 0.5, seed);
  const pick = (idx: Int32Array): Int32Array => idx.map((k) => first.test[k]!);
  return [gatherRows(x, y, nf, first.train), gatherRows(x, y, nf, pick(second.train)), gatherRows(x, y, nf, pick(second.test))];
}

/** Per-feature mean and population std (f64) over the rows of the given blocks; a zero std becomes 1. */
function fitScaler(blocks: readonly Float32Array[], nf: number): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(nf);
  const m2 = new Float64Array(nf);
  let n = 0;
  for (const x of blocks) {
    const rows = x.length / nf;
    for (let r = 0; r < rows; r++) for (let j = 0; j < nf; j++) mean[j]! += x[r * nf + j]!;
    n += rows;
  }
  for (let j = 0; j < nf; j++) mean[j]! /= n;
  for (const x of blocks) {
    const rows = x.length / nf;
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < nf; j++) {
        const d = x[r * nf + j]! - mean[j]!;
        m2[j]! += d * d;
      }
    }
  }
  const std = new Float64Array(nf);
  for (let j = 0; j < nf; j++) {
    const s = Math.sqrt(m2[j]! / n);
    std[j] = s > 0 ? s : 1;
  }
  return { mean, std };
}

function applyScaler(x: Float32Array, nf: number, mean: Float64Array, std: Float64Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const j = i % nf;
    out[i] = (x[i]! - mean[j]!) / std[j]!;
  }
  return out;
}

/** Hex SHA-256 over the split arrays (see {@link TaskSpec.hash}). */
export function taskDataHash(task: Pick<Task, 'train' | 'val' | 'test'>): string {
  const h = createHash('sha256');
  for (const s of [task.train, task.val, task.test]) {
    h.update(new Uint8Array(s.x.buffer, s.x.byteOffset, s.x.byteLength));
    h.update(new Uint8Array(s.y.buffer, s.y.byteOffset, s.y.byteLength));
  }
  return h.digest('hex');
}

function toSplit(d: LabelledData): Split {
  return Object.freeze({ x: d.x, y: d.y, n: d.y.length });
}

/** @internal Applies standardisation and assembles a frozen Task with its spec. */
export function assembleTask(p: TaskParts, allX?: Float32Array): Task {
  let { train, val, test } = p;
  let scaling: TaskSpec['scaling'] = null;
  if (p.standardize !== 'none') {
    const fitOn = p.standardize === 'train' ? [train.x] : allX !== undefined ? [allX] : [train.x, val.x, test.x];
    const { mean, std } = fitScaler(fitOn, p.numFeatures);
    train = { x: applyScaler(train.x, p.numFeatures, mean, std), y: train.y };
    val = { x: applyScaler(val.x, p.numFeatures, mean, std), y: val.y };
    test = { x: applyScaler(test.x, p.numFeatures, mean, std), y: test.y };
    scaling = { mean: Object.freeze(Array.from(mean)), std: Object.freeze(Array.from(std)) };
  }
  const splits = { train: toSplit(train), val: toSplit(val), test: toSplit(test) };
  const spec: TaskSpec = Object.freeze({
    name: p.name,
    seed: p.seed,
    sizes: Object.freeze([splits.train.n, splits.val.n, splits.test.n] as [number, number, number]),
    standardize: p.standardize,
    normalization: p.normalization,
    scaling,
    hash: taskDataHash(splits),
  });
  return Object.freeze({
    name: p.name,
    numFeatures: p.numFeatures,
    numClasses: p.numClasses,
    ...splits,
    defaultArch: Object.freeze([...p.defaultArch]),
    description: p.description,
    spec,
  });
}

/** @internal Validates labelled data against the declared sizes. */
export function checkLabelled(name: string, d: unknown, nf: number, nc: number, allowEmpty = false): LabelledData {
  if (d === null || typeof d !== 'object') throw new WsfError(`Expected {x: Float32Array, y: Int32Array} for \`${name}\` but received ${describe(d)}`, 'ERR_INVALID');
  const { x, y } = d as { x?: unknown; y?: unknown };
  if (!(y instanceof Int32Array)) throw new WsfError(`Expected Int32Array of labels for \`${name}.y\` but received ${describe(y)}`, 'ERR_DTYPE');
  if (!(x instanceof Float32Array)) throw new WsfError(`Expected Float32Array of length n·numFeatures for \`${name}.x\` but received ${describe(x)}`, 'ERR_DTYPE');
  if (!allowEmpty && y.length === 0) throw new WsfError(`Expected at least one example in \`${name}\` but received none`, 'ERR_SHAPE');
  if (x.length !== y.length * nf) {
    throw new WsfError(`Expected Float32Array of length ${y.length}·${nf} = ${y.length * nf} for \`${name}.x\` (${y.length} labels, ${nf} features) but received length ${x.length}`, 'ERR_SHAPE');
  }
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i]!)) throw new WsfError(`Expected finite features in \`${name}.x\` but example ${Math.floor(i / nf)}, feature ${i % nf} is ${x[i]}`, 'ERR_NUMERIC');
  }
  for (let i = 0; i < y.length; i++) {
    const v = y[i]!;
    if (v < 0 || v >= nc) throw new WsfError(`Expected labels in [0, ${nc}) in \`${name}.y\` but label ${i} is ${v}`, 'ERR_INVALID');
  }
  return { x, y };
}

function normalizeStandardize(v: unknown): StandardizeMode {
  if (v === undefined || v === true) return 'train';
  if (v === false) return 'none';
  return checkChoice('standardize', v, ['train', 'all', 'none'] as const);
}

/** @internal Validates a `defaultArch`/`arch` against a task's feature and class counts. */
export function checkTaskArch(name: string, arch: unknown, nf: number, nc: number): readonly number[] {
  if (!Array.isArray(arch) || arch.length < 2 || !arch.every((w) => Number.isInteger(w) && (w as number) >= 1)) {
    throw new WsfError(`Expected \`${name}\` to be widths like [${nf}, 16, 16, ${nc}] but received ${JSON.stringify(arch)}`, 'ERR_INVALID');
  }
  if (arch[0] !== nf || arch[arch.length - 1] !== nc) {
    throw new WsfError(`Expected \`${name}\` to start with ${nf} inputs and end with ${nc} classes but received [${arch.join(', ')}]`, 'ERR_INVALID');
  }
  return arch as number[];
}

/**
 * A task from your own data: either all examples (`x`, `y`), split here with a seeded permutation, or ready-made
 * `train`/`val`/`test` splits. Features are standardised as chosen (default: fitted on the train split). Inputs
 * are copied, never modified.
 * @example customTask({ name: 'xor', numFeatures: 2, numClasses: 2, x, y, split: { train: 0.6, val: 0.2, test: 0.2 } })
 * @throws WsfError ERR_INVALID (bad name, counts, fractions, labels out of range, both or neither of x/y and
 *   train/test), ERR_DTYPE (x not Float32Array, y not Int32Array), ERR_SHAPE (x length ≠ n·numFeatures),
 *   ERR_NUMERIC (non-finite features)
 */
export function customTask(opts: CustomTaskOptions): Task {
  if (opts === null || typeof opts !== 'object') throw new WsfError(`Expected an options object for customTask but received ${describe(opts)}`, 'ERR_INVALID');
  const name = opts.name;
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new WsfError(`Expected \`name\` to be 1–64 characters of letters, digits, '.', '_' or '-' but received ${describe(name)}`, 'ERR_INVALID');
  }
  const nf = checkInt('numFeatures', opts.numFeatures, 1, 10_000_000);
  const nc = checkInt('numClasses', opts.numClasses, 2, 1_000_000);
  const standardize = normalizeStandardize(opts.standardize);
  const defaultArch = checkTaskArch('defaultArch', opts.defaultArch ?? [nf, 16, 16, nc], nf, nc);
  const given = opts.train !== undefined || opts.test !== undefined || opts.val !== undefined;
  const whole = opts.x !== undefined || opts.y !== undefined;
  if (given === whole) {
    throw new WsfError('Expected either `x` and `y` (to be split) or `train` and `test` (and optionally `val`), not both or neither', 'ERR_INVALID');
  }
  let train: LabelledData;
  let val: LabelledData;
  let test: LabelledData;
  let seed: number | null = null;
  let allX: Float32Array | undefined;
  if (whole) {
    const all = checkLabelled('x/y', { x: opts.x, y: opts.y }, nf, nc);
    seed = checkInt('seed', opts.seed ?? DEFAULT_SPLIT_SEED, -(2 ** 31), 2 ** 32 - 1);
    const sizes = splitSizes(all.y.length, opts.split ?? DEFAULT_SPLIT);
    [train, val, test] = splitData(all.x, all.y, nf, sizes, seed);
    allX = all.x;
  } else {
    if (opts.split !== undefined || opts.seed !== undefined) throw new WsfError('`split` and `seed` apply only to `x`/`y`; the given splits are used as they are', 'ERR_INVALID');
    train = checkLabelled('train', opts.train, nf, nc);
    test = checkLabelled('test', opts.test, nf, nc);
    val = opts.val === undefined ? { x: new Float32Array(0), y: new Int32Array(0) } : checkLabelled('val', opts.val, nf, nc, true);
    train = { x: train.x.slice(), y: train.y.slice() };
    val = { x: val.x.slice(), y: val.y.slice() };
    test = { x: test.x.slice(), y: test.y.slice() };
  }
  const sizes = `${train.y.length}/${val.y.length}/${test.y.length}`;
  const description =
    opts.description ??
    `${name}: user data, ${nf} features, ${nc} classes; split ${sizes} (train/val/test)${seed === null ? ' as given' : `, seed ${seed}`}; standardisation '${standardize}'`;
  return assembleTask({ name, numFeatures: nf, numClasses: nc, train, val, test, seed, standardize, normalization: null, defaultArch, description }, allX);
}
