#!/usr/bin/env node
// The one GPU check (shared/docs/GPU_CHECKS.md): plain JS, needs only build/Release/wsflow.node and dist/ (no npm
// install, no test runner). Usage:
//   node bench/gpu-check.mjs <resultsDir> [--seconds S] [--only name,name] [--skip-cpu-bench] [--quick]
//                            [--peer=eager,reduce-overhead|none] [--bench-only] [--parity-only] [--workloads=wdbc,mnist]
// 1. prints the backend (device, compute capability, memory) and fails loudly unless CUDA is active;
// 2. imports every section module bench/gpu/*.mjs in file-name order; each exports
//      async function run(ctx) → { parity: Case[], bench: Row[] }
//    where a Case is { name, pass, maxAbs?, maxRel?, nmse?, note? } and a Row is { name/op, device, medianMs, ... };
//    ctx = { device: 'cuda', deviceInfo, minSeconds, cpuBench, log, dist, binding, createPlan, selftest,
//            parity (dist/internal/backendParity.js), root, outdir, quick, args };
//    a section may instead return { ok, parity, results, table: string[] } (printed at the end);
// 3. writes <resultsDir>/gpu-check.json (backend, per-section parity and bench results, peak device memory);
// 4. prints a short table last and exits non-zero if any parity case failed or a section threw.
// WSF_GPU_CHECK_SELFTEST=1 runs the sections with 'cpu' as the device under test, to check the harness itself on
// a machine without a GPU; the JSON then says selftest: true and nothing in it is a GPU figure.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gitCommit } from './quality/common.mjs';
import { benchArgs, benchUsageError } from './util/args.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const selftest = process.env.WSF_GPU_CHECK_SELFTEST === '1';
process.env.WSF_QUIET ??= '1';
// WSF_GEMM=v1 selects the first CUDA GEMM kernel, tc / tf32 the tensor-core one (3×TF32 / plain TF32;
// native/core/rt_ops_cuda.cu); the settings in effect are recorded in the JSON (backend.kernels). --bench-only /
// --parity-only run one half of the engine section; --workloads=a,b times only those training workloads there
// (bench/gpu/engine.mjs).

export function parseArgs(argv) {
  const o = benchArgs(import.meta.url, {
    values: { '--seconds': 'number', '--only': 'list', '--peer': 'string', '--workloads': 'list' },
    flags: ['--skip-cpu-bench', '--quick', '--bench-only', '--parity-only'],
    positionals: 1,
  }, argv);
  if (o.positionals.length === 0) benchUsageError(import.meta.url, 'expected a results directory as the first argument');
  if (!(o.get('--seconds', 0.5) > 0)) benchUsageError(import.meta.url, '--seconds must be > 0');
  return {
    dir: o.positionals[0],
    seconds: o.get('--seconds', 0.5),
    only: o.get('--only'),
    cpuBench: !o.has('--skip-cpu-bench'),
    quick: o.has('--quick'),
    // What the sections read from ctx.args, in the --name=value form whichever form was given.
    sectionArgs: [
      ...['--bench-only', '--parity-only'].filter((f) => o.has(f)),
      ...(o.has('--peer') ? [`--peer=${o.get('--peer')}`] : []),
      ...(o.has('--workloads') ? [`--workloads=${o.get('--workloads').join(',')}`] : []),
    ],
  };
}

function pad(rows) {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((v, i) => String(v).padEnd(w[i])).join('  ')).join('\n');
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const dist = await import('../dist/index.js');
  const { binding } = await import('../dist/native/binding.js');
  const { createPlan } = await import('../dist/geometry/plan.js');
  const root = path.resolve(here, '..');
  const parityPath = path.join(root, 'dist', 'internal', 'backendParity.js');
  const parityLib = fs.existsSync(parityPath) ? await import(pathToFileURL(parityPath).href) : null;
  const sha = gitCommit(); // WSF_COMMIT on a copied tree without .git
  const b = binding();
  const cuda = b.cudaInfo();
  const build = b.buildInfo();
  // The kernel versions that ran (cudaInfo().kernels: after the compute-capability fallback), not the environment.
  const backend = { gemm: cuda.kernels?.gemm ?? process.env.WSF_GEMM ?? 'v2', kernels: cuda.kernels ?? null, node: process.version, host: os.hostname(), cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? '', threads: b.numThreads(), build, cuda };
  console.log(`wsflow GPU check — addon ${b.__path ?? '?'}`);
  console.log(`  build: cuda=${build.cuda} archs=${build.archs} ${build.compiler}`);
  if (build.archs === 'emu') console.warn('\n*** WARNING: this is the CPU EMULATOR build (-DWSF_CUDA_EMU=ON), not a GPU: timings are meaningless. ***\n');
  if (cuda.compiled && cuda.deviceCount > 0) {
    console.log(`  device: ${cuda.name}, cc ${cuda.ccMajor}.${cuda.ccMinor}, ${(cuda.totalMem / 2 ** 30).toFixed(1)} GiB (${(cuda.freeMem / 2 ** 30).toFixed(1)} free), ${cuda.multiprocessors} SMs, driver ${cuda.driverVersion}, runtime ${cuda.runtimeVersion}`);
  } else if (!selftest) {
    console.error('\n*** CUDA IS NOT ACTIVE ***');
    console.error(`  compiled with CUDA: ${cuda.compiled}; devices: ${cuda.deviceCount}; error: ${cuda.error || '(none)'}`);
    console.error('  This script checks the CUDA build on a GPU; nothing was run. (WSF_GPU_CHECK_SELFTEST=1 checks the harness on CPU.)');
    process.exit(2);
  } else {
    console.log('  SELFTEST: no CUDA device; sections run with the CPU as the device under test (not GPU figures)');
  }
  const files = fs
    .readdirSync(path.join(here, 'gpu'))
    .filter((f) => f.endsWith('.mjs'))
    .sort();
  const sections = [];
  let failed = 0;
  fs.mkdirSync(args.dir, { recursive: true });
  const writeResult = (complete) => {
    const result = { kind: 'wsflow-gpu-check', date: new Date().toISOString(), sha, selftest, emulated: build.archs === 'emu', complete, backend, sections, summary: { parityCases: sections.reduce((s, x) => s + x.parity.length, 0), failed } };
    const file = path.join(args.dir, 'gpu-check.json');
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(result, null, 1) + '\n');
    fs.renameSync(`${file}.tmp`, file);
    return { result, file };
  };
  for (const f of files) {
    const name = f.replace(/\.mjs$/, '');
    if (args.only !== undefined && !args.only.includes(name)) continue;
    console.log(`\n== section ${name}`);
    const t0 = performance.now();
    b.resetDevicePeak();
    const ctx = {
      device: selftest ? 'cpu' : 'cuda',
      deviceInfo: cuda,
      parity: parityLib,
      root,
      outdir: args.dir,
      quick: args.quick,
      args: args.sectionArgs,
      selftest,
      minSeconds: args.seconds,
      cpuBench: args.cpuBench,
      log: (s) => console.log(`  ${s}`),
      dist,
      binding: b,
      createPlan,
    };
    try {
      const mod = await import(pathToFileURL(path.join(here, 'gpu', f)).href);
      const r = await mod.run(ctx);
      const parity = r.parity ?? [];
      const bad = parity.filter((c) => !c.pass);
      failed += bad.length + (r.ok === false && bad.length === 0 ? 1 : 0);
      sections.push({ name, seconds: (performance.now() - t0) / 1000, peakDeviceBytes: b.deviceMemory().peak, liveAllocations: b.deviceMemory().live, parity, bench: r.bench ?? [], results: r.results, table: r.table });
      for (const c of bad) console.log(`  FAIL ${c.name}: ${c.detail ?? c.note ?? ''}`);
    } catch (e) {
      failed++;
      console.error(`  section ${name} threw: ${e?.stack ?? e}`);
      sections.push({ name, seconds: (performance.now() - t0) / 1000, error: String(e?.stack ?? e), parity: [], bench: [] });
    }
    writeResult(false); // after every section, so a run stopped by a time limit keeps what it finished
  }
  const { result, file } = writeResult(true);

  console.log(`\nwrote ${file}\n`);
  const summary = [['section', 'parity cases', 'failed', 'worst maxAbs', 'worst nmse', 'peak device MiB', 'seconds']];
  for (const s of sections) {
    const worst = (k) => s.parity.reduce((m, c) => (Number.isFinite(c[k]) ? Math.max(m, c[k]) : m), 0);
    summary.push([s.name, s.parity.length, s.error ? 'THREW' : s.parity.filter((c) => !c.pass).length, worst('maxAbs').toExponential(2), worst('nmse').toExponential(2), ((s.peakDeviceBytes ?? 0) / 2 ** 20).toFixed(1), s.seconds.toFixed(1)]);
  }
  console.log(pad(summary));
  const benchRows = [['section', 'case', 'device', 'path', 'median ms', 'GB/s']];
  for (const s of sections) for (const r of s.bench) benchRows.push([s.name, r.name ?? r.op, r.device ?? '', r.path ?? '', Number(r.medianMs).toFixed(4), r.GBps === undefined ? '' : Number(r.GBps).toFixed(1)]);
  if (benchRows.length > 1) console.log('\n' + pad(benchRows));
  for (const s of sections) if (Array.isArray(s.table) && s.table.length > 0) console.log(`\n-- ${s.name} --\n${s.table.join('\n')}`);
  console.log(`\n${failed === 0 ? 'PASS' : 'FAIL'}: ${result.summary.parityCases} parity cases, ${failed} failed${selftest ? ' (SELFTEST on CPU: not a GPU result)' : ''}`);
  process.exit(failed === 0 ? 0 : 1);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
