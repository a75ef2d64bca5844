// Learning-rate sweep of the plain-SGD baseline at a guided sampler's gradient budget: SGD from the same prior draws
// that bench/quality/trials.mjs samples from (Rng(7), the flow's prior), `--steps` gradients of `--rows` training
// examples per network, at each learning rate. Writes results/trials/<task>-sgd-lr-sweep.json, so a guided row
// can be compared with the best-tuned SGD, not one learning rate.
//
//   node bench/quality/sgd-sweep.mjs --flow <flow.safetensors> [--task mnist] [--n 128] [--steps 32] [--rows 64]
//        [--lrs 0.03,0.1,0.3,0.5,1,2,4] [--out results/trials/<task>-sgd-lr-sweep.json]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { cliArgs, cpuDevice, gitCommit, requireDist, root } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { get } = cliArgs(undefined, ['--flow', '--lrs', '--n', '--rows', '--steps', '--task', '--out']);
const flowFile = get('--flow');
if (!flowFile) { console.error('usage: --flow <flow.safetensors> [--task T] [--n N] [--steps S] [--rows R] [--lrs a,b,...]'); process.exit(2); }
const fm = FlowMatcher.load(flowFile, { device: 'cpu' });
const arch = fm.arch;
const taskName = get('--task', 'mnist');
const task = w.loadTask(taskName);
const n = Number(get('--n', '128')), steps = Number(get('--steps', '32')), rows = Number(get('--rows', '64'));
const lrs = get('--lrs', '0.03,0.1,0.3,0.5,1,2,4').split(',').map(Number);
// Through the flow, which holds a fitted prior's statistics (zoo, mixture: the default); for the thesis' priors the
// same draws as samplePrior with that seed.
const x0 = fm.drawPriorSamples(n, 7);
const out = [];
for (const lr of lrs) {
  try {
    const ws = w.plainSgd(task, arch, x0, { steps, rows, lr, seed: 11 });
    const e = await w.evaluateNetworks(task, arch, ws);
    out.push({ lr, acc: e.accuracySummary, loss: e.lossSummary });
    console.log(`lr ${lr}: acc ${e.accuracySummary.mean.toFixed(4)} ± ${e.accuracySummary.std.toFixed(4)}`);
  } catch (err) {
    console.log(`lr ${lr}: ${err.message}`);
    out.push({ lr, error: err.code ?? String(err) });
  }
}
const file = get('--out', path.join(root, 'results', 'trials', `${taskName}-sgd-lr-sweep.json`));
const result = { date: new Date().toISOString(), commit: gitCommit(), device: cpuDevice(), flow: path.basename(flowFile), prior: fm.options.prior, networks: n, steps, rows, seed: 11, results: out };
fs.writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
console.log(`wrote ${path.relative(root, file)}`);
