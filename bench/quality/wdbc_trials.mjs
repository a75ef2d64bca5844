// Sample-quality trials on WDBC (issue: sample quality). Each trial trains one flow on the aligned WDBC zoo with
// a given configuration, samples networks and evaluates them against the trained networks and the noise
// baseline; one JSON line per trial is appended to results/trials/wdbc.jsonl.
//
//   node bench/quality/wdbc_trials.mjs --zoo <zoo.safetensors> [--trial '<json config>' ...] [--samples 256]
//
// A trial config: { geometry, D, layers, steps, batch, lr, schedule, warmup, ema, coupling, precondition,
//                   layerScaling, priorStd, prior: 'gaussian'|'init', solverSteps, solver, seed, time }.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const w = require(path.join(root, 'dist', 'index.js'));
const { FlowMatcher } = require(path.join(root, 'dist', 'flow', 'FlowMatcher.js'));

const argv = process.argv.slice(2);
const get = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
const zooFile = get('--zoo');
if (!zooFile) { console.error('usage: --zoo <file> [--trial json]...'); process.exit(2); }
const trials = [];
for (let i = 0; i < argv.length; i++) if (argv[i] === '--trial') trials.push(JSON.parse(argv[i + 1]));
if (trials.length === 0) trials.push({});
const nSamples = Number(get('--samples', '256'));
const out = get('--out', path.join(root, 'results', 'trials', 'wdbc.jsonl'));
fs.mkdirSync(path.dirname(out), { recursive: true });
let sha = 'unknown';
try { sha = execSync('git rev-parse --short HEAD', { cwd: root }).toString().trim(); } catch { /* not a checkout */ }

const task = w.loadTask('wdbc');
const zoo = w.readZoo(zooFile);
const arch = zoo.arch;
const al = w.alignNetworks(arch, zoo.weights, { seed: 0 });
const P = arch.numParams;
// Trained reference: the last checkpoint of every run.
const maxEpoch = Math.max(...zoo.epoch);
const last = [];
for (let i = 0; i < zoo.n; i++) if (zoo.epoch[i] === maxEpoch) last.push(i);
const trained = new Float32Array(last.length * P);
last.forEach((k, j) => trained.set(al.aligned.subarray(k * P, (k + 1) * P), j * P));
const trainedEval = await w.evaluateNetworks(task, arch, trained);
const allEval = await w.evaluateNetworks(task, arch, al.aligned.subarray(0, Math.min(zoo.n, 2000) * P));

for (const t of trials) {
  const cfg = { geometry: 'geometric', D: 16, layers: 3, steps: 1000, batch: 32, lr: 1e-3, schedule: 'constant', warmup: 0, ema: 0,
    coupling: 'independent', precondition: false, layerScaling: false, priorStd: 0.1, prior: 'gaussian', solverSteps: 64, solver: 'euler', seed: 1, time: 'beta', ...t };
  const t0 = performance.now();
  const fm = FlowMatcher.create({
    arch, geometry: cfg.geometry, field: { D: cfg.D, layers: cfg.layers }, seed: cfg.seed, device: 'cpu',
    coupling: cfg.coupling, precondition: cfg.precondition, layerScaling: cfg.layerScaling, time: cfg.time,
    prior: cfg.prior === 'init' ? { kind: 'init', scheme: 'normal', std: cfg.priorStd } : { kind: 'gaussian', std: cfg.priorStd },
  });
  let lossTail = NaN;
  await fm.fit({ weights: al.aligned, run: zoo.run, init: zoo.init }, { steps: cfg.steps, batchSize: cfg.batch, lr: cfg.lr, schedule: cfg.schedule, warmup: cfg.warmup, ema: cfg.ema, logEvery: 100, onLog: (l) => { lossTail = l.loss; } });
  const trainS = (performance.now() - t0) / 1000;
  const s = fm.sample({ n: nSamples, steps: cfg.solverSteps, solver: cfg.solver, seed: 7 });
  const ev = await w.evaluateNetworks(task, arch, s);
  // Noise baseline at the samples' nearest-neighbour distance, in the flow's space.
  const transform = cfg.geometry === 'euclidean' ? undefined : (x) => w.canonicalize(arch, x);
  const space = (x) => (transform ? transform(x) : x);
  const nn = w.nearestNeighbourDistances(arch, s, al.aligned, { transform, looQueries: 200, seed: 0 });
  const base = w.noiseBaseline(arch, space(trained), { distance: nn.samples.mean, count: nSamples, seed: 3 });
  const baseEval = await w.evaluateNetworks(task, arch, base.weights);
  const row = {
    date: new Date().toISOString(), commit: sha, device: `cpu (${os.cpus()[0]?.model}, ${os.cpus().length} cores)`, config: cfg,
    trainSeconds: +trainS.toFixed(1), finalLoss: lossTail,
    sample: { acc: ev.accuracySummary, loss: ev.lossSummary },
    trainedLast: { acc: trainedEval.accuracySummary, loss: trainedEval.lossSummary },
    trainedAll: { acc: allEval.accuracySummary, loss: allEval.lossSummary },
    noiseBaseline: { distance: nn.samples.mean, acc: baseEval.accuracySummary, loss: baseEval.lossSummary },
    memorisation: { sampleNN: nn.samples.mean, trainLooNN: nn.trainLoo.mean, ratio: nn.ratio },
  };
  fs.appendFileSync(out, JSON.stringify(row) + '\n');
  const f = (x) => `${x.mean.toFixed(4)}±${x.std.toFixed(4)}`;
  console.log(`${JSON.stringify(t)} train ${trainS.toFixed(0)}s loss ${lossTail.toFixed(4)} | samples acc ${f(ev.accuracySummary)} loss ${f(ev.lossSummary)} | trained acc ${f(trainedEval.accuracySummary)} | noise@${nn.samples.mean.toFixed(2)} acc ${f(baseEval.accuracySummary)} | NN ratio ${nn.ratio?.toFixed?.(2)}`);
  fm.dispose();
}
