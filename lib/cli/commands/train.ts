/** `wsflow train`: trains a flow on a zoo into a flow folder; resumes from the folder's checkpoint. */
import type { FlowOptions } from '../../flow/FlowMatcher.js';
import { GRAPH_MODES, type GraphMode } from '../../engine/VectorField.js';
import { TIME_DISTRIBUTIONS, type TimeDistribution } from '../../flow/time.js';
import { CHECKPOINT_FILE, FLOW_FILE, TRAIN_LOG_FILE } from '../../pipeline/layout.js';
import { trainFlow } from '../../pipeline/train.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { checkMatmul, checkWritableDir, duration, MATMUL_OPTION, withFolderLock, zooFor } from '../common.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'train',
  summary: 'train a flow (Euclidean, Normalized or Geometric) on a zoo',
  usage: ['wsflow train --zoo DIR --out DIR [--geometry euclidean|normalized|geometric] [--steps N] [options]'],
  description: `Trains a flow-matching model over the zoo's networks (the aligned zoo when DIR holds one, see --data) with
the relational-transformer vector field of the native engine, and writes to the flow folder:
  ${FLOW_FILE}        the trained flow ('wsflow sample --flow DIR')
  ${CHECKPOINT_FILE}  resumable state, every --checkpoint-every steps, at the end and on Ctrl-C
  ${TRAIN_LOG_FILE}          configuration, loss records, result
If the checkpoint exists, training resumes from it (same options and zoo; --steps is the total); --restart
discards it. Ctrl-C writes the checkpoint and exits with code 130 (SIGTERM, e.g. from \`timeout\`: the same, 143).`,
  options: {
    zoo: { type: 'string', metavar: 'DIR|FILE', exists: 'any', required: true, description: 'zoo folder or zoo file' },
    out: { type: 'string', metavar: 'DIR', required: true, description: 'flow folder' },
    data: { type: 'string', choices: ['auto', 'aligned', 'raw'], default: 'auto', description: "which networks of a zoo folder: 'auto' (aligned when present), 'aligned', 'raw'" },
    geometry: { type: 'string', choices: ['euclidean', 'normalized', 'geometric'], default: 'geometric', description: 'the flow' },
    semantics: { type: 'string', choices: ['corrected', 'reference'], default: 'corrected', description: "'reference' reproduces the published code's behaviour" },
    coupling: { type: 'string', choices: ['independent', 'ot', 'trajectory', 'component-ot'], default: 'independent', description: 'pairing of prior draws and networks (trajectory: each checkpoint with its run\'s init; component-ot: OT within each component of the mixture prior, over --ot-pool × --batch networks of it)' },
    'ot-cost': { needs: { option: 'coupling', values: ['ot', 'component-ot'] }, type: 'string', choices: ['euclidean', 'geodesic'], default: 'euclidean', description: 'cost of the OT coupling' },
    'ot-pool': { needs: { option: 'coupling', values: ['ot', 'component-ot'] }, type: 'int', min: 1, max: 64, default: 1, metavar: 'K', description: 'solve the OT coupling over K batches of prior draws and networks and train on B of the pairs (1: within each batch, as published)' },
    prediction: { type: 'string', choices: ['x1', 'velocity'], default: 'x1', description: 'what the vector field predicts' },
    d: { type: 'int', min: 1, max: 4096, default: 32, metavar: 'N', description: 'embedding width D of the vector field' },
    layers: { type: 'int', min: 0, max: 64, default: 5, metavar: 'N', description: 'relational-transformer layers' },
    heads: { type: 'int', min: 1, max: 4096, default: 1, metavar: 'N', description: 'attention heads (must divide D)' },
    'hidden-identity': { type: 'string', choices: ['auto', 'on', 'off'], default: 'auto', description: "one positional embedding per hidden neuron instead of per hidden layer ('auto': on for an aligned zoo with --semantics corrected); not equivariant, cannot sample wider networks" },
    graph: { type: 'string', choices: GRAPH_MODES, default: 'sparse', description: "weight graph: real edges ('sparse'), all pairs ('dense', the published model), real edges plus all pairs among hidden and output neurons ('hybrid'), or real edges plus one virtual node joined to every neuron ('virtual')" },
    recompute: { type: 'boolean', description: "save memory: keep only each layer's output states and recompute the rest in the backward pass (the same results bit for bit; on the 2-core CPU 19–27 % more time per step, and MNIST 784-10-10 at D=32, batch 8 holds 422 MiB instead of 1,164). Without it, on automatically when a step would need more than 60 % of the free memory" },
    'chunk-rows': { type: 'int', min: 0, max: 2 ** 30, default: 0, metavar: 'N', description: "with recompute mode: run each layer's per-pair work in chunks of N pairs, keeping only full-size pair states (implies --recompute; gradients agree to rounding, not bit for bit; MLP 784-128-128-10 at D=32, batch 8: 2,698 MiB instead of 5,690). 0: automatic, chunks only when a recompute step would still need more than 60 % of the free memory" },
    matmul: MATMUL_OPTION,
    steps: { type: 'int', min: 1, max: 1e9, default: 20000, metavar: 'N', description: 'total optimiser steps (including resumed ones)' },
    batch: { type: 'int', min: 1, max: 1 << 20, default: 32, metavar: 'N', description: 'networks per step' },
    lr: { type: 'number', min: 0, default: 1e-3, metavar: 'X', description: 'peak learning rate (Adam)' },
    schedule: { type: 'string', choices: ['constant', 'cosine'], default: 'constant', description: 'learning-rate schedule after warm-up' },
    warmup: { type: 'int', min: 0, default: 0, metavar: 'N', description: 'linear warm-up steps' },
    'weight-decay': { type: 'number', min: 0, default: 0, metavar: 'X', description: 'decoupled weight decay' },
    clip: { type: 'number', min: 0, default: 0, metavar: 'X', description: 'gradient-norm clipping (0: off)' },
    ema: { type: 'string', default: 'auto', metavar: 'X', description: "EMA decay of the parameters used for sampling: a number in [0, 1) (0: off), or 'auto' (0.999 from 10,000 steps, else 0.99; off in --semantics reference)" },
    prior: { type: 'string', choices: ['auto', 'gaussian', 'init', 'zoo', 'mixture'], default: 'auto', description: "p0: N(0, std²) everywhere, an init scheme (N(0, std²) weights, zero biases), 'zoo': the Gaussian fitted to the zoo (its mean and the covariance of --prior-members networks; samples only the zoo's architecture), or 'mixture': one such Gaussian per k-means cluster of the zoo (--prior-components), each network trained from its own cluster's Gaussian. 'auto': mixture on an aligned zoo of several runs with --semantics corrected and a coupling other than trajectory (zoo for a single run), else gaussian" },
    'prior-std': { type: 'number', above: 0, default: 0.1, metavar: 'X', description: 'standard deviation of the gaussian and init priors' },
    'prior-members': { type: 'int', min: 1, default: 256, metavar: 'N', description: "networks spanning the covariance of the 'zoo' prior (of each component of the 'mixture' prior)" },
    'prior-scale': { type: 'string', default: 'auto', metavar: 'X', description: "spread of the 'zoo' and 'mixture' priors around their means (1: the networks' own covariance; auto: 0.5 for 'mixture' — MNIST samples 0.891 vs 0.873 at 1, WDBC level — and 1 for 'zoo')" },
    'prior-components': { type: 'int', min: 0, max: 4096, default: 0, metavar: 'K', description: "k-means clusters of the 'mixture' prior (0: one component per training run of the zoo)" },
    'grad-features': { type: 'int', min: 0, default: 0, metavar: 'N', description: "give the field each network's task-loss gradient on N fixed training examples of the zoo's task as an input feature (0: off; a learned-optimiser view of the task)" },
    'probe-features': { type: 'int', min: 0, max: 64, default: 0, metavar: 'K', description: "give the field each neuron's activations on K fixed training inputs of the zoo's task (and each weight its source neuron's) as input features (0: off; what the network computes, without labels)" },
    'component-input': { type: 'boolean', description: "give the field the mean of the mixture component each trajectory starts in (needs the mixture prior; not with --grad-features or --probe-features). With --layer-scaling on and --time uniform it learns the official-MNIST zoo's distribution (MMD² −81 %) at 0.2 points of sample accuracy" },
    'self-condition': { type: 'boolean', description: "give the field where its own previous prediction of x1 lies from the state, as an input (self-conditioning: half of the training steps use its first-pass prediction; the sampler passes each call's prediction to the next). --prediction x1 only; combines with the feature inputs. From the thesis' prior it lowered WDBC sample loss (0.0149 vs 0.0184 over five seeds) and lowered MNIST sample accuracy with a D=16 × 3 field (0.25 vs 0.44), not with D=32 × 5 (0.654 vs 0.662)" },
    time: { type: 'string', choices: ['auto', ...TIME_DISTRIBUTIONS], default: 'auto', description: 'training-time distribution (auto: logit-normal, or beta in reference semantics; beta: Beta(1,2), the thesis; logit-normal: σ(N(0,1)), peaked at t = 0.5)' },
    sigma: { type: 'number', min: 0, default: 1e-4, metavar: 'X', description: 'interpolant noise (Euclidean/Normalized)' },
    precondition: { type: 'string', choices: ['auto', 'on', 'off'], default: 'auto', description: "x̂1 = x_t + (1−t)·F instead of x̂1 = F ('auto': on with --semantics corrected and x1-prediction for the normalized and geometric flows, and for the euclidean flow from the zoo or mixture prior)" },
    'layer-scaling': { type: 'string', choices: ['auto', 'on', 'off'], default: 'auto', description: "scale each layer to unit RMS on the way in and back on the way out ('auto': on for the euclidean flow with --semantics corrected)" },
    'last-layer-norm': { needs: { option: 'geometry', values: ['normalized', 'geometric'] }, type: 'number', above: 0, default: 1, metavar: 'X', description: 'Frobenius norm of the canonicalised last layer (1: the published code)' },
    'checkpoint-every': { type: 'int', min: 1, default: 1000, metavar: 'N', description: 'steps between checkpoints' },
    'log-every': { type: 'int', min: 1, default: 50, metavar: 'N', description: 'steps between loss records' },
    'max-networks': { type: 'int', min: 1, metavar: 'N', description: 'train on a seeded random subset of at most N networks' },
    restart: { type: 'boolean', description: 'discard an existing checkpoint and start over' },
    ...COMMON,
  },
  examples: [
    'wsflow train --zoo zoos/wdbc --geometry geometric --steps 20000 --out flows/wdbc-geo',
    'wsflow train --zoo zoos/wdbc --data raw --geometry euclidean --coupling ot --d 16 --layers 3 --steps 2000 --out flows/wdbc-euc-ot',
    'wsflow train --zoo zoos/wdbc --graph dense --d 64 --steps 250000 --device cuda --out flows/wdbc-dense --json',
    'wsflow train --zoo zoos/mnist-full --component-input --layer-scaling on --time uniform --d 16 --layers 3 --batch 8 --steps 2000 --out flows/mnist-dist',
  ],
} as const satisfies CommandSpec;

export const trainCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    if (v.zoo === undefined) throw new UsageError('--zoo: expected the zoo folder to learn from (e.g. --zoo zoos/wdbc)');
    if (v.out === undefined) throw new UsageError('--out: expected the flow folder to write (e.g. --out flows/wdbc-geo)');
    checkWritableDir('--out', v.out);
    if (v.d % v.heads !== 0) throw new UsageError(`--heads: expected a divisor of --d (${v.d}), got ${v.heads}`);
    if (v.semantics === 'reference' && v.graph !== 'dense') ctx.note("note: --semantics reference on a sparse graph keeps the corrected time rule (the published one needs --graph dense)");
    if (v.prediction === 'velocity' && v.precondition === 'on') throw new UsageError('--precondition: applies to --prediction x1 only');
    const ema = v.ema === 'auto' ? (v.semantics === 'reference' ? 0 : v.steps >= 10000 ? 0.999 : 0.99) : Number(v.ema);
    if (!Number.isFinite(ema) || ema < 0 || ema >= 1) throw new UsageError(`--ema: expected a number in [0, 1) or 'auto', got '${v.ema}'`);
    const scaleOpt = v['prior-scale'] === 'auto' ? undefined : Number(v['prior-scale']);
    if (scaleOpt !== undefined && !(Number.isFinite(scaleOpt) && scaleOpt >= 0)) throw new UsageError(`--prior-scale: expected a number ≥ 0 or 'auto', got '${v['prior-scale']}'`);
    const device = ctx.setup(v);
    const matmul = checkMatmul(v.matmul, device);
    if (v.coupling === 'component-ot' && v.prior !== 'auto' && v.prior !== 'mixture') throw new UsageError(`--coupling component-ot: pairs start points and networks within the components of a mixture prior, but the prior is '${v.prior}'; use --prior mixture, or --coupling ot`);
    const { loc, zoo } = zooFor('--zoo', v.zoo, v.data as 'auto' | 'aligned' | 'raw');
    if (v.coupling === 'trajectory' && zoo.init === null) throw new UsageError(`--coupling trajectory: ${loc.file} has no initial weights (tensor \`init\`)`);
    if (!loc.aligned) ctx.note(`training on the unaligned zoo ${loc.file}${v.data === 'auto' ? " (run 'wsflow align' first to train on aligned networks)" : ''}`);
    // Per-hidden-neuron embeddings help on aligned zoos (results/trials: WDBC 0.988 vs 0.982, MNIST 0.31 vs chance
    // at equal steps) and make no sense on unaligned ones (hidden neurons have no fixed order there).
    const hiddenIdentity = v['hidden-identity'] === 'auto' ? loc.aligned && v.semantics === 'corrected' : v['hidden-identity'] === 'on';
    // Priors fitted to the zoo (results/trials, Geometric D=16): its Gaussian lifted MNIST samples from 0.335 to 0.555
    // at 2,000 steps; a mixture with one Gaussian per k-means cluster, as many clusters as the zoo has runs, to 0.861
    // (WDBC: 0.985 vs 0.988, neutral). On unaligned zoos the means of unaligned networks are poor centres.
    // Trajectory coupling starts training paths at the runs' initialisations, so its prior must match those.
    const runs = new Set(zoo.run).size;
    const fitted = loc.aligned && v.semantics === 'corrected' && v.coupling !== 'trajectory';
    const priorKind = v.prior === 'auto' ? (fitted ? (runs > 1 ? 'mixture' : 'zoo') : 'gaussian') : v.prior;
    if (v.coupling === 'component-ot' && priorKind !== 'mixture') throw new UsageError(`--coupling component-ot: pairs start points and networks within the components of a mixture prior, but the prior is '${priorKind}'; use --prior mixture, or --coupling ot`);
    if (v['component-input'] === true && priorKind !== 'mixture') throw new UsageError(`--component-input: needs the mixture prior, but the prior here is '${priorKind}' (use an aligned zoo of several runs, or --prior mixture)`);
    const auxFlags = [v['component-input'] === true ? '--component-input' : '', v['grad-features'] > 0 ? '--grad-features' : '', v['probe-features'] > 0 ? '--probe-features' : ''].filter((x) => x !== '');
    if (auxFlags.length > 1) throw new UsageError(`${auxFlags.join(' and ')}: choose one (they all feed the field's auxiliary inputs)`);
    if (v['self-condition'] === true && v.prediction !== 'x1') throw new UsageError("--self-condition: feeds the field its previous prediction of x1, so it needs --prediction x1");
    if (v['self-condition'] === true && v['probe-features'] > 63) throw new UsageError(`--self-condition: takes one of the field's 64 input columns, so --probe-features must be at most 63 with it (got ${v['probe-features']})`);

    // Halving the mixture's spread: MNIST 0.891 ± 0.036 vs 0.873 ± 0.064 (averaged over 64: 0.925 vs 0.923), WDBC
    // 0.983 / loss 0.041 vs 0.983 / 0.044 (results/trials); the samples are then the narrower prior's draws.
    const scale = scaleOpt ?? (priorKind === 'mixture' ? 0.5 : 1);
    const priorScale = scale === 1 ? {} : { scale };
    const flow: Omit<FlowOptions, 'arch' | 'device'> = {
      geometry: v.geometry as FlowOptions['geometry'] & string,
      semantics: v.semantics as 'corrected' | 'reference',
      coupling: v.coupling as 'independent' | 'ot' | 'trajectory' | 'component-ot',
      otCost: v['ot-cost'] as 'euclidean' | 'geodesic',
      otPool: v['ot-pool'] as number,
      prediction: v.prediction as 'x1' | 'velocity',
      ...(v.precondition === 'auto' ? {} : { precondition: v.precondition === 'on' }),
      ...(v['layer-scaling'] === 'auto' ? {} : { layerScaling: v['layer-scaling'] === 'on' }),
      lastLayerNorm: v['last-layer-norm'],
      prior: priorKind === 'init' ? { kind: 'init', scheme: 'normal', std: v['prior-std'] } : priorKind === 'zoo' ? { kind: 'zoo', members: v['prior-members'], ...priorScale } : priorKind === 'mixture' ? { kind: 'mixture', ...(v['prior-components'] === 0 ? { by: 'run' as const } : { components: v['prior-components'] as number }), members: v['prior-members'], ...priorScale } : { kind: 'gaussian', std: v['prior-std'] },
      ...(v.time === 'auto' ? {} : { time: v.time as TimeDistribution }),
      sigma: v.sigma,
      seed: v.seed,
      ...(v['grad-features'] > 0 ? { gradientFeatures: { task: zoo.task, rows: v['grad-features'] } } : {}),
      ...(v['probe-features'] > 0 ? { probeFeatures: { task: zoo.task, probes: v['probe-features'] } } : {}),
      ...(v['component-input'] === true ? { componentInput: true } : {}),
      ...(v['self-condition'] === true ? { selfCondition: true } : {}),
      field: { D: v.d, layers: v.layers, heads: v.heads, graph: v.graph as GraphMode, hiddenIdentity, ...(v.recompute === true ? { recompute: true } : {}), ...(v['chunk-rows'] > 0 ? { chunkRows: v['chunk-rows'] } : {}), ...(matmul === 'bf16' ? { matmul } : {}) },
    };
    const outDir = v.out;
    const r = await withFolderLock('--out', outDir, ctx.commandLine, () => trainFlow({
      zoo,
      zooFile: loc.file,
      out: outDir,
      flow,
      device,
      train: {
        steps: v.steps,
        batchSize: v.batch,
        lr: v.lr,
        schedule: v.schedule as 'constant' | 'cosine',
        warmup: v.warmup,
        weightDecay: v['weight-decay'],
        clipNorm: v.clip,
        ema,
        checkpointEvery: v['checkpoint-every'],
        logEvery: v['log-every'],
      },
      ...(v['max-networks'] !== undefined ? { maxNetworks: v['max-networks'] } : {}),
      restart: v.restart === true,
      signal: ctx.signal,
      progress: ctx.progress({ label: 'train', total: v.steps, unit: 'steps' }), // (made once the folder is held)
      command: ctx.commandLine,
    }));
    r.flow.dispose();
    const res = {
      flow: r.flowFile,
      checkpoint: r.checkpointFile,
      log: r.logFile,
      zoo: loc.file,
      aligned: loc.aligned,
      networks: r.networks,
      geometry: v.geometry,
      device,
      step: r.step,
      resumedFrom: r.resumedFrom,
      loss: r.loss,
      seconds: r.seconds,
      stepsPerS: r.stepsPerS,
      fieldMiB: +(r.fieldBytes / 2 ** 20).toFixed(1),
      recompute: r.recompute,
      chunkRows: r.chunkRows,
      ...(r.step > v.steps ? { note: `the checkpoint was already at step ${r.step}, past --steps ${v.steps}: nothing was trained` } : {}),
    };
    ctx.result(res, () =>
      [
        `wrote ${r.flowFile}: ${v.geometry} flow, ${r.step} steps${r.resumedFrom > 0 ? ` (resumed from step ${r.resumedFrom})` : ''}, final loss ${r.loss.toPrecision(4)}`,
        ...(r.step > v.steps ? [`note: the checkpoint in ${v.out} was already at step ${r.step}, past --steps ${v.steps}: nothing was trained (--restart starts over)`] : []),
        `trained on ${r.networks} networks of ${loc.file} on ${device}; ${duration(r.seconds)} (${r.stepsPerS.toFixed(2)} steps/s); field memory ${res.fieldMiB} MiB${r.recompute ? ` (recompute mode${r.chunkRows > 0 ? `, chunks of ${r.chunkRows} pairs` : ''})` : ''}; log ${r.logFile}`,
      ].join('\n'),
    );
    return 0;
  },
};
