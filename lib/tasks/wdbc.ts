/**
 * The WDBC task: Breast Cancer Wisconsin (Diagnostic), 569 examples × 30 features, 2 classes, shipped with the
 * package as `data/wdbc.csv` (scikit-learn's copy of the UCI data set, CC BY 4.0; see `data/README.md`).
 *
 * Labels are the CSV's: 0 = malignant (212), 1 = benign (357). (The thesis label-encoded UCI's Diagnosis column,
 * B = 0, M = 1, the opposite; accuracy and loss do not depend on the naming.) Default split: seeded 80/10/10 =
 * 455/57/57, seed 42; features standardised with statistics fitted on the train split (`standardize: 'all'`
 * reproduces the reference code, which fitted `StandardScaler` on all 569 examples before splitting).
 *
 * `wdbc-reference` ({@link loadWdbcReference}) is the same data split exactly as the published code split it:
 * scikit-learn's `train_test_split(…, test_size=0.2, random_state=42)`, then the 114 held-out rows 50/50 the same
 * way (val first, then test), with `StandardScaler` fitted on all 569 rows — the test set of the thesis' WDBC table.
 * (METHOD.md §9 gives the 80/10/10 sizes, the seed and the scaler; that it was two `train_test_split` calls with val
 * the first half is our reading of it.)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WsfError } from '../errors.js';
import { checkChoice, checkInt } from '../util/validate.js';
import { DEFAULT_SPLIT, DEFAULT_SPLIT_SEED, type SplitFractions, assembleTask, sklearnSplitData, splitData, splitSizes } from './customTask.js';
import type { StandardizeMode, Task } from './Task.js';

/** The shipped CSV: `<package>/data/wdbc.csv` (this file lives in `lib/tasks/` or `dist/tasks/`). */
export const WDBC_CSV = path.join(__dirname, '..', '..', 'data', 'wdbc.csv');

/** Raw WDBC: features (569 × 30, unscaled) and labels. */
export interface WdbcData {
  readonly x: Float32Array;
  readonly y: Int32Array;
  readonly numFeatures: number;
  /** Names of label 0 and label 1 from the header ('malignant', 'benign'). */
  readonly labelNames: readonly string[];
}

const rawCache = new Map<string, WdbcData>();

/**
 * Parses a scikit-learn style CSV: line 1 `n,features,name0,name1,…`, then n lines of `features` floats and an
 * integer label. Cached per file path per process; the returned arrays are shared, do not modify them.
 * @throws WsfError ERR_IO when the file is missing or malformed (names the line)
 */
export function readWdbc(file: string = WDBC_CSV): WdbcData {
  const hit = rawCache.get(file);
  if (hit !== undefined) return hit;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new WsfError(`cannot read the WDBC data ${file}: ${(e as Error).message}`, 'ERR_IO');
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const head = (lines[0] ?? '').trim().split(',');
  const n = Number(head[0]);
  const nf = Number(head[1]);
  const labelNames = head.slice(2);
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(nf) || nf < 1 || labelNames.length < 2) {
    throw new WsfError(`${file}: line 1 should be a scikit-learn header like '569,30,malignant,benign' but is '${lines[0] ?? ''}'`, 'ERR_IO');
  }
  if (lines.length - 1 !== n) throw new WsfError(`${file}: the header announces ${n} examples but the file has ${lines.length - 1} data lines`, 'ERR_IO');
  const x = new Float32Array(n * nf);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const f = lines[i + 1]!.trim().split(',');
    if (f.length !== nf + 1) throw new WsfError(`${file}: line ${i + 2} has ${f.length} fields, expected ${nf + 1} (${nf} features and a label)`, 'ERR_IO');
    for (let j = 0; j < nf; j++) {
      const v = Number(f[j]);
      if (f[j] === '' || !Number.isFinite(v)) throw new WsfError(`${file}: line ${i + 2}, field ${j + 1} is '${f[j]}', not a number`, 'ERR_IO');
      x[i * nf + j] = v;
    }
    const lab = Number(f[nf]);
    if (!Number.isInteger(lab) || lab < 0 || lab >= labelNames.length) {
      throw new WsfError(`${file}: line ${i + 2} has label '${f[nf]}', expected an integer in [0, ${labelNames.length})`, 'ERR_IO');
    }
    y[i] = lab;
  }
  const data: WdbcData = Object.freeze({ x, y, numFeatures: nf, labelNames: Object.freeze(labelNames) });
  rawCache.set(file, data);
  return data;
}

/** Options of {@link loadWdbc}. */
export interface WdbcOptions {
  /** Split seed. Default 42. */
  readonly seed?: number;
  /** Default 80/10/10 (455/57/57). */
  readonly split?: SplitFractions;
  /** Default 'train' ('all', the reference code's choice, with splitRule 'sklearn'). */
  readonly standardize?: StandardizeMode;
  /** Folder holding `wdbc.csv`. Default: the package's `data/`. */
  readonly dataDir?: string;
  /**
   * 'seeded' (default): our seeded permutation ({@link splitData}); 'sklearn': the published code's two
   * `train_test_split` calls (fixed 80/10/10, `split` refused), as {@link loadWdbcReference}.
   */
  readonly splitRule?: 'seeded' | 'sklearn';
}

/**
 * The WDBC task (see the module doc): 30 standardised features, labels 0 malignant / 1 benign, default
 * architecture [30, 16, 16, 2].
 * @throws WsfError ERR_IO (missing/malformed CSV), ERR_INVALID (bad seed, split or standardize)
 */
export function loadWdbc(opts: WdbcOptions = {}): Task {
  const rule = checkChoice('splitRule', opts.splitRule ?? 'seeded', ['seeded', 'sklearn'] as const);
  const seed = checkInt('seed', opts.seed ?? DEFAULT_SPLIT_SEED, rule === 'sklearn' ? 0 : -(2 ** 31), 2 ** 32 - 1);
  // Each rule's default scaling is its task's: 'train' for wdbc, the reference code's 'all' for wdbc-reference.
  const standardize = checkChoice('standardize', opts.standardize ?? (rule === 'sklearn' ? 'all' : 'train'), ['train', 'all', 'none'] as const);
  if (rule === 'sklearn' && opts.split !== undefined) {
    throw new WsfError("the 'sklearn' split rule is the published code's fixed 80/10/10 (train_test_split 0.2, then 0.5); it takes no split fractions", 'ERR_INVALID');
  }
  const raw = readWdbc(opts.dataDir === undefined ? WDBC_CSV : path.join(opts.dataDir, 'wdbc.csv'));
  const sizes = rule === 'sklearn' ? null : splitSizes(raw.y.length, opts.split ?? DEFAULT_SPLIT);
  const [train, val, test] = sizes === null ? sklearnSplitData(raw.x, raw.y, raw.numFeatures, seed) : splitData(raw.x, raw.y, raw.numFeatures, sizes, seed);
  const splitText =
    sizes === null
      ? `the published code's split ${train.y.length}/${val.y.length}/${test.y.length} (scikit-learn train_test_split 0.2 then 0.5, random_state ${seed})`
      : `seeded split ${sizes.join('/')} (train/val/test), seed ${seed}`;
  const name = rule === 'sklearn' ? 'wdbc-reference' : 'wdbc';
  const description =
    `${name}: Breast Cancer Wisconsin (Diagnostic), UCI via scikit-learn, CC BY 4.0; ${raw.numFeatures} features, ` +
    `labels 0 ${raw.labelNames[0]} / 1 ${raw.labelNames[1]}; ${splitText}; ` +
    `z-score fitted on ${standardize === 'train' ? 'the train split' : standardize === 'all' ? 'all examples' : 'nothing (raw features)'}`;
  return assembleTask(
    { name, numFeatures: raw.numFeatures, numClasses: raw.labelNames.length, train, val, test, seed, standardize, normalization: null, defaultArch: [raw.numFeatures, 16, 16, 2], description },
    raw.x,
  );
}

/**
 * The task `wdbc-reference`: WDBC split and scaled as the published code did (see the module doc) — seed 42,
 * 455/57/57, z-score fitted on all examples unless `standardize` says otherwise.
 * @throws WsfError as {@link loadWdbc}; ERR_INVALID when `split` is given
 */
export function loadWdbcReference(opts: Omit<WdbcOptions, 'splitRule'> = {}): Task {
  return loadWdbc({ ...opts, splitRule: 'sklearn' });
}
