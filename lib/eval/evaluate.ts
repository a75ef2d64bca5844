/**
 * Test accuracy and loss of many networks at once (METHOD.md §8.1).
 *
 * Loss is the exact mean cross-entropy over all examples of the split, accumulated in f64. The reference code
 * averaged per-batch means instead (METHOD.md §8.1, §12 item 18), which over-weights the last, smaller batch
 * slightly; the two agree when the split size is a multiple of the batch size.
 */
import { type Architecture, checkBatch, toArchitecture } from '../arch/Architecture.js';
import type { Task } from '../tasks/Task.js';
import { checkInt, checkNumber, checkOptionKeys, optionKeys } from '../util/validate.js';
import { forEachLogits, prepareSplit } from './forward.js';
import { type Summary, summarize } from './stats.js';
import { resolveSplit, type SplitName } from './taskData.js';

/** Options shared by the functions that run networks on a split. */
export interface SplitEvalOptions {
  /** Split to evaluate on (default 'test'). */
  split?: SplitName;
  /**
   * Multiplies every logit before the softmax (default 1; must be > 0). Accuracy does not depend on it; use it to
   * compare canonicalised networks, whose logits are scaled by 1/‖W_L‖_F (METHOD.md §3).
   */
  logitScale?: number;
  /** Networks run together in one pass (default: a first-layer block of ≈ 1 MB, at most 256). Memory only. */
  networksPerPass?: number;
  /** Examples per forward chunk (default: activations of ≈ 8 MB). Memory only: results do not depend on it. */
  batchSize?: number;
}

/** Result of {@link evaluateNetworks}. */
export interface EvalResult {
  /** Per-network accuracy (fraction correct), Float64Array of length B. */
  readonly accuracy: Float64Array;
  /** Per-network mean cross-entropy (nats) over all examples, Float64Array of length B. */
  readonly loss: Float64Array;
  /** Mean ± std (population) of accuracy over the networks. */
  readonly accuracySummary: Summary;
  /** Mean ± std (population) of loss over the networks. */
  readonly lossSummary: Summary;
  /** Split used and its size. */
  readonly split: SplitName;
  readonly n: number;
  /** Wall-clock milliseconds. */
  readonly ms: number;
}

/** @internal validates the common options; returns resolved values. */
export function resolveEvalOptions(opts: SplitEvalOptions): { split: SplitName; scale: number; groupSize?: number; rowChunk?: number } {
  const scale = checkNumber('logitScale', opts.logitScale ?? 1, Number.MIN_VALUE);
  const out: { split: SplitName; scale: number; groupSize?: number; rowChunk?: number } = { split: opts.split ?? 'test', scale };
  if (opts.networksPerPass !== undefined) out.groupSize = checkInt('networksPerPass', opts.networksPerPass, 1);
  if (opts.batchSize !== undefined) out.rowChunk = checkInt('batchSize', opts.batchSize, 1);
  return out;
}

/** Identity index 0…B−1. */
export function rangeIndex(B: number): Int32Array {
  const a = new Int32Array(B);
  for (let i = 0; i < B; i++) a[i] = i;
  return a;
}

/** The keys of {@link SplitEvalOptions}, for the option checks of the functions whose options extend it. */
export const SPLIT_EVAL_KEYS = ['split', 'logitScale', 'networksPerPass', 'batchSize'] as const;
const EVAL_KEYS = optionKeys<SplitEvalOptions>()(SPLIT_EVAL_KEYS);

/**
 * Accuracy and mean cross-entropy of every network of a batch on one split of a task.
 * @param task the task (features must be standardised as the networks expect)
 * @param archOrWidths the base MLP (an Architecture or its widths); n_0 must equal `task.numFeatures` and n_L `task.numClasses`
 * @param weights Float32Array B×P (flat layout)
 * @param opts see {@link SplitEvalOptions}
 * @returns per-network accuracy and loss and their mean ± std
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad weights or task data, ERR_INVALID for bad options
 */
export async function evaluateNetworks(task: Task, archOrWidths: Architecture | readonly number[], weights: Float32Array, opts: SplitEvalOptions = {}): Promise<EvalResult> {
  const arch = toArchitecture('arch', archOrWidths);
  checkOptionKeys('evaluateNetworks', opts, EVAL_KEYS);
  const t0 = performance.now();
  const B = checkBatch(arch, 'weights', weights);
  const o = resolveEvalOptions(opts);
  const s = resolveSplit(task, arch, o.split);
  const { loss, correct } = await lossAndCorrect(arch, weights, rangeIndex(B), s.y, prepareSplit(s, arch.widths[0]!), o);
  const accuracy = new Float64Array(B);
  for (let b = 0; b < B; b++) {
    accuracy[b] = correct[b]! / s.n;
    loss[b]! /= s.n;
  }
  return {
    accuracy,
    loss,
    accuracySummary: summarize(accuracy),
    lossSummary: summarize(loss),
    split: o.split,
    n: s.n,
    ms: performance.now() - t0,
  };
}

/** @internal Summed cross-entropy and correct counts of the networks `idx` over all rows. */
export async function lossAndCorrect(
  arch: Architecture,
  weights: Float32Array,
  idx: Int32Array,
  y: Int32Array,
  prep: ReturnType<typeof prepareSplit>,
  o: { scale: number; groupSize?: number; rowChunk?: number },
): Promise<{ loss: Float64Array; correct: Float64Array }> {
  const B = idx.length;
  const C = arch.widths[arch.numLayers]!;
  const loss = new Float64Array(B);
  const correct = new Float64Array(B);
  const scale = o.scale;
  const fo: { groupSize?: number; rowChunk?: number } = {};
  if (o.groupSize !== undefined) fo.groupSize = o.groupSize;
  if (o.rowChunk !== undefined) fo.rowChunk = o.rowChunk;
  await forEachLogits(arch, weights, idx, prep, fo, (z, r0, R, g0, G) => {
    for (let r = 0; r < R; r++) {
      const label = y[r0 + r]!;
      for (let g = 0; g < G; g++) {
        const zb = (r * G + g) * C;
        let max = -Infinity;
        let arg = 0;
        for (let c = 0; c < C; c++) {
          const v = z[zb + c]!;
          if (v > max) {
            max = v;
            arg = c;
          }
        }
        let se = 0;
        for (let c = 0; c < C; c++) se += Math.exp(scale * (z[zb + c]! - max));
        // CE = logsumexp(s·z) − s·z_y, computed stably around the max.
        loss[g0 + g]! += Math.log(se) - scale * (z[zb + label]! - max);
        if (arg === label) correct[g0 + g]!++;
      }
    }
  });
  return { loss, correct };
}
