/**
 * Loads TensorFlow.js with the fastest backend that works here, once per process:
 * `@tensorflow/tfjs-node` when installed (an optional peer: its install downloads libtensorflow, which fails
 * where only the npm registry is reachable), otherwise `@tensorflow/tfjs` with the WebAssembly backend
 * (XNNPACK, SIMD), otherwise the pure-JS cpu backend. `WSF_TF_BACKEND=node|wasm|cpu` forces one.
 */
import { createRequire } from 'node:module';
import { WsfError } from '../errors.js';

/** The TF.js namespace type. */
export type TF = typeof import('@tensorflow/tfjs');

const req = createRequire(__filename);
let loaded: Promise<{ tf: TF; backend: string }> | undefined;

async function load(): Promise<{ tf: TF; backend: string }> {
  const force = process.env.WSF_TF_BACKEND;
  if (force !== undefined && force !== '' && !['node', 'wasm', 'cpu'].includes(force)) {
    throw new WsfError(`Expected 'node', 'wasm' or 'cpu' for WSF_TF_BACKEND but received '${force}'`, 'ERR_INVALID');
  }
  if (force === undefined || force === '' || force === 'node') {
    try {
      const tfn = req('@tensorflow/tfjs-node') as TF;
      return { tf: tfn, backend: 'tensorflow (tfjs-node)' };
    } catch (e) {
      if (force === 'node') throw new WsfError(`WSF_TF_BACKEND=node but @tensorflow/tfjs-node cannot be loaded: ${(e as Error).message.split('\n')[0]}`, 'ERR_INVALID');
    }
  }
  const tf = req('@tensorflow/tfjs') as TF;
  if (force === undefined || force === '' || force === 'wasm') {
    try {
      req('@tensorflow/tfjs-backend-wasm');
      if (await tf.setBackend('wasm')) {
        await tf.ready();
        return { tf, backend: 'wasm' };
      }
    } catch (e) {
      if (force === 'wasm') throw new WsfError(`WSF_TF_BACKEND=wasm but the wasm backend failed: ${(e as Error).message}`, 'ERR_INVALID');
    }
  }
  await tf.setBackend('cpu');
  await tf.ready();
  return { tf, backend: 'cpu' };
}

/** TF.js and the name of the active backend. */
export async function loadTf(): Promise<{ tf: TF; backend: string }> {
  loaded ??= load();
  return loaded;
}
