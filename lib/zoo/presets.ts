/**
 * Zoo-building presets: the thesis' trajectory collection per task (METHOD.md §9), and generic defaults for
 * other tasks. Every field can be overridden in `buildZoo`'s options.
 */

/** Optimiser options. Adam: β1 0.9, β2 0.999, ε 1e-8 (PyTorch's defaults), no weight decay unless given. */
export type ZooOptimizerOptions =
  | { readonly name: 'adam'; readonly lr: number; readonly beta1?: number; readonly beta2?: number; readonly eps?: number; readonly weightDecay?: number }
  | { readonly name: 'sgd'; readonly lr: number; readonly momentum?: number; readonly weightDecay?: number };

/**
 * Initialisation: `'normal'` draws weights from N(0, std²) (default std 0.1) with zero biases (the thesis'
 * trajectory init); `'uniform'` is PyTorch's `nn.Linear` default, weights and biases U(−1/√fan_in, 1/√fan_in).
 */
export type ZooInitOptions = { readonly scheme: 'normal'; readonly std?: number } | { readonly scheme: 'uniform' };

/** Which checkpoints to keep: epoch ≥ skipEpochs and (batch index within the epoch) % everyIters == 0. */
export interface ZooSchedule {
  readonly skipEpochs: number;
  readonly everyIters: number;
}

/** A full set of training settings. */
export interface ZooPreset {
  readonly runs: number;
  readonly epochs: number;
  readonly batchSize: number;
  readonly optimizer: ZooOptimizerOptions;
  readonly init: ZooInitOptions;
  readonly schedule: ZooSchedule;
  /** Runs trained together per chunk (and per resumable partial file). */
  readonly chunkSize: number;
}

/**
 * The thesis appendix' MNIST settings, shared by the image tasks — except the learning rate: the appendix' SGD lr 0.1
 * (momentum 0.9, batch 64) trains unstably here (official MNIST, 50 runs: final test accuracy 0.736 ± 0.089, every
 * run between 0.55 and 0.89; the 8,000-digit subset, 4 runs: 0.850 ± 0.041), far from the thesis' own "Target (SGD)"
 * row, 0.933 ± 0.009. lr 0.01 reproduces that row (official MNIST, 50 runs: 0.938 ± 0.004; subset, 4 runs: 0.905 ± 0.006),
 * so the thesis' zoo was evidently trained at an effective step of 0.1 (0.01 with momentum 0.9, or 0.1 without).
 */
const THESIS_MNIST: ZooPreset = {
  runs: 50,
  epochs: 25,
  batchSize: 64,
  optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9, weightDecay: 1e-5 },
  init: { scheme: 'normal', std: 0.1 },
  schedule: { skipEpochs: 5, everyIters: 10 },
  chunkSize: 25,
};

const THESIS_WDBC: ZooPreset = {
  runs: 100,
  epochs: 50,
  batchSize: 64,
  optimizer: { name: 'adam', lr: 1e-3 },
  init: { scheme: 'normal', std: 0.1 },
  schedule: { skipEpochs: 10, everyIters: 4 },
  chunkSize: 25,
};

const presets: Record<'wdbc' | 'wdbc-reference' | 'mnist' | 'mnist-full' | 'fashion-mnist' | 'generic', ZooPreset> = {
  wdbc: THESIS_WDBC,
  'wdbc-reference': THESIS_WDBC,
  mnist: THESIS_MNIST,
  'mnist-full': { ...THESIS_MNIST, schedule: { skipEpochs: 5, everyIters: 100 } },
  'fashion-mnist': THESIS_MNIST,
  generic: {
    runs: 10,
    epochs: 20,
    batchSize: 64,
    optimizer: { name: 'adam', lr: 1e-3 },
    init: { scheme: 'normal', std: 0.1 },
    schedule: { skipEpochs: 5, everyIters: 4 },
    chunkSize: 10,
  },
};
/**
 * - `wdbc` (thesis): 100 runs × 50 epochs of Adam lr 1e-3, batch 64, N(0, 0.1²) init, keep epochs ≥ 10 every 4th
 *   batch → 2 per epoch, 80 per run, 8,000 networks.
 * - `wdbc-reference` (the published code's WDBC split): the wdbc settings.
 * - `mnist` (thesis appendix): 50 runs (the results text says 20; we take the appendix' 50) × 25 epochs of SGD
 *   lr 0.01 (the appendix says 0.1, which does not reach the thesis' trained accuracy, see THESIS_MNIST), momentum
 *   0.9, weight decay 1e-5, batch 64, N(0, 0.1²) init, keep epochs ≥ 5 every 10th batch → with
 *   the 8,000-digit train split (125 batches) 13 per epoch, 260 per run, 13,000 networks.
 * - `mnist-full` (the official 60,000 training digits, 938 batches per epoch): the mnist settings but every 100th
 *   batch → 10 per epoch, 200 per run, 10,000 networks (every 10th, as the thesis, would keep 93,800).
 * - `fashion-mnist`: the mnist settings (the thesis trained no Fashion-MNIST zoo).
 * - `generic` (any other task): 10 runs × 20 epochs of Adam 1e-3, batch 64, N(0, 0.1²), keep epochs ≥ 5 every 4th batch.
 */
export const ZOO_PRESETS: Readonly<Record<'wdbc' | 'wdbc-reference' | 'mnist' | 'mnist-full' | 'fashion-mnist' | 'generic', ZooPreset>> = Object.freeze(presets);
for (const p of Object.values(presets)) Object.freeze(p);

/** A preset name. */
export type ZooPresetName = keyof typeof ZOO_PRESETS;
