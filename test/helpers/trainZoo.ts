// A tiny zoo trainer for tests and benches: Adam on each network's own shuffled mini-batches, using the library's
// analytic gradients (taskGradient) and BatchStream. Init N(0, initStd²) weights, zero biases (METHOD.md §1.1).
import type { Architecture } from '../../lib/arch/Architecture.js';
import { BatchStream, taskGradient } from '../../lib/eval/gradient.js';
import type { Task } from '../../lib/tasks/Task.js';
import { Rng } from '../../lib/util/rng.js';

export function trainZoo(
  task: Task,
  arch: Architecture,
  opts: { count: number; steps: number; batchSize?: number; lr?: number; initStd?: number; seed?: number; onStep?: (step: number, w: Float32Array) => void },
): Float32Array {
  const P = arch.numParams;
  const B = opts.count;
  const rng = new Rng(opts.seed ?? 0);
  const w = new Float32Array(B * P);
  for (let b = 0; b < B; b++) {
    const net = w.subarray(b * P, (b + 1) * P);
    rng.fillNormal(net.subarray(0, arch.numWeights), 0, opts.initStd ?? 0.1);
  }
  const stream = new BatchStream(task.train, opts.batchSize ?? 32, (opts.seed ?? 0) + 1);
  const lr = opts.lr ?? 3e-3;
  const m = new Float64Array(B * P);
  const v = new Float64Array(B * P);
  const grad = new Float32Array(B * P);
  for (let t = 1; t <= opts.steps; t++) {
    taskGradient(task, arch, w, stream.next(B), { out: grad });
    const c1 = 1 - 0.9 ** t;
    const c2 = 1 - 0.999 ** t;
    for (let k = 0; k < B * P; k++) {
      const g = grad[k]!;
      m[k] = 0.9 * m[k]! + 0.1 * g;
      v[k] = 0.999 * v[k]! + 0.001 * g * g;
      w[k]! -= (lr * (m[k]! / c1)) / (Math.sqrt(v[k]! / c2) + 1e-8);
    }
    opts.onStep?.(t, w);
  }
  return w;
}
