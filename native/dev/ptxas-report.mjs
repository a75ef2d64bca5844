#!/usr/bin/env node
// Registers, spills, stack and shared memory of every CUDA kernel, as ptxas reports them — a check that needs nvcc
// but no GPU. Local-memory spills inside a kernel's main loop cost more than anything the loop computes (the default
// GEMM spilled 288–476 bytes per thread until 2026-12-07), and they are invisible in the parity tests.
//
//   node native/dev/ptxas-report.mjs [--arch 80,90] [--files rt_ops_cuda.cu,...] [--json OUT.json]
//                                    [--max-spill-gemm BYTES] [--max-spill BYTES]
//
// Compiles each native/core/*.cu (or --files) for each architecture (default: the shipped list, 80 and 90) with
// the addon's CUDA flags, device code only (--cubin), with `-Xptxas -v`, and prints one line per kernel. With a
// budget, exits 1 when a kernel spills more bytes (stores or loads) than it: --max-spill-gemm for the matrix-product
// kernels (gemm_kernel, gemm2_kernel, gemm_tc_kernel), --max-spill for every other kernel.
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from '../../bench/util/args.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const core = path.join(root, 'native', 'core');

/** Parses `nvcc -Xptxas -v` output: one record per compiled entry function. */
export function parsePtxas(text) {
  const kernels = [];
  let cur = null;
  for (const line of text.split('\n')) {
    let m = /Compiling entry function '([^']+)' for '(sm_\d+a?)'/.exec(line);
    if (m) {
      cur = { mangled: m[1], arch: m[2], registers: 0, stack: 0, spillStores: 0, spillLoads: 0, smem: 0 };
      kernels.push(cur);
      continue;
    }
    if (!cur) continue;
    m = /(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/.exec(line);
    if (m) {
      cur.stack = Number(m[1]);
      cur.spillStores = Number(m[2]);
      cur.spillLoads = Number(m[3]);
      continue;
    }
    m = /Used (\d+) registers/.exec(line);
    if (m) {
      cur.registers = Number(m[1]);
      const s = /(\d+) bytes smem/.exec(line);
      cur.smem = s ? Number(s[1]) : 0;
      cur = null;  // the record is complete
    }
  }
  return kernels;
}

/** `wsf::(anonymous namespace)::gemm2_kernel<128, 64, …>(…)` → `gemm2_kernel<128, 64, …>` (c++filt when present). */
function demangleAll(names) {
  let out = names;
  try {
    out = execFileSync('c++filt', { input: names.join('\n'), encoding: 'utf8' }).trim().split('\n');
  } catch {
    // no c++filt: keep the mangled names
  }
  return out.map((n) => n.replace(/^void /, '').replace(/^wsf::(\(anonymous namespace\)::)?/, '').replace(/\(.*\)$/, ''));
}

const isGemm = (name) => /^gemm(2|_tc)?_kernel</.test(name);

function compile(file, arch) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-ptxas-'));
  const args = ['-std=c++17', '-O3', '--expt-relaxed-constexpr', '-DWSF_WITH_CUDA=1', `-arch=sm_${arch}`, '--cubin',
    '-Xptxas', '-v', '-I', core, '-I', path.join(root, 'native'), path.join(core, file), '-o', path.join(tmp, 'k.cubin')];
  return new Promise((resolve, reject) => {
    execFile(process.env.NVCC ?? 'nvcc', args, { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      fs.rmSync(tmp, { recursive: true, force: true });
      if (err) reject(new Error(`nvcc failed on ${file} for sm_${arch}: ${stderr.slice(-2000)}`));
      else resolve(parsePtxas(stdout + stderr).map((k) => ({ ...k, file })));
    });
  });
}

/** Runs ptxas over the CUDA sources; resolves to the kernel records (demangled `name` added). */
export async function ptxasReport({ archs = ['80', '90'], files } = {}) {
  const list = files ?? fs.readdirSync(core).filter((f) => f.endsWith('.cu')).sort();
  const jobs = [];
  for (const arch of archs) for (const f of list) jobs.push([f, arch]);
  // Two at a time (the build machines have 2 cores; rt_ops_cuda.cu takes ~20 s per architecture).
  const results = [];
  for (let i = 0; i < jobs.length; i += 2) {
    results.push(...(await Promise.all(jobs.slice(i, i + 2).map(([f, a]) => compile(f, a)))).flat());
  }
  const names = demangleAll(results.map((k) => k.mangled));
  return results.map((k, i) => ({ ...k, name: names[i], gemm: isGemm(names[i]) }));
}

/** The kernels over budget: spill stores or loads above the GEMM or the general limit. */
export function overBudget(kernels, { maxSpillGemm = Infinity, maxSpill = Infinity } = {}) {
  return kernels.filter((k) => Math.max(k.spillStores, k.spillLoads) > (k.gemm ? maxSpillGemm : maxSpill));
}

async function main() {
  const args = benchArgs(import.meta.url, {
    values: { '--arch': 'list', '--files': 'list', '--json': 'string', '--max-spill-gemm': 'int', '--max-spill': 'int' },
  });
  const archs = args.get('--arch', ['80', '90']);
  const files = args.get('--files');
  const budget = { maxSpillGemm: args.get('--max-spill-gemm', Infinity), maxSpill: args.get('--max-spill', Infinity) };
  const kernels = await ptxasReport({ archs, files });
  const pad = (s, n) => String(s).padStart(n);
  console.log(`${'arch'.padEnd(6)} ${pad('regs', 4)} ${pad('spill st/ld', 11)} ${pad('stack', 5)} ${pad('smem', 6)}  kernel`);
  for (const k of kernels) {
    console.log(`${k.arch.padEnd(6)} ${pad(k.registers, 4)} ${pad(`${k.spillStores}/${k.spillLoads}`, 11)} ${pad(k.stack, 5)} ${pad(k.smem, 6)}  ${k.name}`);
  }
  const spilling = kernels.filter((k) => k.spillStores > 0 || k.spillLoads > 0);
  console.log(`${kernels.length} kernels, ${spilling.length} with spills`);
  const json = args.get('--json');
  if (json) fs.writeFileSync(json, JSON.stringify({ archs, kernels }, null, 1) + '\n');
  const over = overBudget(kernels, budget);
  for (const k of over) console.error(`over budget: ${k.arch} ${k.name} spills ${k.spillStores}/${k.spillLoads} bytes`);
  process.exitCode = over.length > 0 ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    console.error(e.message);
    process.exitCode = 2;
  });
}
