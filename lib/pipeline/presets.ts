/**
 * Sizes of `wsflow demo`, in one place (the `reproduce` experiments keep theirs in lib/reproduce/experiments.ts).
 *
 * - `quick`: a small WDBC zoo, a small sparse flow trained for a few hundred steps, 128 samples. Measured on the
 *   2-core development machine: 2 min 37 s alone (4.5 training steps/s), 5 min 26 s with another full-core job
 *   running (2.0 steps/s); training is ~90 % of the time, so `steps` sets the wall time. At 400 steps the samples
 *   were clearly worse (≈ 0.89 test accuracy) than at 600 (≈ 0.95–0.96); without EMA the 600-step samples lost
 *   accuracy as the Euler steps grew (0.94 at 4 steps, 0.85 at 32), with EMA 0.99 they did not. With the
 *   preconditioned Geometric flow and hiddenIdentity (2026-11-28, commit 8c0ec7b): 4 min 10 s while a 2-thread
 *   MNIST trial ran beside it; samples 0.991 ± 0.012 test accuracy vs 0.979 ± 0.013 trained, 0.937 for trained +
 *   noise at the samples' distance, model-averaged 1.000 from 16 samples.
 * - `paper`: the thesis' sizes for WDBC (METHOD.md §9): 100 runs × 50 epochs (8,000 networks), a 5-layer D=64
 *   relational transformer trained 250k steps with batch 32, and the thesis' step counts — meant for a GPU.
 */
import type { GraphMode } from '../engine/VectorField.js';
import type { TimeDistribution } from '../flow/time.js';

/** One demo configuration. */
export interface DemoPreset {
  /** WDBC zoo: runs × epochs (the checkpoint schedule is the thesis' wdbc preset). */
  readonly runs: number;
  readonly epochs: number;
  /** Vector field. */
  readonly d: number;
  readonly layers: number;
  readonly heads: number;
  readonly graph: GraphMode;
  /** One positional embedding per hidden neuron (the demo's zoo is aligned; see VectorFieldOptions.hiddenIdentity). */
  readonly hiddenIdentity: boolean;
  /**
   * Prior: 'mixture' (one Gaussian per k-means cluster of the aligned zoo, as many clusters as runs — the `wsflow
   * train` default; MNIST 0.861 vs 0.555 for 'zoo', WDBC Geometric 0.985 ± 0.017 vs 0.988 ± 0.014), 'zoo' (the
   * Gaussian fitted to the aligned zoo; on WDBC at 600 steps it tightened all three flows — Geometric loss 0.037 vs
   * 0.045, Euclidean accuracy 0.975 vs 0.961 — results/trials/wdbc.jsonl) or 'gaussian' (N(0, 0.1²), the thesis).
   */
  readonly prior: 'mixture' | 'zoo' | 'gaussian';
  /** Spread of the mixture prior around its components' means (0.5: MNIST 0.891 vs 0.873 at 1; WDBC level). */
  readonly priorScale: number;
  /** Flow training. */
  readonly steps: number;
  readonly batch: number;
  readonly lr: number;
  /** Training-time distribution: 'beta' (Beta(1,2), the thesis), 'uniform' or 'logit-normal' (σ(N(0,1))). */
  readonly time: TimeDistribution;
  /** EMA decay of the parameters used for sampling (0: off; the thesis used none; `wsflow train --ema auto` picks 0.99 below 10k steps, 0.999 from there). */
  readonly ema: number;
  /** Samples for the main evaluation and the Euler steps they are generated with. */
  readonly samples: number;
  readonly sampleSteps: number;
  /** Euler step counts of the accuracy-vs-steps plot, and networks per point. */
  readonly stepSweep: readonly number[];
  readonly sweepSamples: number;
  /** Model-averaging ensemble sizes (each ≤ samples). */
  readonly bma: readonly number[];
}

/** The demo presets. Change the defaults here. */
export const DEMO_PRESETS: Readonly<Record<'quick' | 'paper', DemoPreset>> = Object.freeze({
  quick: Object.freeze({
    runs: 20,
    epochs: 50,
    d: 16,
    layers: 3,
    heads: 1,
    graph: 'sparse',
    hiddenIdentity: true,
    prior: 'mixture',
    priorScale: 0.5,
    steps: 600,
    batch: 32,
    lr: 2e-3,
    time: 'logit-normal',
    ema: 0.99,
    samples: 128,
    sampleSteps: 32,
    stepSweep: Object.freeze([4, 8, 16, 32, 64]),
    sweepSamples: 32,
    bma: Object.freeze([1, 4, 16, 64]),
  }),
  paper: Object.freeze({
    runs: 100,
    epochs: 50,
    d: 64,
    layers: 5,
    heads: 1,
    graph: 'sparse',
    hiddenIdentity: true,
    prior: 'mixture',
    priorScale: 0.5,
    steps: 250_000,
    batch: 32,
    lr: 1e-3,
    time: 'logit-normal',
    ema: 0.999,
    samples: 256,
    sampleSteps: 64,
    stepSweep: Object.freeze([8, 64, 128, 256, 512]),
    sweepSamples: 256,
    bma: Object.freeze([1, 4, 8, 16, 32, 64]),
  }),
});

/** A preset name. */
export type DemoScale = keyof typeof DEMO_PRESETS;
