import { describe, expect, it } from 'vitest';
import { fromTfModel, loadTf, mlp, toTfModel, WsfError } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';

// Independent reference: the MLP forward pass written directly from METHOD.md §1.1 on the flat layout, in f64.
function forwardFlat(widths: number[], flat: Float32Array, x: Float64Array): Float64Array {
  const a = mlp(widths);
  let h = x;
  for (let l = 1; l <= a.numLayers; l++) {
    const nIn = widths[l - 1]!;
    const nOut = widths[l]!;
    const out = new Float64Array(nOut);
    for (let j = 0; j < nOut; j++) {
      let s = flat[a.biasIndex(l, j)]!;
      for (let i = 0; i < nIn; i++) s += flat[a.weightIndex(l, i, j)]! * h[i]!;
      out[j] = l < a.numLayers ? Math.max(0, s) : s;
    }
    h = out;
  }
  return h;
}

describe('TF.js interop', () => {
  it('round-trips flat → tf.Sequential → flat exactly and computes the same logits', async () => {
    const { tf } = await loadTf();
    const widths = [7, 5, 4, 3];
    const a = mlp(widths);
    const rng = new Rng(1);
    const flat = rng.fillNormal(new Float32Array(2 * a.numParams));
    const model = toTfModel(tf, a, flat, 1);
    const back = fromTfModel(model);
    expect(back.arch.key).toBe(a.key);
    expect(Array.from(back.flat)).toEqual(Array.from(flat.subarray(a.numParams)));
    const x = rng.fillNormal(new Float64Array(7));
    const ref = forwardFlat(widths, flat.subarray(a.numParams), x);
    const y = (model.predict(tf.tensor2d(Float32Array.from(x), [1, 7])) as import('@tensorflow/tfjs').Tensor).dataSync();
    expect(y).toAllClose(ref, { atol: 1e-5, rtol: 1e-5 }); // f32 TF.js vs f64 reference
    model.dispose();
  });

  it('reads Dense + separate ReLU layers and rejects unsupported layers with ERR_INVALID', async () => {
    const { tf } = await loadTf();
    const m = tf.sequential({
      layers: [tf.layers.flatten({ inputShape: [2, 2] }), tf.layers.dense({ units: 3 }), tf.layers.reLU(), tf.layers.dense({ units: 2 })],
    });
    const { arch } = fromTfModel(m);
    expect(arch.widths).toEqual([4, 3, 2]);
    const bad = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4], activation: 'tanh' }), tf.layers.dense({ units: 2 })] });
    expect(() => fromTfModel(bad)).toThrowError(WsfError);
    expect(() => fromTfModel(bad)).toThrow(/activation 'tanh'/);
    const drop = tf.sequential({ layers: [tf.layers.dense({ units: 3, inputShape: [4], activation: 'relu' }), tf.layers.dropout({ rate: 0.5 }), tf.layers.dense({ units: 2 })] });
    expect(() => fromTfModel(drop)).toThrow(/class Dropout is not supported/);
  });

  it('validates the flat vector before building a model', async () => {
    const { tf } = await loadTf();
    const a = mlp([3, 2]);
    expect(() => toTfModel(tf, a, new Float32Array(7))).toThrow(/length B·P \(P = 8/);
    expect(() => toTfModel(tf, a, new Float32Array(8), 1)).toThrow(/network index in \[0, 1\)/);
  });
});
