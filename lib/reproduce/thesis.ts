/**
 * The thesis' published numbers ("Geometric Flow Models over Neural Network Weights", chapter 4), as copied into
 * METHOD.md §11 — the targets `wsflow reproduce` prints beside its own results. Tables are exact copies; values read
 * off figures are approximate (±0.005 accuracy, ±5 % loss) and marked `fromFigure`.
 */

/** mean ± std. */
export type Stat = readonly [mean: number, std: number];

/** One row of a results table. */
export interface ThesisRow {
  readonly accuracy: Stat;
  readonly loss: Stat;
  readonly diversity?: Stat;
}

/** §11.1 Table "uci_class_table": WDBC 30-16-16-2, test accuracy / loss. Keys: `<geometry>/<unaligned|aligned|aligned+ot>`. */
export const UCI_TABLE: Readonly<Record<string, ThesisRow>> = Object.freeze({
  'euclidean/unaligned': { accuracy: [0.998, 0.006], loss: [0.101, 0.05] },
  'euclidean/aligned': { accuracy: [0.998, 0.006], loss: [0.07, 0.04] },
  'euclidean/aligned+ot': { accuracy: [0.993, 0.01], loss: [0.053, 0.028] },
  'normalized/unaligned': { accuracy: [0.993, 0.009], loss: [0.027, 0.014] },
  'normalized/aligned': { accuracy: [0.989, 0.011], loss: [0.03, 0.015] },
  'normalized/aligned+ot': { accuracy: [0.988, 0.018], loss: [0.044, 0.047] },
  'geometric/unaligned': { accuracy: [0.992, 0.011], loss: [0.019, 0.009] },
  'geometric/aligned': { accuracy: [0.993, 0.001], loss: [0.018, 0.001] },
  'geometric/aligned+ot': { accuracy: [0.991, 0.011], loss: [0.02, 0.012] },
  target: { accuracy: [0.992, 0.01], loss: [0.048, 0.032] },
});

/** §11.1 loss barriers over 250 Adam networks (midpoint loss minus endpoint mean). */
export const UCI_BARRIERS = Object.freeze({ unaligned: [0.244, 0.009] as Stat, aligned: [0.07, 0.001] as Stat });

/** §11.2 Table "mnist_class_table": MNIST 784-10-10, aligned data. Keys: `<geometry>/<aligned|aligned+ot>`. */
export const MNIST_TABLE: Readonly<Record<string, ThesisRow>> = Object.freeze({
  'euclidean/aligned': { accuracy: [0.737, 0.085], loss: [0.814, 0.286], diversity: [0.00102, 0.00114] },
  'euclidean/aligned+ot': { accuracy: [0.757, 0.077], loss: [0.753, 0.245], diversity: [0.00085, 0.00094] },
  'normalized/aligned': { accuracy: [0.753, 0.074], loss: [1.537, 0.046], diversity: [0.00086, 0.00055] },
  'normalized/aligned+ot': { accuracy: [0.706, 0.078], loss: [1.608, 0.047], diversity: [0.00117, 0.00074] },
  'geometric/aligned': { accuracy: [0.737, 0.07], loss: [1.457, 0.04], diversity: [0.00073, 0.00049] },
  'geometric/aligned+ot': { accuracy: [0.786, 0.064], loss: [1.443, 0.046], diversity: [0.00093, 0.00063] },
  target: { accuracy: [0.933, 0.009], loss: [0.231, 0.027], diversity: [0.00002, 0.00001] },
});

/**
 * §11.2 Figure "mnist_averaging" (read off the figure; ranges given as their midpoint): BMA accuracy by n.
 * Keys: `<geometry|target>/<independent|ot>`.
 */
export const MNIST_BMA = Object.freeze({
  fromFigure: true,
  ns: [1, 4, 8, 16, 32, 64] as readonly number[],
  curves: Object.freeze({
    'target/independent': [0.932, 0.953, 0.957, 0.958, 0.96, 0.96],
    'euclidean/independent': [0.75, 0.889, 0.9075, 0.921, 0.925, 0.927],
    'normalized/independent': [0.745, 0.855, 0.879, 0.8905, 0.896, 0.897],
    'geometric/independent': [0.745, 0.8295, 0.8515, 0.87, 0.875, 0.877],
    'target/ot': [0.933, 0.957, 0.959, 0.961, 0.962, 0.963],
    'euclidean/ot': [0.755, 0.9, 0.922, 0.933, 0.937, 0.939],
    'normalized/ot': [0.73, 0.8635, 0.892, 0.904, 0.908, 0.911],
    'geometric/ot': [0.795, 0.9135, 0.931, 0.939, 0.941, 0.942],
  }) as Readonly<Record<string, readonly number[]>>,
});

/** §11.3 Table "mnist_generalization": Fashion-MNIST via guidance (λ = 0.1, 512 steps) from MNIST flows. */
export const FMNIST_GUIDANCE_TABLE: Readonly<Record<string, ThesisRow>> = Object.freeze({
  'adam-fmnist': { accuracy: [0.908, 0.003], loss: [0.334, 0.008] },
  'euclidean+guidance': { accuracy: [0.754, 0.082], loss: [0.764, 0.252] },
  'normalized+guidance': { accuracy: [0.724, 0.081], loss: [1.543, 0.045] },
  'geometric+guidance': { accuracy: [0.73, 0.067], loss: [1.47, 0.043] },
  'no-guidance': { accuracy: [0.08, 0.03], loss: [9.601, 1.402] },
});

/** §11.3 Figure "mnist_init" (read off the figure): Adam from flow samples vs Gaussian init, 5 runs, ~3,750 steps. */
export const LEARNED_INIT = Object.freeze({ fromFigure: true, flowInitStartAccuracy: 0.73, finalAccuracy: { flowInit: 0.95, gaussianInit: 0.94 } });

/** §11.4 Table "arch_mnist_generalization": flows trained on 784-10-10 sampling 784-32-10. */
export const ARCH_TRANSFER_TABLE: Readonly<Record<string, ThesisRow>> = Object.freeze({
  euclidean: { accuracy: [0.826, 0.076], loss: [0.83, 0.281] },
  'euclidean+guidance': { accuracy: [0.842, 0.079], loss: [0.796, 0.337] },
  geometric: { accuracy: [0.89, 0.03], loss: [1.03, 0.038] },
  'geometric+guidance': { accuracy: [0.886, 0.033], loss: [1.031, 0.037] },
  normalized: { accuracy: [0.203, 0.122], loss: [2.652, 0.667] },
  'normalized+guidance': { accuracy: [0.184, 0.083], loss: [2.776, 0.575] },
});

/** A step figure (§11.1 "uci_steps", §11.2 "mnist_steps"): what METHOD.md reads off it, per geometry and λ. */
export interface StepsFigure {
  readonly fromFigure: true;
  readonly figure: string;
  readonly section: string;
  /** Euler step counts on the figure's axis (the published code's grid points). */
  readonly steps: readonly number[];
  readonly lambdas: readonly number[];
  /** The readings as METHOD.md gives them, in words. */
  readonly text: string;
}

/** §11.1 Figure "uci_steps" (read off the figure; METHOD.md §11.1). */
export const UCI_STEPS: StepsFigure = Object.freeze({
  fromFigure: true,
  figure: 'uci_steps',
  section: '§11.1',
  steps: [8, 64, 128, 256, 512],
  lambdas: [0, 1],
  text: 'Euclidean accuracy 0.9947 at 8 steps, 0.998 from 64 on, loss 0.19 at 8 steps → ≈ 0.085 (λ 0) or ≈ 0.070 (λ 1); Normalized accuracy ≈ 0.988–0.989 (λ 0), ≈ 0.991 (λ 1), loss ≈ 0.030 / 0.027; Geometric accuracy 0.996 at 8 steps → ≈ 0.993 (λ 0), 0.9935 (λ 1), loss ≈ 0.020 / 0.018; the Adam target 0.986 at 64 steps, ~1.0 at 128, 0.9895 at 512, loss 0.65 → 0.045. Caption: guidance helps; more steps do not amplify it.',
});

/** §11.2 Figure "mnist_steps" (read off the figure; METHOD.md §11.2). */
export const MNIST_STEPS: StepsFigure = Object.freeze({
  fromFigure: true,
  figure: 'mnist_steps',
  section: '§11.2',
  steps: [8, 64, 128, 256, 512],
  lambdas: [0, 0.1],
  text: 'independent couplings; all flows plateau after ~64 steps: accuracy 0.71–0.725 at 64 steps; at 512 steps Normalized ≈ 0.753, Euclidean ≈ 0.745, Geometric ≈ 0.73–0.74; loss Euclidean ≈ 0.82–0.86, Normalized ≈ 1.52, Geometric ≈ 1.45; guidance (λ 0.1) changes little; the SGD target 0.725 at 64 steps, 0.80 at 128, 0.868 at 256, 0.90 at 512 (loss 2.05 → 1.05 → 0.75 → 0.47 → 0.33).',
});

/** §11.5 Figure "scaling" (read off the figure): MNIST accuracy / loss by embedding width d_E. */
export const SCALING = Object.freeze({
  fromFigure: true,
  params: { 8: 15_000, 16: 44_000, 32: 146_000 } as Readonly<Record<number, number>>,
  rows: Object.freeze({
    8: { euclidean: [0.35, 2.81], normalized: [0.33, 1.87], geometric: [0.45, 1.67] },
    16: { euclidean: [0.53, 1.66], normalized: [0.55, 1.61], geometric: [0.62, 1.52] },
    32: { euclidean: [0.75, 0.77], normalized: [0.735, 1.56], geometric: [0.765, 1.44] },
  }) as Readonly<Record<number, Readonly<Record<string, readonly [acc: number, loss: number]>>>>,
});

/** §11.6 Figure "gaussian-results" (read off the figure): per-sample mean weight of N(0,I) → N(1,I) over 802 coordinates. */
export const GAUSSIAN = Object.freeze({
  fromFigure: true,
  source: { mean: 0, std: 0.035 },
  target: { mean: 1, std: 0.035 },
  claim: 'deterministic sampling captures the centre but underestimates the variance; stochastic sampling with ε = 0.05 corrects it',
});
