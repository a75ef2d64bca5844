// Architecture transfer of a trained flow (issue: sample quality; `wsflow reproduce arch-transfer` at full size):
// the same vector field generates its own architecture and wider ones (FlowMatcher.sample's `arch`: same input
// width, output width and depth, the new architecture's prior, geometry and canonicalisation), with the Euler
// sampler and — for flows it serves — the renoising sampler, both from the same prior draws per architecture.
// Beside them, the raw prior draws and, when given (--ref ARCH=zoo.safetensors), trained networks of that
// architecture (the last checkpoint of every run). One JSON object per run is appended to --out.
//
//   node bench/quality/transfer.mjs --flow <flow.safetensors> [--task mnist-full] [--arch 784-32-10,784-64-10]
//        [--n 128] [--steps 32] [--rho 0.6] [--seed 7] [--bma 1,4,16,64] [--ref 784-32-10=<zoo.safetensors> ...]
//        [--out results/trials/<task>-transfer.json]
//
// A flow trained with hiddenIdentity (one positional embedding per hidden neuron) cannot generate wider hidden
// layers: the script stops with the library's error for such a flow.
import * as path from 'node:path';
import { appendJsonRun, cliArgs, cpuDevice, evalWithBma, gitCommit, lastCheckpoints, pickRows, requireDist, root } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { samplePrior } = requireDist('flow/prior.js');
const { get, all } = cliArgs();
const flowFile = get('--flow');
if (!flowFile) {
  console.error('usage: --flow <flow.safetensors> [--task T] [--arch W,W] [--n N] [--steps S] [--rho ρ] [--ref ARCH=zoo.safetensors]');
  process.exit(2);
}
const fm = FlowMatcher.load(flowFile, { device: 'cpu' });
const taskName = get('--task', 'mnist-full');
const task = w.loadTask(taskName);
const n = Number(get('--n', '128')), steps = Number(get('--steps', '32')), seed = Number(get('--seed', '7'));
const rho = Number(get('--rho', '0.6'));
if (!(n >= 1) || !(steps >= 2) || !(rho >= 0 && rho <= 1)) { console.error('transfer: --n ≥ 1, --steps ≥ 2, ρ in [0, 1]'); process.exit(2); }
const archs = [fm.arch, ...get('--arch', '').split(',').filter((s) => s !== '').map((s) => w.mlp(s))];
const refs = new Map(all('--ref').map((r) => {
  const [a, f] = r.split('=');
  if (!a || !f) { console.error(`transfer: --ref ARCH=zoo.safetensors, got ${r}`); process.exit(2); }
  return [w.mlp(a).key, f];
}));
for (const a of refs.keys()) {
  if (!archs.some((x) => x.key === a)) { console.error(`transfer: --ref ${a} names an architecture that is not sampled (${archs.map((x) => x.key).join(', ')})`); process.exit(2); }
}
const bmaNs = get('--bma', '') === '' ? [] : get('--bma').split(',').map(Number);
const renoiseWhy = fm.renoiseUnsupported();

const evalOf = async (arch, x) => ({ n: x.length / arch.numParams, ...(await evalWithBma(w, task, arch, x, bmaNs)) });
const line = (label, e, s) => console.log(`${label}: acc ${e.acc.mean.toFixed(4)} ± ${e.acc.std.toFixed(4)} loss ${e.loss.mean.toFixed(4)}${e.bma === undefined ? '' : ` | BMA ${e.bma.map((b) => `${b.n}:${b.acc.toFixed(3)}`).join(' ')}`}${s === undefined ? '' : `  (${s.toFixed(1)} s)`}`);

const results = [];
for (const arch of archs) {
  // One prior draw set per architecture, shared by both samplers (raw: the sampler canonicalises its start points).
  const x0 = samplePrior(arch, fm.options.prior, new w.Rng(seed + arch.numParams), new Float32Array(n * arch.numParams));
  const row = { arch: arch.key, own: arch.key === fm.arch.key, prior: await evalOf(arch, x0) };
  line(`${arch.key} prior draws`, row.prior);
  let t = performance.now();
  row.euler = await evalOf(arch, fm.sample({ n, steps, x0, arch, seed }));
  row.euler.seconds = (performance.now() - t) / 1000;
  line(`${arch.key} Euler, ${steps} steps`, row.euler, row.euler.seconds);
  if (renoiseWhy === undefined) {
    t = performance.now();
    row.renoise = { rho, ...(await evalOf(arch, fm.sample({ n, steps, x0, arch, seed, renoise: rho }))) };
    row.renoise.seconds = (performance.now() - t) / 1000;
    line(`${arch.key} renoising ρ ${rho}`, row.renoise, row.renoise.seconds);
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
if (renoiseWhy !== undefined) console.log(`(no renoising rows: ${renoiseWhy})`);

const out = get('--out', path.join(root, 'results', 'trials', `${taskName}-transfer.json`));
appendJsonRun(w, out, { date: new Date().toISOString(), commit: gitCommit(), device: cpuDevice(), flow: path.basename(flowFile), field: { D: fm.field.config.D, layers: fm.field.config.layers, hiddenIdentity: (fm.field.config.hiddenWidthSlots ?? 0) > 0, probeFeatures: fm.options.probeFeatures?.probes ?? 0 }, geometry: fm.options.geometry, prior: fm.options.prior, task: taskName, n, steps, seed, results });
console.log(`wrote ${out}`);
