// How good can model averaging get on a zoo's task? Test accuracy of averaged ensembles (probabilities averaged,
// as the thesis) of the zoo's trained networks — the last checkpoint of every run, so each member comes from its
// own training run — and of random checkpoints of the whole zoo (what a flow learns to sample). No flow is involved:
// this is the reference a flow's averaged samples are read against, on the same data.
//
//   node bench/quality/trained-bma.mjs --zoo <zoo.safetensors> [--zoo ...] [--ns 1,4,16,64] [--repeats 10] [--out F]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cliArgs, deviceLabel, gitCommit, lastCheckpoints, pickRows, requireDist } from './common.mjs';

const w = requireDist('index.js');
const { get, all } = cliArgs(undefined, ['--ns', '--out', '--repeats', '--zoo']);
const zoos = all('--zoo');
if (zoos.length === 0) { console.error('usage: --zoo <file> [--zoo ...] [--ns 1,4,16,64] [--repeats 10] [--out file]'); process.exit(2); }
const ns = get('--ns', '1,4,16,64').split(',').map(Number);
const repeats = Number(get('--repeats', '10'));
const rows = [];
for (const file of zoos) {
  const zoo = w.readZoo(file);
  const arch = zoo.arch;
  const P = arch.numParams;
  const task = w.loadTask(zoo.task);
  const trained = pickRows(zoo.weights, lastCheckpoints(zoo), P);
  const runs = trained.length / P;
  const single = await w.evaluateNetworks(task, arch, trained);
  const curve = async (x) => (await w.bmaCurve(task, arch, x, { ns: ns.filter((n) => n <= x.length / P), repeats, seed: 0 })).points.map((p) => ({ n: p.n, accuracy: p.accuracy.mean, accuracyStd: p.accuracy.std, loss: p.loss.mean }));
  const trainedCurve = await curve(trained);
  const anyCurve = await curve(zoo.weights);
  const meta = zoo.metadata ?? {};
  const row = {
    zoo: path.relative(process.cwd(), file),
    task: zoo.task,
    testExamples: task.test.n,
    runs,
    networks: zoo.n,
    optimizer: meta.optimizer === undefined ? null : JSON.parse(meta.optimizer),
    schedule: meta.schedule === undefined ? null : JSON.parse(meta.schedule),
    trained: { accuracy: single.accuracySummary, loss: single.lossSummary },
    trainedAveraged: trainedCurve,
    checkpointsAveraged: anyCurve,
  };
  rows.push(row);
  const fmt = (c) => c.map((p) => `${p.n}:${p.accuracy.toFixed(4)}`).join(' ');
  console.log(`${row.zoo} (${zoo.task}, ${runs} runs, ${zoo.n} networks, ${task.test.n} test examples): trained ${single.accuracySummary.mean.toFixed(4)} ± ${single.accuracySummary.std.toFixed(4)} | averaged trained ${fmt(trainedCurve)} | averaged checkpoints ${fmt(anyCurve)}`);
}
const out = get('--out');
if (out) {
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), commit: gitCommit(), device: deviceLabel('cpu'), ns, repeats, mode: 'prob', rows }, null, 1)}\n`);
  console.log(`wrote ${out}`);
}
