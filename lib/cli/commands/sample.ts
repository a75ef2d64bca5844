/** `wsflow sample`: generates networks from a trained flow into a samples file. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { WsfError } from '../../errors.js';
import { evaluateNetworks } from '../../eval/evaluate.js';
import { canonicalize } from '../../geometry/canonicalize.js';
import { defaultGuidanceLayout } from '../../flow/FlowMatcher.js';
import { TASK_NAMES } from '../../tasks/loadTask.js';
import { readZoo, readZooMetadata } from '../../zoo/Zoo.js';
import { sampleFlow, trainedLogitScale, writeSamples } from '../../pipeline/sample.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { MATMUL_OPTION, checkHeldNetworks, checkMatmul, checkWritableFile, checked, duration, flowFor, pm, taskFor } from '../common.js';
import { CHECKPOINT_FILE, FLOW_FILE } from '../../pipeline/layout.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'sample',
  summary: 'generate networks from a trained flow',
  usage: ['wsflow sample --flow DIR --n N --out FILE [--steps 64] [--solver euler|midpoint|rk4] [--grid uniform|early|cosine] [--renoise ρ] [--guidance λ --task T [--guidance-at state|prediction] [--guidance-layout flat|published]] [--arch WIDTHS]'],
  description: `Integrates the flow from prior draws with an ODE solver on the flow's geometry and writes FILE (safetensors):
\`weights\` F32 [n, P] in the flat layout, with metadata (flow file, geometry, semantics, canonical, steps, solver,
seed, renoise, arch, task, guidance, wsflow version). Normalized and Geometric flows produce canonicalised networks (same
function, logits scaled). --guidance λ adds task-loss guidance v ← v − λ∇L with gradients of --task's training
split (--guidance-rows examples per network and step); with --guidance-at prediction it instead takes one SGD step of
rate λ from the field's prediction x̂1 at each step and aims the sampler at it (also with --renoise). --arch generates another architecture than the one the
flow was trained on (architecture transfer, e.g. 784-32-10 from a flow trained on 784-10-10): same input width,
output width and depth, any hidden widths; the prior, geometry and canonicalisation are the new architecture's and
the vector field is the same (with --layer-scaling flows, each layer's trained scale is reused); a flow trained
with --hidden-identity (the default on aligned zoos) generates hidden layers no wider than its own. Ctrl-C stops
between batches and writes the finished networks to FILE with '.partial' before the extension (exit code 130).`,
  options: {
    flow: { type: 'string', metavar: 'DIR|FILE', exists: 'any', required: true, description: 'flow folder (its flow.safetensors) or a flow/checkpoint file' },
    n: { type: 'int', min: 1, max: 1e8, default: 256, metavar: 'N', description: 'networks to generate' },
    out: { type: 'string', metavar: 'FILE', required: true, description: 'samples file to write (.safetensors)' },
    steps: { type: 'int', min: 1, max: 1e6, default: 64, metavar: 'N', description: 'solver steps' },
    solver: { type: 'string', choices: ['euler', 'midpoint', 'rk4'], default: 'euler', description: 'ODE solver' },
    velocity: {
      type: 'string',
      choices: ['riemannian', 'x0-anchored'],
      description:
        "sampling velocity: 'riemannian' ((x̂1 − x)/(1 − t) and its log map; the corrected default) or the thesis' 'x0-anchored' (x̂1 − x0, the reference default; METHOD.md §6.1; not with --renoise)",
    },
    grid: { type: 'string', choices: ['uniform', 'early', 'cosine'], default: 'uniform', description: "time grid spacing: uniform, early (denser near t = 0) or cosine (denser at both ends)" },
    batch: { type: 'int', min: 1, max: 1e6, default: 256, metavar: 'N', description: 'networks integrated at once (memory; results depend on it through the seeds)' },
    noise: { type: 'number', min: 0, max: 1000, default: 0, metavar: 'X', description: 'stochastic sampling: noise scale·√dt per step (0: deterministic)' },
    'noise-from': { needs: 'noise', type: 'number', min: 0, max: 1, default: 0, metavar: 'T', description: 'add noise only for t ≥ T' },
    renoise: {
      type: 'number',
      min: 0,
      max: 1,
      metavar: 'ρ',
      description:
        "renoising sampler: at each step keep the share ρ (per 1/32 of the path) of the start point extrapolated through the field's prediction and renew the rest from the prior (1: the Euler path). Thesis-prior flows only (--prior gaussian|init); Euler, guidance only with --guidance-at prediction. Official MNIST, thesis prior, ρ 0.6: 0.748 vs 0.670 single, 0.918 vs 0.929 averaged over 64; WDBC Geometric loss 0.0133 vs 0.0156",
    },
    guidance: { type: 'number', min: -1e6, max: 1e6, default: 0, metavar: 'λ', description: "task-loss guidance strength (guides towards --task, by default the flow's own task)" },
    task: { needs: 'guidance', type: 'string', choices: TASK_NAMES, description: "guidance task (default: the flow's task)" },
    'guidance-at': {
      type: 'string',
      choices: ['state', 'prediction'],
      description:
        "where the guidance gradient acts: 'state' (the default; the thesis' v ← v − λ∇L(x_t)) or 'prediction' (one SGD step of rate λ from the field's prediction x̂1, taken at x̂1, at the --guidance-logit-scale; x1-prediction flows in corrected semantics; also with --renoise; official MNIST: λ 0.01)",
    },
    'guidance-from': { type: 'number', min: 0, max: 1, metavar: 'T', description: 'guide only for t ≥ T (default 0: the whole path)' },
    'guidance-layout': {
      type: 'string',
      choices: ['flat', 'published'],
      description:
        "the layout the gradient is applied in: 'flat' (each weight's gradient on that weight; the default in corrected semantics) or 'published' (as the published code did: each layer's weight gradient flattened (out, in) and laid over the (in, out) weights, a fixed permutation; the default for --semantics reference flows, to replay the thesis' guided runs)",
    },
    'guidance-rows': { type: 'int', min: 1, default: 64, metavar: 'N', description: 'training examples per network and guidance step' },
    'guidance-logit-scale': {
      type: 'string',
      metavar: 'X|auto',
      description:
        "take the guidance gradient with the last layer scaled by X (1: as sampled). Normalized/Geometric samples hold the last layer at unit norm, where the loss never settles; 'auto' uses the trained networks' own scale, from the zoo the flow was trained on, also for --arch (official MNIST: about 14-21; guided λ 0.1 then 0.928 vs 0.907, and 784-32-10 from a 784-10-10 flow 0.889 vs 0.863 for the best λ at 1). Default: auto for Normalized/Geometric flows in corrected semantics whose zoo file is at hand, else 1",
    },
    arch: { type: 'string', metavar: 'WIDTHS', description: "generate this architecture, e.g. 784-32-10 (same input, output and depth as the flow's; default: the flow's)" },
    evaluate: { type: 'boolean', description: "also print the samples' test accuracy and loss on the flow's task" },
    matmul: MATMUL_OPTION,
    ...COMMON,
  },
  examples: [
    'wsflow sample --flow flows/wdbc-geo --n 256 --steps 64 --out s.safetensors',
    'wsflow sample --flow flows/wdbc-geo --n 64 --solver rk4 --steps 16 --out s-rk4.safetensors --evaluate',
    'wsflow sample --flow flows/mnist-geo --n 128 --guidance 0.1 --task fashion-mnist --steps 512 --out s-fmnist.safetensors',
    'wsflow sample --flow flows/mnist-geo --n 64 --arch 784-32-10 --evaluate --out s-wide.safetensors   # architecture transfer (a flow trained with --hidden-identity off)',
  ],
} as const satisfies CommandSpec;

function partialName(file: string): string {
  const ext = path.extname(file);
  return ext === '' ? `${file}.partial` : `${file.slice(0, -ext.length)}.partial${ext}`;
}

export const sampleCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    if (v.flow === undefined) throw new UsageError('--flow: expected a flow folder (e.g. --flow flows/wdbc-geo)');
    if (v.out === undefined) throw new UsageError('--out: expected the samples file to write (e.g. --out s.safetensors)');
    checkWritableFile('--out', v.out);
    for (const k of ['guidance-at', 'guidance-from', 'guidance-layout'] as const) {
      if (v[k] !== undefined && v.guidance === 0) throw new UsageError(`--${k}: needs --guidance λ`);
    }
    const atPrediction = v['guidance-at'] === 'prediction';
    if (v.renoise !== undefined && (v.solver !== 'euler' || v.noise > 0 || (v.guidance !== 0 && !atPrediction))) {
      throw new UsageError('--renoise: replaces the solver and takes no --noise, and --guidance only with --guidance-at prediction (use --solver euler)');
    }
    if (v.renoise !== undefined && v.velocity === 'x0-anchored') throw new UsageError("--velocity x0-anchored: the renoising sampler extrapolates through the Riemannian velocity; drop --velocity or --renoise");
    const logitScaleArg = v['guidance-logit-scale'] === undefined ? 'default' : parseLogitScale(v['guidance-logit-scale']);
    const device = ctx.setup(v);
    const matmul = checkMatmul(v.matmul, device);
    const { file, flow } = flowFor('--flow', v.flow, device, matmul);
    try {
      const fmeta = checked('--flow', () => readZooMetadata(file));
      const flowTask = fmeta.task !== undefined && fmeta.task !== '' ? fmeta.task : undefined;
      if (v.guidance !== 0 && v.task === undefined && flowTask === undefined) {
        throw new UsageError(`--guidance: ${file} does not record its task; give --task (the task whose training loss guides the samples)`);
      }
      const gTask = v.guidance !== 0 ? taskFor(v.task !== undefined ? '--task' : `${file} (its recorded task; --task names another)`, v.task ?? flowTask!) : undefined;
      const evalTask = v.evaluate === true && flowTask !== undefined ? taskFor('--flow', flowTask) : undefined;
      if (v.evaluate === true && evalTask === undefined) throw new UsageError(`--evaluate: ${file} does not record its task; use 'wsflow eval --task T' instead`);
      const arch = v.arch !== undefined ? checked('--arch', () => flow.transferArch(v.arch!)) : flow.arch;
      checkHeldNetworks('--n', v.n, arch.numParams);
      // The samples must not replace the flow, its checkpoint or its zoo.
      const outAbs = path.resolve(v.out);
      const guarded = [file, path.join(path.dirname(file), FLOW_FILE), path.join(path.dirname(file), CHECKPOINT_FILE), ...(fmeta.zoo_file !== undefined && fmeta.zoo_file !== '' ? [fmeta.zoo_file] : [])];
      if (guarded.some((g) => path.resolve(g) === outAbs)) throw new UsageError(`--out: ${v.out} is the flow's own file, its checkpoint or its zoo; choose another name`);
      const transfer = arch.key !== flow.arch.key;
      const w = arch.widths;
      if (gTask !== undefined && (gTask.numFeatures !== w[0] || gTask.numClasses !== w[w.length - 1])) {
        throw new UsageError(`--task: '${gTask.name}' (${gTask.numFeatures} inputs, ${gTask.numClasses} classes) does not fit the flow's networks ${flow.arch.key}`);
      }
      if (v.renoise !== undefined) {
        const why = flow.renoiseUnsupported();
        if (why !== undefined) throw new UsageError(`--renoise: ${why}`);
      }
      const o = flow.options;
      const noPrediction = gTask !== undefined && atPrediction ? flow.guidanceAtPredictionUnsupported() : undefined;
      if (noPrediction !== undefined) throw new UsageError(`--guidance-at prediction: ${file}: ${noPrediction}`);
      const canonical = o.geometry !== 'euclidean' && o.semantics === 'corrected';
      let logitScale = 1;
      if (gTask !== undefined) {
        if (logitScaleArg === 'auto') logitScale = zooLogitScale(fmeta.zoo_file);
        else if (typeof logitScaleArg === 'number') logitScale = logitScaleArg;
        else if (canonical) {
          // The default: canonical samples are guided at the trained networks' logit scale when the zoo is at hand.
          const missing = zooMissing(fmeta.zoo_file);
          if (missing === undefined) logitScale = zooLogitScale(fmeta.zoo_file);
          else ctx.note(`note: guidance at logit scale 1 (${missing}); --guidance-logit-scale X sets it`);
        }
      }
      if (gTask !== undefined && flowTask !== undefined && gTask.name !== flowTask) {
        ctx.note(`note: guiding towards ${gTask.name}, not the flow's own task (${flowTask}): measured from official MNIST towards Fashion-MNIST, guided samples stayed below plain SGD with the same gradients (README, "Fashion-MNIST from an MNIST flow, guided")`);
      }
      const layout = (v['guidance-layout'] as 'flat' | 'published' | undefined) ?? defaultGuidanceLayout(o.semantics);
      const guideWhere = { ...(atPrediction ? { at: 'prediction' as const } : {}), ...(v['guidance-from'] !== undefined && v['guidance-from'] > 0 ? { from: v['guidance-from'] } : {}) };
      const bar = ctx.progress({ label: 'sample', total: v.n, unit: 'networks' });
      const r = await sampleFlow(flow, {
        n: v.n,
        steps: v.steps,
        solver: v.solver as 'euler' | 'midpoint' | 'rk4',
        grid: v.grid as 'uniform' | 'early' | 'cosine',
        seed: v.seed,
        batch: v.batch,
        ...(v.noise > 0 ? { noise: { scale: v.noise, from: v['noise-from'] } } : {}),
        ...(v.renoise !== undefined ? { renoise: v.renoise } : {}),
        ...(v.velocity !== undefined ? { velocity: v.velocity as 'riemannian' | 'x0-anchored' } : {}),
        ...(gTask !== undefined ? { guidance: { lambda: v.guidance, task: gTask, rows: v['guidance-rows'], logitScale, ...guideWhere, layout } } : {}),
        ...(transfer ? { arch } : {}),
        signal: ctx.signal,
        progress: bar,
      });
      const meta: Record<string, string> = {
        flow: file,
        task: flowTask ?? '',
        geometry: o.geometry,
        prior: JSON.stringify(o.prior),
        semantics: o.semantics,
        canonical: String(canonical),
        steps: String(v.steps),
        solver: v.solver,
        velocity: v.velocity ?? (o.semantics === 'reference' ? 'x0-anchored' : 'riemannian'),
        grid: v.grid,
        seed: String(v.seed),
        batch: String(v.batch),
        noise: v.noise > 0 ? JSON.stringify({ scale: v.noise, from: v['noise-from'] }) : 'none',
        renoise: v.renoise !== undefined ? String(v.renoise) : 'none',
        guidance: gTask !== undefined ? JSON.stringify({ lambda: v.guidance, task: gTask.name, rows: v['guidance-rows'], ...(logitScale !== 1 ? { logitScale } : {}), ...guideWhere, ...(layout !== 'flat' || o.semantics === 'reference' ? { layout } : {}) }) : 'none',
        zoo_file: fmeta.zoo_file ?? '',
        zoo_aligned: fmeta.zoo_aligned ?? '',
        device,
        ...(transfer ? { flow_arch: JSON.stringify(flow.arch.widths) } : {}),
      };
      if (!r.complete) {
        const pf = partialName(v.out);
        if (r.done > 0) writeSamples(pf, arch, r.weights, { ...meta, partial: `${r.done} of ${v.n}` });
        throw new WsfError(`interrupted after ${r.done} of ${v.n} networks${r.done > 0 ? `; they were written to ${pf}` : ''}`, 'ERR_INTERRUPTED');
      }
      writeSamples(v.out, arch, r.weights, meta);
      let evaluation: { accuracy: { mean: number; std: number }; loss: { mean: number; std: number } } | undefined;
      if (evalTask !== undefined) {
        const ev = await evaluateNetworks(evalTask, arch, canonical ? canonicalize(arch, r.weights) : r.weights);
        evaluation = { accuracy: { mean: ev.accuracySummary.mean, std: ev.accuracySummary.std }, loss: { mean: ev.lossSummary.mean, std: ev.lossSummary.std } };
      }
      const res = { file: v.out, flow: file, n: v.n, arch: arch.widths, ...(transfer ? { flowArch: flow.arch.widths } : {}), geometry: o.geometry, canonical, steps: v.steps, solver: v.solver, seed: v.seed, seconds: r.seconds, ...(evaluation !== undefined ? { evaluation } : {}) };
      ctx.result(res, () =>
        [
          `wrote ${v.out}: ${v.n} networks of ${arch.key}${transfer ? ` (transfer; the flow was trained on ${flow.arch.key})` : ''} from the ${o.geometry} flow ${file} (${v.steps} ${v.renoise !== undefined ? `renoising steps, ρ ${v.renoise}` : `${v.solver} steps`}; ${duration(r.seconds)})`,
          ...(evaluation !== undefined ? [`test accuracy ${pm(evaluation.accuracy)}, loss ${pm(evaluation.loss)} (${flowTask})`] : []),
        ].join('\n'),
      );
      return 0;
    } finally {
      flow.dispose();
    }
  },
};

/** --guidance-logit-scale: a positive number, or 'auto' (resolved once the flow is loaded: {@link zooLogitScale}). */
export function parseLogitScale(arg: string, opt = '--guidance-logit-scale'): number | 'auto' {
  if (arg === 'auto') return arg;
  const x = Number(arg);
  if (!(Number.isFinite(x) && x > 0)) throw new UsageError(`${opt}: expected a positive number or 'auto', got '${arg}'`);
  return x;
}

/**
 * --guidance-logit-scale auto: the trained networks' logit scale — {@link trainedLogitScale} of the zoo file the flow
 * was trained on (its last epoch's checkpoints, what bench/quality/trials.mjs measures as the trained networks). With
 * --arch the same scale serves the wider networks (measured on MNIST 784-10-10 → 784-32-10: guided λ 0.1 0.889 at the
 * zoo's scale; the best λ at scale 1 0.863; results/trials/mnist-full-transfer.json).
 */
export function zooLogitScale(zooFile: string | undefined, opt = '--guidance-logit-scale'): number {
  const missing = zooMissing(zooFile);
  if (missing !== undefined) throw new UsageError(`${opt} auto: needs the zoo the flow was trained on (${missing}); give a number`);
  return trainedLogitScale(checked(opt, () => readZoo(zooFile!)));
}

/** Why the flow's zoo file cannot be read, or undefined when it is at hand. */
function zooMissing(zooFile: string | undefined): string | undefined {
  if (zooFile === undefined || zooFile === '') return 'the flow does not record its zoo';
  return fs.existsSync(zooFile) ? undefined : `its zoo ${zooFile} is missing`;
}
