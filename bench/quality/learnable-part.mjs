// How much of a mixture-prior flow's training target is learnable, and how much the flow has learned. Training pairs
// are drawn as the flow trains on them (a prior draw x0 paired with a zoo network x1 of the component x0 belongs to:
// here the run whose mean network is nearest x0 — mixture by run), then, at several times t, the mean squared error
// (per weight, in the flow's space) of three predictions of x1 from x_t:
// - identity: x̂1 = x_t (the field F = 0 under preconditioning: the flow that stands still);
// - the flow's own x̂1 (predictX1);
// - at t = 0 only, the oracle E[x1 | x0] = the component's mean network (x1 is independent of x0 within a component);
// - at every t, the linear oracle m + α(x̂_t − m), m the component's mean and x̂_t the identity prediction, with one α
//   per layer block fitted by least squares on these pairs (E[x1 | x_t] when start points and networks are Gaussian
//   about m; the field could learn it from x_t alone when the component can be told from x_t).
// identity − oracle is (a lower bound on) what an optimal field gains; identity − flow, what this one gains.
//
//   node bench/quality/learnable-part.mjs --zoo <zoo.safetensors> --flow <flow.safetensors> [--flow ...]
//        [--samples 256] [--out results/trials/<name>.json]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alignedZoo, deviceLabel, gitCommit, requireDist, zooFlowArgs } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { get, zooFile, flows, n } = zooFlowArgs(256);
const zoo = w.readZoo(zooFile);
const arch = zoo.arch, P = arch.numParams;
const al = alignedZoo(w, zoo);
const TIMES = [0, 0.25, 0.5, 0.75, 0.9];

const mse = (a, b) => { let s = 0; for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2; return s / a.length; };

const results = [];
for (const file of flows) {
  const fm = FlowMatcher.load(file, { device: 'cpu' });
  if (fm.options.prior.kind !== 'mixture') { console.error(`${file}: not a mixture-prior flow`); process.exit(2); }
  const canonical = fm.options.geometry !== 'euclidean';
  const space = (x) => (canonical ? w.canonicalize(arch, x) : x);
  const data = space(al.aligned);
  // Each run's members and its mean network in flow space (the mixture-by-run component means, up to canonicalisation).
  const runs = [...new Set(zoo.run)].sort((a, b) => a - b);
  const members = runs.map((r) => [...zoo.run.keys()].filter((i) => zoo.run[i] === r));
  const runMeans = (src) => {
    const means = new Float32Array(runs.length * P);
    members.forEach((m, k) => { for (const i of m) for (let p = 0; p < P; p++) means[k * P + p] += src[i * P + p] / m.length; });
    return means;
  };
  const meansFlow = space(runMeans(data));
  // The prior's draws are raw (drawPriorSamples); the flow trains on them in its own space (canonical form for the
  // sphere flows). Each draw's component is found in raw space, against the runs' raw mean networks.
  const meansRaw = runMeans(al.aligned);
  const x0raw = fm.drawPriorSamples(n, 11);
  const x0 = space(x0raw);
  const x1 = new Float32Array(n * P);
  const oracle = new Float32Array(n * P);
  const rng = new w.Rng(5);
  for (let b = 0; b < n; b++) {
    let best = 0, bestD = Infinity;
    for (let k = 0; k < runs.length; k++) {
      let d = 0;
      for (let p = 0; p < P; p++) d += (x0raw[b * P + p] - meansRaw[k * P + p]) ** 2;
      if (d < bestD) { bestD = d; best = k; }
    }
    const m = members[best];
    const i = m[rng.int(m.length)];
    x1.set(data.subarray(i * P, (i + 1) * P), b * P);
    oracle.set(meansFlow.subarray(best * P, (best + 1) * P), b * P);
  }
  const blocks = [];
  for (let l = 0, o = 0; l < arch.numLayers; l++) {
    const len = arch.widths[l] * arch.widths[l + 1];
    blocks.push([o, len], [o + len, arch.widths[l + 1]]);
    o += len + arch.widths[l + 1];
  }
  const linearOracle = (id) => {
    const lin = new Float32Array(id.length);
    for (const [o, len] of blocks) {
      let num = 0, den = 0;
      for (let b = 0; b < n; b++) for (let k = o; k < o + len; k++) { const i = b * P + k, d = id[i] - oracle[i]; num += (x1[i] - oracle[i]) * d; den += d * d; }
      const a = den > 0 ? num / den : 0;
      for (let b = 0; b < n; b++) for (let k = o; k < o + len; k++) { const i = b * P + k; lin[i] = oracle[i] + a * (id[i] - oracle[i]); }
    }
    return lin;
  };
  const g = w.geometry(arch, fm.options.geometry, { device: 'cpu' });
  const rows = TIMES.map((t) => {
    const xt = fm.options.geometry === 'geometric' ? g.interpolate(x0, x1, t) : Float32Array.from(x0, (v, i) => (1 - t) * v + t * x1[i]);
    const flowPred = fm.predictX1(xt, t);
    const id = canonical ? space(xt) : xt;
    return { t, identity: mse(id, x1), flow: mse(flowPred, x1), linearOracle: mse(linearOracle(id), x1), ...(t === 0 ? { oracle: mse(oracle, x1) } : {}) };
  });
  g.dispose();
  const o = fm.options;
  const row = { flow: path.basename(file), geometry: o.geometry, prior: o.prior, componentInput: o.componentInput ?? false, precondition: o.precondition, layerScaling: o.layerScaling, time: o.time, hiddenIdentity: (fm.field.config.hiddenWidthSlots ?? 0) > 0, rows };
  results.push(row);
  console.log(`${row.flow}: MSE per weight of x̂1 against x1 (identity = the field that stands still)`);
  for (const r of rows) console.log(`  t=${r.t.toFixed(2)} identity ${r.identity.toExponential(3)} | flow ${r.flow.toExponential(3)} | linear oracle ${r.linearOracle.toExponential(3)}${r.oracle !== undefined ? ` | oracle (component mean) ${r.oracle.toExponential(3)}` : ''}`);
  fm.dispose();
}
const out = get('--out');
if (out) {
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), commit: gitCommit(), device: deviceLabel('cpu'), zoo: path.basename(zooFile), alignedBy: al.by, networks: zoo.n, samples: n, results }, null, 1)}\n`);
  console.log(`wrote ${out}`);
}
