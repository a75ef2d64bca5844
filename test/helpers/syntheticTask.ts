// Synthetic classification tasks implementing the Task interface, for tests (no downloads).
import type { Split, Task } from '../../lib/tasks/Task.js';
import { Rng } from '../../lib/util/rng.js';

function standardise(splits: { x: Float32Array; n: number }[], d: number): void {
  // Standardise every split with the train split's per-feature mean/std (first entry).
  const tr = splits[0]!;
  const mean = new Float64Array(d);
  const sd = new Float64Array(d);
  for (let r = 0; r < tr.n; r++) for (let i = 0; i < d; i++) mean[i]! += tr.x[r * d + i]! / tr.n;
  for (let r = 0; r < tr.n; r++) for (let i = 0; i < d; i++) sd[i]! += (tr.x[r * d + i]! - mean[i]!) ** 2 / tr.n;
  for (const s of splits) for (let r = 0; r < s.n; r++) for (let i = 0; i < d; i++) s.x[r * d + i] = (s.x[r * d + i]! - mean[i]!) / Math.sqrt(sd[i]! + 1e-12);
}

/** Gaussian blobs: class means N(0, sep²·I), unit isotropic noise, standardised. */
export function blobsTask(opts: { d?: number; classes?: number; n?: [number, number, number]; sep?: number; seed?: number } = {}): Task {
  const d = opts.d ?? 30;
  const C = opts.classes ?? 3;
  const [ntr, nva, nte] = opts.n ?? [200, 60, 60];
  const rng = new Rng(opts.seed ?? 1);
  const means = rng.fillNormal(new Float64Array(C * d), 0, opts.sep ?? 1);
  const make = (n: number): Split => {
    const x = new Float32Array(n * d);
    const y = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      const c = rng.int(C);
      y[r] = c;
      for (let i = 0; i < d; i++) x[r * d + i] = means[c * d + i]! + rng.normal();
    }
    return { x, y, n };
  };
  const train = make(ntr);
  const val = make(nva);
  const test = make(nte);
  standardise([train, val, test], d);
  return { name: 'blobs', numFeatures: d, numClasses: C, train, val, test, defaultArch: [d, 16, 16, C], description: 'synthetic Gaussian blobs (tests)' };
}

/**
 * A teacher task: x ~ N(0, I_d), label = argmax of a random ReLU teacher d-h-C (weights N(0, 1/fan_in)).
 * Nonlinear, so independently trained students land in different basins (useful for loss barriers).
 */
export function teacherTask(opts: { d?: number; classes?: number; hidden?: number; n?: [number, number, number]; seed?: number } = {}): Task {
  const d = opts.d ?? 30;
  const C = opts.classes ?? 3;
  const h = opts.hidden ?? 32;
  const [ntr, nva, nte] = opts.n ?? [1000, 200, 500];
  const rng = new Rng(opts.seed ?? 7);
  const W1 = rng.fillNormal(new Float64Array(d * h), 0, 1 / Math.sqrt(d));
  const W2 = rng.fillNormal(new Float64Array(h * C), 0, 1 / Math.sqrt(h));
  const make = (n: number): Split => {
    const x = new Float32Array(n * d);
    const y = new Int32Array(n);
    const hid = new Float64Array(h);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < d; i++) x[r * d + i] = rng.normal();
      for (let j = 0; j < h; j++) {
        let s = 0;
        for (let i = 0; i < d; i++) s += x[r * d + i]! * W1[i * h + j]!;
        hid[j] = Math.max(0, s);
      }
      let best = 0;
      let bestV = -Infinity;
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let j = 0; j < h; j++) s += hid[j]! * W2[j * C + c]!;
        if (s > bestV) {
          bestV = s;
          best = c;
        }
      }
      y[r] = best;
    }
    return { x, y, n };
  };
  return { name: 'teacher', numFeatures: d, numClasses: C, train: make(ntr), val: make(nva), test: make(nte), defaultArch: [d, 16, 16, C], description: 'synthetic teacher-labelled Gaussian inputs (tests)' };
}
