/**
 * TF.js LayersModel files on disk without tfjs-node: `model.json` (format 'layers-model': the topology and a weights
 * manifest) and one binary weights file beside it — the layout `tf.loadLayersModel('file://…/model.json')` reads
 * under tfjs-node and `tf.loadLayersModel('https://…/model.json')` in a browser. Written through TF.js' own
 * serialisation (`model.save` with a save handler), so the topology and weight specs are TF.js', and atomically
 * (weights first, then model.json), so an interrupted export never leaves a model.json without its weights.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WsfError } from '../errors.js';
import { writeFileAtomic } from '../io/safetensors.js';
import type { TF } from './tf.js';

type LayersModel = import('@tensorflow/tfjs').LayersModel;

/** The weights file written beside model.json. */
export const TF_WEIGHTS_FILE = 'weights.bin';

/**
 * Writes `model` as `dir/model.json` + `dir/weights.bin`.
 * @param tf the TF.js namespace (see {@link loadTf})
 * @returns the two files written
 * @throws WsfError ERR_IO when the folder cannot be written
 */
export async function saveTfModelFiles(tf: TF, model: LayersModel, dir: string): Promise<{ modelJson: string; weights: string }> {
  const modelJson = path.join(dir, 'model.json');
  const weights = path.join(dir, TF_WEIGHTS_FILE);
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      if (a.weightSpecs === undefined || a.weightData === undefined) throw new WsfError('TF.js gave no weights to save', 'ERR_IO');
      const data = new Uint8Array(tf.io.CompositeArrayBuffer.join(a.weightData));
      try {
        writeFileAtomic(weights, data);
        const manifest = [{ paths: [TF_WEIGHTS_FILE], weights: a.weightSpecs }];
        const json = { format: a.format ?? 'layers-model', generatedBy: a.generatedBy, convertedBy: a.convertedBy ?? null, modelTopology: a.modelTopology, weightsManifest: manifest };
        writeFileAtomic(modelJson, JSON.stringify(json));
      } catch (e) {
        throw new WsfError(`cannot write the TF.js model to ${dir}: ${(e as Error).message}`, 'ERR_IO');
      }
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON', weightDataBytes: data.byteLength } };
    }),
  );
  return { modelJson, weights };
}

/**
 * Reads `dir/model.json` and the weight files its manifest names into a LayersModel (for tests and for Node
 * without tfjs-node, whose `file://` loader is not available).
 * @throws WsfError ERR_IO for a missing or malformed model.json or weights file
 */
export async function loadTfModelFiles(tf: TF, dir: string): Promise<LayersModel> {
  const file = path.join(dir, 'model.json');
  let json: { modelTopology?: unknown; weightsManifest?: { paths: string[]; weights: unknown[] }[]; format?: string };
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof json;
  } catch (e) {
    throw new WsfError(`${file}: expected a TF.js model.json (${(e as Error).message})`, 'ERR_IO');
  }
  if (json.modelTopology === undefined || !Array.isArray(json.weightsManifest)) throw new WsfError(`${file}: expected 'modelTopology' and 'weightsManifest' (a TF.js layers model)`, 'ERR_IO');
  const specs = json.weightsManifest.flatMap((g) => g.weights);
  const buffers = json.weightsManifest.flatMap((g) =>
    g.paths.map((p) => {
      const b = fs.readFileSync(path.join(dir, p));
      return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
    }),
  );
  return tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology as object, weightSpecs: specs as import('@tensorflow/tfjs').io.WeightsManifestEntry[], weightData: tf.io.CompositeArrayBuffer.join(buffers), format: json.format ?? 'layers-model' }),
  );
}
