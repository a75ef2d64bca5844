/**
 * Exact conversion between flat weight vectors and TF.js models: a `tf.Sequential` (or any LayersModel whose
 * layers form a chain) of Dense layers with ReLU between them and a linear last layer. TF.js Dense kernels are
 * (in, out), the same order as the flat layout, so conversion is a copy of each block.
 */
import { type Architecture, checkBatch, mlp } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import type { TF } from './tf.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;
type Sequential = import('@tensorflow/tfjs').Sequential;

/**
 * Builds a `tf.Sequential` MLP (Dense+ReLU …, Dense linear) holding network `index` of the flat batch `flat`.
 * @param tf the TF.js namespace (see {@link loadTf})
 * @param flat Float32Array of length B·P (flat layout)
 * @throws WsfError ERR_SHAPE / ERR_DTYPE / ERR_NUMERIC for a bad `flat`
 */
export function toTfModel(tf: TF, arch: Architecture, flat: Float32Array, index = 0): Sequential {
  const B = checkBatch(arch, 'flat', flat);
  if (!Number.isInteger(index) || index < 0 || index >= B) {
    throw new WsfError(`Expected a network index in [0, ${B}) but received ${index}`, 'ERR_INVALID');
  }
  const { weights, biases } = arch.split(flat, index);
  const L = arch.numLayers;
  const model = tf.sequential();
  for (let l = 1; l <= L; l++) {
    model.add(
      tf.layers.dense({
        units: arch.widths[l]!,
        activation: l < L ? 'relu' : 'linear',
        useBias: true,
        ...(l === 1 ? { inputShape: [arch.widths[0]!] } : {}),
      }),
    );
  }
  model.setWeights(
    weights.flatMap((w, k) => [
      tf.tensor2d(new Float32Array(w), [arch.widths[k]!, arch.widths[k + 1]!]),
      tf.tensor1d(new Float32Array(biases[k]!)),
    ]),
  );
  return model;
}

/**
 * Reads a TF.js MLP into the flat layout. Accepted layers: Dense (activation 'relu' on every layer but the last,
 * 'linear' on the last), optionally an InputLayer/Flatten first and separate ReLU / Activation('relu') layers
 * after a linear Dense. Anything else is an error naming the layer.
 * @returns the architecture and a Float32Array of length P
 * @throws WsfError ERR_INVALID for an unsupported layer or activation
 */
export function fromTfModel(model: LayersModel): { arch: Architecture; flat: Float32Array } {
  interface Lin {
    kernel: Float32Array;
    bias: Float32Array;
    nIn: number;
    nOut: number;
    act: 'relu' | 'linear';
  }
  const lins: Lin[] = [];
  for (const [i, layer] of model.layers.entries()) {
    const cls = layer.getClassName();
    const cfg = layer.getConfig() as { activation?: string; useBias?: boolean };
    if (cls === 'InputLayer' || (cls === 'Flatten' && lins.length === 0)) continue;
    if (cls === 'Dense') {
      const act = cfg.activation ?? 'linear';
      if (act !== 'relu' && act !== 'linear') {
        throw new WsfError(`Layer ${i} (${layer.name}) is a Dense layer with activation '${act}'; only 'relu' and 'linear' are supported`, 'ERR_INVALID');
      }
      const ws = layer.getWeights();
      const k = ws[0];
      if (k === undefined || k.shape.length !== 2) throw new WsfError(`Layer ${i} (${layer.name}) has no 2-D kernel`, 'ERR_INVALID');
      const [nIn, nOut] = k.shape as [number, number];
      const bias = ws[1] !== undefined ? (ws[1].dataSync() as Float32Array) : new Float32Array(nOut);
      lins.push({ kernel: k.dataSync() as Float32Array, bias: new Float32Array(bias), nIn, nOut, act });
      continue;
    }
    if ((cls === 'ReLU' || (cls === 'Activation' && cfg.activation === 'relu')) && lins.length > 0 && lins[lins.length - 1]!.act === 'linear') {
      lins[lins.length - 1]!.act = 'relu';
      continue;
    }
    throw new WsfError(`Layer ${i} (${layer.name}) of class ${cls} is not supported; expected a chain of Dense layers with ReLU activations`, 'ERR_INVALID');
  }
  if (lins.length === 0) throw new WsfError('The model has no Dense layers', 'ERR_INVALID');
  for (const [k, lin] of lins.entries()) {
    const last = k === lins.length - 1;
    if (!last && lin.act !== 'relu') throw new WsfError(`Dense layer ${k + 1} of ${lins.length} must use ReLU (hidden layers are ReLU in wsflow's MLPs)`, 'ERR_INVALID');
    if (last && lin.act !== 'linear') throw new WsfError('The last Dense layer must be linear (logits)', 'ERR_INVALID');
    if (k > 0 && lins[k - 1]!.nOut !== lin.nIn) throw new WsfError(`Dense layer ${k + 1} expects ${lin.nIn} inputs but the previous layer has ${lins[k - 1]!.nOut} units`, 'ERR_INVALID');
  }
  const arch = mlp([lins[0]!.nIn, ...lins.map((l) => l.nOut)]);
  const flat = new Float32Array(arch.numParams);
  for (const [k, lin] of lins.entries()) {
    flat.set(lin.kernel, arch.weightOffset(k + 1));
    flat.set(lin.bias, arch.biasOffset(k + 1));
  }
  return { arch, flat };
}
