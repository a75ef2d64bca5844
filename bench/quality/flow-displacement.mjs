// How far does the flow move its start points? For n prior draws x0 (seed 7, as bench/quality/trials.mjs), the
// distance from the projected start point to the sample it ends at, beside the start points' and the samples'
// distances to their nearest training network and their test accuracies. A flow whose prior already matches the
// data's first two moments (the zoo and mixture priors) only has to add what is not Gaussian; a small displacement
// with unchanged accuracy says the samples are the prior's draws.
//
//   node bench/quality/flow-displacement.mjs --zoo <zoo.safetensors> --flow <flow.safetensors> [--flow ...]
//        [--samples 32] [--steps 32] [--out results/trials/<name>.json]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alignedZoo, deviceLabel, gitCommit, requireDist, zooFlowArgs } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { get, zooFile, flows, n, steps } = zooFlowArgs(32);
const zoo = w.readZoo(zooFile);
const arch = zoo.arch, P = arch.numParams;
const task = w.loadTask(zoo.task);
const al = alignedZoo(w, zoo);
const rows = [];
for (const file of flows) {
  const fm = FlowMatcher.load(file, { device: 'cpu' });
  const x0 = fm.drawPriorSamples(n, 7);
  const s = fm.sample({ n, steps, x0 });
  const canonical = fm.options.geometry !== 'euclidean';
  const space = (x) => (canonical ? w.canonicalize(arch, x) : x);
  const start = space(x0);
  let moved = 0;
  for (let i = 0; i < n; i++) {
    let q = 0;
    for (let p = 0; p < P; p++) q += (s[i * P + p] - start[i * P + p]) ** 2;
    moved += Math.sqrt(q) / n;
  }
  const nn = (x) => w.nearestNeighbourDistances(arch, x, al.aligned, { ...(canonical ? { transform: space } : {}), looQueries: 10, seed: 0 }).samples.mean;
  const acc = async (x) => (await w.evaluateNetworks(task, arch, space(x))).accuracySummary;
  const row = { flow: path.basename(file), prior: fm.options.prior, geometry: fm.options.geometry, moved, startNN: nn(x0), sampleNN: nn(s), startAccuracy: await acc(x0), sampleAccuracy: await acc(s) };
  rows.push(row);
  console.log(`${row.flow}: moved ${moved.toFixed(3)} | start → nearest trained ${row.startNN.toFixed(3)}, acc ${row.startAccuracy.mean.toFixed(4)} | sample → nearest trained ${row.sampleNN.toFixed(3)}, acc ${row.sampleAccuracy.mean.toFixed(4)}`);
  fm.dispose();
}
const out = get('--out');
if (out) {
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), commit: gitCommit(), device: deviceLabel('cpu'), zoo: path.basename(zooFile), alignedBy: al.by, samples: n, steps, rows }, null, 1)}\n`);
  console.log(`wrote ${out}`);
}
