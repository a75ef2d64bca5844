// End-to-end flow-matching benchmark per geometry: training steps/s (prior draw, coupling, interpolation,
// vector-field forward/backward, canonicalisation and loss, Adam) and sampling networks/s (64 Euler steps),
// with the share of step time spent outside the relational-transformer engine (TypeScript orchestration plus
// the geometry kernels) — the published code lost 5.6× on the Geometric flow to per-sample Python loops.
//
//   node bench/flow.mjs [--device cpu|cuda] [--steps N] [--only wdbc,mnist] [--step host,fused,fused-prior]
//                       [--prior gaussian|mixture] [--sample-n N] [--sample-steps S] [--no-write] [--out DIR]
//
// Each configuration trains with the training steps side by side (`--step` picks): `host`, the host-orchestrated
// step (WSF_FUSED_STEP=0: every operation a separate call on host arrays); `fused`, one native call per step on the
// field's device (native/core/flow_step.h) with the prior drawn on the host (WSF_DEVICE_PRIOR=0); `fused-prior`, the
// same with the prior drawn on the device too (WSF_DEVICE_PRIOR=1; the library's default on CUDA). The profile splits
// the step into the engine and the fused step's flow.* regions (prior, inputs, loss, gradient, EMA); "outside" is
// whatever the profile does not see. `--prior mixture` trains from the mixture prior by run (wsflow's default for
// aligned zoos: 8 runs of 32 networks here, scale 0.5) instead of N(0, 0.1²).
//
// Sampling defaults to 64 networks × 64 Euler steps; on a CPU, `--sample-n 8 --sample-steps 8` keeps it to seconds
// (the rate is still reported per network at 64 steps: n / (seconds × 64 / S)).
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gitCommit } from './quality/common.mjs';
import { benchArgs } from './util/args.mjs';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { FlowMatcher } = require(path.join(root, 'dist', 'flow', 'FlowMatcher.js'));
const w = require(path.join(root, 'dist', 'index.js'));
const args = benchArgs(import.meta.url, {
  values: { '--device': ['cpu', 'cuda'], '--steps': 'int', '--only': 'list', '--sample-n': 'int', '--sample-steps': 'int', '--step': 'list', '--prior': ['gaussian', 'mixture'], '--out': 'string' },
  flags: ['--no-write'],
});
const get = args.get;
const device = get('--device', 'cpu');
const steps = get('--steps', 6);
const only = get('--only');
const sampleN = get('--sample-n');
const sampleSteps = get('--sample-steps', 64);
const stepKinds = get('--step', ['host', 'fused', 'fused-prior']);
const priorKind = get('--prior', 'gaussian');
const STEP_ENV = { host: { WSF_FUSED_STEP: '0' }, fused: { WSF_FUSED_STEP: '1', WSF_DEVICE_PRIOR: '0' }, 'fused-prior': { WSF_FUSED_STEP: '1', WSF_DEVICE_PRIOR: '1' } };
for (const k of stepKinds) if (!(k in STEP_ENV)) { console.error(`unknown --step ${k} (host, fused, fused-prior)`); process.exit(2); }
if (!['gaussian', 'mixture'].includes(priorKind)) { console.error(`unknown --prior ${priorKind} (gaussian, mixture)`); process.exit(2); }

const CONFIGS = [
  { name: 'wdbc', widths: [30, 16, 16, 2], D: 64, B: 32, sampleB: 64 },
  { name: 'mnist', widths: [784, 10, 10], D: 32, B: 8, sampleB: 64 },
];

const rows = [];
for (const c of CONFIGS) {
  if (only && !only.includes(c.name)) continue;
  const arch = w.mlp(c.widths);
  const rng = new w.Rng(1);
  const data = rng.fillNormal(new Float32Array(256 * arch.numParams), 0, 0.3);
  const run = Int32Array.from({ length: 256 }, (_, i) => i % 8);
  const prior = priorKind === 'mixture' ? { kind: 'mixture', by: 'run', scale: 0.5 } : undefined;
  for (const geometry of ['euclidean', 'normalized', 'geometric']) for (const stepKind of stepKinds) {
    Object.assign(process.env, STEP_ENV[stepKind]);
    const fm = FlowMatcher.create({ arch, geometry, field: { D: c.D, layers: 5 }, device, seed: 1, ...(prior ? { prior } : {}) });
    await fm.fit({ weights: data, run }, { steps: 1, batchSize: c.B }); // warm-up: allocation, data canonicalisation
    // Engine time per step from its own profile; total from the wall clock.
    const eng = fm.field;
    eng.setProfiling(true);
    const t0 = performance.now();
    await fm.fit({ weights: data, run }, { steps: 1 + steps, batchSize: c.B });
    const total = (performance.now() - t0) / steps;
    const prof = eng.profile();
    eng.setProfiling(false);
    const msOf = (keep) => Object.entries(prof).filter(([k]) => keep(k)).reduce((s, [, v]) => s + v.seconds, 0) * 1000 / steps;
    const engineMs = msOf((k) => !k.startsWith('flow.'));
    const flowMs = msOf((k) => k.startsWith('flow.'));
    const sn = sampleN ?? c.sampleB;
    const s0 = performance.now();
    fm.sample({ n: sn, steps: sampleSteps, batchSize: sn });
    const sampleS = ((performance.now() - s0) / 1000) * (64 / sampleSteps); // seconds at 64 steps
    const row = { config: c.name, geometry, step: stepKind, prior: priorKind, device, D: c.D, B: c.B, train_ms_per_step: +total.toFixed(2), engine_ms_per_step: +engineMs.toFixed(2),
      flow_kernels_ms_per_step: +flowMs.toFixed(2), outside_engine_share: +(1 - engineMs / total).toFixed(3),
      sample_nets_per_s_64_steps: +(sn / sampleS).toFixed(2), sample_batch: sn, sample_steps_run: sampleSteps };
    rows.push(row);
    console.log(`${c.name.padEnd(6)} ${geometry.padEnd(10)} ${stepKind.padEnd(11)} train ${row.train_ms_per_step} ms/step (engine ${row.engine_ms_per_step}, flow kernels ${row.flow_kernels_ms_per_step}, outside the engine ${(100 * row.outside_engine_share).toFixed(1)}%)  sampling ${row.sample_nets_per_s_64_steps} nets/s`);
    fm.dispose();
  }
}
const sha = gitCommit();
const result = { kind: 'wsflow-flow-bench', date: new Date().toISOString(), commit: sha, device,
  machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, loadavg: os.loadavg() }, rows };
if (!args.has('--no-write')) {
  const dir = get('--out', path.join(root, 'bench', 'results'));
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${result.date.slice(0, 10)}-${sha}-${device}-flow${priorKind === 'mixture' ? '-mixture' : ''}.json`);
  fs.writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
  console.log(`wrote ${path.relative(root, file)}`);
}
