// Mode-commitment diagnostic (issue: sample quality). For each sampled network and each neuron of the first hidden
// layer, which training run's version of that neuron is it closest to (cosine of its incoming weights and bias, in
// canonical form, after alignment), and do the neurons of one network agree on a run? Zoo checkpoints commit (most
// networks have every neuron nearest its own run, cosine near 1); a sampler that averages modes gives neurons about
// equally close to every run. The flow's samples are compared with zoo checkpoints and with Gaussian-fit draws.
//
//   node bench/quality/mode-check.mjs --flow <flow.safetensors> --zoo <zoo.safetensors> [--samples 64] [--steps 32]
//        [--out results/trials/<name>.json]
import * as fs from 'node:fs';
import { alignedZoo, cliArgs, deviceLabel, gitCommit, lastCheckpoints, pickRows, requireDist } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { get } = cliArgs(undefined, ['--zoo', '--flow', '--samples', '--steps', '--out', '--align-by']);
const flowFile = get('--flow'), zooFile = get('--zoo');
if (!flowFile || !zooFile) { console.error('usage: --flow <file> --zoo <file> [--samples N] [--steps N] [--out file]'); process.exit(2); }
const n = Number(get('--samples', '64')), steps = Number(get('--steps', '32'));
const zoo = w.readZoo(zooFile);
const arch = zoo.arch, P = arch.numParams, [n0, n1] = arch.widths;
const al = alignedZoo(w, zoo);
const runsFinal = w.canonicalize(arch, pickRows(al.aligned, lastCheckpoints(zoo), P));
const R = runsFinal.length / P;
const fm = FlowMatcher.load(flowFile, { device: 'cpu' });
// The same prior draws as bench/quality/trials.mjs (seed 7), so the samples are that script's.
const samples = fm.sample({ n, steps, x0: fm.drawPriorSamples(n, 7) });
const gauss = w.gaussianBaseline(arch, w.canonicalize(arch, al.aligned), { count: n, seed: 5 }).weights;
const checkpoints = w.canonicalize(arch, pickRows(al.aligned, Array.from({ length: n }, (_, k) => (k * 9973) % zoo.n), P));
const nWeights = arch.widths.slice(1).reduce((a, b, l) => a + arch.widths[l] * b, 0);
const neuron = (x, b, j) => {
  const v = new Float64Array(n0 + 1);
  for (let i = 0; i < n0; i++) v[i] = x[b * P + i * n1 + j];
  v[n0] = x[b * P + nWeights + j];
  return v;
};
const cos = (a, c) => {
  let d = 0, na = 0, nc = 0;
  for (let i = 0; i < a.length; i++) { d += a[i] * c[i]; na += a[i] ** 2; nc += c[i] ** 2; }
  return d / Math.sqrt(na * nc);
};
function check(x) {
  const B = x.length / P;
  let allAgree = 0, largest = 0, best = 0, second = 0;
  for (let b = 0; b < B; b++) {
    const votes = new Array(R).fill(0);
    for (let j = 0; j < n1; j++) {
      const v = neuron(x, b, j);
      const cs = Array.from({ length: R }, (_, r) => cos(v, neuron(runsFinal, r, j)));
      const order = cs.map((c, r) => [c, r]).sort((p, q) => q[0] - p[0]);
      votes[order[0][1]]++;
      best += order[0][0];
      second += order[1]?.[0] ?? 0;
    }
    const top = Math.max(...votes);
    largest += top;
    if (top === n1) allAgree++;
  }
  return { allNeuronsOneRun: allAgree / B, largestGroup: largest / B, bestCosine: best / (B * n1), secondCosine: second / (B * n1) };
}
const result = {
  date: new Date().toISOString(), commit: gitCommit(), device: deviceLabel('cpu'), flow: flowFile, zoo: { file: zooFile, networks: zoo.n, runs: R },
  neurons: `first hidden layer (${n1} neurons), incoming weights + bias, canonical form; runs' last checkpoints as references`,
  samples: n, solverSteps: steps,
  zooCheckpoints: check(checkpoints), flowSamples: check(samples), gaussianFit: check(gauss),
};
for (const k of ['zooCheckpoints', 'flowSamples', 'gaussianFit']) {
  const r = result[k];
  console.log(`${k.padEnd(15)} all ${n1} neurons nearest one run: ${r.allNeuronsOneRun.toFixed(2)}  largest group ${r.largestGroup.toFixed(1)}/${n1}  best cosine ${r.bestCosine.toFixed(3)}  second ${r.secondCosine.toFixed(3)}`);
}
const out = get('--out');
if (out) { fs.writeFileSync(out, JSON.stringify(result, null, 1) + '\n'); console.log(`wrote ${out}`); }
