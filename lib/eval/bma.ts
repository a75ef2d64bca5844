/**
 * Bayesian model averaging curves (METHOD.md §8.3): the predictive of an ensemble of n generated networks,
 * p(y|x) ≈ (1/n) Σ_k p(y|x, θ_k), scored by accuracy and mean negative log-likelihood, for several n, each over
 * `repeats` random subsets (drawn without replacement). `mode: 'logit'` instead averages raw logits and applies the
 * softmax afterwards — what the published `model_average` does (METHOD.md §12 item 12).
 */
import { type Architecture, checkBatch } from '../arch/Architecture.js';
import { WsfError } from '../errors.js';
import type { Task } from '../tasks/Task.js';
import { Rng } from '../util/rng.js';
import { checkChoice, checkInt, checkOptionKeys, invalidArgument, optionKeys } from '../util/validate.js';
import { resolveEvalOptions, SPLIT_EVAL_KEYS, type SplitEvalOptions } from './evaluate.js';
import { forEachLogits, prepareSplit } from './forward.js';
import { type Summary, summarize } from './stats.js';
import { resolveSplit } from './taskData.js';

/** Options of {@link bmaCurve}. */
export interface BmaOptions extends SplitEvalOptions {
  /** Ensemble sizes (default [1, 4, 8, 16, 32, 64]); each in 1…B. */
  ns?: readonly number[];
  /** Random subsets per ensemble size (default 10). */
  repeats?: number;
  /** 'prob' (default; average probabilities, the thesis) or 'logit' (average logits, the published code). */
  mode?: 'prob' | 'logit';
  /** Subset-drawing seed (default 0). */
  seed?: number;
}

/** One point of a BMA curve. */
export interface BmaPoint {
  readonly n: number;
  /** Accuracy of the averaged predictive over the repeats (mean ± population std). */
  readonly accuracy: Summary;
  /** Mean negative log-likelihood (nats) of the averaged predictive over the repeats. */
  readonly loss: Summary;
}

/** Result of {@link bmaCurve}. */
export interface BmaResult {
  readonly mode: 'prob' | 'logit';
  readonly points: readonly BmaPoint[];
  readonly ms: number;
}

const BMA_KEYS = optionKeys<BmaOptions>()([...SPLIT_EVAL_KEYS, 'ns', 'repeats', 'mode', 'seed'] as const);

/**
 * Accuracy and loss of averaged ensembles of `samples` as a function of the ensemble size.
 * Memory: the per-network log-probabilities (or logits) of the networks used, U·n_split·C floats (U ≤ B).
 * @param task the task
 * @param arch the base MLP
 * @param samples Float32Array B×P (flat layout)
 * @param opts see {@link BmaOptions}
 * @returns one {@link BmaPoint} per ensemble size, in the order of `ns`
 * @throws WsfError ERR_DTYPE / ERR_SHAPE / ERR_NUMERIC for bad samples, ERR_INVALID for an ensemble size above B
 */
export async function bmaCurve(task: Task, arch: Architecture, samples: Float32Array, opts: BmaOptions = {}): Promise<BmaResult> {
  checkOptionKeys('bmaCurve', opts, BMA_KEYS);
  const t0 = performance.now();
  const B = checkBatch(arch, 'samples', samples);
  const o = resolveEvalOptions(opts);
  const s = resolveSplit(task, arch, o.split);
  const ns = opts.ns ?? [1, 4, 8, 16, 32, 64];
  if (!Array.isArray(ns) || ns.length === 0) throw invalidArgument('ns', 'a non-empty array of ensemble sizes', ns);
  for (const n of ns) {
    if (!Number.isInteger(n) || n < 1 || n > B) {
      throw new WsfError(`Expected ensemble sizes in 1…${B} (the number of samples) in \`ns\` but received ${n}; pass more samples or smaller ns`, 'ERR_INVALID');
    }
  }
  const repeats = checkInt('repeats', opts.repeats ?? 10, 1);
  const mode = checkChoice('mode', opts.mode ?? 'prob', ['prob', 'logit'] as const);
  const rng = new Rng(checkInt('seed', opts.seed ?? 0, -(2 ** 31), 2 ** 32 - 1));

  // Draw all subsets first, then compute outputs only for the networks that appear.
  const draws: Int32Array[][] = ns.map(() => []);
  const used = new Uint8Array(B);
  const pool = new Int32Array(B);
  for (let t = 0; t < ns.length; t++) {
    const n = ns[t]!;
    for (let r = 0; r < repeats; r++) {
      for (let i = 0; i < B; i++) pool[i] = i;
      for (let i = 0; i < n; i++) {
        const j = i + rng.int(B - i);
        const tmp = pool[i]!;
        pool[i] = pool[j]!;
        pool[j] = tmp;
      }
      const pick = pool.slice(0, n);
      for (const k of pick) used[k] = 1;
      draws[t]!.push(pick);
    }
  }
  const idx = Int32Array.from([...used.keys()].filter((k) => used[k] === 1));
  const slot = new Int32Array(B).fill(-1);
  idx.forEach((k, u) => (slot[k] = u));
  const N = s.n;
  const C = arch.widths[arch.numLayers]!;
  // Per used network: log-probabilities (prob mode) or scaled logits (logit mode), [u][row][C], f32.
  const out = new Float32Array(idx.length * N * C);
  const fo: { groupSize?: number; rowChunk?: number } = {};
  if (o.groupSize !== undefined) fo.groupSize = o.groupSize;
  if (o.rowChunk !== undefined) fo.rowChunk = o.rowChunk;
  await forEachLogits(arch, samples, idx, prepareSplit(s, arch.widths[0]!), fo, (z, r0, R, g0, G) => {
    for (let r = 0; r < R; r++) {
      for (let g = 0; g < G; g++) {
        const zb = (r * G + g) * C;
        const ob = ((g0 + g) * N + r0 + r) * C;
        if (mode === 'logit') {
          for (let c = 0; c < C; c++) out[ob + c] = o.scale * z[zb + c]!;
          continue;
        }
        let max = -Infinity;
        for (let c = 0; c < C; c++) max = Math.max(max, o.scale * z[zb + c]!);
        let se = 0;
        for (let c = 0; c < C; c++) se += Math.exp(o.scale * z[zb + c]! - max);
        const lse = max + Math.log(se);
        for (let c = 0; c < C; c++) out[ob + c] = o.scale * z[zb + c]! - lse;
      }
    }
  });

  const y = s.y;
  const avg = new Float64Array(C);
  const points: BmaPoint[] = [];
  for (let t = 0; t < ns.length; t++) {
    const accs = new Float64Array(repeats);
    const losses = new Float64Array(repeats);
    for (let r = 0; r < repeats; r++) {
      const pick = draws[t]![r]!;
      const n = pick.length;
      let correct = 0;
      let nll = 0;
      for (let row = 0; row < N; row++) {
        avg.fill(0);
        const label = y[row]!;
        if (mode === 'prob') {
          // p̄_c = (1/n) Σ_k exp(log p_kc); NLL = −log p̄_y via logsumexp over the ensemble (no underflow).
          let maxY = -Infinity;
          for (const k of pick) maxY = Math.max(maxY, out[(slot[k]! * N + row) * C + label]!);
          let sy = 0;
          for (const k of pick) {
            const ob = (slot[k]! * N + row) * C;
            for (let c = 0; c < C; c++) avg[c]! += Math.exp(out[ob + c]!);
            sy += Math.exp(out[ob + label]! - maxY);
          }
          nll -= maxY + Math.log(sy / n);
        } else {
          for (const k of pick) {
            const ob = (slot[k]! * N + row) * C;
            for (let c = 0; c < C; c++) avg[c]! += out[ob + c]! / n;
          }
          let max = -Infinity;
          for (let c = 0; c < C; c++) max = Math.max(max, avg[c]!);
          let se = 0;
          for (let c = 0; c < C; c++) se += Math.exp(avg[c]! - max);
          nll += Math.log(se) + max - avg[label]!;
        }
        let arg = 0;
        for (let c = 1; c < C; c++) if (avg[c]! > avg[arg]!) arg = c;
        if (arg === label) correct++;
      }
      accs[r] = correct / N;
      losses[r] = nll / N;
    }
    points.push({ n: ns[t]!, accuracy: summarize(accs), loss: summarize(losses) });
  }
  return { mode, points, ms: performance.now() - t0 };
}
