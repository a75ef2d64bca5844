/** `wsflow eval`: accuracy/loss of generated (or any) networks, model averaging, and comparisons with a zoo. */
import { mlp } from '../../arch/Architecture.js';
import { compactEvaluation, evaluateSamples, type SampleEvaluation } from '../../pipeline/evaluate.js';
import { readWeightsFile } from '../../pipeline/sample.js';
import { TASK_NAMES } from '../../tasks/loadTask.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { archFor, checked, duration, pm, table, taskFor, zooFor } from '../common.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'eval',
  summary: 'evaluate networks: accuracy, loss, model averaging, baselines, memorisation',
  usage: ['wsflow eval --weights FILE [--task T] [--bma 1,4,16,64] [--zoo DIR] [--json]'],
  description: `Evaluates the networks of FILE (a samples file from 'wsflow sample', or a zoo file) on the task's test
split: accuracy and mean cross-entropy, mean ± std over the networks; with --bma, the accuracy of averaged
predictive distributions of n random networks (Bayesian model averaging). With --zoo (the zoo the flow learned
from), also: the trained networks' metrics, two baselines — trained networks plus Gaussian noise at the samples'
nearest-neighbour distance, and averages of --average-k trained networks — and memorisation: the samples' distance
to their nearest trained network against the zoo's own leave-one-out nearest-neighbour distance. Comparisons are
made in the flow's space: canonicalised networks for Normalized/Geometric flows (--space).`,
  options: {
    weights: { type: 'string', metavar: 'FILE', exists: 'file', required: true, description: 'samples or zoo file (tensor `weights` [n, P])' },
    task: { type: 'string', choices: TASK_NAMES, description: "task to evaluate on (default: the file's task)" },
    arch: { type: 'string', metavar: 'WIDTHS', description: "architecture when the file does not record one (default: the file's)" },
    bma: { type: 'ints', min: 1, metavar: 'LIST', description: 'model-averaging ensemble sizes, e.g. 1,4,16,64 (each ≤ the number of networks)' },
    'bma-repeats': { type: 'int', min: 1, default: 10, metavar: 'N', description: 'random ensembles per size' },
    zoo: { type: 'string', metavar: 'DIR|FILE', exists: 'any', description: 'the zoo the flow learned from, for trained-network metrics, baselines and memorisation' },
    'ref-count': { type: 'int', min: 1, metavar: 'N', description: 'trained and baseline networks to evaluate (default: max(samples, 256), at most the zoo)' },
    'average-k': { type: 'int', min: 1, default: 2, metavar: 'K', description: 'trained networks per average in the averaging baseline' },
    space: { type: 'string', choices: ['auto', 'raw', 'canonical'], default: 'auto', description: "comparison space ('auto': canonical when the samples are canonicalised)" },
    ...COMMON,
  },
  examples: [
    'wsflow eval --weights s.safetensors --task wdbc --bma 1,4,16,64',
    'wsflow eval --weights s.safetensors --zoo zoos/wdbc --json',
    'wsflow eval --weights zoos/wdbc/zoo.safetensors --task wdbc',
  ],
} as const satisfies CommandSpec;

function report(e: SampleEvaluation, file: string): string {
  const rows: string[][] = [['samples', String(e.samples.count), pm(e.samples.accuracy), pm(e.samples.loss)]];
  if (e.trained !== undefined) rows.push(['trained networks', String(e.trained.count), pm(e.trained.accuracy), pm(e.trained.loss)]);
  if (e.baselines !== undefined) {
    rows.push([`trained + noise (σ ${e.baselines.noise.sigma.toPrecision(3)}${e.baselines.noise.reached ? '' : ', farthest reachable'})`, String(e.baselines.noise.count), pm(e.baselines.noise.accuracy), pm(e.baselines.noise.loss)]);
    rows.push([`average of ${e.baselines.average.k} trained`, String(e.baselines.average.count), pm(e.baselines.average.accuracy), pm(e.baselines.average.loss)]);
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

export const evalCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    if (v.weights === undefined) throw new UsageError('--weights: expected a samples file (e.g. --weights s.safetensors)');
    const device = ctx.setup(v);
    const archOverride = v.arch !== undefined ? checked('--arch', () => mlp(v.arch!)) : undefined;
    const wf = checked('--weights', () => readWeightsFile(v.weights!, archOverride));
    const taskName = v.task ?? (wf.metadata.task !== undefined && wf.metadata.task !== '' ? wf.metadata.task : undefined);
    if (taskName === undefined) throw new UsageError(`--task: ${v.weights} does not record its task; pass --task`);
    const task = taskFor('--task', taskName);
    archFor('--weights', wf.arch.key, task);
    for (const n of v.bma ?? []) if (n > wf.n) throw new UsageError(`--bma: ensemble size ${n} exceeds the ${wf.n} networks in ${v.weights}`);
    const canonical = v.space === 'canonical' || (v.space === 'auto' && wf.metadata.canonical === 'true');
    let zoo: Float32Array | undefined;
    let zooFile: string | undefined;
    if (v.zoo !== undefined) {
      const data = wf.metadata.zoo_aligned === 'true' ? 'aligned' : wf.metadata.zoo_aligned === 'false' ? 'raw' : 'auto';
      const z = zooFor('--zoo', v.zoo, data);
      if (!z.zoo.arch.equals(wf.arch)) throw new UsageError(`--zoo: ${z.loc.file} holds ${z.zoo.arch.key} networks, the samples are ${wf.arch.key}`);
      if (z.zoo.n < 2) throw new UsageError(`--zoo: ${z.loc.file} holds ${z.zoo.n} network; comparisons need at least 2`);
      zoo = z.zoo.weights;
      zooFile = z.loc.file;
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
      });
    } finally {
      bar.done();
    }
    ctx.result({ weights: v.weights, zoo: zooFile ?? null, arch: wf.arch.widths, ...(compactEvaluation(e) as object) }, () => report(e, v.weights!));
    return 0;
  },
};
