// GPU check section "engine" (bench/gpu-check.mjs runs it): the CUDA relational-transformer engine.
//   (a) parity: every op case and every engine case of dist/internal/backendParity.js (fresh random inputs; the
//       seed is recorded), plus a run-to-run determinism check;
//   (b) benchmarks: a full training step (forward + MSE backward + Adam, including the host↔device copies of the
//       engine's host API: x_t, t and the target up, x̂1 down) for the thesis sizes, sampling throughput (64
//       forward passes, inference mode), peak device memory (the addon's own allocation accounting: parameters,
//       optimiser state, graph, activations, scratch — not the CUDA context), and the CPU engine on the same
//       configurations where feasible (fewer repeats);
//   (c) the sparse PyTorch peer (bench/peer/sparse_rt_torch.py) in a subprocess when python3 has torch, so that
//       ratios come from one run; the published code's and the peer's recorded H200 figures are included below.
// Timing: warm-up, device synchronisation around every timed step, median (and min) of ≥ 20 repeats.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import * as path from 'node:path';

// Recorded H200 figures (docs/GPU_CHECKS.md, reference-h200.json, peer-sparse-torch-h200.json). They are compared
// with this run's timings only when this run's card is an H200 too; on another card (an H100, say) the ratio column
// uses the peer timed in this run, or stays empty.
const RECORDED_CARD = 'H200';
/** Whether the recorded figures came from the same kind of card as `name` (cudaInfo().name, e.g. "NVIDIA H200"). */
export const sameCardAsRecorded = (name) => typeof name === 'string' && name.toUpperCase().includes(RECORDED_CARD);
const PUBLISHED = {
  wdbc: { train_ms: 40.47, peak_mib: 3297.4, nets_per_s: 31.43, note: 'published dense code, Euclidean, D=64, B=32' },
  mnist: { train_ms: 625.24, peak_mib: 63671.8, nets_per_s: 0.35, note: 'published dense code, Euclidean, D=32, B=8' },
};
const PEER_RECORDED = {
  wdbc: { eager_ms: 36.488, compiled_ms: 10.475, compiled_peak_mib: 1101.9, compiled_nets_per_s: 151.1 },
  mnist: { eager_ms: 39.823, compiled_ms: 11.868, compiled_peak_mib: 1427.1, compiled_nets_per_s: 40.0 },
  'mnist-b64': { eager_ms: 117.205, compiled_ms: 46.985, compiled_peak_mib: 10682.5, compiled_nets_per_s: 90.6 },
  'mnist-wide': { eager_ms: 188.843, compiled_ms: 71.649, compiled_peak_mib: 18254.7, compiled_nets_per_s: 6.8 },
};

function spec(name, widths, D, B, extra = {}) {
  const L = widths.length - 1;
  const mode = extra.mode ?? 'sparse';
  return {
    name,
    widths,
    B,
    config: {
      D,
      layers: 5,
      heads: 1,
      inputSlots: widths[0],
      hiddenSlots: Math.max(0, L - 1),
      outputSlots: widths[L],
      mode,
      timeRule: 'all',
      dirEmbed: mode === 'sparse',
      reverseValue: mode === 'sparse',
      inFeatures: 2,
      ...extra,
    },
  };
}

const TRAIN = [
  spec('wdbc', [30, 16, 16, 2], 64, 32),
  spec('mnist', [784, 10, 10], 32, 8),
  spec('mnist-b64', [784, 10, 10], 32, 64),
  spec('mnist-wide', [784, 128, 128, 10], 32, 8),
  // The exact published model: all N² pairs, the reference time rule, value-only inputs.
  spec('mnist-dense', [784, 10, 10], 32, 8, { mode: 'dense', timeRule: 'reference', dirEmbed: false, reverseValue: false, inFeatures: 1 }),
  // Recompute mode (layer activations recomputed in the backward pass): the memory targets' side of the trade.
  spec('mnist-recompute', [784, 10, 10], 32, 8, { recompute: true }),
  spec('mnist-wide-recompute', [784, 128, 128, 10], 32, 8, { recompute: true }),
  spec('mnist-dense-recompute', [784, 10, 10], 32, 8, { mode: 'dense', timeRule: 'reference', dirEmbed: false, reverseValue: false, inFeatures: 1, recompute: true }),
  // Chunked recompute mode (pair-wise work in chunks of 65,536 pairs): the 784-128-128-10 ≤ 3 GB target.
  spec('mnist-wide-chunked', [784, 128, 128, 10], 32, 8, { recompute: true, chunkRows: 65536 }),
  spec('mnist-dense-chunked', [784, 10, 10], 32, 8, { mode: 'dense', timeRule: 'reference', dirEmbed: false, reverseValue: false, inFeatures: 1, recompute: true, chunkRows: 65536 }),
];
const TRAIN_QUICK = [
  spec('wdbc', [30, 16, 16, 2], 8, 2, { layers: 2 }),
  spec('mnist', [784, 10, 10], 8, 1, { layers: 1 }),
  spec('mnist-dense', [30, 16, 16, 2], 8, 1, { layers: 1, mode: 'dense', timeRule: 'reference', dirEmbed: false, reverseValue: false, inFeatures: 1 }),
];
const SAMPLE = [spec('mnist', [784, 10, 10], 32, 8), spec('mnist', [784, 10, 10], 32, 512)];
const SAMPLE_QUICK = [spec('mnist', [784, 10, 10], 8, 1, { layers: 1 })];

// Benchmark inputs from the package's seeded stream (dist/util/rng.js).
const require = createRequire(import.meta.url);
let Rng;
function filler(seed) {
  const r = new Rng(seed);
  return {
    uniform: (n) => Float32Array.from({ length: n }, () => r.uniform()),
    normal: (n, std = 1) => r.fillNormal(new Float32Array(n), 0, std),
  };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mib = (bytes) => Math.round((bytes / 2 ** 20) * 10) / 10;

function withEngine(binding, dev, sp, fn) {
  const cuda = dev === 'cuda';
  if (cuda) binding.resetDevicePeak();
  const base = cuda ? binding.deviceMemory().inUse : 0;
  let e;
  try {
    e = new binding.NativeEngine(sp.config, 1, dev, 'f32');
    e.setGraph(Array.from({ length: sp.B }, () => [...sp.widths]));
    const res = fn(e);
    const g = e.graphInfo();
    return {
      ...res,
      params: e.numParams(),
      graph: { G: g.G, N: g.N, M: g.M, P: g.P },
      bytes_held_mib: mib(e.bytesHeld()),
      ...(cuda ? { peak_mib: mib(binding.deviceMemory().peak - base) } : {}),
    };
  } catch (err) {
    return { error: String(err?.message ?? err), code: err?.code };
  } finally {
    e?.dispose();
  }
}

// Full training step: forward (training) + zero_grad + MSE backward + Adam.
function trainStep(binding, dev, e) {
  const { P, G } = e.graphInfo();
  const f = filler(17);
  const xt = f.normal(P, 0.5);
  const t = f.uniform(G);
  const target = f.normal(P, 0.5);
  const out = new Float32Array(P);
  const state = { loss: NaN };
  const step = () => {
    e.forward(xt, t, out, true);
    e.zeroGrad();
    state.loss = e.mse(target, true);
    e.adamStep(1e-3, 0.9, 0.999, 1e-8, 0, 0);
  };
  const sync = () => dev === 'cuda' && binding.deviceSynchronize();
  return { step, sync, state };
}

function benchTrain(binding, dev, sp, repeats, warmup) {
  return withEngine(binding, dev, sp, (e) => {
    const { step, sync, state } = trainStep(binding, dev, e);
    for (let i = 0; i < warmup; i++) step();
    sync();
    const ms = [];
    for (let i = 0; i < repeats; i++) {
      const t0 = performance.now();
      step();
      sync();
      ms.push(performance.now() - t0);
    }
    return { train_ms_median: median(ms), train_ms_min: Math.min(...ms), repeats, loss_last: state.loss };
  });
}

// Where a CUDA training step spends its time: per-op GPU-timeline intervals (native/core/device.h), per step.
function profileTrain(binding, sp, steps) {
  return withEngine(binding, 'cuda', sp, (e) => {
    const { step, sync } = trainStep(binding, 'cuda', e);
    step();
    sync();
    binding.takeDeviceProfile();
    binding.setDeviceProfiling(true);
    try {
      for (let i = 0; i < steps; i++) step();
      sync();
    } finally {
      binding.setDeviceProfiling(false);
    }
    const rows = binding.takeDeviceProfile();
    const total = rows.reduce((a, r) => a + r.ms, 0) / steps;
    return {
      steps,
      ms_per_step: total,
      ops: rows.map((r) => ({ op: r.op, ms_per_step: r.ms / steps, calls_per_step: r.count / steps, share: r.ms / steps / total })),
    };
  });
}

// Sampling: `steps` forward passes in inference mode for a batch of B networks (as the peer's sampler loop).
function benchSample(binding, dev, sp, steps, timedSteps) {
  return withEngine(binding, dev, sp, (e) => {
    const { P, G } = e.graphInfo();
    const f = filler(23);
    const xt = f.normal(P);
    const t = new Float32Array(G);
    const out = new Float32Array(P);
    e.forward(xt, t, out, false); // warm-up (allocates the inference buffers)
    if (dev === 'cuda') binding.deviceSynchronize();
    const ms = [];
    for (let i = 0; i < timedSteps; i++) {
      const t0 = performance.now();
      e.forward(xt, t, out, false);
      if (dev === 'cuda') binding.deviceSynchronize();
      ms.push(performance.now() - t0);
    }
    const per = ms.reduce((a, b) => a + b, 0) / ms.length;
    return {
      B: sp.B,
      steps,
      timed_steps: timedSteps,
      forward_ms_median: median(ms),
      sample_ms: per * steps,
      nets_per_s: (sp.B / (per * steps)) * 1000,
      extrapolated: timedSteps < steps,
    };
  });
}

function runPeer(ctx, modes) {
  const probe = spawnSync('python3', ['-c', 'import torch, json; print(json.dumps([torch.__version__, torch.cuda.is_available()]))'], { encoding: 'utf8', timeout: 120_000 });
  if (probe.status !== 0) return { skipped: `python3 cannot import torch (${(probe.stderr || probe.error?.message || '').trim().split('\n').pop()})` };
  const script = path.join(ctx.root, 'bench', 'peer', 'sparse_rt_torch.py');
  const t0 = performance.now();
  const r = spawnSync('python3', [script, ...modes], {
    encoding: 'utf8',
    timeout: Number(process.env.WSF_PEER_TIMEOUT_S ?? (ctx.quick ? 120 : 1200)) * 1000, // a session script bounds it
    env: { ...process.env, OUT: ctx.outdir },
    maxBuffer: 64 << 20,
  });
  const rows = (r.stdout || '')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l);
      } catch {
        return null;
      }
    })
    .filter((x) => x !== null);
  return {
    torch: JSON.parse(probe.stdout.trim() || 'null'),
    modes,
    status: r.status,
    timed_out: r.error?.code === 'ETIMEDOUT',
    seconds: (performance.now() - t0) / 1000,
    rows,
    stderr_tail: (r.stderr || '').split('\n').slice(-15).join('\n'),
  };
}

const fmt = (x, d = 2) =>
  x === undefined || x === null || Number.isNaN(x) ? '—' : typeof x === 'number' ? (Math.abs(x) < 1 && x !== 0 ? x.toPrecision(2) : x.toFixed(d)) : String(x);


/**
 * The training-step table: one header and one row per workload of `train` (results.train), with this run's peer
 * (`peerRow(config, mode)`: eager or reduce-overhead) and the recorded figures. The "vs peer compiled" ratio uses the
 * compiled peer of this run, else the recorded one when `sameCard` (this card is the kind they were recorded on);
 * "vs peer eager" only this run's eager peer. Recorded figures are for the full sizes only (`quick` runs tiny
 * stand-ins under the same names).
 */
export function trainTable(train, peerRow, { quick, sameCard }) {
  const rows = ['train step (ms, median)   cuda      peak MiB   cpu       peer eager*  peer compiled*  peer compiled (rec.)  published (rec.)  vs peer compiled  vs peer eager*'];
  for (const [name, r] of Object.entries(train)) {
    const pe = peerRow(name, 'eager');
    const pc = peerRow(name, 'reduce-overhead');
    const rec = quick ? undefined : PEER_RECORDED[name];
    const pub = quick ? undefined : PUBLISHED[name === 'mnist-dense' ? 'mnist' : name]; // the published code is dense
    const ref = pc?.train_ms_median ?? (sameCard ? rec?.compiled_ms : undefined);
    const ms = r.cuda.train_ms_median;
    const speed = ms && ref ? `${fmt(ref / ms, 1)}×${pc ? '' : ' (rec.)'}` : '—';
    const speedEager = ms && pe?.train_ms_median ? `${fmt(pe.train_ms_median / ms, 1)}×` : '—';
    rows.push(
      `${`${name} D=${r.D} B=${r.B}`.padEnd(26)} ${(r.cuda.error ? 'ERR ' + (r.cuda.code ?? '') : fmt(ms, 3)).padEnd(9)} ${fmt(r.cuda.peak_mib, 0).padEnd(10)} ` +
        `${(r.cpu.skipped ? 'n/a' : r.cpu.error ? 'ERR' : fmt(r.cpu.train_ms_median, 1)).padEnd(9)} ${fmt(pe?.train_ms_median).padEnd(12)} ${fmt(pc?.train_ms_median).padEnd(15)} ` +
        `${fmt(rec?.compiled_ms).padEnd(21)} ${fmt(pub?.train_ms).padEnd(17)} ${speed.padEnd(17)} ${speedEager}`,
    );
  }
  return rows;
}

export async function run(ctx) {
  const { binding, parity, quick, log } = ctx;
  const res = { section: 'engine', ok: true, parity: [], results: {}, table: [] };
  ({ Rng } = require(path.join(ctx.root, 'dist', 'util', 'rng.js')));

  // ---- (a) parity (--bench-only skips it: a second, timing-only run, e.g. with WSF_GEMM=v1) ----
  const benchOnly = ctx.args.includes('--bench-only');
  // --parity-only skips the benchmarks (e.g. a parity run under another GEMM kernel, WSF_GEMM=tc); --workloads=a,b
  // times only those training workloads (no OOM probe, no sampling): short side-by-side passes per GEMM kernel.
  const parityOnly = ctx.args.includes('--parity-only');
  const workloads = ctx.args.find((a) => a.startsWith('--workloads='))?.slice('--workloads='.length).split(',').filter(Boolean);
  if (benchOnly) {
    res.table.push('parity: skipped (--bench-only)');
  } else if (parity === null) {
    res.ok = false;
    res.parity.push({ name: 'dist/internal/backendParity.js present', pass: false, detail: 'run `npx tsc -p tsconfig.build.json` first' });
  } else {
    const seed = (Date.now() % 2147483647) | 0;
    res.results.parity_seed = seed;
    const t0 = performance.now();
    const cases = parity.buildOpCases(seed, !quick);
    let opFail = 0;
    for (const c of cases) {
      const checks = parity.checkOpCase(binding, 'cuda', c);
      const bad = checks.filter((r) => !r.pass);
      if (bad.length > 0) opFail++;
      res.parity.push(...(bad.length > 0 ? bad : [{ name: c.name, pass: true, detail: `${checks.length} checks` }]));
    }
    log(`op parity: ${cases.length - opFail}/${cases.length} cases pass (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
    const engineCases = quick ? parity.ENGINE_CASES.slice(0, 3) : parity.ENGINE_CASES;
    let engFail = 0;
    for (const c of engineCases) {
      const checks = parity.checkEngineCase(binding, 'cuda', c, seed);
      if (checks.some((r) => !r.pass)) engFail++;
      res.parity.push(...checks);
      log(`engine parity ${c.name}: ${checks.filter((r) => r.pass).length}/${checks.length} checks pass`);
    }
    const clip = parity.checkEngineCase(binding, 'cuda', parity.ENGINE_CASES[2], seed + 1, 1e-3).map((r) => ({ ...r, name: `[clip 1e-3] ${r.name}` }));
    if (clip.some((r) => !r.pass)) engFail++;
    res.parity.push(...clip);
    // Determinism: the same op twice gives the same bits (no atomics in any reduction).
    const det = cases.filter((c) => /^(linear_bwd_weight rows=(3000|200000)|embed_bwd rows=(10000|1000000)|attention_bwd)/.test(c.name));
    let detFail = 0;
    for (const c of det) {
      const a = parity.runOp(binding, 'cuda', c).outputs;
      const b = parity.runOp(binding, 'cuda', c).outputs;
      for (const k of Object.keys(a)) {
        const same = Buffer.from(a[k].buffer, a[k].byteOffset, a[k].byteLength).equals(Buffer.from(b[k].buffer, b[k].byteOffset, b[k].byteLength));
        if (!same) detFail++;
        res.parity.push({ name: `deterministic: ${c.name} \`${k}\``, pass: same, detail: same ? 'bitwise identical' : 'differs between two runs' });
      }
    }
    res.results.parity_summary = { op_cases: cases.length, op_cases_failed: opFail, engine_cases: engineCases.length + 1, engine_cases_failed: engFail, determinism_failed: detFail };
    res.ok = opFail === 0 && engFail === 0 && detFail === 0;
    res.table.push(`parity: ops ${cases.length - opFail}/${cases.length}, engine ${engineCases.length + 1 - engFail}/${engineCases.length + 1}, determinism ${detFail === 0 ? 'ok' : `${detFail} differ`} (seed ${seed})`);
    for (const r of res.parity.filter((x) => !x.pass).slice(0, 20)) res.table.push(`  FAIL ${r.name}: ${r.detail.split('\n')[0]}`);
  }

  // ---- (b) benchmarks ----
  if (parityOnly) {
    res.table.push('benchmarks: skipped (--parity-only)');
    return res;
  }
  const train = (quick ? TRAIN_QUICK : TRAIN).filter((sp) => workloads === undefined || workloads.includes(sp.name));
  const reps = quick ? { cuda: 3, cudaWarm: 1, cpu: 1, cpuWarm: 0 } : { cuda: 30, cudaWarm: 5, cpu: 3, cpuWarm: 1 };
  res.results.train = {};
  for (const sp of train) {
    const r = { cuda: benchTrain(binding, 'cuda', sp, reps.cuda, reps.cudaWarm) };
    log(`train ${sp.name} cuda: ${r.cuda.error ?? `${fmt(r.cuda.train_ms_median, 3)} ms median, peak ${r.cuda.peak_mib} MiB`}`);
    // The CPU engine on the dense MNIST graph needs ~45 GB and minutes per step: not feasible.
    if (!ctx.cpuBench) r.cpu = { skipped: '--skip-cpu-bench' };
    else if (sp.config.mode === 'dense' && sp.widths[0] === 784) r.cpu = { skipped: 'dense MNIST on the CPU: not feasible (memory and minutes per step)' };
    else if (sp.config.recompute === true) r.cpu = { skipped: 'recompute mode: the CPU side is in bench/engine.mjs --recompute / --chunk-rows' };
    else r.cpu = benchTrain(binding, 'cpu', sp, reps.cpu, reps.cpuWarm);
    if (r.cpu.train_ms_median !== undefined) log(`train ${sp.name} cpu: ${fmt(r.cpu.train_ms_median, 1)} ms median`);
    res.results.train[sp.name] = { widths: sp.widths, D: sp.config.D, B: sp.B, mode: sp.config.mode, layers: sp.config.layers, ...r };
  }
  // Out of memory: a dense 784-128-128-10 graph at batch 16 needs far more than the device holds. The engine must
  // refuse it with a typed ERR_OOM (no crash, nothing leaked), and a small engine must work right after. Not on the
  // CPU emulator, whose "device" memory is host memory without a cap.
  if (!quick && workloads === undefined && binding.buildInfo().archs !== 'emu') {
    const once = (e) => {
      const t = trainStep(binding, 'cuda', e);
      t.step();
      t.sync();
      return { loss: t.state.loss };
    };
    const oom = withEngine(binding, 'cuda', spec('oom-probe', [784, 128, 128, 10], 32, 16, { mode: 'dense', timeRule: 'reference', dirEmbed: false, reverseValue: false, inFeatures: 1 }), once);
    const after = withEngine(binding, 'cuda', spec('after-oom', [30, 16, 16, 2], 8, 2, { layers: 1 }), once);
    const live = binding.deviceMemory().live;
    const pass = oom.code === 'ERR_OOM' && after.error === undefined && Number.isFinite(after.loss ?? NaN);
    res.results.oom_probe = { oom, after_ok: after.error === undefined, live_allocations_after: live };
    res.parity.push({ name: 'typed ERR_OOM for a graph larger than the device, and the process goes on', pass, detail: `oom: ${oom.code ?? 'no error'} (${(oom.error ?? '').slice(0, 160)}); next engine: ${after.error ?? 'ok'}` });
    log(`oom probe: ${pass ? 'typed ERR_OOM, next engine ok' : `FAILED (${oom.code ?? 'no error'}; ${after.error ?? 'next ok'})`}`);
  }
  res.results.sample = {};
  for (const sp of workloads !== undefined ? [] : quick ? SAMPLE_QUICK : SAMPLE) {
    const key = `${sp.name}-b${sp.B}`;
    const r = { cuda: benchSample(binding, 'cuda', sp, 64, quick ? 2 : 64) };
    log(`sample ${key} cuda: ${r.cuda.error ?? `${fmt(r.cuda.nets_per_s, 1)} networks/s`}`);
    r.cpu = !ctx.cpuBench ? { skipped: '--skip-cpu-bench' } : sp.B <= 8 ? benchSample(binding, 'cpu', sp, 64, quick ? 1 : 4) : { skipped: 'large batch on the CPU: not timed' };
    res.results.sample[key] = r;
  }

  // Per-op breakdown of the CUDA step (development aid for the next kernel work).
  res.results.profile = {};
  for (const sp of train.filter((x) => x.name === 'mnist' || x.name === 'wdbc')) {
    const r = profileTrain(binding, sp, quick ? 1 : 5);
    res.results.profile[sp.name] = r;
    if (r.error === undefined) log(`profile ${sp.name}: ${fmt(r.ms_per_step, 3)} ms per step over ${r.ops.length} ops; top: ${r.ops.slice(0, 3).map((o) => `${o.op} ${fmt(o.ms_per_step, 3)}`).join(', ')}`);
  }

  // ---- (c) PyTorch peer ----
  const peerFlag = ctx.args.find((a) => a.startsWith('--peer='))?.split('=')[1];
  const modes = peerFlag === undefined ? ['eager', 'reduce-overhead'] : peerFlag === 'none' ? [] : peerFlag.split(',');
  res.results.peer = modes.length === 0 ? { skipped: '--peer=none' } : runPeer(ctx, modes);
  if (res.results.peer.skipped) log(`peer: skipped (${res.results.peer.skipped})`);
  const peerRow = (config, mode) => res.results.peer.rows?.find((r) => r.config === config && r.compile === mode && !r.error);
  const card = (ctx.deviceInfo ?? {}).name ?? '';
  const sameCard = sameCardAsRecorded(card);
  res.results.recorded = { card: `NVIDIA ${RECORDED_CARD}`, thisCard: card, comparable: sameCard, published: PUBLISHED, peer: PEER_RECORDED };

  // ---- table ----
  res.table.push(...trainTable(res.results.train, peerRow, { quick, sameCard }));
  res.table.push('sampling (64 steps)       cuda nets/s  cpu nets/s  peer compiled* (B=8)  peer rec. (B=8)  published (rec.)');
  for (const [key, r] of Object.entries(res.results.sample)) {
    const pc = peerRow('mnist', 'reduce-overhead');
    res.table.push(
      `${key.padEnd(26)} ${(r.cuda.error ? 'ERR' : fmt(r.cuda.nets_per_s, 1)).padEnd(12)} ${(r.cpu.skipped ? 'n/a' : r.cpu.error ? 'ERR' : fmt(r.cpu.nets_per_s, 2)).padEnd(11)} ` +
        `${fmt(pc?.nets_per_s, 1).padEnd(21)} ${fmt(quick ? undefined : PEER_RECORDED.mnist.compiled_nets_per_s, 1).padEnd(16)} ${fmt(quick ? undefined : PUBLISHED.mnist.nets_per_s)}`,
    );
  }
  for (const [name, r] of Object.entries(res.results.profile)) {
    if (r.error !== undefined) continue;
    res.table.push(`${name}: per-op GPU time per training step (${fmt(r.ms_per_step, 3)} ms; top 8)`);
    for (const o of r.ops.slice(0, 8)) res.table.push(`  ${o.op.padEnd(44)} ${fmt(o.ms_per_step, 3).padStart(9)} ms  ${(100 * o.share).toFixed(1).padStart(5)} %  ${fmt(o.calls_per_step, 0)} calls`);
  }
  res.table.push(`* this run${res.results.peer.skipped ? ` — peer skipped: ${res.results.peer.skipped}` : ` (${(res.results.peer.rows ?? []).length} peer rows, ${fmt(res.results.peer.seconds, 0)} s)`}; rec. = recorded on an ${RECORDED_CARD} (docs/GPU_CHECKS.md)`);
  if (!sameCard && !card.startsWith('cuda_emu') && !ctx.selftest) {
    res.table.push(`this card is ${card || 'unknown'}, not an ${RECORDED_CARD}: the recorded figures are shown for reference only and enter no ratio`);
  }
  if ((ctx.deviceInfo ?? ctx.device).name?.startsWith('cuda_emu')) res.table.push('EMULATOR BUILD: the timings above are CPU emulation, not GPU figures.');
  return res;
}
