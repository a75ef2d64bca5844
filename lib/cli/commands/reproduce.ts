/** `wsflow reproduce`: runs a thesis experiment and writes its results beside the thesis' numbers. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EXPERIMENTS } from '../../reproduce/experiments.js';
import { runExperiment, type Scale } from '../../reproduce/harness.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { checkWritableDir, duration, withFolderLock } from '../common.js';
import type { CliCommand } from './types.js';

const names = Object.keys(EXPERIMENTS);
const spec = {
  name: 'reproduce',
  summary: "run a thesis experiment; results beside the thesis' numbers",
  usage: ['wsflow reproduce <experiment> [--scale quick|paper] [--out DIR]', 'wsflow reproduce --list'],
  description: `Runs one experiment of the thesis and writes DIR/<experiment>/<scale>/result.json (everything measured, the
configuration, the thesis' numbers, the command, git commit, device, machine and date), table.md (our numbers beside
the thesis') and SVG plots where useful; intermediate zoos and flows stay in work/ there, so a re-run resumes
(wdbc, mnist, mnist-bma and scaling also keep each variant's samples in work/samples/, for wsflow eval).
--scale quick runs small and fast (a smoke-scale version, not the thesis' numbers); --scale paper uses the thesis'
sizes and needs a GPU for the flow experiments. Experiments that cannot run here say why and exit with code 2.
Experiments: ${names.join(', ')}.
wdbc-steps and mnist-steps sample the three aligned flows at several Euler step counts, unguided and guided, with
wsflow's sampler and as the published code sampled (the thesis' step figures); arch-transfer samples 784-32-10 networks from flows trained on 784-10-10; fmnist-guidance guides MNIST flows with
Fashion-MNIST gradients (needs the optional fashion-mnist package) against Adam networks and plain SGD at the same
gradient budget; learned-init trains networks with Adam from flow samples and from N(0, 0.1²) (on Fashion-MNIST, or
MNIST when that package is absent). --list shows each experiment and whether it can run here.`,
  options: {
    list: { type: 'boolean', description: 'list the experiments, their configurations and whether they can run here' },
    scale: { type: 'string', choices: ['quick', 'paper'], default: 'quick', description: 'experiment sizes' },
    out: { type: 'string', metavar: 'DIR', default: 'results', description: 'results root' },
    steps: { type: 'int', min: 0, max: 1e9, metavar: 'N', description: "override the flows' training steps" },
    dense: { type: 'boolean', description: 'wdbc, mnist: also train the Geometric (aligned) flow on the dense graph at equal steps' },
    reference: { type: 'boolean', description: 'wdbc, mnist: also train it in reference semantics (with --dense: the exact published model too)' },
    ...COMMON,
  },
  positionals: [{ name: 'experiment', description: `one of ${names.join(', ')}` }],
  examples: ['wsflow reproduce --list', 'wsflow reproduce gaussian', 'wsflow reproduce wdbc --scale quick --out results', 'wsflow reproduce wdbc --dense --reference --json', 'wsflow reproduce mnist --scale paper --device cuda', 'wsflow reproduce arch-transfer --scale quick', 'wsflow reproduce fmnist-guidance --json'],
} as const satisfies CommandSpec;

export const reproduceCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v, positionals } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    const scale = v.scale as Scale;
    if (v.list === true) {
      if (positionals.length > 0) throw new UsageError(`--list: lists every experiment; drop '${positionals[0]}', or drop --list to run it`);
      const device = ctx.setup(v);
      const rows = Object.values(EXPERIMENTS).map((e) => ({ name: e.name, title: e.title, section: e.section, config: e.config, runnable: { quick: e.unavailable('quick', device) ?? 'yes', paper: e.unavailable('paper', device) ?? 'yes' } }));
      ctx.result(rows, () =>
        rows.map((r) => `${r.name.padEnd(16)} ${r.title} (METHOD.md ${r.section})\n${' '.repeat(17)}quick: ${r.runnable.quick}\n${' '.repeat(17)}paper: ${r.runnable.paper}`).join('\n'),
      );
      return 0;
    }
    const name = positionals[0];
    if (name === undefined) throw new UsageError(`missing <experiment>: one of ${names.join(', ')} (or --list)`);
    const exp = EXPERIMENTS[name];
    if (exp === undefined) throw new UsageError(`<experiment>: unknown experiment '${name}'; one of ${names.join(', ')}`);
    for (const flag of ['dense', 'reference'] as const) {
      if (v[flag] === true && exp.flags?.[flag] === undefined) throw new UsageError(`--${flag}: applies to the ${Object.values(EXPERIMENTS).filter((e) => e.flags?.[flag] !== undefined).map((e) => e.name).join(' and ')} experiments only`);
    }
    checkWritableDir('--out', v.out);
    const device = ctx.setup(v);
    const why = exp.unavailable(scale, device);
    if (why !== null) throw new UsageError(`${name} at ${scale} scale cannot run here: ${why}`);
    // The experiment's own folder (results/<experiment>/<scale>, as the harness writes it) is held while it runs.
    const rec = await withFolderLock('--out', path.join(v.out, exp.name, scale), ctx.commandLine, () => runExperiment(exp, {
      scale,
      out: v.out,
      device,
      seed: v.seed,
      ...(v.steps !== undefined ? { steps: v.steps } : {}),
      flags: { dense: v.dense === true, reference: v.reference === true },
      signal: ctx.signal,
      progress: { stream: ctx.io.stderr, ...(ctx.json ? { json: true } : {}) },
      log: (m) => ctx.note(m),
      command: ctx.commandLine,
    }));
    ctx.result(rec, () => `${fs.readFileSync(rec.files.table, 'utf8').trimEnd()}\n\nwrote ${rec.files.result} and ${rec.files.table}${rec.files.plots.length > 0 ? ` (+ ${rec.files.plots.length} plot(s))` : ''}; ${duration(rec.seconds)}`);
    return 0;
  },
};
