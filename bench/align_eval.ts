// Timing of alignment and evaluation at thesis zoo sizes (issue #5). Run:
//   npx tsc -p tsconfig.json --noEmit false --outDir /tmp/wsf-bench && node /tmp/wsf-bench/bench/align_eval.js [section…]
// sections: align-wdbc align-mnist eval-wdbc eval-mnist bma diversity nn grad barrier (default: all)
// Prints one JSON object per measurement. Synthetic data stand in for WDBC/MNIST (same shapes and sparsity).
import { mlp } from '../lib/arch/Architecture.js';
import { alignNetworks } from '../lib/align/weightMatching.js';
import { lossBarriers } from '../lib/eval/barriers.js';
import { nearestNeighbourDistances } from '../lib/eval/baselines.js';
import { bmaCurve } from '../lib/eval/bma.js';
import { functionalDiversity } from '../lib/eval/diversity.js';
import { evaluateNetworks } from '../lib/eval/evaluate.js';
import { taskGradient } from '../lib/eval/gradient.js';
import type { Task } from '../lib/tasks/Task.js';
import { Rng } from '../lib/util/rng.js';
import { teacherTask } from '../test/helpers/syntheticTask.js';
import { trainZoo } from '../test/helpers/trainZoo.js';

function report(o: Record<string, unknown>): void {
  console.log(JSON.stringify(o));
}

/** MNIST-shaped task: 784 features, ~81 % at the standardised background −0.4242, 10 classes. */
function mnistLike(nTest: number): Task {
  const rng = new Rng(1);
  const make = (n: number) => {
    const x = new Float32Array(n * 784).fill(-0.4242);
    const y = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      y[r] = rng.int(10);
      for (let i = 0; i < 784; i++) if (rng.uniform() < 0.19) x[r * 784 + i] = Math.fround(-0.4242 + 3.2 * rng.uniform());
    }
    return { x, y, n };
  };
  const s = make(nTest);
  return { name: 'mnist-like', numFeatures: 784, numClasses: 10, train: s, val: s, test: s, defaultArch: [784, 10, 10], description: 'bench' };
}

/** A WDBC-shaped zoo of trajectory checkpoints: `runs` Adam runs, `perRun` snapshots each. */
function wdbcZoo(runs: number, perRun: number): { task: Task; w: Float32Array } {
  const task = teacherTask({ classes: 2, n: [455, 57, 57] });
  const arch = mlp([30, 16, 16, 2]);
  const P = arch.numParams;
  const w = new Float32Array(runs * perRun * P);
  const every = 5;
  const skip = 80;
  trainZoo(task, arch, {
    count: runs,
    steps: skip + perRun * every,
    lr: 1e-3,
    seed: 3,
    onStep: (t, cur) => {
      if (t <= skip || (t - skip) % every !== 0) return;
      const k = (t - skip) / every - 1;
      for (let r = 0; r < runs; r++) w.set(cur.subarray(r * P, (r + 1) * P), (r * perRun + k) * P);
    },
  });
  return { task, w };
}

async function main(): Promise<void> {
  const want = new Set(process.argv.slice(2));
  const on = (s: string) => want.size === 0 || want.has(s);
  const wdbc = mlp([30, 16, 16, 2]);
  const mnist = mlp([784, 10, 10]);
  let zoo: { task: Task; w: Float32Array } | undefined;
  const getZoo = () => (zoo ??= (() => {
    const t0 = performance.now();
    const z = wdbcZoo(100, 80);
    report({ what: 'train WDBC-shaped zoo (100 runs × 80 checkpoints)', s: (performance.now() - t0) / 1000 });
    return z;
  })());

  if (on('align-wdbc')) {
    const { w } = getZoo();
    const r = alignNetworks(wdbc, w);
    report({ what: 'align 8000 × 30-16-16-2 (trajectory zoo)', s: r.ms / 1000, meanIterations: r.iterations.reduce((a, b) => a + b, 0) / r.iterations.length, converged: r.converged, distBefore: r.distanceBefore.mean, distAfter: r.distanceAfter.mean });
    const rnd = new Rng(2).fillNormal(new Float32Array(8000 * wdbc.numParams), 0, 0.3);
    const q = alignNetworks(wdbc, rnd);
    report({ what: 'align 8000 × 30-16-16-2 (iid Gaussian, harder)', s: q.ms / 1000, meanIterations: q.iterations.reduce((a, b) => a + b, 0) / q.iterations.length, converged: q.converged, distBefore: q.distanceBefore.mean, distAfter: q.distanceAfter.mean });
  }
  if (on('align-mnist')) {
    const rnd = new Rng(4).fillNormal(new Float32Array(13000 * mnist.numParams), 0, 0.1);
    const r = alignNetworks(mnist, rnd);
    report({ what: 'align 13000 × 784-10-10 (iid N(0, 0.1²))', s: r.ms / 1000, converged: r.converged, distBefore: r.distanceBefore.mean, distAfter: r.distanceAfter.mean });
  }
  if (on('eval-wdbc')) {
    const { task, w } = getZoo();
    const r = await evaluateNetworks(task, wdbc, w);
    report({ what: 'evaluate 8000 × 30-16-16-2 on 57 test rows', s: r.ms / 1000, netsPerS: 8000 / (r.ms / 1000), acc: r.accuracySummary.mean, loss: r.lossSummary.mean });
  }
  if (on('eval-mnist')) {
    const task = mnistLike(5000);
    const B = 256;
    const w = new Rng(5).fillNormal(new Float32Array(B * mnist.numParams), 0, 0.1);
    const r = await evaluateNetworks(task, mnist, w);
    report({ what: `evaluate ${B} × 784-10-10 on 5000 MNIST-shaped rows`, s: r.ms / 1000, netsPerS: B / (r.ms / 1000) });
  }
  if (on('bma')) {
    const task = mnistLike(5000);
    const w = new Rng(6).fillNormal(new Float32Array(64 * mnist.numParams), 0, 0.1);
    const r = await bmaCurve(task, mnist, w, { repeats: 10 });
    report({ what: 'bmaCurve 64 × 784-10-10, ns 1…64, 10 repeats, 5000 rows', s: r.ms / 1000 });
  }
  if (on('diversity')) {
    const task = mnistLike(1000);
    const w = new Rng(7).fillNormal(new Float32Array(32 * mnist.numParams), 0, 0.1);
    const r = await functionalDiversity(task, mnist, w, { numInputs: 1000, maxPairs: 496 });
    report({ what: 'functionalDiversity 32 × 784-10-10, K=1000, all 496 pairs', s: r.ms / 1000, diversity: r.diversity });
  }
  if (on('nn')) {
    const { w } = getZoo();
    const samples = new Rng(8).fillNormal(new Float32Array(1000 * wdbc.numParams), 0, 0.3);
    const r = nearestNeighbourDistances(wdbc, samples, w);
    report({ what: 'nearestNeighbourDistances 1000 samples vs 8000 × 30-16-16-2 (+500 LOO queries)', s: r.ms / 1000, ratio: r.ratio });
    const mw = new Rng(9).fillNormal(new Float32Array(13000 * mnist.numParams), 0, 0.1);
    const ms = new Rng(10).fillNormal(new Float32Array(64 * mnist.numParams), 0, 0.1);
    const q = nearestNeighbourDistances(mnist, ms, mw, { looQueries: 64 });
    report({ what: 'nearestNeighbourDistances 64 samples vs 13000 × 784-10-10 (+64 LOO queries)', s: q.ms / 1000 });
  }
  if (on('grad')) {
    for (const [arch, B, m] of [[wdbc, 32, 64], [mnist, 8, 64], [mnist, 64, 64]] as const) {
      const rng = new Rng(12);
      const d = arch.widths[0]!;
      const C = arch.widths[arch.numLayers]!;
      const w = rng.fillNormal(new Float32Array(B * arch.numParams), 0, 0.1);
      const x = rng.fillNormal(new Float32Array(B * m * d));
      const y = new Int32Array(B * m).map(() => rng.int(C));
      const task = { name: 'g', numFeatures: d, numClasses: C } as Task;
      const batch = { x, y, n: B * m, rowsPerNetwork: m };
      const out = new Float32Array(B * arch.numParams);
      taskGradient(task, arch, w, batch, { out });
      const t0 = performance.now();
      let reps = 0;
      while (performance.now() - t0 < 2000) {
        taskGradient(task, arch, w, batch, { out });
        reps++;
      }
      report({ what: `taskGradient ${arch.key}, B=${B} × ${m} rows`, msPerCall: (performance.now() - t0) / reps });
    }
  }
  if (on('barrier')) {
    const task = teacherTask({ n: [1000, 100, 400] });
    const arch = mlp([30, 16, 16, 3]);
    const w = trainZoo(task, arch, { count: 32, steps: 400, lr: 1e-3, seed: 11 });
    const ev = await evaluateNetworks(task, arch, w);
    const before = await lossBarriers(task, arch, w, { pairs: 496 });
    const al = alignNetworks(arch, w);
    const after = await lossBarriers(task, arch, al.aligned, { pairs: 496 });
    report({ what: 'loss barriers, 32 × 30-16-16-3 Adam(1e-3, 400 steps) on the teacher task, all 496 pairs', acc: ev.accuracySummary.mean, loss: ev.lossSummary.mean, before: [before.mean, before.std], after: [after.mean, after.std] });
  }
}
void main();
