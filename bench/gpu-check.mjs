#!/usr/bin/env node
// The GPU check (docs: GPU_CHECKS.md): one plain-JavaScript run on a GPU host that needs only the built addon,
// the compiled dist/ and Node — no npm install, no test runner.
//
//   node bench/gpu-check.mjs <outdir> [--quick] [--only=<section>[,<section>]] [--peer=eager,reduce-overhead|none]
//
// 1. prints the backend (device name, compute capability, memory) and exits with status 2 if CUDA is not active
//    (a CPU-emulator build, -DWSF_CUDA_EMU=ON, is accepted with a loud warning: its timings mean nothing);
// 2. imports every bench/gpu/*.mjs and calls its `run(ctx)` (sections: parity cases, benchmarks, peer timings);
// 3. writes <outdir>/gpu-check.json and prints each section's short table last;
// 4. exits with status 1 if any parity check failed.
//
// Section contract: `export async function run(ctx)` returning
//   { section: string, ok: boolean, parity: {name, pass, detail}[], results: object, table: string[] }
// where ctx = { binding, parity (dist/internal/backendParity.js or null), root, outdir, quick, args, log, device }.
// Binary resolution: WSF_BINDING, else build/Release/wsflow.node (through dist/ when it exists).
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const outdir = argv.find((a) => !a.startsWith('--'));
const flag = (name) => argv.find((a) => a === `--${name}` || a.startsWith(`--${name}=`));
const flagValue = (name) => flag(name)?.split('=')[1];
if (outdir === undefined) {
  console.error('usage: node bench/gpu-check.mjs <outdir> [--quick] [--only=engine] [--peer=eager,reduce-overhead|none]');
  process.exit(64);
}
fs.mkdirSync(outdir, { recursive: true });

function loadBinding() {
  const distBinding = path.join(root, 'dist', 'native', 'binding.js');
  if (fs.existsSync(distBinding)) return { binding: require(distBinding).binding(), via: 'dist' };
  const p = process.env.WSF_BINDING || path.join(root, 'build', 'Release', 'wsflow.node');
  return { binding: require(p), via: p };
}

const { binding, via } = loadBinding();
const parityPath = path.join(root, 'dist', 'internal', 'backendParity.js');
const parity = fs.existsSync(parityPath) ? require(parityPath) : null;
const info = binding.cudaInfo();
const build = binding.buildInfo();
const emulated = build.archs === 'emu';
console.log(`wsflow GPU check — addon ${binding.__path ?? via}`);
console.log(`build: cuda=${build.cuda} archs=${build.archs} ${build.compiler}`);
if (!info.compiled || info.deviceCount < 1) {
  console.error(`\nFAIL: CUDA is not active (compiled=${info.compiled}, devices=${info.deviceCount}): ${info.error}`);
  process.exit(2);
}
console.log(`device: ${info.name}, compute capability ${info.ccMajor}.${info.ccMinor}, ${(info.totalMem / 2 ** 30).toFixed(1)} GiB ` +
  `(${(info.freeMem / 2 ** 30).toFixed(1)} free), ${info.multiprocessors} SMs, runtime ${info.runtimeVersion}, driver ${info.driverVersion}`);
if (emulated) console.warn('\n*** WARNING: this is the CPU EMULATOR build (-DWSF_CUDA_EMU=ON), not a GPU: timings are meaningless. ***\n');

let sha = 'unknown';
try {
  sha = execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
} catch {
  // not a git checkout (a copied tree on the GPU host)
}

const only = flagValue('only')?.split(',');
const dir = path.join(root, 'bench', 'gpu');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.mjs')).sort();
const ctx = {
  binding,
  parity,
  root,
  outdir,
  quick: flag('quick') !== undefined,
  args: argv,
  device: info,
  log: (...a) => console.log(...a),
};
const report = {
  date: new Date().toISOString(),
  sha,
  node: process.version,
  device: info,
  build,
  emulated,
  quick: ctx.quick,
  sections: {},
};
let failed = false;
const tables = [];
for (const f of files) {
  const name = f.replace(/\.mjs$/, '');
  if (only !== undefined && !only.includes(name)) continue;
  console.log(`\n== section ${name} ==`);
  const t0 = performance.now();
  try {
    const mod = await import(pathToFileURL(path.join(dir, f)).href);
    const res = await mod.run(ctx);
    res.seconds = (performance.now() - t0) / 1000;
    report.sections[name] = res;
    if (!res.ok) failed = true;
    tables.push(`-- ${name} (${res.seconds.toFixed(1)} s) --`, ...(res.table ?? []));
  } catch (e) {
    failed = true;
    report.sections[name] = { section: name, ok: false, error: String(e?.stack ?? e) };
    tables.push(`-- ${name}: ERROR ${String(e?.message ?? e)}`);
    console.error(e);
  }
  fs.writeFileSync(path.join(outdir, 'gpu-check.json'), JSON.stringify(report, null, 1)); // after every section
}
console.log('\n' + tables.join('\n'));
console.log(`\n${failed ? 'FAIL' : 'OK'}: wrote ${path.join(outdir, 'gpu-check.json')}`);
process.exit(failed ? 1 : 0);
