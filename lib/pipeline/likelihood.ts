/**
 * Log-likelihoods of networks under a Euclidean flow (what `wsflow eval --log-likelihood` prints): chunks of
 * networks through {@link FlowMatcher.logLikelihood}, yielding to the event loop between chunks so progress
 * renders and Ctrl-C stops cleanly. The density is the ambient one on R^P (METHOD.md §8.6); bits per dimension
 * are −log p / (P·ln 2).
 */
import { WsfError } from '../errors.js';
import type { FlowMatcher, LikelihoodOptions } from '../flow/FlowMatcher.js';
import type { Progress } from '../util/progress.js';

/** Options of {@link likelihoodOfNetworks}. */
export interface NetworkLikelihoodOptions extends Pick<LikelihoodOptions, 'steps' | 'solver' | 'exact' | 'probes' | 'probe'> {
  /** Base seed of the probes (chunk c uses a seed derived from it). Default 1. */
  seed?: number;
  /** Networks per chunk (one synchronous integration: the unit of interruption). Default 16. */
  batch?: number;
  /** Stops between chunks with ERR_INTERRUPTED. */
  signal?: AbortSignal;
  progress?: Progress;
}

/** Per-network results and summaries. */
export interface NetworkLikelihood {
  /** log p̂1 per network (nats). */
  logLikelihood: Float64Array;
  /** Monte-Carlo standard error per network (0 with the exact trace). */
  stderr: Float64Array;
  /** log p0(x0) and ∫ tr(∂v/∂x) dt per network. */
  logPrior: Float64Array;
  divergence: Float64Array;
  /** −log p̂1 / (P·ln 2) per network. */
  bitsPerDim: Float64Array;
  seconds: number;
}

/**
 * Computes the log-likelihood of every network of `weights` (n × P) under `fm`.
 * @throws WsfError ERR_INVALID for a flow without an ambient density (see FlowMatcher.likelihoodUnsupported) or bad
 *   options, ERR_SHAPE / ERR_NUMERIC for bad weights, ERR_INTERRUPTED when `signal` aborts
 */
export async function likelihoodOfNetworks(fm: FlowMatcher, weights: Float32Array, o: NetworkLikelihoodOptions = {}): Promise<NetworkLikelihood> {
  const t0 = performance.now();
  const P = fm.arch.numParams;
  const n = weights.length / P;
  const why = fm.likelihoodUnsupported();
  if (why !== undefined) throw new WsfError(why, 'ERR_INVALID');
  // Batches are the unit of interruption (each is one synchronous integration): 16 keeps Ctrl-C within seconds.
  const batch = Math.max(1, Math.min(n, o.batch ?? 16));
  const r: NetworkLikelihood = {
    logLikelihood: new Float64Array(n),
    stderr: new Float64Array(n),
    logPrior: new Float64Array(n),
    divergence: new Float64Array(n),
    bitsPerDim: new Float64Array(n),
    seconds: 0,
  };
  o.progress?.setTotal(n);
  for (let done = 0, c = 0; done < n; c++) {
    if (o.signal?.aborted === true) throw new WsfError(`interrupted after ${done} of ${n} networks`, 'ERR_INTERRUPTED');
    const B = Math.min(batch, n - done);
    const res = fm.logLikelihood(weights.subarray(done * P, (done + B) * P), {
      seed: ((o.seed ?? 1) * 1_000_003 + c) % 2 ** 31,
      batchSize: B,
      ...(o.steps !== undefined ? { steps: o.steps } : {}),
      ...(o.solver !== undefined ? { solver: o.solver } : {}),
      ...(o.exact !== undefined ? { exact: o.exact } : {}),
      ...(o.probes !== undefined ? { probes: o.probes } : {}),
      ...(o.probe !== undefined ? { probe: o.probe } : {}),
    });
    r.logLikelihood.set(res.logLikelihood, done);
    r.stderr.set(res.stderr, done);
    r.logPrior.set(res.logPrior, done);
    r.divergence.set(res.divergence, done);
    for (let b = 0; b < B; b++) r.bitsPerDim[done + b] = -res.logLikelihood[b]! / (P * Math.LN2);
    done += B;
    o.progress?.update(done);
    await new Promise<void>((res) => setImmediate(res));
  }
  o.progress?.done();
  r.seconds = (performance.now() - t0) / 1000;
  return r;
}
