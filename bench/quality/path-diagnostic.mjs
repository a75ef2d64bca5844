// Where along its own sampling path a flow loses quality: accuracy of the path states x_t and of the flow's x̂1
// prediction at those states (EMA parameters, as the sampler uses), from the trials' prior draws (Rng(7)).
// Writes results/trials/<task>-path-diagnostic.json.
//
// With --zoo, the same accuracies along the training interpolants x_t = interp(x0, x1, t) from the same prior draws
// to n aligned zoo networks x1: if the predictions are good there but not on the sampler's own path, the loss is in
// the sampling (the states leave the training distribution); if they are poor there too, the field is underfit.
//
//   node bench/quality/path-diagnostic.mjs --flow <flow.safetensors> [--task mnist] [--n 64] [--steps 32] [--zoo Z] [--out F]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alignedZoo, cliArgs, cpuDevice, gitCommit, requireDist, root } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { Rng } = requireDist('util/rng.js');
const { get } = cliArgs(undefined, ['--flow', '--n', '--out', '--steps', '--task', '--zoo', '--align-by']);
const flowFile = get('--flow');
if (!flowFile) { console.error('usage: --flow <flow.safetensors> [--task T] [--n N] [--steps S]'); process.exit(2); }
const fm = FlowMatcher.load(flowFile, { device: 'cpu' });
const arch = fm.arch, P = arch.numParams;
const taskName = get('--task', 'mnist');
const task = w.loadTask(taskName);
const n = Number(get('--n', '64')), steps = Number(get('--steps', '32'));
// Through the flow, which holds a fitted prior's statistics (zoo, mixture: the default); for the thesis' priors the
// same draws as samplePrior with that seed.
const x0 = fm.drawPriorSamples(n, 7);
const at = new Set([0, steps / 8, steps / 4, steps / 2, (3 * steps) / 4, (7 * steps) / 8, steps - 1].map(Math.round));
const states = [];
let k = 0;
const final = fm.sample({ n, steps, x0, onStep: (x, t) => { if (at.has(k)) states.push([t, x.slice()]); k++; } });
if (fm.ema !== undefined) fm.field.setParams(fm.ema); // predictX1 uses the live parameters; the sampler used the EMA
const acc = async (x) => (await w.evaluateNetworks(task, arch, x)).accuracySummary;
const rows = [];
for (const [t, x] of states) {
  const s = await acc(fm.options.geometry === 'euclidean' ? x : w.canonicalize(arch, x));
  const p = await acc(fm.predictX1(x, t));
  rows.push({ t, state: s, prediction: p });
  console.log(`t=${t.toFixed(3)}  state acc ${s.mean.toFixed(4)}  x̂1 acc ${p.mean.toFixed(4)} ± ${p.std.toFixed(4)}`);
}
const fin = await acc(final);
console.log(`final samples: ${fin.mean.toFixed(4)} ± ${fin.std.toFixed(4)}`);
let interpolant;
if (get('--zoo') !== undefined) {
  const zoo = w.readZoo(get('--zoo'));
  const al = alignedZoo(w, zoo);
  const pick = new Rng(11);
  const x1 = new Float32Array(n * P);
  for (let i = 0; i < n; i++) {
    const r = Math.floor(pick.uniform() * zoo.n);
    x1.set(al.aligned.subarray(r * P, (r + 1) * P), i * P);
  }
  const space = (x) => (fm.options.geometry === 'euclidean' ? x : w.canonicalize(arch, x));
  const x0s = space(x0), x1s = space(x1);
  interpolant = { x1: await acc(x1s), rows: [] };
  console.log(`interpolants to ${n} zoo networks (their accuracy ${interpolant.x1.mean.toFixed(4)}):`);
  for (const [t] of states) {
    const xt = fm.geom.interpolate(x0s, x1s, t);
    const st = await acc(xt);
    const p = await acc(fm.predictX1(xt, t));
    interpolant.rows.push({ t, state: st, prediction: p });
    console.log(`t=${t.toFixed(3)}  state acc ${st.mean.toFixed(4)}  x̂1 acc ${p.mean.toFixed(4)} ± ${p.std.toFixed(4)}`);
  }
}
const file = get('--out', path.join(root, 'results', 'trials', `${taskName}-path-diagnostic.json`));
fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), commit: gitCommit(), device: cpuDevice(), flow: path.basename(flowFile), networks: n, steps, rows, final: fin, interpolant }, null, 1) + '\n');
console.log(`wrote ${path.relative(root, file)}`);
