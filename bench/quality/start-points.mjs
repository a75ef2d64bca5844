// Does a trajectory-coupled flow generalise beyond the start points it was trained from? A flow trained with
// coupling 'trajectory' pairs every checkpoint with its run's initialisation, so it sees only as many distinct start
// points as the zoo has runs. This samples the saved flow from (a) those training initialisations (permuted as the
// zoo was aligned by run), (b) fresh draws of the same init distribution (the flow's prior), (c) the training
// initialisations plus small Gaussian perturbations, and scores the networks on the task's test split.
//
//   node bench/quality/start-points.mjs --zoo <zoo.safetensors> --flow <flow.safetensors> [--n 50] [--steps 32]
//        [--jitter 0.01,0.03] [--out results/trials/<name>.json]
import { performance } from 'node:perf_hooks';
import { appendJsonRun, cliArgs, deviceLabel, gitCommit, requireDist } from './common.mjs';

const args = cliArgs(undefined, ['--flow', '--jitter', '--n', '--out', '--steps', '--zoo']);
const w = requireDist('index.js');
const zooFile = args.get('--zoo');
const flowFile = args.get('--flow');
if (!zooFile || !flowFile) { console.error('usage: node bench/quality/start-points.mjs --zoo <zoo.safetensors> --flow <flow.safetensors>'); process.exit(2); }
const n = Number(args.get('--n', '50'));
const steps = Number(args.get('--steps', '32'));
const jitters = args.get('--jitter', '0.01,0.03').split(',').map(Number);
const zoo = w.readZoo(zooFile);
const arch = zoo.arch, P = arch.numParams;
const task = w.loadTask(zoo.task);
const fm = w.FlowMatcher.load(flowFile, { device: 'cpu' });

// One permutation per run (the alignment the flow was trained on), applied to each run's initialisation.
const al = w.alignNetworks(arch, zoo.weights, { seed: 0, groups: zoo.run });
const runs = zoo.init.length / P;
const firstOf = new Int32Array(runs).fill(-1);
for (let i = 0; i < zoo.n; i++) if (firstOf[zoo.run[i]] < 0) firstOf[zoo.run[i]] = i;
const H = al.perms.length / zoo.n;
const runPerms = new Int32Array(runs * H);
for (let r = 0; r < runs; r++) runPerms.set(al.perms.subarray(firstOf[r] * H, (firstOf[r] + 1) * H), r * H);
const inits = w.permuteNetworks(arch, zoo.init, runPerms);
const k = Math.min(n, runs);
const trainStarts = inits.subarray(0, k * P);

const rows = [];
async function score(name, x0) {
  const t0 = performance.now();
  const x = await fm.sampleAsync({ n: x0 ? x0.length / P : k, steps, seed: 11, ...(x0 ? { x0 } : {}) });
  const e = await w.evaluateNetworks(task, arch, x);
  const s = e.accuracySummary;
  console.log(`${name.padEnd(40)} acc ${s.mean.toFixed(4)} ± ${s.std.toFixed(4)}  (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  rows.push({ start: name, n: s.n, acc: s, loss: e.lossSummary });
}
await score('training initialisations', trainStarts);
await score('fresh draws of the prior', undefined);
const rng = new w.Rng(3);
for (const j of jitters) {
  const x0 = Float32Array.from(trainStarts);
  for (let b = 0; b < k; b++) for (let q = 0; q < arch.numWeights; q++) x0[b * P + q] += j * rng.normal();
  await score(`training initialisations + N(0, ${j}²) on weights`, x0);
}
const out = args.get('--out');
if (out) {
  appendJsonRun(w, out, { date: new Date().toISOString(), commit: gitCommit(), device: deviceLabel('cpu'), zoo: zooFile.split('/').slice(-2).join('/'), flow: flowFile.split('/').pop(), steps, rows });
  console.log(`appended to ${out}`);
}
