#!/usr/bin/env node
// Geometry benchmark: every op of lib/geometry (and canonicalize forward/backward, loss + gradient) at the
// thesis' sizes — 30-16-16-2 × B = 4096 and 784-10-10 × B = 1024 — on the CPU and, when a CUDA device works,
// on CUDA. Plain JS against the compiled package: build it first (`npx tsc -p tsconfig.build.json`, plus the
// addon), then `node bench/geometry.mjs [--seconds 0.5] [--device cpu|cuda|all] [--no-write]`.
//
// Method: 3 warm-up calls, then calls repeated until ≥ `--seconds` (default 0.5) and ≥ 5 samples; the median
// per-call time is reported. Paths:
//   host      — the public API on host Float32Arrays (for 'cuda' every call copies in, launches, synchronises
//               and copies out, so it measures PCIe transfers as much as kernels);
//   resident  — plan.benchmark(): the same op on data already on the device, samples of k back-to-back calls
//               followed by one synchronisation (k chosen so a sample takes ≥ 1 ms). CUDA only.
// Effective bandwidth = compulsory bytes / median time, with bytes (float32, 4 B each) from BYTES below: every
// input read once and every output written once. Strided re-reads, the ≤ 3 passes per factor and the backward's
// recomputed forward (workspace) are not counted, so GB/s is a lower bound on the traffic actually served.
// Results: bench/results/<date>-<gitsha>-<device>-geometry.json, one file per device, and a table on stdout.
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchArgs, benchUsageError } from './util/args.mjs';
import { canonicalize, canonicalizeBackward, cudaAvailable, geometry, mlp } from '../dist/index.js';
import { binding } from '../dist/native/binding.js';
import { createPlan } from '../dist/geometry/plan.js';
import { Rng } from '../dist/util/rng.js';

const here = path.dirname(fileURLToPath(import.meta.url));

/** The agreed sizes. */
export const CONFIGS = [
  { widths: [30, 16, 16, 2], B: 4096 },
  { widths: [784, 10, 10], B: 1024 },
];

/** Compulsory float32 elements moved per call (B networks, P parameters, F factors). */
export const BYTES = {
  project: (B, P) => 4 * 2 * B * P, // read x, write out
  tangentProject: (B, P) => 4 * 3 * B * P, // x, u → out
  expmap: (B, P) => 4 * 3 * B * P,
  logmap: (B, P) => 4 * 3 * B * P,
  dist: (B, P, F) => 4 * (2 * B * P + B * F), // x, y → B×F
  interpolate: (B, P) => 4 * (3 * B * P + B), // x0, x1, t → out
  eulerStep: (B, P) => 4 * 3 * B * P,
  loss: (B, P) => 4 * (3 * B * P + B), // pred, target → grad, perNetwork
  lossNoGrad: (B, P) => 4 * (2 * B * P + B),
  canonicalize: (B, P) => 4 * 2 * B * P,
  canonicalizeBackward: (B, P) => 4 * 3 * B * P, // x, dOut → dx (workspace excluded)
};

/** The op list: [op, kind, semantics]. */
export const CASES = [
  ['project', 'geometric', 'corrected'],
  ['tangentProject', 'geometric', 'corrected'],
  ['expmap', 'geometric', 'corrected'],
  ['logmap', 'geometric', 'corrected'],
  ['dist', 'geometric', 'corrected'],
  ['interpolate', 'geometric', 'corrected'],
  ['interpolate', 'geometric', 'reference'],
  ['interpolate', 'euclidean', 'corrected'],
  ['eulerStep', 'geometric', 'corrected'],
  ['eulerStep', 'geometric', 'reference'],
  ['loss', 'geometric', 'corrected'],
  ['loss', 'geometric', 'reference'],
  ['loss', 'euclidean', 'corrected'],
  ['lossNoGrad', 'geometric', 'corrected'],
  ['canonicalize', 'geometric', 'corrected'],
  ['canonicalizeBackward', 'geometric', 'corrected'],
];

function median(a) {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

/** Times fn(): 3 warm-up calls, then until ≥ minSeconds and ≥ 5 samples. */
export function timeIt(fn, minSeconds) {
  for (let i = 0; i < 3; i++) fn();
  const samples = [];
  let total = 0;
  while (total < minSeconds * 1000 || samples.length < 5) {
    const t0 = performance.now();
    fn();
    const dt = performance.now() - t0;
    samples.push(dt);
    total += dt;
    if (samples.length >= 100000) break;
  }
  return { medianMs: median(samples), samples: samples.length };
}

/** Inputs for one configuration: points on the manifold, tangent vectors, raw vectors, times. */
export function makeData(widths, B, seed = 1) {
  const arch = mlp(widths);
  const P = arch.numParams;
  const rng = new Rng(seed);
  const g = geometry(arch, 'geometric', { device: 'cpu' });
  const raw = rng.fillNormal(new Float32Array(B * P), 0, 0.3);
  const x = g.project(rng.fillNormal(new Float32Array(B * P)));
  const y = g.project(rng.fillNormal(new Float32Array(B * P)));
  const u = g.tangentProject(x, rng.fillNormal(new Float32Array(B * P), 0, 0.3));
  const t = rng.fillUniform(new Float32Array(B));
  g.dispose();
  return { arch, P, B, raw, x, y, u, t };
}

/** Runs the host-path call of one case on `device`. */
function hostCall(op, g, d, out) {
  switch (op) {
    case 'project':
      return () => g.project(d.raw, { out: out.p });
    case 'tangentProject':
      return () => g.tangentProject(d.x, d.raw, { out: out.p });
    case 'expmap':
      return () => g.expmap(d.x, d.u, { out: out.p });
    case 'logmap':
      return () => g.logmap(d.x, d.y, { out: out.p });
    case 'dist':
      return () => g.dist(d.x, d.y, { out: out.f });
    case 'interpolate':
      return () => g.interpolate(d.x, d.y, d.t, { out: out.p });
    case 'eulerStep':
      return () => g.eulerStep(d.x, d.raw, 0.125, { out: out.p });
    case 'loss':
      return () => g.loss(d.raw, d.y, { perNetwork: out.b, grad: out.p });
    case 'lossNoGrad':
      return null; // the facade always returns the gradient; timed on the resident path only
    case 'canonicalize':
      return () => canonicalize(d.arch, d.raw, { out: out.p, device: g.device });
    case 'canonicalizeBackward':
      return () => canonicalizeBackward(d.arch, d.raw, d.u, { out: out.p, device: g.device });
    default:
      throw new Error(`unknown op ${op}`);
  }
}

/**
 * Benchmarks every case on `device` ('cpu' | 'cuda'). Returns result rows; `log` receives progress lines.
 * @param {{device: 'cpu'|'cuda', configs?: typeof CONFIGS, cases?: typeof CASES, minSeconds?: number, resident?: boolean, log?: (s: string) => void}} o
 */
export function benchGeometry(o) {
  const { device, configs = CONFIGS, cases = CASES, minSeconds = 0.5, resident = device === 'cuda', log = () => {} } = o;
  const rows = [];
  for (const { widths, B } of configs) {
    const d = makeData(widths, B);
    const P = d.P;
    for (const [op, kind, semantics] of cases) {
      const g = geometry(d.arch, kind, { device, semantics });
      const F = g.numFactors;
      const out = { p: new Float32Array(B * P), f: new Float32Array(B * F), b: new Float32Array(B) };
      const bytes = BYTES[op](B, P, F);
      const base = { arch: d.arch.key, B, op, kind, semantics, device, bytes };
      const call = hostCall(op, g, d, out);
      if (call !== null) {
        const r = timeIt(call, minSeconds);
        rows.push({ ...base, path: 'host', ...r, GBps: bytes / (r.medianMs * 1e6) });
        log(`${d.arch.key} B=${B} ${op} ${kind}/${semantics} ${device} host: ${r.medianMs.toFixed(3)} ms`);
      }
      if (resident) {
        const plan = createPlan(d.arch, kind);
        const mode = semantics === 'reference' ? 'reference' : 'accurate';
        const r = plan.benchmark(op, B, device, mode, minSeconds);
        rows.push({ ...base, path: 'resident', medianMs: r.medianMs, samples: r.samples, callsPerSample: r.callsPerSample, GBps: bytes / (r.medianMs * 1e6) });
        log(`${d.arch.key} B=${B} ${op} ${kind}/${semantics} ${device} resident: ${r.medianMs.toFixed(4)} ms`);
        plan.dispose();
      }
      g.dispose();
    }
  }
  return rows;
}

/** A fixed-width table of result rows. */
export function table(rows) {
  const head = ['arch', 'B', 'op', 'kind/semantics', 'device', 'path', 'median ms', 'GB/s'];
  const body = rows.map((r) => [r.arch, String(r.B), r.op, `${r.kind}/${r.semantics}`, r.device, r.path, r.medianMs < 0.1 ? r.medianMs.toFixed(4) : r.medianMs.toFixed(3), r.GBps.toFixed(2)]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (c) => c.map((v, i) => (i >= 6 ? v.padStart(w[i]) : v.padEnd(w[i]))).join('  ');
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...body.map(line)].join('\n');
}

export function gitSha() {
  try {
    return execSync('git rev-parse --short HEAD', { cwd: here, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'nogit';
  }
}

/** Machine description for the results file. */
export function machine(device) {
  const b = binding();
  const info = { node: process.version, platform: `${process.platform}-${process.arch}`, cpuModel: os.cpus()[0]?.model ?? 'unknown', cpuCount: os.cpus().length, threads: b.numThreads(), loadAverage: os.loadavg(), build: b.buildInfo() };
  if (device === 'cuda') {
    const c = b.cudaInfo();
    Object.assign(info, { gpu: c.name, cc: `${c.ccMajor}.${c.ccMinor}`, gpuMemory: c.totalMem, driverVersion: c.driverVersion, runtimeVersion: c.runtimeVersion });
  }
  return info;
}

function parseArgs(argv) {
  const o = benchArgs(import.meta.url, { values: { '--seconds': 'number', '--device': ['cpu', 'cuda', 'all'] }, flags: ['--no-write'] }, argv);
  if (!(o.get('--seconds', 0.5) > 0)) benchUsageError(import.meta.url, '--seconds must be > 0');
  return { seconds: o.get('--seconds', 0.5), device: o.get('--device', 'all'), write: !o.has('--no-write') };
}

async function main() {
  process.env.WSF_QUIET ??= '1';
  const args = parseArgs(process.argv.slice(2));
  const devices = args.device === 'all' ? ['cpu', ...(cudaAvailable() ? ['cuda'] : [])] : [args.device];
  const date = new Date().toISOString().slice(0, 10);
  const sha = gitSha();
  for (const device of devices) {
    const rows = benchGeometry({ device, minSeconds: args.seconds, log: (s) => process.stderr.write(s + '\n') });
    const result = {
      family: 'geometry',
      date: new Date().toISOString(),
      gitSha: sha,
      device,
      machine: machine(device),
      method: { warmup: 3, minSeconds: args.seconds, minSamples: 5, statistic: 'median', bytes: 'compulsory float32 traffic, see bench/geometry.mjs BYTES' },
      results: rows,
    };
    if (args.write) {
      const dir = path.join(here, 'results');
      fs.mkdirSync(dir, { recursive: true });
      const file = path.join(dir, `${date}-${sha}-${device}-geometry.json`);
      fs.writeFileSync(file, JSON.stringify(result, null, 1) + '\n');
      process.stderr.write(`wrote ${path.relative(process.cwd(), file)}\n`);
    }
    console.log(`\n${device}:\n${table(rows)}`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
