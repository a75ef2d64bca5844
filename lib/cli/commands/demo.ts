/** `wsflow demo`: the whole pipeline on WDBC with a report (the main job). */
import { TIME_DISTRIBUTIONS, type TimeDistribution } from '../../flow/time.js';
import type { GeometryKind } from '../../geometry/Geometry.js';
import { type DemoSummary, runDemo } from '../../pipeline/demo.js';
import { DEMO_PRESETS, type DemoPreset } from '../../pipeline/presets.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { duration, pm, table, withFolderLock } from '../common.js';
import type { CliCommand } from './types.js';

const q = DEMO_PRESETS.quick;
const spec = {
  name: 'demo',
  summary: 'the whole pipeline on WDBC — zoo, align, train, sample, evaluate — with a report',
  usage: ['wsflow demo [--scale quick|paper] [--all] [--out DIR] [--json]'],
  description: `On the embedded WDBC task (breast-cancer diagnosis, 30 features, 2 classes): builds a small zoo of trained
30-16-16-2 networks, aligns it, trains a Geometric flow (--all: the Euclidean, Normalized and Geometric flows),
samples networks, evaluates them against the trained networks and the three baselines (trained + noise, averages,
a Gaussian fit of the zoo), prints a table and writes DIR/summary.json and DIR/report.html (self-contained, with
plots), plus the zoo, flows and samples. --scale quick (default: ${q.runs} runs × ${q.epochs} epochs, D=${q.d}, ${q.layers} layers, ${q.steps} steps, ${q.samples} samples) is sized
for a few minutes on a 2-core CPU; --scale paper uses the thesis' sizes (100 runs, D=64, 5 layers, 250k steps)
and is meant for a GPU (on a CPU it is refused unless --steps sizes it). Re-running reuses the zoo and finished flows; Ctrl-C keeps what finished (exit code 130).`,
  options: {
    scale: { type: 'string', choices: ['quick', 'paper'], default: 'quick', description: 'preset sizes (lib/pipeline/presets.ts)' },
    out: { type: 'string', metavar: 'DIR', default: 'wsflow-demo', description: 'report folder' },
    all: { type: 'boolean', description: 'train and compare all three flows' },
    geometry: { type: 'string', choices: ['euclidean', 'normalized', 'geometric'], description: "the flow to train (default geometric; not with --all)" },
    runs: { type: 'int', min: 1, max: 100_000, metavar: 'N', description: 'zoo runs (default: the preset)' },
    epochs: { type: 'int', min: 1, max: 100_000, metavar: 'N', description: 'zoo epochs per run (default: the preset)' },
    steps: { type: 'int', min: 0, max: 1e9, metavar: 'N', description: 'flow training steps (default: the preset)' },
    d: { type: 'int', min: 1, max: 4096, metavar: 'N', description: 'vector-field width D (default: the preset)' },
    layers: { type: 'int', min: 0, max: 64, metavar: 'N', description: 'vector-field layers (default: the preset)' },
    batch: { type: 'int', min: 1, max: 1 << 20, metavar: 'N', description: 'networks per training step (default: the preset)' },
    lr: { type: 'number', above: 0, metavar: 'X', description: 'learning rate (default: the preset)' },
    time: { type: 'string', choices: [...TIME_DISTRIBUTIONS], description: 'training-time distribution (default: the preset)' },
    ema: { type: 'number', min: 0, max: 0.9999, metavar: 'X', description: 'EMA decay of the parameters used for sampling, 0 = off (default: the preset)' },
    samples: { type: 'int', min: 1, max: 1e6, metavar: 'N', description: 'networks to generate (default: the preset)' },
    'sample-steps': { type: 'int', min: 1, max: 1e6, metavar: 'N', description: 'Euler steps of the generated networks (default: the preset)' },
    ...COMMON,
  },
  examples: ['wsflow demo', 'wsflow demo --all --out /tmp/demo', 'wsflow demo --steps 2000 --d 32 --json', 'wsflow demo --scale paper --device cuda'],
} as const satisfies CommandSpec;

function text(s: DemoSummary): string {
  const head = s.flows[0]!;
  const rows: string[][] = [];
  for (const space of new Set(s.flows.map((f) => f.space))) {
    const f = s.flows.find((x) => x.space === space)!;
    rows.push([`trained networks (${space})`, pm(f.trainedAccuracy), pm(f.trainedLoss)]);
  }
  for (const f of s.flows) rows.push([`${f.geometry} flow samples`, pm(f.sampleAccuracy), pm(f.sampleLoss)]);
  for (const f of s.flows) {
    const tag = s.flows.length > 1 ? ` [${f.geometry}]` : '';
    rows.push([`trained + noise${f.baselines.noise.reached ? '' : ' (farthest reachable)'}${tag}`, pm(f.baselines.noise.accuracy), pm(f.baselines.noise.loss)]);
    rows.push([`average of ${f.baselines.average.k} trained${tag}`, pm(f.baselines.average.accuracy), pm(f.baselines.average.loss)]);
    rows.push([`Gaussian fit of the zoo${tag}`, pm(f.baselines.gaussian.accuracy), pm(f.baselines.gaussian.loss)]);
    const mix = f.baselines.mixture;
    if (mix !== undefined) rows.push([`mixture prior alone (${mix.components} clusters${mix.scale !== 1 ? `, spread ${mix.scale}` : ''})${tag}`, pm(mix.accuracy), pm(mix.loss)]);
  }
  const bmaHead = ['model averaging', ...head.bma.map((p) => `n=${p.n}`)];
  const bmaRows = [...s.flows.map((f) => [`${f.geometry} samples`, ...f.bma.map((p) => p.accuracy.mean.toFixed(4))]), ['trained networks', ...head.bma.map((p) => head.trainedBma.find((q) => q.n === p.n)?.accuracy.mean.toFixed(4) ?? '—')]];
  return [
    `wsflow demo — ${s.task.toUpperCase()} ${s.arch.join('-')}, ${s.scale} scale, ${s.backend} (${s.threads} threads)`,
    `zoo: ${s.zoo.networks} networks (${s.zoo.runs} runs × ${s.zoo.epochs} epochs), test accuracy ${pm(s.zoo.testAccuracy)}${s.zoo.reused ? ' (reused)' : ''}; aligned: distance ${s.alignment.distanceBefore.toFixed(3)} → ${s.alignment.distanceAfter.toFixed(3)}`,
    ...s.flows.map((f) => `${f.geometry} flow: ${f.train.steps} steps (${f.train.stepsPerS.toFixed(2)} steps/s), final loss ${f.train.finalLoss.toPrecision(4)}`),
    '',
    table(['test split', 'accuracy', 'loss'], rows),
    '',
    table(bmaHead, bmaRows),
    '',
    ...s.flows.map((f) => `memorisation [${f.geometry}]: nearest-trained distance ${pm(f.memorisation.sampleNN, 3)} vs zoo leave-one-out ${pm(f.memorisation.zooLooNN, 3)} (ratio ${f.memorisation.ratio.toFixed(2)})`),
    '',
    `report: ${s.files.report}  (summary: ${s.files.summary}); ${duration(s.seconds)} in all`,
  ].join('\n');
}

export const demoCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    if (v.all === true && v.geometry !== undefined) throw new UsageError('--geometry: --all trains all three flows; drop one of them');
    const device = ctx.setup(v);
    if (v.scale === 'paper' && device !== 'cuda' && v.steps === undefined) {
      // 250,000 training steps of a D=64 × 5 field at ~0.6 s per step on a 2-core CPU: days, not a demo.
      throw new UsageError('--scale paper: trains a D=64, 5-layer flow for 250,000 steps, days on a CPU; run it on a CUDA GPU, use --scale quick, or size it yourself with --steps N');
    }
    const overrides: Partial<DemoPreset> = {
      ...(v.runs !== undefined ? { runs: v.runs } : {}),
      ...(v.epochs !== undefined ? { epochs: v.epochs } : {}),
      ...(v.steps !== undefined ? { steps: v.steps } : {}),
      ...(v.d !== undefined ? { d: v.d } : {}),
      ...(v.layers !== undefined ? { layers: v.layers } : {}),
      ...(v.batch !== undefined ? { batch: v.batch } : {}),
      ...(v.lr !== undefined ? { lr: v.lr } : {}),
      ...(v.time !== undefined ? { time: v.time as TimeDistribution } : {}),
      ...(v.ema !== undefined ? { ema: v.ema } : {}),
      ...(v.samples !== undefined ? { samples: v.samples } : {}),
      ...(v['sample-steps'] !== undefined ? { sampleSteps: v['sample-steps'] } : {}),
    };
    const geometries: GeometryKind[] = v.all === true ? ['geometric', 'euclidean', 'normalized'] : [(v.geometry ?? 'geometric') as GeometryKind];
    // (withFolderLock refuses a folder that cannot be made or written in, before any work)
    const { summary } = await withFolderLock('--out', v.out, ctx.commandLine, () => runDemo({
      scale: v.scale as 'quick' | 'paper',
      out: v.out,
      geometries,
      overrides,
      seed: v.seed,
      device,
      signal: ctx.signal,
      progress: { stream: ctx.io.stderr, ...(ctx.json ? { json: true } : {}) },
      log: (m) => ctx.note(m),
      command: ctx.commandLine,
    }));
    ctx.result(summary, () => text(summary));
    return 0;
  },
};
