// The two CUDA GEMM kernels (gemm_kernel, selected by WSF_GEMM=v1, and the default gemm2_kernel) compute the same
// sums in the same order, so every linear op must give bitwise identical outputs under either. The variable is
// read once per process, so each version runs in a child process over the same op cases. Skips without a CUDA
// device (or the CPU emulator build, where CI runs it).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { binding } from '../../lib/native/binding.js';
import { hasCuda } from '../helpers/native.js';

const cuda = hasCuda();
const timeout = cuda && binding().buildInfo().archs === 'emu' ? 600_000 : 60_000;
const root = path.resolve(__dirname, '..', '..');

// Runs in a child: every linear_* case of the op suite on CUDA, outputs concatenated, as base64 of the float bits.
const child = `
const bp = require(${JSON.stringify(path.join(root, 'dist', 'internal', 'backendParity.js'))});
const { binding } = require(${JSON.stringify(path.join(root, 'dist', 'native', 'binding.js'))});
const b = binding();
const out = [];
for (const c of bp.buildOpCases(20261204).filter((c) => c.op.startsWith('linear'))) {
  const r = bp.runOp(b, 'cuda', c);
  for (const v of Object.values(r.outputs)) out.push(Buffer.from(Float32Array.from(v).buffer).toString('base64'));
}
process.stdout.write(JSON.stringify(out));
`;

describe.skipIf(!cuda)('CUDA GEMM versions', () => {
  it('gemm2_kernel (default) and gemm_kernel (WSF_GEMM=v1) give bitwise identical linear-op outputs', () => {
    const run = (v: string): string[] => JSON.parse(execFileSync(process.execPath, ['-e', child], { env: { ...process.env, WSF_GEMM: v, WSF_QUIET: '1' }, maxBuffer: 1 << 30 }).toString());
    const a = run('v1');
    const b = run('v2');
    expect(a.length).toBeGreaterThan(20);
    expect(b.length).toBe(a.length);
    const differ = a.map((x, i) => (x === b[i] ? -1 : i)).filter((i) => i >= 0);
    expect(differ).toEqual([]);
  }, timeout);
});
