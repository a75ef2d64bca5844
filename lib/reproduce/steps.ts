/**
 * `wsflow reproduce wdbc-steps` and `mnist-steps`: the thesis' step figures (METHOD.md §11.1 "uci_steps", §11.2
 * "mnist_steps") — sample accuracy and loss against the number of Euler steps, with and without task-gradient guidance,
 * for the three aligned flows. Each flow is sampled from one set of prior draws at every step count twice: with
 * wsflow's corrected sampler (Riemannian/Euclidean velocity, guidance in the flat layout) and as the published code
 * sampled (x0-anchored velocity, guidance gradients in its (out, in) layout; METHOD.md §6.1, §12 items 1 and 3).
 * Guidance gradients are taken at the sampled networks as they are (logit scale 1), as the thesis did.
 */
import { WsfError } from '../errors.js';
import type { GeometryKind } from '../geometry/Geometry.js';
import type { MeanStd } from '../pipeline/evaluate.js';
import { sampleFlow } from '../pipeline/sample.js';
import { PALETTE, lineChart } from '../pipeline/svg.js';
import { loadTask } from '../tasks/loadTask.js';
import { type Experiment, ExperimentUnavailable, type ExperimentContext, type Scale, fmtStat, mdTable, needsGpu } from './harness.js';
import { MNIST_STEPS, UCI_STEPS, type StepsFigure } from './thesis.js';
import { evalSet } from './transfer.js';
import { type FlowExperimentConfig, GEOMETRIES, GEOMETRY_NAME, MNIST_FLOWS, WDBC_FLOWS, needsGpuAndMnistFull, prepareZoo, trainVariant } from './variants.js';

/** Configuration of a steps experiment. */
export interface StepsConfig {
  readonly flows: FlowExperimentConfig;
  /** Euler step counts, ascending. */
  readonly steps: readonly number[];
  /** Guidance strength and training examples per network and step (the thesis: λ 1 on WDBC, 0.1 on MNIST). */
  readonly guidance: { readonly lambda: number; readonly rows: number };
}

type Sampler = 'corrected' | 'published';

/** One curve: a flow, a sampler and a guidance strength over the step counts. */
export interface StepsCurve {
  readonly key: string;
  readonly geometry: GeometryKind;
  readonly sampler: Sampler;
  readonly lambda: number;
  readonly points: readonly { readonly steps: number; readonly accuracy: MeanStd; readonly loss: MeanStd }[];
}

const SAMPLER_LABEL: Readonly<Record<Sampler, string>> = { corrected: 'wsflow sampler', published: 'as published' };

async function runSteps(ctx: ExperimentContext, figure: StepsFigure): Promise<{ result: unknown; table: string; plots: Record<string, string>; notes: string[] }> {
  const cfg = ctx.config as StepsConfig;
  if (cfg.steps.length === 0 || cfg.steps.some((s, i) => !Number.isInteger(s) || s < 1 || (i > 0 && s <= cfg.steps[i - 1]!))) {
    throw new ExperimentUnavailable(`steps: expected ascending positive step counts, got ${JSON.stringify(cfg.steps)}`);
  }
  const task = loadTask(cfg.flows.task);
  const z = await prepareZoo(ctx, cfg.flows, { checkpoint: true, run: false });
  const arch = z.raw.arch;
  const n = cfg.flows.sample.n;
  const curves: StepsCurve[] = [];
  const flowTrain: Record<string, { steps: number; seconds: number; finalLoss: number }> = {};
  let x0: Float32Array | undefined;
  for (const g of GEOMETRIES) {
    const { tr } = await trainVariant(ctx, cfg.flows, z, { key: `${g}/aligned`, label: `${GEOMETRY_NAME[g]} (aligned)`, geometry: g, aligned: true, coupling: 'independent' });
    const fm = tr.flow;
    flowTrain[g] = { steps: tr.step, seconds: tr.seconds, finalLoss: tr.loss };
    try {
      x0 ??= fm.drawPriorSamples(n, ctx.seed + 101); // the thesis' prior is the same for the three flows: one set of draws
      for (const sampler of ['corrected', 'published'] as const) {
        for (const lambda of [0, cfg.guidance.lambda]) {
          const key = `${g}/${sampler}/${lambda === 0 ? 'unguided' : 'guided'}`;
          const points: { steps: number; accuracy: MeanStd; loss: MeanStd }[] = [];
          for (const steps of cfg.steps) {
            const r = await sampleFlow(fm, {
              n,
              steps,
              seed: ctx.seed + 1,
              x0,
              ...(sampler === 'published' ? { velocity: 'x0-anchored' as const } : {}),
              ...(lambda > 0 ? { guidance: { lambda, task, rows: cfg.guidance.rows, layout: sampler === 'published' ? ('published' as const) : ('flat' as const) } } : {}),
              ...(ctx.signal !== undefined ? { signal: ctx.signal } : {}),
            });
            if (!r.complete || ctx.signal?.aborted === true) throw new WsfError('interrupted; finished flows are kept under work/ and a re-run resumes', 'ERR_INTERRUPTED');
            const { accuracy, loss } = await evalSet(task, arch, r.weights);
            points.push({ steps, accuracy, loss });
          }
          curves.push({ key, geometry: g, sampler, lambda, points });
          ctx.log(`${GEOMETRY_NAME[g]}, ${SAMPLER_LABEL[sampler]}, λ ${lambda}: accuracy ${points.map((p) => `${p.steps}: ${p.accuracy.mean.toFixed(4)}`).join(', ')}`);
        }
      }
    } finally {
      fm.dispose();
    }
  }
  const head = ['flow', 'sampler', 'λ', ...cfg.steps.map((s) => `${s} steps: accuracy / loss`)];
  const rows = curves.map((c) => [GEOMETRY_NAME[c.geometry], SAMPLER_LABEL[c.sampler], String(c.lambda), ...c.points.map((p) => `${fmtStat(p.accuracy.mean, p.accuracy.std)} / ${p.loss.mean.toFixed(3)}`)]);
  const table = [
    `${arch.key} networks on ${task.name} (test split): ${n} samples per cell from one set of prior draws; guidance λ = ${cfg.guidance.lambda} with ${cfg.guidance.rows} training examples per network and step (one gradient per step). Zoo: ${z.summary.networks} trained networks, test accuracy ${fmtStat(z.summary.testAccuracy.mean, z.summary.testAccuracy.std)}.`,
    '',
    mdTable(head, rows),
  ].join('\n');
  const series = (metric: 'accuracy' | 'loss', sampler: Sampler) =>
    curves
      .filter((c) => c.sampler === sampler)
      .map((c) => ({
        name: `${GEOMETRY_NAME[c.geometry]}, λ ${c.lambda}`,
        points: c.points.map((p) => [p.steps, p[metric].mean] as const),
        color: PALETTE[GEOMETRIES.indexOf(c.geometry)]!,
        dashed: c.lambda > 0,
      }));
  const plots: Record<string, string> = {};
  for (const sampler of ['corrected', 'published'] as const) {
    for (const metric of ['accuracy', 'loss'] as const) {
      plots[`${metric}-${sampler}.svg`] = lineChart({
        title: `${task.name}: sample ${metric} against Euler steps (${SAMPLER_LABEL[sampler]})`,
        xLabel: 'Euler steps',
        yLabel: `test ${metric}`,
        series: series(metric, sampler),
        logX: true,
        xTicks: cfg.steps,
        ...(metric === 'accuracy' ? { yMax: 1 } : {}),
      });
    }
  }
  // As the other quick flow experiments say it: flows that have not learned their task yet show the samplers and
  // guidance acting on near-prior networks, not the thesis' curves.
  const chance = 1 / task.numClasses;
  const unguidedBest = Math.max(...curves.filter((c) => c.lambda === 0).flatMap((c) => c.points.map((p) => p.accuracy.mean)));
  const notes = [
    ...(unguidedBest < chance + 0.05 ? [`Measured at this size: the unguided samples are at chance (best ${unguidedBest.toFixed(3)}) — these flows have not learned ${task.name} networks yet, so the rows show the samplers and guidance acting on near-prior networks; compare them with each other, not with the thesis' curves.`] : []),
    `Flows: ${GEOMETRIES.map((g) => `${GEOMETRY_NAME[g]} ${flowTrain[g]!.steps} steps (loss ${flowTrain[g]!.finalLoss.toFixed(4)})`).join(', ')}; D=${cfg.flows.field.d}, ${cfg.flows.field.layers} layers, batch ${cfg.flows.train.batch}, the thesis' prior N(0, 0.1²), zoo aligned checkpoint by checkpoint, independent coupling.`,
    "Samplers: 'wsflow sampler' is the corrected one (velocity (x̂1 − x)/(1 − t) on the flow's geometry, guidance gradient in the flat layout, tangent-projected on the spheres); 'as published' integrates the published velocity x̂1 − x0 and adds the guidance gradient in the published (out, in) layout, untangented — on the same flows, with the same step counts (the published code counts grid points, one more than steps). Guidance gradients at logit scale 1, as the thesis took them.",
    `Thesis (figure '${figure.figure}', read off the figure; METHOD.md ${figure.section}): ${figure.text}`,
  ];
  return { result: { zoo: z.summary, arch: arch.widths, samples: n, steps: cfg.steps, guidance: cfg.guidance, flows: flowTrain, curves }, table, plots, notes };
}

const WDBC_STEPS: Record<Scale, StepsConfig> = {
  quick: { flows: { ...WDBC_FLOWS.quick, sample: { n: 32, steps: 32 } }, steps: [8, 32, 64, 128], guidance: { lambda: 1, rows: 64 } },
  paper: { flows: WDBC_FLOWS.paper, steps: [8, 64, 128, 256, 512], guidance: { lambda: 1, rows: 64 } },
};

const MNIST_STEPS_CFG: Record<Scale, StepsConfig> = {
  quick: { flows: { ...MNIST_FLOWS.quick, sample: { n: 16, steps: 16 } }, steps: [8, 16, 32, 64], guidance: { lambda: 0.1, rows: 64 } },
  paper: { flows: { ...MNIST_FLOWS.paper, sample: { n: 64, steps: 64 } }, steps: [8, 64, 128, 256, 512], guidance: { lambda: 0.1, rows: 64 } },
};

export const wdbcStepsExperiment: Experiment = {
  name: 'wdbc-steps',
  title: 'WDBC: sample quality against Euler steps, with and without guidance (figure "uci_steps")',
  section: '§11.1',
  description: 'The three aligned WDBC flows sampled at each step count, unguided and guided (λ 1), with wsflow\'s sampler and as the published code sampled; test accuracy and loss against the thesis\' curves.',
  config: WDBC_STEPS,
  thesis: UCI_STEPS,
  unavailable: needsGpu('trains three D=64, 5-layer flows for 250,000 steps each'),
  run: (ctx) => runSteps(ctx, UCI_STEPS),
};

export const mnistStepsExperiment: Experiment = {
  name: 'mnist-steps',
  title: 'MNIST: sample quality against Euler steps, with and without guidance (figure "mnist_steps")',
  section: '§11.2',
  description: 'The three aligned MNIST flows sampled at each step count, unguided and guided (λ 0.1), with wsflow\'s sampler and as the published code sampled; test accuracy and loss against the thesis\' curves.',
  config: MNIST_STEPS_CFG,
  thesis: MNIST_STEPS,
  unavailable: needsGpuAndMnistFull('trains three D=32, 5-layer flows for 100,000 steps each'),
  run: (ctx) => runSteps(ctx, MNIST_STEPS),
};
