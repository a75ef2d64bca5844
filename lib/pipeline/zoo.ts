/** Building a zoo for the demo and the experiments: reuse the file when it holds this build, replace it otherwise. */
import { isWsfError } from '../errors.js';
import { type BuildZooOptions, type BuildZooResult, buildZoo } from '../zoo/buildZoo.js';

/**
 * {@link buildZoo} that returns an existing zoo built with the same options (`alreadyBuilt: true`) and rebuilds one
 * built with other options, discarding partial results of another build (where `buildZoo` refuses).
 */
export async function buildZooReusing(opts: Omit<BuildZooOptions, 'overwrite'>): Promise<BuildZooResult> {
  try {
    return await buildZoo(opts);
  } catch (e) {
    if (!isWsfError(e) || e.code !== 'ERR_INVALID') throw e;
    if (/ already exists and /.test(e.message)) return buildZoo({ ...opts, overwrite: true });
    if (/holds results of a build with other options/.test(e.message)) return buildZoo({ ...opts, resume: false });
    throw e;
  }
}
