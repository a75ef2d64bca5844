/** `wsflow eval`: accuracy/loss of generated (or any) networks, model averaging, and comparisons with a zoo. */
import { mlp } from '../../arch/Architecture.js';
import { functionalDiversity } from '../../eval/diversity.js';
import { compactEvaluation, evaluateSamples, type SampleEvaluation } from '../../pipeline/evaluate.js';
import { likelihoodOfNetworks } from '../../pipeline/likelihood.js';
import { readWeightsFile } from '../../pipeline/sample.js';
import { TASK_NAMES } from '../../tasks/loadTask.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { archFor, checkFiniteNetworks, checkZooTask, checked, duration, flowFor, pm, table, taskFor, zooFor } from '../common.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'eval',
  summary: 'evaluate networks: accuracy, loss, model averaging, baselines, memorisation',
  usage: [
    'wsflow eval --weights FILE [--task T] [--bma 1,4,16,64] [--zoo DIR] [--json]',
    'wsflow eval --weights FILE --flow DIR --log-likelihood [--steps 64] [--solver euler|midpoint|rk4] [--probes 25 | --exact]',
  ],
  description: `Evaluates the networks of FILE (a samples file from 'wsflow sample', or a zoo file) on the task's test
split: accuracy and mean cross-entropy, mean ± std over the networks; with --bma, the accuracy of averaged
predictive distributions of n random networks (Bayesian model averaging). With --zoo (the zoo the flow learned
from), also: the trained networks' metrics, three baselines — trained networks plus Gaussian noise at the samples'
nearest-neighbour distance, averages of --average-k trained networks, and draws from the Gaussian with the zoo's
mean and empirical covariance — and memorisation: the samples' distance
to their nearest trained network against the zoo's own leave-one-out nearest-neighbour distance. Comparisons are
made in the flow's space: canonicalised networks for Normalized/Geometric flows (--space).

With --log-likelihood, instead: the log-likelihood of each network under the Euclidean flow --flow, by the
instantaneous change of variables — the sampling ODE integrated backwards from the network to t = 0 on the
sampler's time grid (--steps, --solver), log p(x1) = log p0(x0) − ∫ tr(∂v/∂x) dt, the trace estimated with
--probes Hutchinson probes per network (--probe rademacher|gaussian; the standard error is reported) or computed
exactly with --exact (one backward pass per parameter and evaluation: small networks only). It is the ambient
density on R^P in nats (and bits per dimension); Normalized and Geometric flows are refused, since on their spheres
the ambient divergence is not a density. The networks must be in the flow's raw (aligned) weight space.`,
  options: {
    weights: { type: 'string', metavar: 'FILE', exists: 'file', required: true, description: 'samples or zoo file (tensor `weights` [n, P])' },
    task: { type: 'string', choices: TASK_NAMES, description: "task to evaluate on (default: the file's task)" },
    arch: { type: 'string', metavar: 'WIDTHS', description: "architecture when the file does not record one (default: the file's)" },
    bma: { type: 'ints', min: 1, metavar: 'LIST', description: 'model-averaging ensemble sizes, e.g. 1,4,16,64 (each ≤ the number of networks)' },
    'bma-repeats': { type: 'int', min: 1, max: 10000, default: 10, metavar: 'N', description: 'random ensembles per size' },
    zoo: { type: 'string', metavar: 'DIR|FILE', exists: 'any', description: 'the zoo the flow learned from, for trained-network metrics, baselines and memorisation' },
    'ref-count': { type: 'int', min: 1, metavar: 'N', description: 'trained and baseline networks to evaluate (default: max(samples, 256), at most the zoo)' },
    mixture: { type: 'string', default: 'auto', metavar: 'K|run|auto|off', description: "with --zoo: also draw from the mixture prior's fit of the zoo, with K k-means clusters or one per run (auto: when the samples come from a flow with a mixture prior, its clusters)" },
    diversity: { type: 'int', min: 2, metavar: 'N', description: "also the functional diversity of the first N networks: mean pairwise Jensen–Shannon divergence of their predictive distributions on the test inputs (lib/eval/diversity.ts; at most 256 pairs; about 0.1 s per pair with 1,000 inputs)" },
    'diversity-inputs': { needs: 'diversity', type: 'int', min: 1, default: 1000, metavar: 'K', description: 'with --diversity: test examples the predictive distributions are taken on' },
    'average-k': { type: 'int', min: 1, default: 2, metavar: 'K', description: 'trained networks per average in the averaging baseline' },
    space: { type: 'string', choices: ['auto', 'raw', 'canonical'], default: 'auto', description: "comparison space ('auto': canonical when the samples are canonicalised)" },
    'log-likelihood': { type: 'boolean', description: 'log-likelihoods of the networks under --flow (Euclidean flows) instead of task metrics' },
    flow: { type: 'string', metavar: 'DIR|FILE', exists: 'any', description: 'with --log-likelihood: the flow folder (its flow.safetensors) or file' },
    steps: { type: 'int', min: 1, max: 1e6, metavar: 'N', description: 'with --log-likelihood: solver steps (default 64)' },
    solver: { type: 'string', choices: ['euler', 'midpoint', 'rk4'], description: 'with --log-likelihood: ODE solver (default euler, as sampling)' },
    probes: { type: 'int', min: 1, max: 65536, metavar: 'K', description: 'with --log-likelihood: Hutchinson probes per network (default 25)' },
    probe: { type: 'string', choices: ['rademacher', 'gaussian'], description: 'with --log-likelihood: probe distribution (default rademacher)' },
    exact: { type: 'boolean', description: 'with --log-likelihood: exact trace (P backward passes per evaluation)' },
    batch: { type: 'int', min: 1, max: 1e6, metavar: 'N', description: 'with --log-likelihood: networks integrated at once (default 16; Ctrl-C stops between batches)' },
    ...COMMON,
  },
  examples: [
    'wsflow eval --weights s.safetensors --task wdbc --bma 1,4,16,64',
    'wsflow eval --weights s.safetensors --zoo zoos/wdbc --json',
    'wsflow eval --weights zoos/wdbc/zoo.safetensors --task wdbc',
    // (flows/wdbc-euc-ot: the Euclidean flow of train's examples, on the raw zoo with the Gaussian prior)
    'wsflow eval --weights zoos/wdbc/zoo.safetensors --flow flows/wdbc-euc-ot --log-likelihood --solver rk4 --steps 16',
  ],
} as const satisfies CommandSpec;

/** --mixture checked: a cluster count, 'run', 'off' or 'auto'. */
function mixtureOption(opt: string | undefined): number | 'run' | 'off' | 'auto' {
  if (opt === undefined || opt === 'auto' || opt === 'off' || opt === 'run') return opt ?? 'auto';
  const k = Number(opt);
  if (!Number.isInteger(k) || k < 1 || k > 4096) throw new UsageError(`--mixture: expected a cluster count in [1, 4096], 'run', 'auto' or 'off', got '${opt}'`);
  return k;
}

/** The clusters of the mixture-fit baseline: the option's, or with 'auto' the samples' flow prior's when it is a mixture. */
function mixtureClusters(opt: number | 'run' | 'off' | 'auto', prior: string | undefined, runs: Int32Array): { components?: number; runs?: Int32Array; scale?: number } | undefined {
  if (opt === 'off') return undefined;
  if (opt === 'run') return { runs };
  if (opt !== 'auto') return { components: opt };
  try {
    const p = JSON.parse(prior ?? 'null') as { kind?: string; components?: number; by?: string; scale?: number } | null;
    if (p?.kind !== 'mixture') return undefined;
    return { ...(p.by === 'run' ? { runs } : { components: p.components ?? 8 }), ...(p.scale !== undefined ? { scale: p.scale } : {}) };
  } catch {
    return undefined;
  }
}

function report(e: SampleEvaluation, file: string): string {
  const rows: string[][] = [['samples', String(e.samples.count), pm(e.samples.accuracy), pm(e.samples.loss)]];
  if (e.trained !== undefined) rows.push(['trained networks', String(e.trained.count), pm(e.trained.accuracy), pm(e.trained.loss)]);
  if (e.baselines !== undefined) {
    rows.push([`trained + noise (σ ${e.baselines.noise.sigma.toPrecision(3)}${e.baselines.noise.reached ? '' : ', farthest reachable'})`, String(e.baselines.noise.count), pm(e.baselines.noise.accuracy), pm(e.baselines.noise.loss)]);
    rows.push([`average of ${e.baselines.average.k} trained`, String(e.baselines.average.count), pm(e.baselines.average.accuracy), pm(e.baselines.average.loss)]);
    rows.push([`Gaussian fit of the zoo (${e.baselines.gaussian.members} members)`, String(e.baselines.gaussian.count), pm(e.baselines.gaussian.accuracy), pm(e.baselines.gaussian.loss)]);
    const mix = e.baselines.mixture;
    if (mix !== undefined) rows.push([`mixture fit of the zoo (${mix.components} clusters${mix.scale !== 1 ? `, spread ${mix.scale}` : ''})`, String(mix.count), pm(mix.accuracy), pm(mix.loss)]);
  }
  const lines = [`${file} on ${e.task} (${e.split}, ${e.examples} examples; ${e.space} space)`, '', table(['networks', 'n', 'accuracy', 'loss'], rows)];
  if (e.bma !== undefined) {
    lines.push('', 'model averaging (accuracy of the averaged predictive, mean ± std over random ensembles):');
    const head = ['', ...e.bma.map((p) => `n=${p.n}`)];
    const r: string[][] = [['samples', ...e.bma.map((p) => p.accuracy.mean.toFixed(4))]];
    if (e.trained?.bma !== undefined) r.push(['trained', ...e.bma.map((p) => e.trained!.bma!.find((q) => q.n === p.n)?.accuracy.mean.toFixed(4) ?? '—')]);
    lines.push(table(head, r));
  }
  if (e.memorisation !== undefined) {
    const m = e.memorisation;
    lines.push('', `memorisation: samples' nearest-trained distance ${pm(m.sampleNN)} vs the zoo's leave-one-out ${pm(m.zooLooNN)} (ratio ${m.ratio.toFixed(3)})`);
  }
  lines.push(`(${duration(e.seconds)})`);
  return lines.join('\n');
}

type EvalValues = ReturnType<typeof parseCommand<typeof spec>>['values'];

async function runLikelihood(ctx: Parameters<CliCommand['run']>[0], v: EvalValues & { weights: string; flow: string }): Promise<number> {
  const device = ctx.setup(v);
  const archOverride = v.arch !== undefined ? checked('--arch', () => mlp(v.arch!)) : undefined;
  const wf = checked('--weights', () => readWeightsFile(v.weights, archOverride));
  checkFiniteNetworks('--weights', v.weights, wf.weights, wf.arch.numParams);
  const { file, flow } = flowFor('--flow', v.flow, device);
  try {
    const why = flow.likelihoodUnsupported();
    if (why !== undefined) throw new UsageError(`--flow: ${file}: ${why}`);
    if (!flow.arch.equals(wf.arch)) throw new UsageError(`--flow: ${file} models ${flow.arch.key} networks; ${v.weights} holds ${wf.arch.key}`);
    if (wf.metadata.canonical === 'true') throw new UsageError(`--weights: ${v.weights} holds canonicalised networks; the Euclidean flow's density is over raw weights`);
    const bar = ctx.progress({ label: 'log-likelihood', total: wf.n, unit: 'networks' });
    const r = await likelihoodOfNetworks(flow, wf.weights, {
      seed: v.seed + 1,
      signal: ctx.signal,
      progress: bar,
      ...(v.steps !== undefined ? { steps: v.steps } : {}),
      ...(v.solver !== undefined ? { solver: v.solver as 'euler' | 'midpoint' | 'rk4' } : {}),
      ...(v.exact === true ? { exact: true } : {}),
      ...(v.probes !== undefined ? { probes: v.probes } : {}),
      ...(v.probe !== undefined ? { probe: v.probe as 'rademacher' | 'gaussian' } : {}),
      ...(v.batch !== undefined ? { batch: v.batch } : {}),
    });
    const stats = (a: Float64Array): { mean: number; std: number } => {
      const m = a.reduce((s, x) => s + x, 0) / a.length;
      return { mean: m, std: a.length > 1 ? Math.sqrt(a.reduce((s, x) => s + (x - m) ** 2, 0) / (a.length - 1)) : 0 };
    };
    const steps = v.steps ?? 64;
    const solver = v.solver ?? 'euler';
    const trace = v.exact === true ? 'exact' : `hutchinson (${v.probes ?? 25} ${v.probe ?? 'rademacher'} probes)`;
    const res = {
      weights: v.weights,
      flow: file,
      arch: wf.arch.widths,
      n: wf.n,
      dims: wf.arch.numParams,
      steps,
      solver,
      trace,
      logLikelihood: stats(r.logLikelihood),
      bitsPerDim: stats(r.bitsPerDim),
      meanStderr: r.stderr.reduce((s, x) => s + x, 0) / wf.n,
      logLikelihoods: Array.from(r.logLikelihood),
      stderrs: Array.from(r.stderr),
      seconds: r.seconds,
      ...(flow.likelihoodGridDependent() ? { note: GRID_NOTE } : {}),
    };
    ctx.result(res, () =>
      [
        `${v.weights} under the Euclidean flow ${file} (${wf.n} networks of ${wf.arch.key}, P = ${wf.arch.numParams}; ambient density):`,
        `log-likelihood ${pm(res.logLikelihood, 3)} nats per network (mean ± std over networks), ${pm(res.bitsPerDim, 4)} bits/dim`,
        `trace: ${trace}${v.exact === true ? '' : `, mean standard error ${res.meanStderr.toPrecision(3)} nats`}; ${steps} ${solver} steps (${duration(r.seconds)})`,
        ...(res.note !== undefined ? [`note: ${res.note}`] : []),
      ].join('\n'),
    );
    return 0;
  } finally {
    flow.dispose();
  }
}

/** Said with the log-likelihoods of a plain x1-prediction flow (FlowMatcher.likelihoodGridDependent). */
const GRID_NOTE =
  'the flow predicts x1 without preconditioning: its velocity (x̂1 − x)/(1 − t) contracts onto x̂1 near t = 1, so for networks off its paths the log-likelihood falls without bound as the grid is refined (--steps); compare figures at equal --steps and --solver only, or train with --precondition on for a grid-independent density';

export const evalCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    if (v.weights === undefined) throw new UsageError('--weights: expected a samples file (e.g. --weights s.safetensors)');
    const llOnly = ['flow', 'steps', 'solver', 'probes', 'probe', 'exact', 'batch'] as const;
    if (v['log-likelihood'] !== true) {
      const stray = llOnly.find((k) => v[k] !== undefined);
      if (stray !== undefined) throw new UsageError(`--${stray}: applies to --log-likelihood only`);
    } else {
      const stray = (['task', 'bma', 'zoo', 'ref-count', 'diversity'] as const).find((k) => v[k] !== undefined);
      if (stray !== undefined) throw new UsageError(`--${stray}: --log-likelihood computes likelihoods only; run 'wsflow eval' without it for task metrics`);
      if (v.flow === undefined) throw new UsageError('--log-likelihood: needs --flow (the Euclidean flow whose density is evaluated)');
      if (v.exact === true && v.probes !== undefined) throw new UsageError('--probes: not used with --exact');
      return runLikelihood(ctx, v as typeof v & { weights: string; flow: string });
    }
    const mixtureOpt = mixtureOption(v.mixture);
    const device = ctx.setup(v);
    const archOverride = v.arch !== undefined ? checked('--arch', () => mlp(v.arch!)) : undefined;
    const wf = checked('--weights', () => readWeightsFile(v.weights!, archOverride));
    checkFiniteNetworks('--weights', v.weights, wf.weights, wf.arch.numParams);
    const taskName = v.task ?? (wf.metadata.task !== undefined && wf.metadata.task !== '' ? wf.metadata.task : undefined);
    if (taskName === undefined) throw new UsageError(`--task: ${v.weights} does not record its task; pass --task`);
    const task = taskFor(v.task !== undefined ? '--task' : `${v.weights} (its recorded task; --task names another)`, taskName);
    // (a --task given on the command line is the one that does not fit the file's networks)
    archFor(v.task !== undefined ? '--task' : '--weights', wf.arch.key, task);
    for (const n of v.bma ?? []) if (n > wf.n) throw new UsageError(`--bma: ensemble size ${n} exceeds the ${wf.n} networks in ${v.weights}`);
    if (v.diversity !== undefined && v.diversity > wf.n) throw new UsageError(`--diversity: ${v.diversity} networks asked for; ${v.weights} holds ${wf.n}`);
    const canonical = v.space === 'canonical' || (v.space === 'auto' && wf.metadata.canonical === 'true');
    let zoo: Float32Array | undefined;
    let zooFile: string | undefined;
    let mixture: { components?: number; runs?: Int32Array; scale?: number } | undefined;
    if (v.zoo !== undefined) {
      const data = wf.metadata.zoo_aligned === 'true' ? 'aligned' : wf.metadata.zoo_aligned === 'false' ? 'raw' : 'auto';
      const z = zooFor('--zoo', v.zoo, data);
      if (!z.zoo.arch.equals(wf.arch)) throw new UsageError(`--zoo: ${z.loc.file} holds ${z.zoo.arch.key} networks, the samples are ${wf.arch.key}`);
      if (z.zoo.n < 2) throw new UsageError(`--zoo: ${z.loc.file} holds ${z.zoo.n} network; comparisons need at least 2`);
      checkZooTask('--zoo', z.loc.file, z.zoo, task);
      if (v['average-k'] > z.zoo.n) throw new UsageError(`--average-k: ${v['average-k']} trained networks per average, but ${z.loc.file} holds ${z.zoo.n}`);
      if (typeof mixtureOpt === 'number' && mixtureOpt > z.zoo.n) throw new UsageError(`--mixture: ${mixtureOpt} clusters asked for, but ${z.loc.file} holds ${z.zoo.n} networks`);
      // Distances to the zoo are meaningful in the space the flow learned: aligned samples against a raw zoo (or the
      // reverse) measure the permutations, not memorisation.
      const zooAligned = z.zoo.metadata.aligned_to !== undefined;
      if ((wf.metadata.zoo_aligned === 'true' || wf.metadata.zoo_aligned === 'false') && (wf.metadata.zoo_aligned === 'true') !== zooAligned) {
        ctx.note(`note: ${v.weights} comes from a flow trained on ${wf.metadata.zoo_aligned === 'true' ? 'an aligned' : 'a raw'} zoo, but ${z.loc.file} is ${zooAligned ? 'aligned' : 'raw'}: the distances below compare networks in different neuron orders (pass the zoo folder, or its ${wf.metadata.zoo_aligned === 'true' ? 'aligned.safetensors' : 'zoo.safetensors'})`);
      }
      zoo = z.zoo.weights;
      zooFile = z.loc.file;
      mixture = mixtureClusters(mixtureOpt, wf.metadata.prior, z.zoo.run);
    }
    const bar = ctx.progress({ label: 'eval', unit: 'stages' });
    let e: SampleEvaluation;
    try {
      e = await evaluateSamples({
        task,
        arch: wf.arch,
        samples: wf.weights,
        canonical,
        bma: v.bma ?? [],
        bmaRepeats: v['bma-repeats'],
        averageK: v['average-k'],
        seed: v.seed,
        device,
        onStage: (s) => bar.tick(1, { stage: s }),
        ...(zoo !== undefined ? { zoo } : {}),
        ...(v['ref-count'] !== undefined ? { refCount: v['ref-count'] } : {}),
        ...(mixture !== undefined ? { mixture } : {}),
      });
    } finally {
      bar.done();
    }
    let diversity: { value: number; pairJsd: { mean: number; std: number }; networks: number; inputs: number; pairs: number; subsampled: boolean } | undefined;
    if (v.diversity !== undefined) {
      const nd = v.diversity;
      const P = wf.arch.numParams;
      const d = await functionalDiversity(task, wf.arch, wf.weights.subarray(0, nd * P), { numInputs: v['diversity-inputs'], maxPairs: 256, seed: v.seed, split: 'test' });
      diversity = { value: d.diversity, pairJsd: { mean: d.pairJsd.mean, std: d.pairJsd.std }, networks: nd, inputs: d.numInputs, pairs: d.values.length, subsampled: d.subsampled };
    }
    const divLine = (x: NonNullable<typeof diversity>): string =>
      `functional diversity ${x.value.toExponential(3)} nats (first ${x.networks} networks, ${x.pairs}${x.subsampled ? ' random' : ''} pairs, ${x.inputs} test inputs; pair JSD ${x.pairJsd.mean.toExponential(2)} ± ${x.pairJsd.std.toExponential(2)})`;
    ctx.result({ weights: v.weights, zoo: zooFile ?? null, arch: wf.arch.widths, ...(compactEvaluation(e) as object), ...(diversity !== undefined ? { diversity } : {}) }, () =>
      diversity === undefined ? report(e, v.weights!) : `${report(e, v.weights!)}\n${divLine(diversity)}`,
    );
    return 0;
  },
};
