#!/usr/bin/env node
/* global AbortController */
// Builds a zoo with a thesis preset and prints wall time, network count and test-accuracy statistics as JSON.
// Needs the compiled package (`npx tsc -p tsconfig.build.json`). Usage:
//   node bench/zoo.mjs wdbc [--runs N] [--epochs N] [--chunk N] [--out runs/wdbc.zoo.safetensors]
//   node bench/zoo.mjs mnist --runs 5            # a few runs, to extrapolate
// --json: progress as JSON lines. --no-write is accepted (for `node bench/run.mjs --no-write`) and changes nothing:
// this script writes the zoo file, not a bench/results file.
import { createRequire } from 'node:module';
import { benchArgs } from './util/args.mjs';

const args = benchArgs(import.meta.url, {
  values: { '--runs': 'int', '--epochs': 'int', '--chunk': 'int', '--out': 'string' },
  flags: ['--json', '--no-write'],
  positionals: 1,
});
const values = { runs: args.get('--runs'), epochs: args.get('--epochs'), chunk: args.get('--chunk'), out: args.get('--out'), json: args.has('--json') };
const require = createRequire(import.meta.url);
const { buildZoo } = require('../dist/index.js');
const task = args.positionals[0] ?? 'wdbc';
const out = values.out ?? `runs/${task}${values.runs ? `-r${values.runs}` : ''}.zoo.safetensors`;
const ac = new AbortController();
process.once('SIGINT', () => ac.abort());
const t0 = performance.now();
const res = await buildZoo({
  task,
  out,
  overwrite: true,
  signal: ac.signal,
  progress: values.json ? { json: true } : undefined,
  ...(values.runs ? { runs: Number(values.runs) } : {}),
  ...(values.epochs ? { epochs: Number(values.epochs) } : {}),
  ...(values.chunk ? { chunkSize: Number(values.chunk) } : {}),
});
const z = res.zoo;
const S = z.n / Number(z.metadata.runs);
const stats = (pick) => {
  const v = [];
  for (let k = 0; k < z.n; k++) if (pick(k)) v.push(z.testAcc[k]);
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
  return { n: v.length, mean: +m.toFixed(4), std: +sd.toFixed(4), min: +Math.min(...v).toFixed(4), max: +Math.max(...v).toFixed(4) };
};
console.log(
  JSON.stringify({
    task,
    file: res.file,
    backend: res.backend,
    seconds: +((performance.now() - t0) / 1000).toFixed(1),
    build_seconds: +res.seconds.toFixed(1),
    runs: Number(z.metadata.runs),
    networks: z.n,
    per_run: S,
    params: z.arch.numParams,
    test_acc_last: stats((k) => (k + 1) % S === 0),
    test_acc_all: stats(() => true),
    already_built: res.alreadyBuilt,
  }),
);
