// Accuracy–diversity sweep of the mixture prior's spread without a flow: draws from the Gaussian of each run of the
// aligned zoo (mixtureBaseline by run) at several spreads, their test accuracy, model averaging and distance to the
// nearest training network, in the canonical space the Geometric flow samples in. Since the mixture-prior flows keep
// their start points (bench/quality/flow-displacement.mjs), this is what the spread option trades.
//
// --components sweeps the component count too (0: one component per run, the default; K > 0: K k-means clusters of
// the aligned zoo, which split runs into parts of their trajectories once K exceeds the runs).
//
//   node bench/quality/prior-spread.mjs --zoo <zoo.safetensors> [--scales 0,0.25,0.5,0.75,1] [--components 0,60]
//        [--samples 128] [--out F]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alignedZoo, cliArgs, deviceLabel, gitCommit, requireDist } from './common.mjs';

const w = requireDist('index.js');
const { get } = cliArgs(undefined, ['--components', '--out', '--samples', '--scales', '--zoo', '--align-by']);
const zooFile = get('--zoo');
if (!zooFile) { console.error('usage: --zoo <file> [--scales a,b,...] [--samples N] [--out file]'); process.exit(2); }
const scales = get('--scales', '0,0.25,0.5,0.75,1').split(',').map(Number);
const n = Number(get('--samples', '128'));
const componentCounts = get('--components', '0').split(',').map(Number);
const zoo = w.readZoo(zooFile);
const arch = zoo.arch;
const task = w.loadTask(zoo.task);
const al = alignedZoo(w, zoo);
const canon = (x) => w.canonicalize(arch, x);
const rows = [];
for (const components of componentCounts) for (const scale of scales) {
  const g = w.mixtureBaseline(arch, al.aligned, { ...(components === 0 ? { runs: zoo.run } : { components }), scale, count: n, seed: 5 });
  const x = canon(g.weights);
  const e = await w.evaluateNetworks(task, arch, x);
  const bma = (await w.bmaCurve(task, arch, x, { ns: [1, 4, 16, 64].filter((k) => k <= n), repeats: 5, seed: 0 })).points.map((p) => ({ n: p.n, acc: p.accuracy.mean }));
  const nn = w.nearestNeighbourDistances(arch, g.weights, al.aligned, { transform: canon, looQueries: 50, seed: 0 });
  const row = { components: components === 0 ? 'run' : components, scale, accuracy: e.accuracySummary, loss: e.lossSummary, bma, sampleNN: nn.samples.mean, zooLooNN: nn.trainLoo.mean };
  rows.push(row);
  console.log(`${components === 0 ? 'by run' : `${components} k-means clusters`}, spread ${scale}: acc ${e.accuracySummary.mean.toFixed(4)} ± ${e.accuracySummary.std.toFixed(4)}, loss ${e.lossSummary.mean.toFixed(4)} | averaged ${bma.map((b) => `${b.n}:${b.acc.toFixed(3)}`).join(' ')} | nearest trained ${nn.samples.mean.toFixed(3)} (zoo spacing ${nn.trainLoo.mean.toFixed(3)})`);
}
const out = get('--out');
if (out) {
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), commit: gitCommit(), device: deviceLabel('cpu'), zoo: path.basename(zooFile), alignedBy: al.by, task: zoo.task, runs: new Set(zoo.run).size, samples: n, rows }, null, 1)}\n`);
  console.log(`wrote ${out}`);
}
