/**
 * Aligning a whole zoo (what `wsflow align` does): every checkpoint is permuted to one reference network by weight
 * matching ({@link alignNetworks}) — one permutation per training run (default) or each checkpoint on its own (the
 * thesis) — in chunks so that progress can be shown and Ctrl-C stops between chunks.
 *
 * The aligned zoo keeps every standard tensor (accuracies and losses are unchanged: permutations preserve the
 * function) and adds `perms` (I32 [n, H], the permutation applied to each checkpoint). Each run's initial weights
 * (`init`) are permuted with the permutation of that run's last checkpoint, so that trajectory coupling pairs an
 * aligned checkpoint with a consistently permuted initialisation (exact by run; checkpoint by checkpoint,
 * one run's checkpoints can get different permutations — 20 % of the official-MNIST 30-run zoo's checkpoints differ
 * from their run's last one — and the pairing is then approximate). Metadata: `aligned_to` (JSON: source file, reference
 * index, method), `alignment` (JSON: distances to the reference before/after, sweeps, converged count, seconds).
 */
import * as path from 'node:path';
import { alignNetworks, groupIndex, nearestToMean } from '../align/weightMatching.js';
import { membersOf } from '../flow/prior.js';
import { identityPermutations, numHidden, permuteNetworks } from '../align/permutation.js';
import { WsfError } from '../errors.js';
import { i32 } from '../io/safetensors.js';
import { summarize } from '../eval/stats.js';
import type { Progress } from '../util/progress.js';
import { checkObject, checkOptionKeys, optionKeys } from '../util/validate.js';
import { type Zoo, type ZooInput, writeZoo } from '../zoo/Zoo.js';

/** The keys of {@link AlignZooOptions}. */
const ALIGN_ZOO_KEYS = optionKeys<AlignZooOptions>()(['reference', 'maxIterations', 'seed', 'by', 'chunk', 'signal', 'progress', 'source']);

/** Options of {@link alignZoo}. */
export interface AlignZooOptions {
  /** Reference network index (default: the checkpoint nearest to the mean). */
  readonly reference?: number;
  /** Coordinate-descent sweeps per network (default 100). */
  readonly maxIterations?: number;
  readonly seed?: number;
  /**
   * 'run' (default): all checkpoints of a training run share one permutation, the weight matching of the run's mean
   * network (neurons keep their identity along a run; see `groups` of {@link alignNetworks}); the reference's own run
   * keeps the identity. 'checkpoint': every checkpoint is matched to the reference on its own, as the thesis did —
   * which can permute one run's checkpoints differently and blend neurons in anything averaged over a run (the
   * mixture prior's components).
   */
  readonly by?: 'checkpoint' | 'run';
  /** Networks per chunk (default 500; whole runs with `by: 'run'`): the unit of progress and of interruption. */
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
  checkObject('zoo', zoo, '(a Zoo, from loadZoo or buildZoo)');
  checkOptionKeys('alignZoo', opts, ALIGN_ZOO_KEYS);
  const t0 = performance.now();
  const { arch, n } = zoo;
  const P = arch.numParams;
  const H = numHidden(arch);
  const ref = opts.reference ?? nearestToMean(arch, zoo.weights);
  if (!Number.isInteger(ref) || ref < 0 || ref >= n) throw new WsfError(`Expected a reference index in [0, ${n - 1}] but received ${ref}`, 'ERR_INVALID');
  const reference = zoo.weights.slice(ref * P, (ref + 1) * P);
  const chunk = Math.max(1, opts.chunk ?? 500);
  const by = opts.by ?? 'run';
  if (by !== 'checkpoint' && by !== 'run') throw new WsfError(`Expected alignment by 'checkpoint' or 'run' but received ${String(by)}`, 'ERR_INVALID');
  const aligned = new Float32Array(n * P);
  const perms = new Int32Array(n * H);
  const before = new Float64Array(n);
  const after = new Float64Array(n);
  let converged = 0;
  let done = 0;
  let distSum = 0; // progress: the mean distance after alignment of the networks done (chunks need not be contiguous)
  for (const rows of alignChunks(zoo, by, chunk)) {
    if (opts.signal?.aborted === true) throw new WsfError(`alignment interrupted after ${done} of ${n} networks; nothing was written (alignment restarts from the beginning)`, 'ERR_INTERRUPTED');
    const part = new Float32Array(rows.length * P);
    rows.forEach((k, i) => part.set(zoo.weights.subarray(k * P, (k + 1) * P), i * P));
    const r = alignNetworks(arch, part, {
      reference,
      ...(by === 'run' ? { groups: Array.from(rows, (k) => zoo.run[k]!) } : {}),
      ...(opts.maxIterations !== undefined ? { maxIterations: opts.maxIterations } : {}),
      ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
    });
    rows.forEach((k, i) => {
      aligned.set(r.aligned.subarray(i * P, (i + 1) * P), k * P);
      perms.set(r.perms.subarray(i * H, (i + 1) * H), k * H);
      before[k] = r.distanceBefore.values[i]!;
      after[k] = r.distanceAfter.values[i]!;
      distSum += after[k]!;
    });
    converged += r.converged;
    done += rows.length;
    opts.progress?.update(done, { dist: distSum / done });
    await new Promise<void>((res) => setImmediate(res));
  }
  if (by === 'run') {
    // The reference's run defines the frame: its checkpoints stay as they are.
    const id = identityPermutations(arch);
    for (let k = 0; k < n; k++) {
      if (zoo.run[k] !== zoo.run[ref]) continue;
      aligned.set(zoo.weights.subarray(k * P, (k + 1) * P), k * P);
      perms.set(id, k * H);
      after[k] = before[k]!;
    }
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
      if (last[r] === -1) runPerms.set(identityPermutations(arch), r * H);
      else runPerms.set(perms.subarray(last[r]! * H, (last[r]! + 1) * H), r * H);
    }
    init = H > 0 ? permuteNetworks(arch, zoo.init, runPerms) : zoo.init.slice();
  }
  const b = summarize(before);
  const a = summarize(after);
  const seconds = (performance.now() - t0) / 1000;
  const metadata: Record<string, string> = {
    ...zoo.metadata,
    aligned_to: JSON.stringify({ source: opts.source !== undefined ? path.basename(opts.source) : null, reference: ref, method: 'weight matching (exact per-layer assignments, coordinate descent)', by }),
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

/**
 * The zoo's networks in alignment chunks: index ranges of about `chunk` networks, or with `by: 'run'` whole runs
 * (in order of first appearance) gathered until a chunk holds at least `chunk` networks.
 */
function alignChunks(zoo: Zoo, by: 'checkpoint' | 'run', chunk: number): Int32Array[] {
  const out: Int32Array[] = [];
  if (by === 'checkpoint') {
    for (let s = 0; s < zoo.n; s += chunk) out.push(Int32Array.from({ length: Math.min(zoo.n, s + chunk) - s }, (_, i) => s + i));
    return out;
  }
  const { index, count } = groupIndex(zoo.run, zoo.n);
  let cur: number[] = [];
  for (const m of membersOf(index, count.length)) {
    cur.push(...m);
    if (cur.length >= chunk) {
      out.push(Int32Array.from(cur));
      cur = [];
    }
  }
  if (cur.length > 0) out.push(Int32Array.from(cur));
  return out;
}

/** Aligns a zoo and writes it (atomically). */
export async function alignZooFile(zoo: Zoo, source: string, out: string, opts: Omit<AlignZooOptions, 'source'> = {}): Promise<AlignZooResult> {
  const r = await alignZoo(zoo, { ...opts, source });
  writeZoo(out, r.zoo);
  return r;
}
