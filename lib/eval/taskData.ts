/** Resolving and validating a task split against a base architecture (shared by the evaluation functions). */
import type { Architecture } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import type { Split, Task } from '../tasks/Task.js';
import { checkChoice, invalidArgument } from '../util/validate.js';

/** Which split of a task to use. */
export type SplitName = 'train' | 'val' | 'test';

const SPLITS: readonly SplitName[] = ['train', 'val', 'test'];
/** Splits already checked, with the (d, C) they were checked for. */
const checked = new WeakMap<Split, string>();

/**
 * Checks that `task` fits `arch` (inputs n_0 = numFeatures, outputs n_L = numClasses) and that the split's arrays
 * have consistent shapes and labels in 0…C−1 (checked once per split object). Returns the split.
 * @throws WsfError ERR_INVALID / ERR_SHAPE / ERR_DTYPE naming what was expected
 */
export function resolveSplit(task: Task, arch: Architecture, split: unknown = 'test'): Split {
  if (task === null || typeof task !== 'object') throw invalidArgument('task', 'a Task (see lib/tasks/Task.ts)', task);
  const name = checkChoice('split', split, SPLITS);
  const d = arch.widths[0]!;
  const C = arch.widths[arch.numLayers]!;
  if (task.numFeatures !== d || task.numClasses !== C) {
    throw new WsfError(
      `Expected a task with ${d} features and ${C} classes for architecture ${arch.key} but task '${task.name}' has ${task.numFeatures} features and ${task.numClasses} classes`,
      'ERR_SHAPE',
    );
  }
  const s = task[name];
  checkSplit(`${task.name}.${name}`, s, d, C);
  return s;
}

/**
 * Checks one split (x: Float32Array n×d, y: Int32Array n with labels in 0…C−1, n ≥ 1).
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_INVALID
 */
export function checkSplit(name: string, s: Split, d: number, C: number): void {
  const key = `${d}/${C}`;
  if (checked.get(s) === key) return;
  if (s === null || typeof s !== 'object') throw invalidArgument(name, 'a split {x, y, n}', s);
  if (!Number.isInteger(s.n) || s.n < 1) throw invalidArgument(`${name}.n`, 'a positive integer', s.n);
  if (!(s.x instanceof Float32Array)) throw invalidArgument(`${name}.x`, `Float32Array of length n·d = ${s.n}·${d}`, s.x, 'ERR_DTYPE');
  if (s.x.length !== s.n * d) throw invalidArgument(`${name}.x`, `Float32Array of length n·d = ${s.n * d}`, s.x, 'ERR_SHAPE');
  if (!(s.y instanceof Int32Array)) throw invalidArgument(`${name}.y`, `Int32Array of length n = ${s.n}`, s.y, 'ERR_DTYPE');
  if (s.y.length !== s.n) throw invalidArgument(`${name}.y`, `Int32Array of length n = ${s.n}`, s.y, 'ERR_SHAPE');
  for (let r = 0; r < s.n; r++) {
    const c = s.y[r]!;
    if (c < 0 || c >= C) throw new WsfError(`Expected labels in 0…${C - 1} in \`${name}.y\` but example ${r} has label ${c}`, 'ERR_INVALID');
  }
  for (let k = 0; k < s.x.length; k++) {
    if (!Number.isFinite(s.x[k]!)) throw new WsfError(`Expected finite features in \`${name}.x\` but example ${Math.floor(k / d)}, feature ${k % d} is ${s.x[k]}`, 'ERR_NUMERIC');
  }
  checked.set(s, key);
}
