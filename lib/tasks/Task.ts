/**
 * A supervised classification task for base MLPs: fixed, documented splits of standardised features and integer
 * labels. Built-in tasks live beside this file (`loadTask('wdbc' | 'mnist' | 'fashion-mnist')`); users bring their
 * own with `customTask` or by implementing this interface.
 */

/** Feature z-scoring: statistics fitted on the train split, on every example before splitting, or none. */
export type StandardizeMode = 'train' | 'all' | 'none';

/**
 * A JSON-serialisable record of how a task was built, precise enough to rebuild it and to tell two builds apart.
 * Zoo files store it in their metadata (`task_spec`).
 */
export interface TaskSpec {
  /** Task name, as `Task.name`. */
  readonly name: string;
  /** Seed of the split permutation (`Rng(seed).permutation(n)`; for wdbc-reference scikit-learn's `random_state`), or null for splits given by the user. */
  readonly seed: number | null;
  /** Examples per split: train, val, test. */
  readonly sizes: readonly [number, number, number];
  /** Feature scaling: 'train' (z-score fitted on the train split), 'all' (fitted on every example), 'none'. */
  readonly standardize: StandardizeMode;
  /** A fixed normalisation applied instead of/before standardisation, e.g. '(x - 0.1307) / 0.3081'; null if none. */
  readonly normalization: string | null;
  /** The fitted z-score statistics (per feature, population std; a zero std is replaced by 1), or null. */
  readonly scaling: { readonly mean: readonly number[]; readonly std: readonly number[] } | null;
  /** Hex SHA-256 of the split data (train x, y, val x, y, test x, y as little-endian bytes, in that order). */
  readonly hash: string;
}

/** One split: `n` examples, features row-major in `x` (n × numFeatures), labels in `y` (0 … numClasses−1). */
export interface Split {
  readonly x: Float32Array;
  readonly y: Int32Array;
  readonly n: number;
}

/** A classification task. */
export interface Task {
  /** Short identifier, e.g. 'wdbc', 'mnist'. */
  readonly name: string;
  /** Input dimension (n_0 of the base MLP). */
  readonly numFeatures: number;
  /** Number of classes (n_L of the base MLP). */
  readonly numClasses: number;
  readonly train: Split;
  readonly val: Split;
  readonly test: Split;
  /** The thesis architecture for this task, e.g. [30, 16, 16, 2]. */
  readonly defaultArch: readonly number[];
  /** One line: source, licence, preprocessing and split. */
  readonly description: string;
  /** How the task was built (tasks from `loadTask` and `customTask` always have one). */
  readonly spec?: TaskSpec;
}
