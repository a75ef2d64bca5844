// A stochastic sampler for x1-prediction flows, measured against the flow's own Euler sampler from the same prior
// draws (issue: sample quality). At each grid time t the field predicts x̂1; the start point the path would have
// come from is extrapolated back along the geodesic through x̂1 and x_t,
//   x̂0 = Interp(x̂1, x_t, 1/(1−t))            (the geodesic from x̂1 through x_t, continued to "t = 0"),
// part of it is replaced by a fresh prior draw z (canonicalised, as the flow's own start points),
//   x̃0 = canon(ρ·x̂0 + √(1−ρ²)·z)             (ρ = 1: no fresh noise),
// and the next state is x_{t'} = Interp(x̃0, x̂1, t'). With ρ = 1 this is the Riemannian Euler step (same geodesic,
// same fraction of the way), which the script checks; with ρ < 1 it is the analogue of DDIM with η > 0: the state
// keeps the marginal of the interpolant (exactly for Gaussian coordinates, to O(1/dim) on the spheres) while the
// prediction's errors are partly forgotten at every step. This is the script's own implementation, from the public
// predictX1 and geometry maps, written before the library's `renoise` sampling option (FlowMatcher.sample) and kept
// as an independent check of it; ρ here is per step (the library's ρ is per 1/32 of the path: the same at 32 steps).
//
//   node bench/quality/renoise.mjs --flow <flow.safetensors> [--task mnist-full] [--n 128] [--steps 32] [--rho 1,0.9,0.7]
//        [--seed 7] [--bma 1,4,16,64] [--out results/trials/<task>-renoise.json]
import * as path from 'node:path';
import { appendJsonRun, cliArgs, evalWithBma, gitCommit, requireDist, root } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { get } = cliArgs(undefined, ['--bma', '--flow', '--n', '--out', '--rho', '--seed', '--steps', '--task']);
const flowFile = get('--flow');
if (!flowFile) { console.error('usage: --flow <flow.safetensors> [--task T] [--n N] [--steps S] [--rho list]'); process.exit(2); }
const fm = FlowMatcher.load(flowFile, { device: 'cpu' });
if (fm.options.prediction !== 'x1' || fm.options.geometry === 'euclidean') {
  console.error('renoise: needs an x1-prediction Normalized or Geometric flow'); process.exit(2);
}
const arch = fm.arch;
const taskName = get('--task', 'mnist-full');
const task = w.loadTask(taskName);
const n = Number(get('--n', '128')), steps = Number(get('--steps', '32')), seed = Number(get('--seed', '7'));
const rhos = get('--rho', '1,0.9,0.7').split(',').map(Number);
if (!(n >= 1) || !(steps >= 2) || rhos.some((r) => !(r >= 0 && r <= 1))) { console.error('renoise: --n ≥ 1, --steps ≥ 2, each ρ in [0, 1]'); process.exit(2); }

const canon = (x) => fm.geom.canonicalize(x);
const x0 = canon(fm.drawPriorSamples(n, seed));
const t0 = performance.now();
const euler = fm.sample({ n, steps, x0 });
const eulerS = (performance.now() - t0) / 1000;
if (fm.ema !== undefined) fm.field.setParams(fm.ema); // predictX1 uses the live parameters; the sampler used the EMA
const bmaNs = get('--bma', '') === '' ? [] : get('--bma').split(',').map(Number);
const evalOf = (x) => evalWithBma(w, task, arch, x, bmaNs);
const bmaText = (e) => (e.bma === undefined ? '' : ` | BMA ${e.bma.map((b) => `${b.n}:${b.acc.toFixed(3)}`).join(' ')}`);

function renoise(rho, noiseSeed) {
  let x = x0.slice();
  const mix = Math.sqrt(Math.max(0, 1 - rho * rho));
  for (let k = 0; k < steps; k++) {
    const t = k / steps, t2 = (k + 1) / steps;
    const x1 = fm.predictX1(x, t);
    if (k === steps - 1) return x1; // x_1 = x̂1 (the Euler step to t = 1 lands there too)
    let s = t === 0 ? x : fm.geom.interpolate(x1, x, 1 / (1 - t));
    if (rho < 1) {
      const z = canon(fm.drawPriorSamples(n, noiseSeed * 1000 + k));
      const m = new Float32Array(s.length);
      for (let i = 0; i < m.length; i++) m[i] = rho * s[i] + mix * z[i];
      s = canon(m);
    }
    x = fm.geom.interpolate(s, x1, t2);
  }
  return x;
}

const rows = [];
const eu = await evalOf(euler);
console.log(`Euler (the flow's sampler), ${steps} steps: acc ${eu.acc.mean.toFixed(4)} ± ${eu.acc.std.toFixed(4)}${bmaText(eu)}  (${eulerS.toFixed(1)} s)`);
for (const rho of rhos) {
  const t1 = performance.now();
  const x = renoise(rho, seed + 1);
  const s = (performance.now() - t1) / 1000;
  const e = await evalOf(x);
  let maxDiff;
  if (rho === 1) {
    maxDiff = 0;
    for (let i = 0; i < x.length; i++) maxDiff = Math.max(maxDiff, Math.abs(x[i] - euler[i]));
  }
  rows.push({ rho, acc: e.acc, loss: e.loss, seconds: s, ...(maxDiff !== undefined ? { maxAbsDiffToEuler: maxDiff } : {}) });
  console.log(`ρ=${rho}: acc ${e.acc.mean.toFixed(4)} ± ${e.acc.std.toFixed(4)} loss ${e.loss.mean.toFixed(4)}${maxDiff !== undefined ? ` (max |Δ| to Euler ${maxDiff.toExponential(2)})` : ''}${bmaText(e)}  (${s.toFixed(1)} s)`);
}
const out = get('--out', path.join(root, 'results', 'trials', `${taskName}-renoise.json`));
appendJsonRun(w, out, { date: new Date().toISOString(), commit: gitCommit(), device: 'cpu', flow: path.basename(flowFile), task: taskName, n, steps, seed, euler: eu, rows });
console.log(`wrote ${out}`);
