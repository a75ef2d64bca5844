/**
 * A supervised classification task for base MLPs: fixed, documented splits of standardised features and integer
 * labels. Built-in tasks live beside this file; users bring their own by implementing this interface (or with
 * `customTask`, once available).
 */

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
}
