import { describe, expect, it } from 'vitest';
import { BatchStream, networkLossGrad, taskGradient } from '../../lib/eval/gradient.js';
import { loadTf, mlp, toTfModel } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';
import { lossAccF64 } from '../helpers/mlpRef.js';
import { blobsTask } from '../helpers/syntheticTask.js';

describe('taskGradient', () => {
  const task = blobsTask({ d: 6, classes: 3, n: [40, 10, 10] });
  const arch = mlp([6, 5, 4, 3]);
  const P = arch.numParams;

  it('matches f64 central finite differences on every coordinate (flat (in, out) layout)', () => {
    const rng = new Rng(1);
    // [6,5,4,3] uses the row kernels everywhere; [24,5,20,2] also the transposed kernels of narrow layers (24→5, 20→2).
    const wide = blobsTask({ d: 24, classes: 2, n: [40, 10, 10] });
    for (const [a, t] of [[arch, task], [mlp([24, 5, 20, 2]), wide]] as const) {
      const d = a.widths[0]!;
      for (const scale of [1, 1.7]) {
        const w = rng.fillNormal(new Float64Array(a.numParams), 0, 0.7);
        const { x, y } = t.train;
        const m = 12;
        const g = new Float64Array(a.numParams);
        networkLossGrad(a, w, 0, x, y, 3, m, scale, g);
        const fd = new Float64Array(a.numParams);
        for (let p = 0; p < a.numParams; p++) {
          const h = 1e-6 * Math.max(1, Math.abs(w[p]!));
          const wp = w.slice();
          wp[p]! += h;
          const lp = networkLossGrad(a, wp, 0, x, y, 3, m, scale);
          wp[p]! -= 2 * h;
          const lm = networkLossGrad(a, wp, 0, x, y, 3, m, scale);
          fd[p] = (lp - lm) / (2 * h);
        }
        // HOUSE_STYLE f64 gradcheck tolerance; random data keeps pre-activations far from the ReLU kink.
        expect(g).toAllClose(fd, { atol: 1e-8, rtol: 1e-6 });
        // The loss itself equals an independent f64 reference.
        const ref = lossAccF64(a, w, x.subarray(3 * d), y.subarray(3), m);
        if (scale === 1) expect(networkLossGrad(a, w, 0, x, y, 3, m, 1)).toAllClose(ref.loss, { atol: 1e-14, rtol: 1e-12 });
      }
    }
  });

  it('handles B networks with shared or per-network rows in one call and equals TF.js autodiff for every network', async () => {
    const B = 3;
    const w = new Rng(2).fillNormal(new Float32Array(B * P), 0, 0.7);
    const shared = { x: task.train.x.subarray(0, 8 * 6), y: task.train.y.subarray(0, 8), n: 8 };
    const a = taskGradient(task, arch, w, shared);
    const per = { x: task.train.x.subarray(0, 24 * 6), y: task.train.y.subarray(0, 24), n: 24, rowsPerNetwork: 8 };
    const b = taskGradient(task, arch, w, per);
    expect(a.grad.subarray(0, P)).toEqual(b.grad.subarray(0, P)); // network 0 sees rows 0…7 either way
    expect(a.grad.subarray(P)).not.toEqual(b.grad.subarray(P));
    // Every network of both calls against TF.js autodiff of its loss on its own rows (shared: rows 0…7 for all;
    // per-network: rows 8k…8k+7), and its loss against the independent f64 reference. TF.js Dense kernels are
    // (in, out), so blocks map one-to-one onto the flat layout.
    const { tf } = await loadTf();
    for (const [res, r0] of [[a, (_k: number) => 0], [b, (k: number) => 8 * k]] as const) {
      for (let k = 0; k < B; k++) {
        const xs = per.x.subarray(r0(k) * 6, (r0(k) + 8) * 6);
        const ys = per.y.subarray(r0(k), r0(k) + 8);
        expect(res.loss[k]).toAllClose(lossAccF64(arch, w, xs, ys, 8, k).loss, { atol: 1e-14, rtol: 1e-12 });
        const model = toTfModel(tf, arch, w, k);
        const xt = tf.tensor2d(xs, [8, 6]);
        const yt = tf.oneHot(tf.tensor1d(ys, 'int32'), 3);
        const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(yt, model.apply(xt) as import('@tensorflow/tfjs').Tensor) as import('@tensorflow/tfjs').Scalar);
        expect(res.loss[k]).toAllClose(value.dataSync()[0]!, { atol: 1e-6, rtol: 1e-5 }); // TF.js f32
        for (let l = 1; l <= 3; l++) {
          const layer = model.layers[l - 1]!;
          const kg = grads[layer.weights[0]!.originalName]!.dataSync();
          const bg = grads[layer.weights[1]!.originalName]!.dataSync();
          expect(kg.length).toBe(arch.widths[l - 1]! * arch.widths[l]!);
          const wo = k * P + arch.weightOffset(l);
          const bo = k * P + arch.biasOffset(l);
          expect(res.grad.subarray(wo, wo + kg.length)).toAllClose(kg, { atol: 1e-6, rtol: 1e-4 }); // TF.js f32 autodiff
          expect(res.grad.subarray(bo, bo + bg.length)).toAllClose(bg, { atol: 1e-6, rtol: 1e-4 });
        }
        tf.dispose([xt, yt, value, ...Object.values(grads)]);
        model.dispose();
      }
    }
  });

  it('validates shapes and labels', () => {
    const w = new Float32Array(2 * P);
    const x = new Float32Array(6 * 5);
    expect(() => taskGradient(task, arch, w, { x, y: new Int32Array(5), n: 5, rowsPerNetwork: 2 })).toThrow(/B·rowsPerNetwork = 2·2 = 4 rows/);
    expect(() => taskGradient(task, arch, w, { x, y: Int32Array.of(0, 1, 2, 3, 0), n: 5 })).toThrow(/labels in 0…2.*row 3 has label 3/);
    expect(() => taskGradient(task, arch, w, { x: new Float32Array(7), y: new Int32Array(5), n: 5 })).toThrowError(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => taskGradient(task, mlp([6, 4, 2]), new Float32Array(mlp([6, 4, 2]).numParams), { x, y: new Int32Array(5), n: 5 })).toThrow(/3 classes|2 classes/);
  });

  it('is fast for MNIST-size networks (784-10-10, B = 8, 64 rows each)', () => {
    const a = mlp([784, 10, 10]);
    const rng = new Rng(3);
    const w = rng.fillNormal(new Float32Array(8 * a.numParams), 0, 0.1);
    const x = rng.fillNormal(new Float32Array(8 * 64 * 784));
    const y = new Int32Array(8 * 64).map(() => rng.int(10));
    const t = { name: 'm', numFeatures: 784, numClasses: 10 } as Parameters<typeof taskGradient>[0];
    const batch = { x, y, n: 8 * 64, rowsPerNetwork: 64 };
    const out = new Float32Array(8 * a.numParams);
    taskGradient(t, a, w, batch, { out });
    const t0 = performance.now();
    for (let i = 0; i < 5; i++) taskGradient(t, a, w, batch, { out });
    const ms = (performance.now() - t0) / 5;
    console.log(`[gradient] 784-10-10, B=8 × 64 rows: ${ms.toFixed(1)} ms per call`);
    expect(ms).toBeLessThan(500); // generous: shared 2-core CI machine
  });
});

describe('BatchStream', () => {
  const task = blobsTask({ d: 3, classes: 2, n: [10, 4, 4] });

  it('visits every example once per epoch, reshuffles, and straddles epoch boundaries', () => {
    const s = new BatchStream(task.train, 4, 7);
    const seen: number[][] = [];
    const order: number[] = [];
    for (let i = 0; i < 5; i++) {
      const b = s.next(1);
      expect(b.n).toBe(4);
      expect(b.rowsPerNetwork).toBe(4);
      for (let r = 0; r < 4; r++) {
        // Recover the example index by matching features.
        const k = [...Array(10).keys()].find((e) => task.train.x[e * 3] === b.x[r * 3] && task.train.x[e * 3 + 1] === b.x[r * 3 + 1])!;
        expect(b.y[r]).toBe(task.train.y[k]);
        order.push(k);
      }
    }
    expect(s.epoch).toBe(2);
    for (let e = 0; e < 2; e++) seen.push(order.slice(10 * e, 10 * e + 10).sort((a, b) => a - b));
    expect(seen[0]).toEqual([...Array(10).keys()]);
    expect(seen[1]).toEqual([...Array(10).keys()]);
    expect(order.slice(0, 10)).not.toEqual(order.slice(10, 20));
  });

  it('is deterministic and restores from a checkpointed state', () => {
    const a = new BatchStream(task.train, 3, 1);
    const b = new BatchStream(task.train, 3, 1);
    a.next(2);
    b.next(2);
    expect(a.next(3).x).toEqual(b.next(3).x);
    const st = JSON.parse(JSON.stringify(a.state())) as ReturnType<BatchStream['state']>;
    const after = [a.next(4), a.nextShared(), a.next(1)];
    const c = new BatchStream(task.train, 3, 999);
    c.restore(st);
    const again = [c.next(4), c.nextShared(), c.next(1)];
    for (let i = 0; i < 3; i++) expect(again[i]!.x).toEqual(after[i]!.x);
    expect(again[1]!.rowsPerNetwork).toBeUndefined();
    expect(() => new BatchStream(task.train, 4).restore(st)).toThrow(/batchSize = 4/);
    expect(() => new BatchStream(task.train, 0)).toThrow(/batchSize/);
  });
});
