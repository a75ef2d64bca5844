// trainFromWeights: base-network training from given initial weights (learned initialisation, METHOD.md §11.3).
// References: buildZoo's checkpoints (the same per-run training, written independently) and the f64 MLP reference.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildZoo, loadTask, mlp } from '../../lib/index.js';
import { trainFromWeights } from '../../lib/zoo/trainFromWeights.js';
import type { WsfError } from '../../lib/index.js';
import { lossAccF64 } from '../helpers/mlpRef.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-tfw-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

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

  it("starts exactly at the initial weights' accuracy and loss (f64 reference), and the loss falls", async () => {
    // Two hand-made initialisations: N(0, 0.1²) weights and the same scaled by 3.
    const init = new Float32Array(2 * P);
    let s = 12345;
    const rnd = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    for (let i = 0; i < arch.numWeights; i++) init[i] = 0.17 * rnd();
    for (let i = 0; i < arch.numWeights; i++) init[P + i] = 3 * init[i]!;
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
