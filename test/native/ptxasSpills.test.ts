// Register spills of the CUDA kernels, as ptxas reports them for the shipped architectures (sm_80, sm_90): needs
// nvcc, not a GPU, so CI checks it on every run. A spill is a local-memory store and load per thread, inside the
// main loop for the GEMMs — the default GEMM (gemm2_kernel) spilled 288–476 bytes per thread at its 128-row tiles
// until 2026-12-07 and would fail here. Budgets: the matrix-product kernels 8 bytes (one sm_90 instantiation keeps
// a 4-byte spill; ptxas does not say where), every other kernel 64 bytes (the attention backward's 16/32-channel-per-lane
// versions, for heads wider than 256, spill 8–44). Skips without nvcc on PATH.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/native/loadBinding.js';

const hasNvcc = spawnSync('sh', ['-c', 'command -v nvcc'], { encoding: 'utf8' }).status === 0;

type Kernel = { name: string; arch: string; file: string; registers: number; spillStores: number; spillLoads: number; smem: number; gemm: boolean };

describe.skipIf(!hasNvcc)('CUDA kernels: registers and spills (ptxas, sm_80 and sm_90)', () => {
  it('every kernel compiles within the spill budgets, and the report reads the default GEMM right', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-ptxas-')), 'report.json');
    const r = spawnSync(process.execPath, [path.join(packageRoot, 'native', 'dev', 'ptxas-report.mjs'), '--arch', '80,90',
      '--max-spill-gemm', '8', '--max-spill', '64', '--json', out], { encoding: 'utf8', cwd: packageRoot, timeout: 240_000 });
    const log = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    expect(r.status, log.slice(-3000)).toBe(0);
    const { kernels } = JSON.parse(fs.readFileSync(out, 'utf8')) as { kernels: Kernel[] };
    for (const arch of ['sm_80', 'sm_90']) {
      const ks = kernels.filter((k) => k.arch === arch);
      // Every .cu file's kernels were read (the engine's ops and the sphere geometry at least).
      expect(new Set(ks.map((k) => k.file))).toContain('rt_ops_cuda.cu');
      expect(new Set(ks.map((k) => k.file))).toContain('geometry_cuda.cu');
      expect(ks.length).toBeGreaterThan(100);
      for (const k of ks) {
        expect(k.registers, k.name).toBeGreaterThan(0);
        expect(k.registers, k.name).toBeLessThanOrEqual(255);
      }
      // The default GEMM's long-dimension tile, 128×64 with 8×4 outputs per thread: shared memory is
      // (32·(128+4) + 32·(64+4))·4 bytes = 25,600, and __launch_bounds__(256, 2) caps it at 128 registers.
      const g = ks.find((k) => k.name === 'gemm2_kernel<128, 64, 32, 8, 4, true, false>');
      expect(g, 'gemm2_kernel<128, 64, …> instantiation').toBeDefined();
      expect(g!.smem).toBe(25600);
      expect(g!.registers).toBeLessThanOrEqual(128);
      expect(g!.spillStores).toBe(0);
    }
  }, 300_000);
});
