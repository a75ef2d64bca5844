// The CPU engine off x86: every native source compiles for arm64 (Linux/aarch64 — the architecture of Apple-silicon
// laptops and Graviton-type servers) with the shipped flags and no warnings, and on arm64 the portable float matrix
// products (NEON register tiles, core/gemm_cpu.cc) and the fast exp/erf agree with double precision, run under qemu.
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

describe.skipIf(!available)('arm64 (cross-compiled; kernels run under qemu)', () => {
  afterAll(() => {
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  it('every CPU and binding source compiles for aarch64 with the shipped flags, without a warning', () => {
    const include = [
      `-I${path.join(packageRoot, 'node_modules', 'node-api-headers', 'include')}`,
      `-I${path.join(packageRoot, 'node_modules', 'node-addon-api')}`,
      '-DNAPI_VERSION=8',
      '-DNAPI_CPP_EXCEPTIONS',
      '-DNODE_ADDON_API_DISABLE_DEPRECATED',
      '-fPIC',
    ];
    const sources = ['core', 'binding'].flatMap((d) =>
      fs
        .readdirSync(path.join(native, d))
        .filter((f) => f.endsWith('.cc'))
        .map((f) => path.join(native, d, f)),
    );
    expect(sources.length).toBeGreaterThan(10);
    for (const src of sources) {
      const r = run(cxx, [...flags, ...include, '-c', src, '-o', path.join(work, `${path.basename(src)}.o`)], 240_000);
      expect(r.error, src).toBeUndefined();
      expect(r.status, `${src}\n${r.out}`).toBe(0);
      expect(r.out, `${src}: the compiler had something to say`).toBe('');
    }
  }, 600_000);

  it('the portable float GEMM (NEON tiles) agrees with double precision and with itself on 1, 2, 3 and 5 threads', () => {
    const exe = path.join(work, 'gemm_check');
    const b = run(
      cxx,
      [...flags, '-static', path.join(native, 'dev', 'gemm_bench.cc'), path.join(native, 'core', 'gemm_cpu.cc'),
        path.join(native, 'core', 'parallel.cc'), '-lpthread', '-o', exe],
      240_000,
    );
    expect(b.status, b.out).toBe(0);
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
    const b = run(cxx, [...flags, '-static', path.join(native, 'dev', 'fastmath_check.cc'), '-o', exe], 120_000);
    expect(b.status, b.out).toBe(0);
    const r = run(qemu, [exe], 120_000);
    expect(r.status, r.out).toBe(0);
    const m = /erf max abs err ([\d.e+-]+); exp max rel err ([\d.e+-]+)/.exec(r.out);
    expect(m, r.out).not.toBeNull();
    expect(Number(m![1])).toBeLessThan(1e-6);
    expect(Number(m![2])).toBeLessThan(1e-6);
  }, 300_000);
});
