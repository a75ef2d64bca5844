// Architecture transfer of a trained flow (issue: sample quality; `wsflow reproduce arch-transfer` at full size):
// the same vector field generates its own architecture and wider ones (FlowMatcher.sample's `arch`: same input
// width, output width and depth, the new architecture's prior, geometry and canonicalisation), with the Euler
// sampler and — for flows it serves — the renoising sampler, both from the same prior draws per architecture.
// Beside them, the raw prior draws and, when given (--ref ARCH=zoo.safetensors), trained networks of that
// architecture (the last checkpoint of every run). One JSON object per run is appended to --out.
//
// Guided transfer (--guidance λ[,λ…]): the Euler sampler with task-gradient guidance (--rows training examples per
// network and step, one gradient per step: `steps` gradient evaluations per network), optionally at a logit scale
// (--logit-scale S, or `auto` = trainedLogitScale of --zoo, the flow's own zoo, as `wsflow sample
// --guidance-logit-scale auto`). Beside every guided row, plain SGD with the same gradient budget (steps × rows) at
// each --sgd-lr, from the same prior draws and from the unguided Euler samples (flow, then SGD): a guided result is
// always read against equal-budget SGD. With --guidance-at prediction the gradient step moves the field's prediction
// (SampleGuidance.at), and each λ also gets a guided row of the renoising sampler, with SGD from its unguided samples
// beside; with --guidance-from t0 the guided sampler spends fewer gradients, and the SGD rows spend as many.
//
// Task transfer (--guide-task T, e.g. fashion-mnist from an MNIST flow; the thesis' §11.3 table at full size): the
// guidance gradients, the plain-SGD baselines and every accuracy are on T (--ref zoos are T's trained networks);
// the Euler and guided rows also report accuracy on the flow's own task (`onFlowTask`).
//
//   node bench/quality/transfer.mjs --flow <flow.safetensors> [--task mnist-full] [--arch 784-32-10,784-64-10]
//        [--n 128] [--steps 32] [--rho 0.6] [--seed 7] [--bma 1,4,16,64] [--ref 784-32-10=<zoo.safetensors> ...]
//        [--samplers euler,renoise] [--skip-own] [--guidance 0.1,1 --rows 64 --logit-scale auto --zoo <zoo>
//        --sgd-lr 0.01,0.03,0.1,0.3 --velocity riemannian|x0-anchored --guidance-at state|prediction --guidance-from T0] [--guide-task fashion-mnist] [--out results/trials/<task>-transfer.json]
//
// A flow trained with hiddenIdentity (one positional embedding per hidden neuron) cannot generate wider hidden
// layers: the script stops with the library's error for such a flow.
import * as path from 'node:path';
import { appendJsonRun, cliArgs, cpuDevice, evalWithBma, gitCommit, lastCheckpoints, pickRows, requireDist, root } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { samplePrior } = requireDist('flow/prior.js');
const { get, all } = cliArgs(undefined, ['--arch', '--bma', '--flow', '--guidance', '--guidance-at', '--guidance-from', '--guide-task', '--logit-scale', '--n', '--out', '--ref', '--rho', '--rows', '--samplers', '--seed', '--sgd-lr', '--steps', '--task', '--velocity', '--zoo', '--skip-own'], ['--skip-own']);
const flowFile = get('--flow');
if (!flowFile) {
  console.error('usage: --flow <flow.safetensors> [--task T] [--arch W,W] [--n N] [--steps S] [--rho ρ] [--ref ARCH=zoo.safetensors]');
  process.exit(2);
}
const fm = FlowMatcher.load(flowFile, { device: 'cpu' });
const taskName = get('--task', 'mnist-full');
const flowTask = w.loadTask(taskName);
// The task every row is scored on, and the one guidance and SGD take gradients of: the flow's own unless --guide-task.
const guideName = get('--guide-task', taskName);
const task = guideName === taskName ? flowTask : w.loadTask(guideName);
const crossTask = task !== flowTask;
const n = Number(get('--n', '128')), steps = Number(get('--steps', '32')), seed = Number(get('--seed', '7'));
const rho = Number(get('--rho', '0.6'));
if (!(n >= 1) || !(steps >= 2) || !(rho >= 0 && rho <= 1)) { console.error('transfer: --n ≥ 1, --steps ≥ 2, ρ in [0, 1]'); process.exit(2); }
const skipOwn = process.argv.includes('--skip-own');
const archs = [...(skipOwn ? [] : [fm.arch]), ...get('--arch', '').split(',').filter((s) => s !== '').map((s) => w.mlp(s))];
const refs = new Map(all('--ref').map((r) => {
  const [a, f] = r.split('=');
  if (!a || !f) { console.error(`transfer: --ref ARCH=zoo.safetensors, got ${r}`); process.exit(2); }
  return [w.mlp(a).key, f];
}));
for (const a of refs.keys()) {
  if (!archs.some((x) => x.key === a)) { console.error(`transfer: --ref ${a} names an architecture that is not sampled (${archs.map((x) => x.key).join(', ')})`); process.exit(2); }
}
if (archs.length === 0) { console.error('transfer: --skip-own needs an --arch to sample'); process.exit(2); }
const samplers = get('--samplers', 'euler,renoise').split(',').filter((s) => s !== '' && s !== 'none');
if (samplers.some((s) => s !== 'euler' && s !== 'renoise')) { console.error(`transfer: --samplers takes euler and/or renoise (or none), got ${get('--samplers')}`); process.exit(2); }
const lambdas = get('--guidance', '').split(',').filter((s) => s !== '').map(Number);
const rows = Number(get('--rows', '64'));
const sgdLrs = get('--sgd-lr', '0.01,0.03,0.1,0.3').split(',').map(Number);
if (lambdas.some((l) => !(l > 0)) || !(rows >= 1) || sgdLrs.some((l) => !(l > 0))) { console.error('transfer: --guidance λ > 0, --rows ≥ 1, --sgd-lr > 0'); process.exit(2); }
let logitScale = 1;
if (get('--logit-scale', '1') === 'auto') {
  if (!get('--zoo')) { console.error('transfer: --logit-scale auto needs --zoo (the flow\'s own zoo: its trained networks set the scale)'); process.exit(2); }
  logitScale = w.trainedLogitScale(w.readZoo(get('--zoo')));
  console.log(`logit scale of the trained networks of ${get('--zoo')}: ${logitScale.toFixed(3)}`);
} else {
  logitScale = Number(get('--logit-scale', '1'));
  if (!(logitScale > 0)) { console.error('transfer: --logit-scale S > 0 or auto'); process.exit(2); }
}
// --velocity x0-anchored: the guided rows integrate the thesis' x0-anchored velocity (v = x̂1 − x0) instead of the
// Riemannian one, under which the flow's pull grows as 1/(1 − t) and outweighs the guidance term late in the path.
const velocity = get('--velocity', 'riemannian');
if (velocity !== 'riemannian' && velocity !== 'x0-anchored') { console.error('transfer: --velocity riemannian|x0-anchored'); process.exit(2); }
// --guidance-at prediction: the gradient step moves the field's prediction x̂1 (taken at x̂1) instead of the velocity
// at the state (SampleGuidance.at); with it, a guided row of the renoising sampler too (when it serves the flow).
const guidanceAt = get('--guidance-at', 'state');
if (guidanceAt !== 'state' && guidanceAt !== 'prediction') { console.error('transfer: --guidance-at state|prediction'); process.exit(2); }
// --guidance-from t0: guidance only for t ≥ t0 (a schedule; default 0, the whole path).
const guidanceFrom = Number(get('--guidance-from', '0'));
if (!(guidanceFrom >= 0 && guidanceFrom < 1)) { console.error('transfer: --guidance-from t0 in [0, 1)'); process.exit(2); }
const gFrom = guidanceFrom > 0 ? { from: guidanceFrom } : {};
const bmaNs = get('--bma', '') === '' ? [] : get('--bma').split(',').map(Number);
const renoiseWhy = fm.renoiseUnsupported();

const evalOf = async (arch, x, withFlowTask = false) => ({
  n: x.length / arch.numParams,
  ...(await evalWithBma(w, task, arch, x, bmaNs)),
  ...(crossTask && withFlowTask ? { onFlowTask: (await w.evaluateNetworks(flowTask, arch, x)).accuracySummary } : {}),
});
const line = (label, e, s) => console.log(`${label}: acc ${e.acc.mean.toFixed(4)} ± ${e.acc.std.toFixed(4)} loss ${e.loss.mean.toFixed(4)}${e.bma === undefined ? '' : ` | BMA ${e.bma.map((b) => `${b.n}:${b.acc.toFixed(3)}`).join(' ')}`}${e.onFlowTask === undefined ? '' : ` | on ${taskName} ${e.onFlowTask.mean.toFixed(4)}`}${s === undefined ? '' : `  (${s.toFixed(1)} s)`}`);

const results = [];
for (const arch of archs) {
  // One prior draw set per architecture, shared by both samplers (raw: the sampler canonicalises its start points).
  // (on the flow's own architecture through the flow, which holds a fitted prior's statistics — zoo, mixture — and
  // draws the thesis' priors exactly as samplePrior with that seed)
  const x0 = arch.key === fm.arch.key ? fm.drawPriorSamples(n, seed + arch.numParams) : samplePrior(arch, fm.options.prior, new w.Rng(seed + arch.numParams), new Float32Array(n * arch.numParams));
  const row = { arch: arch.key, own: arch.key === fm.arch.key, prior: await evalOf(arch, x0) };
  line(`${arch.key} prior draws`, row.prior);
  let t = performance.now();
  let eulerSamples;
  let renoiseSamples;
  if (samplers.includes('euler')) {
    eulerSamples = fm.sample({ n, steps, x0, arch, seed });
    row.euler = await evalOf(arch, eulerSamples, true);
    row.euler.seconds = (performance.now() - t) / 1000;
    line(`${arch.key} Euler, ${steps} steps`, row.euler, row.euler.seconds);
  }
  if (renoiseWhy === undefined && samplers.includes('renoise')) {
    t = performance.now();
    renoiseSamples = fm.sample({ n, steps, x0, arch, seed, renoise: rho });
    row.renoise = { rho, ...(await evalOf(arch, renoiseSamples)) };
    row.renoise.seconds = (performance.now() - t) / 1000;
    line(`${arch.key} renoising ρ ${rho}`, row.renoise, row.renoise.seconds);
  }
  if (lambdas.length > 0) {
    // Equal-budget plain SGD: as many gradients of `rows` examples as the guided sampler spent (one per Euler step
    // where it guides; fewer with --guidance-from).
    let budget = steps;
    const sgdRun = async (start, lr) => {
      try { return await evalOf(arch, w.plainSgd(task, arch, start, { steps: budget, rows, lr, seed: seed + 11 })); } catch (e) { return { diverged: String(e.message ?? e) }; }
    };
    row.guided = [];
    for (const lambda of lambdas) {
      t = performance.now();
      const guidance = { lambda, task, rows, logitScale, at: guidanceAt, ...gFrom };
      const g = await w.sampleFlow(fm, { n, steps, x0, arch, seed, velocity, guidance });
      const r = { lambda, rows, logitScale, velocity, at: guidanceAt, ...gFrom, gradientEvals: g.gradientEvals, ...(await evalOf(arch, g.weights, true)), seconds: (performance.now() - t) / 1000 };
      row.guided.push(r);
      budget = g.gradientEvals;
      const how = `${velocity === 'riemannian' ? '' : `, ${velocity} velocity`}${guidanceAt === 'state' ? '' : ', at the prediction'}${guidanceFrom > 0 ? `, from t = ${guidanceFrom}` : ''}`;
      line(`${arch.key} guided λ ${lambda}${how} (${g.gradientEvals} gradients × ${rows} examples, logit scale ${logitScale.toFixed(2)})`, r, r.seconds);
      if (guidanceAt === 'prediction' && renoiseWhy === undefined && samplers.includes('renoise') && velocity === 'riemannian') {
        t = performance.now();
        const q = await w.sampleFlow(fm, { n, steps, x0, arch, seed, renoise: rho, guidance });
        const rr = { lambda, rows, logitScale, at: guidanceAt, ...gFrom, renoise: rho, gradientEvals: q.gradientEvals, ...(await evalOf(arch, q.weights, true)), seconds: (performance.now() - t) / 1000 };
        row.guided.push(rr);
        line(`${arch.key} renoising ρ ${rho}, guided λ ${lambda}${how} (${q.gradientEvals} gradients × ${rows} examples)`, rr, rr.seconds);
      }
    }
    row.sgd = { steps: budget, rows, fromPrior: [], fromEuler: [], ...(renoiseSamples !== undefined && guidanceAt === 'prediction' ? { fromRenoise: [] } : {}) };
    for (const lr of sgdLrs) {
      const a = { lr, ...(await sgdRun(x0, lr)) };
      row.sgd.fromPrior.push(a);
      if (a.acc !== undefined) line(`${arch.key} plain SGD from the prior draws, ${budget} × ${rows}, lr ${lr}`, a); else console.log(`${arch.key} plain SGD lr ${lr}: ${a.diverged}`);
      if (eulerSamples !== undefined) {
        const b = { lr, ...(await sgdRun(eulerSamples, lr)) };
        row.sgd.fromEuler.push(b);
        if (b.acc !== undefined) line(`${arch.key} Euler samples + plain SGD, ${budget} × ${rows}, lr ${lr}`, b); else console.log(`${arch.key} flow + SGD lr ${lr}: ${b.diverged}`);
      }
      if (row.sgd.fromRenoise !== undefined) {
        const c = { lr, ...(await sgdRun(renoiseSamples, lr)) };
        row.sgd.fromRenoise.push(c);
        if (c.acc !== undefined) line(`${arch.key} renoised samples + plain SGD, ${budget} × ${rows}, lr ${lr}`, c); else console.log(`${arch.key} renoised + SGD lr ${lr}: ${c.diverged}`);
      }
    }
  }
  const ref = refs.get(arch.key);
  if (ref !== undefined) {
    const zoo = w.readZoo(ref);
    if (zoo.arch.key !== arch.key) { console.error(`transfer: ${ref} holds ${zoo.arch.key}, not ${arch.key}`); process.exit(2); }
    const last = lastCheckpoints(zoo);
    row.trained = { zoo: path.basename(path.dirname(path.resolve(ref))), runs: last.length, ...(await evalOf(arch, pickRows(zoo.weights, last, arch.numParams))) };
    line(`${arch.key} trained (${last.length} runs)`, row.trained);
  }
  results.push(row);
}
if (renoiseWhy !== undefined && samplers.includes('renoise')) console.log(`(no renoising rows: ${renoiseWhy})`);

const out = get('--out', path.join(root, 'results', 'trials', crossTask ? `${guideName}-from-${taskName}-transfer.json` : `${taskName}-transfer.json`));
appendJsonRun(w, out, { date: new Date().toISOString(), commit: gitCommit(), device: cpuDevice(), flow: path.basename(flowFile), samplers, ...(crossTask ? { guideTask: guideName } : {}), ...(lambdas.length > 0 ? { guidance: { lambdas, rows, logitScale, sgdLrs, at: guidanceAt, ...gFrom } } : {}), field: { D: fm.field.config.D, layers: fm.field.config.layers, hiddenIdentity: (fm.field.config.hiddenWidthSlots ?? 0) > 0, probeFeatures: fm.options.probeFeatures?.probes ?? 0 }, geometry: fm.options.geometry, prior: fm.options.prior, task: taskName, n, steps, seed, results });
console.log(`wrote ${out}`);
