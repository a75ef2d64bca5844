// The CPU engine off x86: every native source compiles for arm64 (Linux/aarch64 — the architecture of Apple-silicon
// laptops and Graviton-type servers) with the shipped flags and no warnings, and on arm64, run under qemu, the
// portable float matrix products (NEON register tiles, core/gemm_cpu.cc), the fast exp/erf and the whole float
// engine (forward and backward, sparse/dense/hybrid/virtual graphs, chunked recompute) agree with double precision.
// Needs the cross compiler and qemu (Debian: g++-aarch64-linux-gnu qemu-user; .ci/run installs them when it can);
// without them the tests skip, and WSF_REQUIRE_ARM64=1 makes that a failure. Nothing here times arm64: qemu says
// nothing about speed.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/native/loadBinding.js';

const cxx = 'aarch64-linux-gnu-g++';
const qemu = 'qemu-aarch64';
const onPath = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
const available = onPath(cxx) && onPath(qemu);
if (!available && process.env.WSF_REQUIRE_ARM64 === '1') {
  throw new Error(`WSF_REQUIRE_ARM64=1 but ${cxx} or ${qemu} is not on PATH (Debian: g++-aarch64-linux-gnu qemu-user)`);
}

const native = path.join(packageRoot, 'native');
const flags = ['-std=gnu++17', '-O3', '-fno-trapping-math', '-Wall', '-Wextra', '-Wno-unused-parameter', `-I${native}`];
const work = available ? fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-arm64-')) : '';

function run(cmd: string, args: string[], timeoutMs: number) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: packageRoot, timeout: timeoutMs, maxBuffer: 16 << 20 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, error: r.error };
}

const include = [
  `-I${path.join(packageRoot, 'node_modules', 'node-api-headers', 'include')}`,
  `-I${path.join(packageRoot, 'node_modules', 'node-addon-api')}`,
  '-DNAPI_VERSION=8',
  '-DNAPI_CPP_EXCEPTIONS',
  '-DNODE_ADDON_API_DISABLE_DEPRECATED',
  '-fPIC',
];
const object = (src: string) => path.join(work, `${path.basename(src)}.o`);
const objects = new Map<string, ReturnType<typeof run>>();
/** Compiles one source for aarch64 (once per file), returning the compiler's result; the object is work/<name>.o. */
function compile(src: string) {
  let r = objects.get(src);
  if (r === undefined) {
    r = run(cxx, [...flags, ...include, '-c', src, '-o', object(src)], 240_000);
    objects.set(src, r);
  }
  return r;
}
/** Links the given sources' objects (compiled as needed) into a static aarch64 executable. */
function link(exe: string, sources: string[]) {
  for (const src of sources) {
    const r = compile(src);
    expect(r.status, `${src}\n${r.out}`).toBe(0);
  }
  const r = run(cxx, ['-static', ...sources.map(object), '-lpthread', '-o', exe], 120_000);
  expect(r.status, r.out).toBe(0);
}
const core = (f: string) => path.join(native, 'core', f);

describe.skipIf(!available)('arm64 (cross-compiled; kernels run under qemu)', () => {
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('every CPU and binding source compiles for aarch64 with the shipped flags, without a warning', () => {
    const sources = ['core', 'binding'].flatMap((d) =>
      fs
        .readdirSync(path.join(native, d))
        .filter((f) => f.endsWith('.cc'))
        .map((f) => path.join(native, d, f)),
    );
    expect(sources.length).toBeGreaterThan(10);
    for (const src of sources) {
      const r = compile(src);
      expect(r.error, src).toBeUndefined();
      expect(r.status, `${src}\n${r.out}`).toBe(0);
      expect(r.out, `${src}: the compiler had something to say`).toBe('');
    }
  }, 600_000);

  it('the portable float GEMM (NEON tiles) agrees with double precision and with itself on 1, 2, 3 and 5 threads', () => {
    const exe = path.join(work, 'gemm_check');
    link(exe, [path.join(native, 'dev', 'gemm_bench.cc'), core('gemm_cpu.cc'), core('parallel.cc')]);
    const r = run(qemu, [exe, '--check-quick'], 300_000);
    expect(r.status, r.out).toBe(0);
    const sweep = /sweep: (\d+) cases, (\d+) failures/.exec(r.out);
    expect(sweep, r.out).not.toBeNull();
    expect(Number(sweep![1])).toBeGreaterThan(400);
    expect(Number(sweep![2])).toBe(0);
    expect(r.out.match(/bitwise identical.*: yes/g)?.length, r.out).toBe(3);
  }, 600_000);

  it('the fast exp and erf of the activation kernels keep their accuracy on arm64 (fused multiply-adds)', () => {
    const exe = path.join(work, 'fastmath_check');
    link(exe, [path.join(native, 'dev', 'fastmath_check.cc')]);
    const r = run(qemu, [exe], 120_000);
    expect(r.status, r.out).toBe(0);
    const m = /erf max abs err ([\d.e+-]+); exp max rel err ([\d.e+-]+)/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(1e-6);
    expect(Number(m![2])).toBeLessThan(1e-6);
  }, 300_000);

  it('the whole float engine (forward and backward; sparse, dense, hybrid, virtual node, chunked recompute) agrees with double and with itself on 1 and 3 threads', () => {
    const exe = path.join(work, 'engine_check');
    link(exe, [path.join(native, 'dev', 'engine_check.cc'), ...['rt_ops_cpu.cc', 'rt_graph.cc', 'rt_model.cc', 'gemm_cpu.cc', 'parallel.cc', 'device_cuda_stub.cc'].map(core)]);
    const r = run(qemu, [exe], 300_000);
    expect(r.status, r.out).toBe(0);
    const m = /engine check: (\d+) cases, (\d+) failures/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(Number(m![1])).toBe(5);
    expect(Number(m![2])).toBe(0);
    expect(r.out.match(/bitwise identical/g)?.length, r.out).toBe(5);
    expect(r.out).toMatch(/^ok +virtual node /m);
  }, 600_000);
});
