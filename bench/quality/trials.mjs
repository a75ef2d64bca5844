// Sample-quality trials (issue: sample quality). Each trial trains one flow on the aligned zoo with a given
// configuration, samples networks and evaluates them against the trained networks (last checkpoint of every run)
// and the noise baseline at the samples' distance; one JSON line per trial is appended to
// results/trials/<task>.jsonl (the task is the zoo's).
//
//   node bench/quality/trials.mjs --zoo <zoo.safetensors> [--trial '<json config>' ...] [--samples 256]
//        [--bma 1,4,16,64] [--save-flow <file>] [--load-flow <file>] [--device cpu|cuda] [--max-seconds S] [--align-by checkpoint|run]
//        [--guidance '{"lambda":0.1,"rows":64,"sgdLr":[0.1],"logitScale":1|"auto"}']   (lambda may be a list: one guided set per λ;
//         logitScale: guide at that logit scale, 'auto' = the trained networks' own, see naturalLogitScale)
//
// --device runs the flow (training and sampling) there; evaluation stays on the CPU. --max-seconds stops each trial's
// training after S seconds (the row records the steps done: config.stepsDone) — a time budget, not a step budget.
// --save-flow writes each trained flow (trial k > 0: <file>.k); --load-flow samples a saved flow instead of training
// (the trial's training fields are then ignored and the row records the file). --guidance adds, from the same prior
// draws, task-gradient-guided samples (λ, `rows` training examples per network and step) and plain SGD at the same
// gradient budget (one gradient per network and step) at each `sgdLr` and at λ·dt (the guidance term alone); guided
// quality is reported beside, never instead of, the unguided samples.
//
// A trial config: { geometry, D, layers, heads, graph, hiddenIdentity, steps, batch, lr, schedule, warmup, ema, coupling,
//                   precondition, layerScaling, priorStd, prior: 'gaussian'|'init'|'zoo'|'mixture', otPool (OT over K batches), priorMembers, priorScale, priorComponents (mixture), priorMixStd (mixture: isotropic components), priorBy (mixture: 'kmeans'|'run'), componentInput (mixture: the field sees the start component's mean), selfCondition (the field sees its previous prediction), gradFeatures (probe rows; 0: off), probeFeatures (probe inputs; 0: off), solverSteps, solver, seed, time,
//                   velocity: 'riemannian'|'x0-anchored', grid: 'uniform'|'early'|'cosine', renoise (ρ: the renoising sampler),
//                   sampleSeed (start points and sampler draws; default 7 and the sampler's default; `seed` is the training seed),
//                   matmul: 'f32'|'bf16' (the CPU engine's weight-product precision, training and sampling) }.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alignedZoo, cliArgs, deviceLabel, gitCommit, lastCheckpoints, pickRows, requireDist, root } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');

const { get, all } = cliArgs(undefined, ['--bma', '--device', '--guidance', '--load-flow', '--max-seconds', '--out', '--samples', '--save-flow', '--trial', '--zoo', '--align-by']);
const zooFile = get('--zoo');
if (!zooFile) { console.error('usage: --zoo <file> [--trial json]...'); process.exit(2); }
// Every key a trial config may set (the list above); a misspelt key would otherwise leave the default in force silently.
const TRIAL_KEYS = new Set(['geometry', 'D', 'layers', 'heads', 'graph', 'hiddenIdentity', 'velocity', 'steps', 'batch', 'lr', 'schedule', 'warmup', 'ema',
  'coupling', 'precondition', 'layerScaling', 'priorStd', 'prior', 'otPool', 'priorMembers', 'priorScale', 'priorComponents', 'priorMixStd', 'priorBy',
  'componentInput', 'selfCondition', 'gradFeatures', 'probeFeatures', 'solverSteps', 'solver', 'grid', 'seed', 'time', 'renoise', 'sampleSeed', 'matmul']);
const trials = all('--trial').map((j) => {
  let t;
  try { t = JSON.parse(j); } catch (e) { console.error(`trials: --trial is not JSON (${e.message}): ${j}`); process.exit(2); }
  if (t === null || typeof t !== 'object' || Array.isArray(t)) { console.error(`trials: --trial must be a JSON object, got ${j}`); process.exit(2); }
  const bad = Object.keys(t).filter((k) => !TRIAL_KEYS.has(k));
  if (bad.length > 0) { console.error(`trials: unknown trial key${bad.length > 1 ? 's' : ''} ${bad.join(', ')}; known: ${[...TRIAL_KEYS].join(', ')}`); process.exit(2); }
  return t;
});
if (trials.length === 0) trials.push({});
const nSamples = Number(get('--samples', '256'));
const bmaNs = get('--bma', '') === '' ? [] : get('--bma').split(',').map(Number);
const saveFlow = get('--save-flow');
const loadFlow = get('--load-flow');
const guidanceCfg = get('--guidance') === undefined ? undefined : { lambda: 0.1, rows: 64, sgdLr: [0.1], ...JSON.parse(get('--guidance')) };
const sha = gitCommit();
const device = get('--device', 'cpu');
if (!['cpu', 'cuda'].includes(device)) { console.error(`--device must be cpu or cuda, got ${device}`); process.exit(2); }
const maxSeconds = get('--max-seconds') === undefined ? undefined : Number(get('--max-seconds'));
if (maxSeconds !== undefined && !(maxSeconds > 0)) { console.error('--max-seconds must be > 0'); process.exit(2); }

const zoo = w.readZoo(zooFile);
const task = w.loadTask(zoo.task);
const out = get('--out', path.join(root, 'results', 'trials', `${zoo.task}.jsonl`));
fs.mkdirSync(path.dirname(out), { recursive: true });
const arch = zoo.arch;
const t0a = performance.now();
const al = alignedZoo(w, zoo);
console.log(`${zoo.n} networks (${zoo.task}, ${arch.key}) aligned${al.by === 'run' ? ' by run' : ''} in ${((performance.now() - t0a) / 1000).toFixed(1)} s`);
const P = arch.numParams;
// Trained reference: the last checkpoint of every run.
const trained = pickRows(al.aligned, lastCheckpoints(zoo), P);
const trainedEval = await w.evaluateNetworks(task, arch, trained);
const allEval = await w.evaluateNetworks(task, arch, al.aligned.subarray(0, Math.min(zoo.n, 2000) * P));
const bmaOf = async (x) => (bmaNs.length === 0 ? undefined : (await w.bmaCurve(task, arch, x, { ns: bmaNs.filter((n) => n <= x.length / P), repeats: 5, seed: 0 })).points.map((p) => ({ n: p.n, acc: p.accuracy.mean, loss: p.loss.mean })));
const trainedBma = await bmaOf(trained);
// Gaussian fitted to the whole aligned zoo (mean + empirical covariance), in each flow space once.
const gaussianAt = new Map();
const gaussianIn = async (spaceKind, space) => {
  if (!gaussianAt.has(spaceKind)) {
    const g = w.gaussianBaseline(arch, space(al.aligned), { count: nSamples, seed: 5 });
    const e = await w.evaluateNetworks(task, arch, space(g.weights));
    gaussianAt.set(spaceKind, { members: g.members, acc: e.accuracySummary, loss: e.lossSummary, bma: await bmaOf(space(g.weights)) });
  }
  return gaussianAt.get(spaceKind);
};

// The Gaussian mixture a 'mixture' prior fits (same k-means and per-cluster fits), drawn without a flow.
const mixtureAt = new Map();
const mixtureIn = async (spaceKind, space, components, members, std, by, scale = 1) => {
  const k = `${spaceKind}:${components}:${members}:${std}:${by}:${scale}`;
  if (!mixtureAt.has(k)) {
    const g = w.mixtureBaseline(arch, al.aligned, { components, members, ...(std !== undefined ? { std } : {}), ...(by === 'run' ? { runs: zoo.run } : {}), scale, count: nSamples, seed: 5 });
    const e = await w.evaluateNetworks(task, arch, space(g.weights));
    // How the clusters line up with the zoo's independent runs: the share of networks in their cluster's majority run.
    const major = new Map();
    for (let i = 0; i < zoo.n; i++) {
      const m = major.get(g.labels[i]) ?? new Map();
      m.set(zoo.run[i], (m.get(zoo.run[i]) ?? 0) + 1);
      major.set(g.labels[i], m);
    }
    const runPurity = [...major.values()].reduce((a, m) => a + Math.max(...m.values()), 0) / zoo.n;
    mixtureAt.set(k, { components: new Set(g.labels).size, ...(by !== undefined ? { by } : {}), ...(scale !== 1 ? { scale } : {}), ...(std !== undefined ? { std } : {}), runPurity, acc: e.accuracySummary, loss: e.lossSummary, bma: await bmaOf(space(g.weights)) });
  }
  return mixtureAt.get(k);
};

let trainedCanonical;
const trainedInSpace = async () => {
  if (trainedCanonical === undefined) {
    const e = await w.evaluateNetworks(task, arch, w.canonicalize(arch, trained));
    trainedCanonical = { acc: e.accuracySummary, loss: e.lossSummary };
  }
  return trainedCanonical;
};

// Trajectory coupling pairs each network with the initialisation of its own run, permuted as that network was
// aligned (one initialisation per network: with --align-by checkpoint, checkpoints of a run get different
// permutations).
function trajectoryData() {
  if (!zoo.init) { console.error('coupling trajectory needs a zoo with the runs\' initial weights (init)'); process.exit(2); }
  const per = new Float32Array(zoo.n * P);
  for (let i = 0; i < zoo.n; i++) per.set(zoo.init.subarray(zoo.run[i] * P, (zoo.run[i] + 1) * P), i * P);
  return { init: w.permuteNetworks(arch, per, al.perms), run: Int32Array.from({ length: zoo.n }, (_, i) => i) };
}

for (const t of trials) {
  const cfg = { geometry: 'geometric', D: 16, layers: 3, heads: 1, graph: 'sparse', hiddenIdentity: false, velocity: 'riemannian', steps: 1000, batch: 32, lr: 1e-3, schedule: 'constant', warmup: 0, ema: 0,
    coupling: 'independent', precondition: false, layerScaling: false, priorStd: 0.1, prior: 'gaussian', solverSteps: 64, solver: 'euler', grid: 'uniform', seed: 1, time: 'beta', ...t };
  const t0 = performance.now();
  let fm;
  let lossTail = NaN;
  if (loadFlow !== undefined) {
    fm = FlowMatcher.load(loadFlow, { device, ...(cfg.matmul ? { matmul: cfg.matmul } : {}) });
    cfg.loadedFrom = loadFlow;
  } else {
    fm = FlowMatcher.create({
      arch, geometry: cfg.geometry, field: { D: cfg.D, layers: cfg.layers, heads: cfg.heads, graph: cfg.graph, hiddenIdentity: cfg.hiddenIdentity, ...(cfg.matmul ? { matmul: cfg.matmul } : {}) }, seed: cfg.seed, device,
      coupling: cfg.coupling, precondition: cfg.precondition, layerScaling: cfg.layerScaling, time: cfg.time,
      ...(cfg.otPool !== undefined ? { otPool: cfg.otPool } : {}),
      ...(cfg.gradFeatures > 0 ? { gradientFeatures: { task: zoo.task, rows: cfg.gradFeatures } } : {}),
      ...(cfg.probeFeatures > 0 ? { probeFeatures: { task: zoo.task, probes: cfg.probeFeatures } } : {}),
      ...(cfg.componentInput ? { componentInput: true } : {}),
      ...(cfg.selfCondition ? { selfCondition: true } : {}),
      prior: cfg.prior === 'init' ? { kind: 'init', scheme: 'normal', std: cfg.priorStd } : cfg.prior === 'zoo' ? { kind: 'zoo', members: cfg.priorMembers ?? 256, scale: cfg.priorScale ?? 1 } : cfg.prior === 'mixture' ? { kind: 'mixture', components: cfg.priorComponents ?? 8, members: cfg.priorMembers ?? 256, scale: cfg.priorScale ?? 1, ...(cfg.priorMixStd ? { std: cfg.priorMixStd } : {}), ...(cfg.priorBy ? { by: cfg.priorBy } : {}) } : { kind: 'gaussian', std: cfg.priorStd },
    });
    const lossLog = [];
    const signal = maxSeconds === undefined ? undefined : globalThis.AbortSignal.timeout(maxSeconds * 1000);
    try {
      await fm.fit({ weights: al.aligned, ...(cfg.coupling === 'trajectory' ? trajectoryData() : { run: zoo.run, init: zoo.init }) }, { steps: cfg.steps, batchSize: cfg.batch, lr: cfg.lr, schedule: cfg.schedule, warmup: cfg.warmup, ema: cfg.ema, logEvery: 100, signal, onLog: (l) => { lossTail = l.loss; lossLog.push([l.step, +l.loss.toFixed(5)]); if (l.step % 1000 === 0) console.log(`  step ${l.step} loss ${l.loss.toFixed(4)} (${l.stepsPerS.toFixed(1)} steps/s)`); } });
    } catch (e) {
      if (e?.code !== 'ERR_INTERRUPTED') throw e;
      console.log(`  time budget of ${maxSeconds} s reached at step ${fm.field.stepCount}`);
    }
    cfg.stepsDone = fm.field.stepCount;
    cfg.lossCurve = lossLog.filter((_, i) => i % 5 === 4);
    if (saveFlow !== undefined) {
      const file = trials.indexOf(t) === 0 ? saveFlow : `${saveFlow}.${trials.indexOf(t)}`;
      fm.save(file, { trial: JSON.stringify(t) });
      cfg.savedTo = file;
    }
  }
  if (loadFlow !== undefined) Object.assign(cfg, { geometry: fm.options.geometry, time: fm.options.time, coupling: fm.options.coupling, precondition: fm.options.precondition, layerScaling: fm.options.layerScaling, D: fm.field.config.D, layers: fm.field.config.layers, hiddenIdentity: (fm.field.config.hiddenWidthSlots ?? 0) > 0, prior: fm.options.prior.kind, gradFeatures: fm.options.gradientFeatures?.rows ?? 0, probeFeatures: fm.options.probeFeatures?.probes ?? 0, steps: undefined, batch: undefined, lr: undefined, ema: undefined });
  const trainS = (performance.now() - t0) / 1000;
  const t1 = performance.now();
  // One set of prior draws (raw; the sampler projects them) shared by the unguided and guided samples and SGD.
  // sampleSeed (default: the draws every row before it used, seed 7, and the sampler's default seed) varies the start
  // points and the sampler's own draws (renoising, noise) without retraining: the spread over sampling seeds.
  const x0 = fm.drawPriorSamples(nSamples, cfg.sampleSeed ?? 7);
  const s = fm.sample({ n: nSamples, steps: cfg.solverSteps, solver: cfg.solver, grid: cfg.grid, x0, velocity: cfg.velocity, ...(cfg.renoise !== undefined ? { renoise: cfg.renoise } : {}), ...(cfg.sampleSeed !== undefined ? { seed: cfg.sampleSeed } : {}) });
  const sampleS = (performance.now() - t1) / 1000;
  // Task gradients the sampler itself used per network (gradient features: one per field call), for equal-budget SGD.
  cfg.samplerGradientEvals = fm.options.gradientFeatures ? cfg.solverSteps * (cfg.solver === 'rk4' ? 4 : cfg.solver === 'midpoint' ? 2 : 1) : 0;
  const ev = await w.evaluateNetworks(task, arch, s);
  // Noise baseline at the samples' nearest-neighbour distance, in the flow's space.
  const transform = cfg.geometry === 'euclidean' ? undefined : (x) => w.canonicalize(arch, x);
  const space = (x) => (transform ? transform(x) : x);
  const nn = w.nearestNeighbourDistances(arch, s, al.aligned, { transform, looQueries: 200, seed: 0 });
  const base = w.noiseBaseline(arch, space(trained), { distance: nn.samples.mean, count: nSamples, seed: 3 });
  const baseEval = await w.evaluateNetworks(task, arch, base.weights);
  const gauss = await gaussianIn(transform ? 'canonical' : 'raw', space);
  const mixture = fm.options.prior.kind === 'mixture' ? await mixtureIn(transform ? 'canonical' : 'raw', space, fm.options.prior.components ?? 8, fm.options.prior.members ?? 256, fm.options.prior.std, fm.options.prior.by, fm.options.prior.scale ?? 1) : undefined;
  // The trained networks in the flow's own space (canonicalised for the Normalized/Geometric flows, whose samples
  // are): the same functions up to the last layer's scale, which the canonical form fixes, so their loss is the
  // like-for-like reference for the samples' loss.
  const trainedSpace = transform ? await trainedInSpace() : undefined;
  // A flow with gradient features spends task gradients while sampling: plain SGD from the same prior draws with the
  // same number of gradients of the same batch size is its baseline (the best of a few learning rates, all recorded).
  let sgdBaseline;
  if (cfg.samplerGradientEvals > 0) {
    const rows = fm.options.gradientFeatures.rows;
    const runs = [];
    for (const lr of [0.1, 0.3, 1, 3]) {
      const ws = w.plainSgd(task, arch, x0, { steps: cfg.samplerGradientEvals, rows, lr, seed: 11 });
      const e = await w.evaluateNetworks(task, arch, ws);
      runs.push({ lr, acc: e.accuracySummary, loss: e.lossSummary, bma: await bmaOf(ws) });
    }
    const best = runs.reduce((a, b) => (b.acc.mean > a.acc.mean ? b : a));
    sgdBaseline = { gradientEvals: cfg.samplerGradientEvals, rows, best: best.lr, acc: best.acc, loss: best.loss, bma: best.bma, runs };
  }
  const row = {
    date: new Date().toISOString(), commit: sha, device: deviceLabel(device), zoo: { file: path.basename(zooFile), networks: zoo.n, ...(al.by === 'run' ? { alignedBy: 'run' } : {}) }, config: cfg,
    trainSeconds: +trainS.toFixed(1), sampleSeconds: +sampleS.toFixed(1), finalLoss: lossTail, samples: nSamples,
    sample: { acc: ev.accuracySummary, loss: ev.lossSummary, bma: await bmaOf(s) },
    trainedLast: { acc: trainedEval.accuracySummary, loss: trainedEval.lossSummary, bma: trainedBma },
    trainedAll: { acc: allEval.accuracySummary, loss: allEval.lossSummary },
    ...(trainedSpace ? { trainedFlowSpace: trainedSpace } : {}),
    noiseBaseline: { distance: nn.samples.mean, acc: baseEval.accuracySummary, loss: baseEval.lossSummary },
    gaussianBaseline: gauss,
    ...(mixture !== undefined ? { mixtureBaseline: mixture } : {}),
    ...(sgdBaseline !== undefined ? { sgdBaseline } : {}),
    memorisation: { sampleNN: nn.samples.mean, trainLooNN: nn.trainLoo.mean, ratio: nn.ratio },
  };
  if (guidanceCfg !== undefined) {
    // Guided samples from the same draws, for each λ; plain SGD from the same draws at the same gradient budget
    // (one gradient per network and solver step), at each sgdLr and at λ·dt (the guidance term's own step).
    const entries = [];
    const sgdAt = new Map();
    const sgdRow = async (lr, evals) => {
      if (!sgdAt.has(lr)) {
        const ws = w.plainSgd(task, arch, x0, { steps: evals, rows: guidanceCfg.rows, lr, seed: 11 });
        const e = await w.evaluateNetworks(task, arch, ws);
        sgdAt.set(lr, { lr, acc: e.accuracySummary, loss: e.lossSummary, bma: await bmaOf(ws) });
      }
      return sgdAt.get(lr);
    };
    // logitScale 'auto': guide at the trained networks' own logit scale (their median pushed last-layer norm).
    const logitScale = guidanceCfg.logitScale === 'auto' ? w.naturalLogitScale(arch, trained) : (guidanceCfg.logitScale ?? 1);
    for (const lambda of [guidanceCfg.lambda].flat()) {
      const tg = performance.now();
      const g = await w.sampleFlow(fm, { n: nSamples, steps: cfg.solverSteps, solver: cfg.solver, grid: cfg.grid, x0, velocity: cfg.velocity, guidance: { lambda, task, rows: guidanceCfg.rows, logitScale } });
      const gEval = await w.evaluateNetworks(task, arch, g.weights);
      const evals = g.gradientEvals;
      const sgd = [];
      for (const lr of [...guidanceCfg.sgdLr, lambda / cfg.solverSteps]) sgd.push(await sgdRow(lr, evals));
      entries.push({ lambda, ...(logitScale !== 1 ? { logitScale } : {}), rows: guidanceCfg.rows, gradientEvals: evals, seconds: +((performance.now() - tg) / 1000).toFixed(1), acc: gEval.accuracySummary, loss: gEval.lossSummary, bma: await bmaOf(g.weights), sgd });
      console.log(`  guided λ=${lambda}${logitScale !== 1 ? ` (logit scale ${logitScale.toFixed(2)})` : ''}: acc ${gEval.accuracySummary.mean.toFixed(4)}±${gEval.accuracySummary.std.toFixed(4)} (${evals} gradients × ${guidanceCfg.rows} rows) | plain SGD same budget: ${sgd.map((r) => `lr ${r.lr.toPrecision(3)} → ${r.acc.mean.toFixed(4)}`).join(', ')}`);
    }
    row.guided = entries;
  }
  fs.appendFileSync(out, JSON.stringify(row) + '\n');
  const f = (x) => `${x.mean.toFixed(4)}±${x.std.toFixed(4)}`;
  const bmaStr = row.sample.bma === undefined ? '' : ` | BMA ${row.sample.bma.map((p) => `${p.n}:${p.acc.toFixed(3)}`).join(' ')} (trained ${trainedBma.map((p) => `${p.n}:${p.acc.toFixed(3)}`).join(' ')})`;
  console.log(`${JSON.stringify(t)} train ${trainS.toFixed(0)}s loss ${lossTail.toFixed(4)} | samples acc ${f(ev.accuracySummary)} loss ${f(ev.lossSummary)} | trained acc ${f(trainedEval.accuracySummary)} | noise@${nn.samples.mean.toFixed(2)} acc ${f(baseEval.accuracySummary)} | Gaussian fit acc ${f(gauss.acc)}${gauss.bma ? ` BMA64 ${gauss.bma.at(-1).acc.toFixed(3)}` : ''}${mixture ? ` | mixture fit (${mixture.components}) acc ${f(mixture.acc)}${mixture.bma ? ` BMA ${mixture.bma.at(-1).acc.toFixed(3)}` : ''}` : ''}${sgdBaseline ? ` | plain SGD (${sgdBaseline.gradientEvals} gradients × ${sgdBaseline.rows} rows, lr ${sgdBaseline.best}) acc ${f(sgdBaseline.acc)}` : ''} | NN ratio ${nn.ratio?.toFixed?.(2)}${bmaStr}`);
  fm.dispose();
}
