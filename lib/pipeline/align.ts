/**
 * Aligning a whole zoo (what `wsflow align` does): every checkpoint is permuted to one reference network by weight
 * matching ({@link alignNetworks}), in chunks so that progress can be shown and Ctrl-C stops between chunks.
 *
 * The aligned zoo keeps every standard tensor (accuracies and losses are unchanged: permutations preserve the
 * function) and adds `perms` (I32 [n, H], the permutation applied to each checkpoint). Each run's initial weights
 * (`init`) are permuted with the permutation of that run's last checkpoint, so that trajectory coupling pairs an
 * aligned checkpoint with a consistently permuted initialisation (checkpoints of one run almost always share one
 * permutation; where they do not, the pairing is approximate). Metadata: `aligned_to` (JSON: source file, reference
 * index, method), `alignment` (JSON: distances to the reference before/after, sweeps, converged count, seconds).
 */
import * as path from 'node:path';
import { alignNetworks, nearestToMean } from '../align/weightMatching.js';
import { numHidden, permuteNetworks } from '../align/permutation.js';
import { WsfError } from '../errors.js';
import { i32 } from '../io/safetensors.js';
import { summarize } from '../eval/stats.js';
import type { Progress } from '../util/progress.js';
import { type Zoo, type ZooInput, writeZoo } from '../zoo/Zoo.js';

/** Options of {@link alignZoo}. */
export interface AlignZooOptions {
  /** Reference network index (default: the checkpoint nearest to the mean). */
  readonly reference?: number;
  /** Coordinate-descent sweeps per network (default 100). */
  readonly maxIterations?: number;
  readonly seed?: number;
  /** Networks per chunk (default 500): the unit of progress and of interruption. */
  readonly chunk?: number;
  readonly signal?: AbortSignal;
  readonly progress?: Progress;
  /** Source file name recorded in `aligned_to`. */
  readonly source?: string;
}

/** Result of {@link alignZoo}. */
export interface AlignZooResult {
  /** The aligned zoo, ready for {@link writeZoo}. */
  readonly zoo: ZooInput;
  readonly referenceIndex: number;
  readonly distanceBefore: { mean: number; std: number };
  readonly distanceAfter: { mean: number; std: number };
  readonly converged: number;
  readonly seconds: number;
}

/**
 * Aligns every checkpoint of a zoo to one reference.
 * @throws WsfError ERR_INTERRUPTED when `signal` aborts (nothing is written), ERR_INVALID for a bad reference
 */
export async function alignZoo(zoo: Zoo, opts: AlignZooOptions = {}): Promise<AlignZooResult> {
  const t0 = performance.now();
  const { arch, n } = zoo;
  const P = arch.numParams;
  const H = numHidden(arch);
  const ref = opts.reference ?? nearestToMean(arch, zoo.weights);
  if (!Number.isInteger(ref) || ref < 0 || ref >= n) throw new WsfError(`Expected a reference index in [0, ${n - 1}] but received ${ref}`, 'ERR_INVALID');
  const reference = zoo.weights.slice(ref * P, (ref + 1) * P);
  const chunk = Math.max(1, opts.chunk ?? 500);
  const aligned = new Float32Array(n * P);
  const perms = new Int32Array(n * H);
  const before = new Float64Array(n);
  const after = new Float64Array(n);
  let converged = 0;
  for (let s = 0; s < n; s += chunk) {
    if (opts.signal?.aborted === true) throw new WsfError(`alignment interrupted after ${s} of ${n} networks; nothing was written (alignment restarts from the beginning)`, 'ERR_INTERRUPTED');
    const e = Math.min(n, s + chunk);
    const r = alignNetworks(arch, zoo.weights.subarray(s * P, e * P), {
      reference,
      ...(opts.maxIterations !== undefined ? { maxIterations: opts.maxIterations } : {}),
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    });
    aligned.set(r.aligned, s * P);
    perms.set(r.perms, s * H);
    before.set(r.distanceBefore.values, s);
    after.set(r.distanceAfter.values, s);
    converged += r.converged;
    opts.progress?.update(e, { dist: summarize(after.subarray(0, e)).mean });
    await new Promise<void>((res) => setImmediate(res));
  }
  // The reference itself must stay exactly as it was (its own permutation is the identity).
  aligned.set(reference, ref * P);
  let init: Float32Array | null = null;
  if (zoo.init !== null) {
    const R = zoo.init.length / P;
    const last = new Int32Array(R).fill(-1);
    for (let k = 0; k < n; k++) {
      const r = zoo.run[k]!;
      if (last[r] === -1 || zoo.iter[k]! >= zoo.iter[last[r]!]!) last[r] = k;
    }
    const runPerms = new Int32Array(R * H);
    for (let r = 0; r < R; r++) {
      if (last[r] === -1) for (let h = 0, o = 0; o < arch.numLayers - 1; o++) for (let j = 0; j < arch.widths[o + 1]!; j++, h++) runPerms[r * H + h] = j;
      else runPerms.set(perms.subarray(last[r]! * H, (last[r]! + 1) * H), r * H);
    }
    init = H > 0 ? permuteNetworks(arch, zoo.init, runPerms) : zoo.init.slice();
  }
  const b = summarize(before);
  const a = summarize(after);
  const seconds = (performance.now() - t0) / 1000;
  const metadata: Record<string, string> = {
    ...zoo.metadata,
    aligned_to: JSON.stringify({ source: opts.source !== undefined ? path.basename(opts.source) : null, reference: ref, method: 'weight matching (exact per-layer assignments, coordinate descent)' }),
    alignment: JSON.stringify({ distance_before: { mean: b.mean, std: b.std }, distance_after: { mean: a.mean, std: a.std }, converged, networks: n, seconds }),
  };
  delete metadata.format;
  delete metadata.format_version;
  delete metadata.arch;
  delete metadata.task;
  const extra = { ...zoo.extra, perms: i32(perms, [n, H]) };
  return {
    zoo: { arch, task: zoo.task, weights: aligned, run: zoo.run, epoch: zoo.epoch, iter: zoo.iter, testAcc: zoo.testAcc, testLoss: zoo.testLoss, init, metadata, extra },
    referenceIndex: ref,
    distanceBefore: { mean: b.mean, std: b.std },
    distanceAfter: { mean: a.mean, std: a.std },
    converged,
    seconds,
  };
}

/** Aligns a zoo and writes it (atomically). */
export async function alignZooFile(zoo: Zoo, source: string, out: string, opts: Omit<AlignZooOptions, 'source'> = {}): Promise<AlignZooResult> {
  const r = await alignZoo(zoo, { ...opts, source });
  writeZoo(out, r.zoo);
  return r;
}
