// trainFromWeights: base-network training from given initial weights (learned initialisation, METHOD.md §11.3).
// References: buildZoo's checkpoints — a consistency check only, since trainFromWeights reuses buildZoo's BatchedMlp,
// FlatOptimizer, gatherBatch and deriveSeed — and, independent of that code, a plain f64 forward/backward + Adam
// loop written here (its gradient checked by central finite differences) and the f64 MLP loss reference.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type Architecture, buildZoo, loadTask, mlp, zooRunOrder } from '../../lib/index.js';
import { trainFromWeights } from '../../lib/zoo/trainFromWeights.js';
import type { WsfError } from '../../lib/index.js';
import { fdGradient } from '../helpers/gradcheck.js';
import { lossAccF64 } from '../helpers/mlpRef.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-tfw-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * Mean cross-entropy of one network (flat layout, W_l[j,i] at weightIndex(l, i, j)) over the given rows, and its
 * gradient by plain backpropagation in f64: ReLU hidden layers, δ_L = (softmax(z_L) − onehot(y))/m.
 */
function lossGradF64(arch: Architecture, w: Float64Array, x: Float32Array, y: Int32Array, rows: ArrayLike<number>, grad: Float64Array): number {
  const L = arch.numLayers;
  const m = rows.length;
  grad.fill(0);
  let loss = 0;
  for (const r of Array.from(rows)) {
    const acts: Float64Array[] = [Float64Array.from(x.subarray(r * arch.widths[0]!, (r + 1) * arch.widths[0]!))];
    for (let l = 1; l <= L; l++) {
      const a = new Float64Array(arch.widths[l]!);
      for (let j = 0; j < a.length; j++) {
        let z = w[arch.biasIndex(l, j)]!;
        for (let i = 0; i < arch.widths[l - 1]!; i++) z += w[arch.weightIndex(l, i, j)]! * acts[l - 1]![i]!;
        a[j] = l < L ? Math.max(0, z) : z;
      }
      acts.push(a);
    }
    const z = acts[L]!;
    const mx = Math.max(...z);
    const se = z.reduce((s, v) => s + Math.exp(v - mx), 0);
    loss += Math.log(se) + mx - z[y[r]!]!;
    let delta = z.map((v, c) => (Math.exp(v - mx) / se - (c === y[r] ? 1 : 0)) / m);
    for (let l = L; l >= 1; l--) {
      const prev = acts[l - 1]!;
      const back = new Float64Array(prev.length);
      for (let j = 0; j < delta.length; j++) {
        grad[arch.biasIndex(l, j)]! += delta[j]!;
        for (let i = 0; i < prev.length; i++) {
          grad[arch.weightIndex(l, i, j)]! += delta[j]! * prev[i]!;
          back[i]! += delta[j]! * w[arch.weightIndex(l, i, j)]!;
        }
      }
      if (l > 1) delta = back.map((v, i) => (prev[i]! > 0 ? v : 0));
    }
  }
  return loss / m;
}

describe('trainFromWeights', () => {
  const task = loadTask('wdbc');
  const arch = mlp(task.defaultArch);
  const P = arch.numParams;

  it("follows buildZoo's trajectory from the zoo's init (same seed): weights after k steps = checkpoint k, bit for bit", async () => {
    // 2 runs, 3 epochs of 8 steps (455 examples, batch 64), Adam 1e-3; checkpoints in epochs 1–2 at steps 0 and 4.
    const { zoo } = await buildZoo({ task, runs: 2, epochs: 3, chunkSize: 2, schedule: { skipEpochs: 1, everyIters: 4 }, seed: 11, out: path.join(tmp, 'z.safetensors'), progress: false });
    const S = zoo.n / 2;
    const ks = [1, S - 1]; // an early and the last checkpoint of each run
    const iters = ks.map((k) => zoo.iter[k]!);
    expect(iters[0]).toBeGreaterThan(0);
    const r = await trainFromWeights(task, arch, zoo.init!, { steps: iters[1]!, seed: 11, batchSize: 64, optimizer: { name: 'adam', lr: 1e-3 }, evalAt: [0, ...iters] });
    expect(r.evalAt).toEqual([0, ...iters]);
    for (let run = 0; run < 2; run++) {
      // Final weights: the zoo's last checkpoint holds the weights after exactly iters[1] updates.
      expect(Array.from(r.weights.subarray(run * P, (run + 1) * P))).toEqual(Array.from(zoo.weights.subarray((run * S + ks[1]!) * P, (run * S + ks[1]! + 1) * P)));
      // Curves: the loss at each checkpoint step matches the zoo's record (TF.js f32 logits vs f64 evaluation).
      for (const [j, k] of ks.entries()) expect(r.loss[run * 3 + 1 + j]!).toBeCloseTo(zoo.testLoss[run * S + k]!, 5);
    }
  });

  // Two hand-made initialisations: uniform weights (std ≈ 0.1) and the same scaled by 3, zero biases.
  const handMadeInit = (): Float32Array => {
    const init = new Float32Array(2 * P);
    let s = 12345;
    const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    for (let i = 0; i < arch.numWeights; i++) init[i] = 0.17 * rnd();
    for (let i = 0; i < arch.numWeights; i++) init[P + i] = 3 * init[i]!;
    return init;
  };

  it('equals a plain f64 backprop + Adam loop over the first steps from a hand-made init', async () => {
    const init = handMadeInit();
    const steps = 3;
    const [lr, b1, b2, eps, bs, seed] = [3e-3, 0.9, 0.999, 1e-8, 64, 3];
    const r = await trainFromWeights(task, arch, init, { steps, seed, batchSize: bs, optimizer: { name: 'adam', lr } });
    const { x, y, n } = task.train;
    for (let run = 0; run < 2; run++) {
      const order = zooRunOrder(seed, run, 1, n)[0]!; // the documented data order: run r's first-epoch permutation
      const theta = Float64Array.from(init.subarray(run * P, (run + 1) * P));
      const mom = new Float64Array(P);
      const vel = new Float64Array(P);
      const g = new Float64Array(P);
      for (let t = 1; t <= steps; t++) {
        const rows = order.subarray((t - 1) * bs, t * bs);
        lossGradF64(arch, theta, x, y, rows, g);
        if (run === 0 && t === 1) {
          // The reference's gradient against central finite differences of the f64 loss helper, on 60 coordinates.
          const coords = Array.from({ length: 60 }, (_, k) => Math.floor((k * P) / 60));
          const xb = new Float32Array(bs * 30);
          const yb = new Int32Array(bs);
          rows.forEach((i, k) => (xb.set(x.subarray(i * 30, i * 30 + 30), k * 30), (yb[k] = y[i]!)));
          const fd = fdGradient((wv) => lossAccF64(arch, wv, xb, yb, bs).loss, theta, coords);
          expect(coords.map((c) => g[c]!)).toAllClose(coords.map((c) => fd[c]!), { atol: 1e-8, rtol: 1e-6 });
        }
        for (let p = 0; p < P; p++) {
          mom[p] = b1 * mom[p]! + (1 - b1) * g[p]!;
          vel[p] = b2 * vel[p]! + (1 - b2) * g[p]! ** 2;
          theta[p]! -= (lr * (mom[p]! / (1 - b1 ** t))) / (Math.sqrt(vel[p]! / (1 - b2 ** t)) + eps);
        }
      }
      const got = r.weights.subarray(run * P, (run + 1) * P);
      // Each step moves most coordinates by ≈ lr = 3e-3; TF.js f32 gradients and f32 storage: measured max |diff| 6e-8.
      expect(got).toAllClose(theta, { atol: 5e-7, rtol: 1e-6 });
      let moved = 0;
      for (let p = 0; p < P; p++) moved = Math.max(moved, Math.abs(theta[p]! - init[run * P + p]!));
      expect(moved).toBeGreaterThan(2 * lr); // the comparison is not of the initial weights with themselves
    }
  });

  it("starts exactly at the initial weights' accuracy and loss (f64 reference), and the loss falls", async () => {
    const init = handMadeInit();
    const before = init.slice();
    const r = await trainFromWeights(task, arch, init, { steps: 40, evalAt: [0, 20, 40], seed: 3, optimizer: { name: 'adam', lr: 3e-3 } });
    expect(Array.from(init)).toEqual(Array.from(before)); // not modified
    for (let run = 0; run < 2; run++) {
      const ref = lossAccF64(arch, init, task.test.x, task.test.y, task.test.n, run);
      expect(r.accuracy[run * 3]).toBe(ref.acc);
      expect(r.loss[run * 3]!).toBeCloseTo(ref.loss, 6); // f32 logits vs f64 reference
      expect(r.loss[run * 3 + 1]!).toBeLessThan(r.loss[run * 3]!);
      expect(r.loss[run * 3 + 2]!).toBeLessThan(0.6 * r.loss[run * 3]!);
      expect(r.accuracy[run * 3 + 2]!).toBeGreaterThan(0.9);
      const fin = lossAccF64(arch, r.weights, task.test.x, task.test.y, task.test.n, run);
      expect(r.loss[run * 3 + 2]!).toBeCloseTo(fin.loss, 6);
    }
    expect(r.trainLoss.every(Number.isFinite)).toBe(true);
    expect(r.optimizer).toMatchObject({ name: 'adam', lr: 3e-3, beta1: 0.9, beta2: 0.999 });
  });

  it('validates its arguments with typed errors', async () => {
    const bad: [() => Promise<unknown>, string, RegExp][] = [
      [() => trainFromWeights(task, arch, new Float32Array(P + 1), { steps: 1 }), 'ERR_SHAPE', /init/],
      [() => trainFromWeights(task, mlp([30, 8, 3]), new Float32Array(mlp([30, 8, 3]).numParams), { steps: 1 }), 'ERR_INVALID', /end with 2 classes/],
      [() => trainFromWeights(task, arch, new Float32Array(P), { steps: 5, evalAt: [6] }), 'ERR_INVALID', /evalAt\[0\]/],
      [() => trainFromWeights(task, arch, new Float32Array(P), { steps: 1, optimizer: { name: 'lbfgs' as never, lr: 1 } }), 'ERR_INVALID', /optimizer.name/],
      [() => trainFromWeights(task, arch, new Float32Array(P), { steps: 3, signal: AbortSignal.abort() }), 'ERR_INTERRUPTED', /interrupted at step 1 of 3/],
    ];
    for (const [f, code, re] of bad) {
      const e = await f().then(
        () => undefined,
        (x: unknown) => x as WsfError,
      );
      expect(e?.code).toBe(code);
      expect(e?.message).toMatch(re);
    }
  });
});
