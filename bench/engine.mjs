// CPU benchmark of the relational-transformer engine at the thesis sizes: a full training step (forward,
// fused-MSE backward, Adam) and sampling throughput (forward passes in inference mode), with the engine's own
// memory accounting and a per-region time profile. The sparse PyTorch peer's recorded figures on the same
// 2-core CPU kind (DESIGN.md) are included so the ratio is printed; when a python3 with torch is found (PEER_PYTHON,
// python3, /usr/bin/python3), the peer also runs in the same benchmark (bench/peer/sparse_rt_torch.py, PEER_DEVICE=cpu).
//
//   node bench/engine.mjs [--repeats N] [--only wdbc,mnist,...] [--no-write] [--threads N] [--isa avx512|avx2|portable] [--no-peer]
//                         [--recompute] [--chunk-rows N] [--rounds N] [--bf16 [--bf16-rounds N]]
// --recompute adds a row per configuration in recompute mode (layer activations recomputed in the backward pass:
// less memory, more time), named <config>-recompute, right after the default one; --chunk-rows N (implies
// --recompute) a third row, <config>-chunked, in chunked recompute mode with N pairs per chunk.
// --bf16 adds a row per configuration with bf16 weight products (VectorField `matmul: 'bf16'`; CPUs with AVX-512
// BF16), named <config>-bf16, right after the default one, and reports the two rows' ratio; then --bf16-rounds N
// (default 4) rounds alternating float and bf16 training steps of each such configuration, for a ratio that the
// machine's drift biases neither way (median of the rounds' own ratios).
// --rounds N (with the live peer): N further rounds alternating the engine's training steps and the peer's, for a
// ratio that machine-speed drift between the two runs does not bias (median over rounds, each round's ratio kept).
// Needs build/Release/wsflow.node and dist/ (npx tsc -p tsconfig.build.json).
import { execSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './util/args.mjs';

const args = benchArgs(import.meta.url, {
  values: { '--repeats': 'int', '--only': 'list', '--threads': 'int', '--isa': ['avx512', 'avx2', 'portable'], '--chunk-rows': 'int', '--rounds': 'int', '--bf16-rounds': 'int' },
  flags: ['--no-write', '--no-peer', '--recompute', '--bf16'],
});
const get = args.get;
const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { binding } = require(path.join(root, 'dist', 'native', 'binding.js'));
const b = binding();
const repeats = get('--repeats', 5);
const only = get('--only');
if (get('--threads')) b.setNumThreads(get('--threads'));
// --isa avx2|portable caps the CPU kernels' instruction set (all levels give bit-identical products), so a machine
// with AVX-512 can time the AVX2 path it ships to other CPUs.
if (get('--isa')) b.setCpuIsa(get('--isa'));
const isa = b.cpuIsa();
if (args.has('--bf16') && !isa.bf16) {
  console.error(`engine.mjs: --bf16 needs a CPU with AVX-512 BF16 at the active level (kernels: ${isa.active}, detected ${isa.detected})`);
  process.exit(2);
}

// GEMM FLOPs of one training step (forward + data gradients + weight gradients = 3 × the forward's 2·MACs), from
// the layer shapes of native/core/rt_model.cc: per pair and layer qkv_edge H·4D, lin0_e 2·H·D, lin1, edge_mlp.0,
// edge_mlp.2 (9·H·D MACs); per node and layer qkv_node 3·H·D, attn_out, lin0 H², node_mlp.0/.2, lin0_s, lin0_t
// (8·H·D + H²); input MLPs din·D + 3·D² per pair and node; heads H·D + D² + D per output pair/node. The attention
// and elementwise work is not counted, so "% of peak" is a lower bound on how busy the FMA units are.
function stepGflop(c, gi) {
  const D = c.D, H = D + 1, layers = 5, din = 1;
  const L = c.widths.length - 1;
  let eo = 0, no = 0;
  for (let l = 1; l <= L; l++) { eo += c.widths[l - 1] * c.widths[l]; no += c.widths[l]; }
  const macs = layers * (gi.M * 9 * H * D + gi.N * (8 * H * D + H * H)) + (gi.M + gi.N) * (din * D + 3 * D * D) + c.B * (eo + no) * (H * D + D * D + D);
  return (6 * macs) / 1e9;
}

// Recorded: sparse PyTorch peer, eager, 2 threads, on this CPU kind (DESIGN.md "Performance targets").
const PEER_CPU_MS = { wdbc: 1274, mnist: 1554, 'wdbc-d32-b16': 261 };

const CONFIGS = [
  { name: 'wdbc', widths: [30, 16, 16, 2], D: 64, B: 32, mode: 'sparse' },
  { name: 'mnist', widths: [784, 10, 10], D: 32, B: 8, mode: 'sparse' },
  { name: 'wdbc-d32-b16', widths: [30, 16, 16, 2], D: 32, B: 16, mode: 'sparse' },
  { name: 'wdbc-dense', widths: [30, 16, 16, 2], D: 64, B: 32, mode: 'dense' },
  { name: 'mnist-wide', widths: [784, 128, 128, 10], D: 32, B: 8, mode: 'sparse' },
  // The published model's graph on MNIST: all 804² ordered pairs per network (5.2M pairs at B = 8), in chunked
  // recompute mode (the default mode would hold ~50 GiB of pair activations; wsflow info --memory).
  { name: 'mnist-dense', widths: [784, 10, 10], D: 32, B: 8, mode: 'dense', recompute: true, chunkRows: 131072 },
];

const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
// The median proper (the mean of the middle two for an even count): the summaries over alternating rounds.
const median = (a) => { const x = [...a].sort((p, q) => p - q), h = x.length >> 1; return x.length % 2 ? x[h] : (x[h - 1] + x[h]) / 2; };
const rnd = (k) => Float32Array.from({ length: k }, () => Math.random() - 0.5);

function engineConfig(c) {
  const L = c.widths.length - 1;
  return { D: c.D, layers: 5, heads: 1, inputSlots: c.widths[0], hiddenSlots: L - 1, outputSlots: c.widths[L], mode: c.mode,
    timeRule: 'all', dirEmbed: c.mode === 'sparse', reverseValue: c.mode === 'sparse', inFeatures: 1, ...(c.recompute ? { recompute: true } : {}),
    ...(c.chunkRows ? { chunkRows: c.chunkRows } : {}) };
}

/** A fresh engine on configuration c with random inputs: `step()` runs one training step; `times(n)` times n of them. */
function trainer(c) {
  const e = new b.NativeEngine(engineConfig(c), 1, 'cpu', 'f32');
  if (c.matmul) e.setMatmul(c.matmul);
  e.setGraph(Array.from({ length: c.B }, () => c.widths));
  const gi = e.graphInfo();
  const xt = rnd(gi.P), tgt = rnd(gi.P), out = new Float32Array(gi.P), t = new Float32Array(c.B).fill(0.5);
  const step = () => { e.forward(xt, t, out, true); e.zeroGrad(); e.mse(tgt, true); e.adamStep(1e-3, 0.9, 0.999, 1e-8, 0, 0); };
  const times = (n) => Array.from({ length: n }, () => { const t0 = performance.now(); step(); return performance.now() - t0; });
  return { e, gi, step, times };
}

/** Wall times (ms) of `n` training steps of configuration c after one warm-up step (a fresh engine). */
function trainTimes(c, n) {
  const { e, step, times } = trainer(c);
  try {
    step();
    return times(n);
  } finally {
    e.dispose();
  }
}

function run(c) {
  const cfg = engineConfig(c);
  const { e, gi, step, times: timeSteps } = trainer(c);
  step(); // warm-up (allocation)
  const times = timeSteps(repeats);
  e.setProfiling(true); step(); const prof = e.profile(); e.setProfiling(false);
  const held = e.bytesHeld();
  const gflop = stepGflop(c, gi);
  e.dispose();
  // Sampling: inference-mode forward passes at batch 64 (or B when smaller graphs would not fit time).
  const SB = c.name.startsWith('mnist-wide') || (c.mode === 'dense' && c.widths[0] > 100) ? 8 : 64;
  const s = new b.NativeEngine(cfg, 1, 'cpu', 'f32');
  if (c.matmul) s.setMatmul(c.matmul);
  s.setGraph(Array.from({ length: SB }, () => c.widths));
  const sp = s.graphInfo().P;
  const sx = rnd(sp), so = new Float32Array(sp), st = new Float32Array(SB).fill(0.3);
  s.forward(sx, st, so, false);
  const ft = [];
  for (let i = 0; i < Math.max(2, Math.min(repeats, 3)); i++) { const t0 = performance.now(); s.forward(sx, st, so, false); ft.push(performance.now() - t0); }
  const sampleHeld = s.bytesHeld();
  s.dispose();
  const fwdMs = med(ft);
  return {
    config: c.name, widths: c.widths, D: c.D, B: c.B, mode: c.mode, matmul: c.matmul ?? 'f32', recompute: c.recompute === true, chunkRows: c.chunkRows ?? 0, graph: gi,
    train_ms_median: +med(times).toFixed(1), train_ms_min: +Math.min(...times).toFixed(1), repeats,
    engine_mib: +(held / 2 ** 20).toFixed(1),
    sample_forward_ms_batch: +fwdMs.toFixed(1), sample_batch: SB, sample_engine_mib: +(sampleHeld / 2 ** 20).toFixed(1), nets_per_s_64_steps: +((SB / (fwdMs * 64)) * 1000).toFixed(2),
    profile_ms: Object.fromEntries(Object.entries(prof).map(([k, v]) => [k, +(v.seconds * 1e3).toFixed(1)])),
    gemm_gflop_per_step: +gflop.toFixed(2), gemm_gflops: +(gflop / (med(times) / 1000)).toFixed(1),
    percent_of_fma_peak: peak > 0 ? +((100 * gflop) / (med(times) / 1000) / peak).toFixed(1) : null,
    floor_ms_at_peak: peak > 0 ? +((1000 * gflop) / peak).toFixed(0) : null,
    peer_cpu_ms_recorded: PEER_CPU_MS[c.name] ?? null,
    speedup_vs_peer: PEER_CPU_MS[c.name] ? +(PEER_CPU_MS[c.name] / med(times)).toFixed(2) : null,
  };
}

let sha = 'unknown';
try { sha = execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim(); } catch { /* copied tree */ }
// The machine's float FMA ceiling, measured now with every pool thread busy (the engine's own threads).
const peak = typeof b.cpuFmaPeak === 'function' ? b.cpuFmaPeak(1.0) : 0;
console.log(`FMA peak (measured, ${b.numThreads()} threads, ${isa.active} kernels; CPU allows ${isa.detected}): ${peak.toFixed(1)} GFLOP/s`);
const rows = [];
const chunkRows = get('--chunk-rows', 0);
const withRecompute = args.has('--recompute') || chunkRows > 0;
const variants = (x) => [
  x,
  ...(withRecompute ? [{ ...x, name: `${x.name}-recompute`, recompute: true }] : []),
  ...(chunkRows > 0 ? [{ ...x, name: `${x.name}-chunked`, recompute: true, chunkRows }] : []),
  ...(args.has('--bf16') ? [{ ...x, name: `${x.name}-bf16`, matmul: 'bf16' }] : []),
];
for (const c of CONFIGS.flatMap(variants)) {
  if (only && !only.includes(c.name.replace(/-(recompute|chunked|bf16)$/, ''))) continue;
  const r = run(c);
  const base = c.matmul ? rows.find((x) => x.config === c.name.replace(/-bf16$/, '')) : undefined;
  if (base) {
    r.speedup_vs_f32 = +(base.train_ms_median / r.train_ms_median).toFixed(2);
    r.sampling_speedup_vs_f32 = +(r.nets_per_s_64_steps / base.nets_per_s_64_steps).toFixed(2);
  }
  rows.push(r);
  console.log(`${r.config.padEnd(14)} train ${String(r.train_ms_median).padStart(8)} ms (min ${r.train_ms_min})  ${r.gemm_gflop_per_step} GFLOP → ${r.gemm_gflops} GFLOP/s` +
    (r.percent_of_fma_peak !== null ? ` (${r.percent_of_fma_peak}% of peak; floor ${r.floor_ms_at_peak} ms)` : '') + `  engine ${r.engine_mib} MiB  sampling ${r.nets_per_s_64_steps} nets/s (${r.sample_engine_mib} MiB at batch ${r.sample_batch})` +
    (r.peer_cpu_ms_recorded ? `  | peer ${r.peer_cpu_ms_recorded} ms → ${r.speedup_vs_peer}×` : '') +
    (r.speedup_vs_f32 !== undefined ? `  | vs f32: training ${r.speedup_vs_f32}×, sampling ${r.sampling_speedup_vs_f32}×` : ''));
}
// The peer, live: the first python3 (PATH, then the system one) that imports torch runs bench/peer/sparse_rt_torch.py
// on the CPU with as many threads as the engine used, right after the engine rows, on the same configurations.
// Its figures depend on the torch build (BLAS, version); they are recorded with the rows so the ratio can be judged.
let peerLive = null;
const py = [process.env.PEER_PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean)
  .find((exe) => spawnSync(exe, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0);
const peerNames = rows.map((r) => r.config).filter((n) => n in PEER_CPU_MS);
if (!py) console.log('\n(no PyTorch here: the peer comparison uses its recorded CPU figures from DESIGN.md)');
else if (peerNames.length && !args.has('--no-peer')) {
  const threads = String(b.numThreads());
  const env = { ...process.env, PEER_DEVICE: 'cpu', PEER_CONFIGS: peerNames.join(','), PEER_ITERS: String(Math.max(3, repeats)),
    PEER_WARM: '1', PEER_SAMPLE_STEPS: '2', OMP_NUM_THREADS: threads, OPENBLAS_NUM_THREADS: threads, MKL_NUM_THREADS: threads };
  const runPeer = () => {
    const res = spawnSync(py, [path.join(root, 'bench', 'peer', 'sparse_rt_torch.py'), 'eager'], { env, encoding: 'utf8', maxBuffer: 1 << 24 });
    return { res, peerRows: (res.stdout || '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)) };
  };
  const { res, peerRows } = runPeer();
  const blas = spawnSync(py, ['-c', 'import torch,re; s=torch.__config__.show(); m=re.search(r"BLAS_INFO=([^,]+)", s); print(m.group(1) if m else "?")'], { encoding: 'utf8' }).stdout.trim();
  // Debian's torch is built against the generic libblas.so.3 interface; which library serves it is the system's choice.
  let blasLib = null;
  try { blasLib = fs.realpathSync('/usr/lib/x86_64-linux-gnu/libblas.so.3'); } catch { /* not a Debian layout */ }
  peerLive = { python: py, torch: peerRows[0]?.torch ?? null, blas_info: blas, libblas: blasLib, threads: Number(threads), rows: peerRows,
    status: res.status, stderr_tail: res.status === 0 ? undefined : (res.stderr || '').slice(-600) };
  console.log(`\nsparse PyTorch peer, live on this machine (torch ${peerLive.torch}, BLAS_INFO=${blas}${blasLib ? ` → ${blasLib}` : ''}, ${threads} threads):`);
  for (const pr of peerRows) {
    const r = rows.find((x) => x.config === pr.config);
    if (!r || pr.error) { console.log(`  ${pr.config}: ${pr.error ?? 'no engine row'}`); continue; }
    r.peer_cpu_ms_live = pr.train_ms_median;
    r.speedup_vs_live_peer = +(pr.train_ms_median / r.train_ms_median).toFixed(2);
    console.log(`  ${r.config.padEnd(14)} peer ${pr.train_ms_median} ms vs engine ${r.train_ms_median} ms → ${r.speedup_vs_live_peer}×`);
  }
  // --rounds N: on a shared machine whose speed drifts, N more rounds alternating the engine's training steps and
  // the peer's, each round's ratio from figures taken minutes apart; the summary is the median over rounds.
  const rounds = get('--rounds', 0);
  if (rounds > 0) {
    const names = peerRows.filter((pr) => !pr.error).map((pr) => pr.config);
    const perRound = [];
    for (let i = 0; i < rounds; i++) {
      const engineMs = Object.fromEntries(names.map((n) => [n, +med(trainTimes(CONFIGS.find((c) => c.name === n), repeats)).toFixed(1)]));
      const peer = runPeer().peerRows;
      const peerMs = Object.fromEntries(peer.filter((pr) => !pr.error).map((pr) => [pr.config, pr.train_ms_median]));
      perRound.push({ engineMs, peerMs });
      console.log(`  round ${i + 1}: ` + names.map((n) => `${n} engine ${engineMs[n]} ms, peer ${peerMs[n]} ms → ${(peerMs[n] / engineMs[n]).toFixed(2)}×`).join('; '));
    }
    peerLive.rounds = perRound;
    // The ratio summary is the median of the rounds' own ratios, each from figures taken minutes apart.
    peerLive.summary = Object.fromEntries(names.map((n) => {
      const ratios = perRound.map((r) => +(r.peerMs[n] / r.engineMs[n]).toFixed(2));
      return [n, { engine_ms_median: +median(perRound.map((r) => r.engineMs[n])).toFixed(1),
        peer_ms_median: +median(perRound.map((r) => r.peerMs[n])).toFixed(1), ratio_median: +median(ratios).toFixed(2), ratios }];
    }));
    for (const [n, v] of Object.entries(peerLive.summary)) {
      console.log(`  ${n.padEnd(14)} over ${rounds} rounds: engine ${v.engine_ms_median} ms, peer ${v.peer_ms_median} ms; ratio ${v.ratio_median}× (median of per-round ${v.ratios.join(', ')})`);
    }
  }
}
// --bf16: rounds alternating float and bf16 training steps per configuration (median of the per-round ratios).
let bf16Rounds = null;
if (args.has('--bf16') && get('--bf16-rounds', 4) > 0) {
  const n = get('--bf16-rounds', 4);
  bf16Rounds = {};
  for (const r of rows.filter((x) => x.matmul === 'bf16')) {
    const base = CONFIGS.find((c) => c.name === r.config.replace(/-bf16$/, ''));
    const perRound = [];
    for (let i = 0; i < n; i++) {
      const f32 = +med(trainTimes(base, repeats)).toFixed(1), bf16 = +med(trainTimes({ ...base, matmul: 'bf16' }, repeats)).toFixed(1);
      perRound.push({ f32, bf16, ratio: +(f32 / bf16).toFixed(3) });
    }
    bf16Rounds[base.name] = { rounds: perRound, f32_ms_median: median(perRound.map((x) => x.f32)), bf16_ms_median: median(perRound.map((x) => x.bf16)), ratio_median: +median(perRound.map((x) => x.ratio)).toFixed(2) };
    console.log(`${base.name.padEnd(14)} float vs bf16 over ${n} alternating rounds: ${perRound.map((x) => `${x.f32}/${x.bf16} ms`).join(', ')} → ${bf16Rounds[base.name].ratio_median}× (median of per-round ratios)`);
  }
}
const result = {
  kind: 'wsflow-engine-cpu', date: new Date().toISOString(), commit: sha,
  machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads: b.numThreads(), loadavg: os.loadavg(), node: process.version, fma_peak_gflops: +peak.toFixed(1), cpu_isa: isa.active, cpu_isa_detected: isa.detected, cpu_bf16: isa.bf16 },
  build: b.buildInfo(), rows, peerLive, ...(bf16Rounds !== null ? { bf16Rounds } : {}),
};
if (!args.has('--no-write')) {
  const dir = path.join(root, 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${result.date.slice(0, 10)}-${sha}-cpu${isa.active === isa.detected ? '' : `-${isa.active}`}-engine.json`);
  fs.writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
  console.log(`wrote ${path.relative(root, file)}`);
}
