// The CUDA GEMM kernels, selected by WSF_GEMM (read once per process, so each version runs in a child process
// over the same op cases):
// - gemm_kernel (v1) and the default gemm2_kernel (v2) compute the same sums in the same order, so every linear op
//   must give bitwise identical outputs under either;
// - the tensor-core gemm_tc_kernel (tc: 3×TF32; tf32: one TF32 product) sums in another order and precision: tc
//   must pass the FP32 parity tolerances against the CPU reference (checkOpCase), tf32 a TF32-sized bound.
// - the attention kernels with 8 or 16 warps per block (WSF_ATTN_WARPS) cut rows into other slices: they must pass
//   the parity tolerances too.
// - recompute mode (layer activations recomputed in the backward pass) must equal the default mode bit for bit.
// - the whole engine (forward, loss, gradients, Adam state) must pass its CPU parity under tc, v1 and the other
//   split and warp settings too, not only op by op.
// Skips without a CUDA device (or the CPU emulator build, where CI runs it).
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { VectorField } from '../../lib/engine/VectorField.js';
import { binding } from '../../lib/native/binding.js';
import { compareArrays } from '../../lib/util/compare.js';
import { Rng } from '../../lib/util/rng.js';
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

// Runs in a child: every linear_* case checked against the CPU reference; prints the failed checks, and for the
// main outputs the worst NMSE against the CPU (so a TF32-sized bound can be applied outside).
const checkChild = `
const bp = require(${JSON.stringify(path.join(root, 'dist', 'internal', 'backendParity.js'))});
const { binding } = require(${JSON.stringify(path.join(root, 'dist', 'native', 'binding.js'))});
const b = binding();
const failed = [];
let cases = 0, worstNmse = 0;
for (const c of bp.buildOpCases(20261205).filter((c) => c.op.startsWith(process.env.WSF_TEST_OPS))) {
  cases++;
  for (const r of bp.checkOpCase(b, 'cuda', c)) if (!r.pass) failed.push(r.name + ': ' + r.detail);
  const ref = bp.runOp(b, 'cpu', c), dut = bp.runOp(b, 'cuda', c);
  for (const [k, e] of Object.entries(ref.outputs)) {
    const a = dut.outputs[k];
    let num = 0, den = 0;
    for (let i = 0; i < e.length; i++) { num += (a[i] - e[i]) ** 2; den += e[i] ** 2; }
    if (den > 0) worstNmse = Math.max(worstNmse, num / den);
  }
}
process.stdout.write(JSON.stringify({ cases, failed, worstNmse, kernels: b.cudaInfo().kernels }));
`;
// Runs in a child: whole-engine parity (forward, loss, every gradient, Adam state) of two engine cases against the CPU
// engine, under the kernel settings of the environment; prints the failed checks and the settings read.
const engineChild = `
const bp = require(${JSON.stringify(path.join(root, 'dist', 'internal', 'backendParity.js'))});
const { binding } = require(${JSON.stringify(path.join(root, 'dist', 'native', 'binding.js'))});
const b = binding();
const failed = [];
let checks = 0;
for (const i of [2, 4]) for (const r of bp.checkEngineCase(b, 'cuda', bp.ENGINE_CASES[i], 7)) { checks++; if (!r.pass) failed.push(r.name + ': ' + r.detail); }
process.stdout.write(JSON.stringify({ checks, failed, kernels: b.cudaInfo().kernels }));
`;
type Kernels = { gemm: string; splitkRows: number; attentionWarps: number };
const check = (v: string, env: Record<string, string> = {}): { cases: number; failed: string[]; worstNmse: number; kernels: Kernels } =>
  JSON.parse(execFileSync(process.execPath, ['-e', checkChild], { env: { ...process.env, WSF_GEMM: v, WSF_QUIET: '1', WSF_TEST_OPS: 'linear', ...env }, maxBuffer: 1 << 30 }).toString());

describe.skipIf(!cuda)('CUDA kernel variants', () => {
  it('gemm2_kernel (default) and gemm_kernel (WSF_GEMM=v1) give bitwise identical linear-op outputs', () => {
    const run = (v: string): string[] => JSON.parse(execFileSync(process.execPath, ['-e', child], { env: { ...process.env, WSF_GEMM: v, WSF_QUIET: '1' }, maxBuffer: 1 << 30 }).toString());
    const a = run('v1');
    const b = run('v2');
    expect(a.length).toBeGreaterThan(20);
    expect(b.length).toBe(a.length);
    const differ = a.map((x, i) => (x === b[i] ? -1 : i)).filter((i) => i >= 0);
    expect(differ).toEqual([]);
  }, timeout);

  it('the tensor-core version with 3×TF32 (WSF_GEMM=tc) passes the FP32 parity tolerances on every linear op case', () => {
    const r = check('tc');
    expect(r.kernels).toEqual({ gemm: 'tc', splitkRows: 512, attentionWarps: 4, flowStep: 'plain' });
    expect(r.cases).toBeGreaterThan(10);
    expect(r.failed).toEqual([]);
    expect(r.worstNmse).toBeLessThan(1e-9);
  }, timeout);

  it('gemm_kernel (WSF_GEMM=v1) passes the FP32 parity tolerances against the CPU reference, guards and coverage included', () => {
    const r = check('v1');
    expect(r.kernels).toEqual({ gemm: 'v1', splitkRows: 512, attentionWarps: 4, flowStep: 'plain' });
    expect(r.cases).toBeGreaterThan(10);
    expect(r.failed).toEqual([]);
  }, timeout);

  it('finer weight-gradient splits (WSF_SPLITK_ROWS=16) pass the parity tolerances under v1, v2 and tc', () => {
    for (const v of ['v1', 'v2', 'tc']) {
      const r = check(v, { WSF_SPLITK_ROWS: '16' });
      expect(r.kernels).toEqual({ gemm: v, splitkRows: 16, attentionWarps: 4, flowStep: 'plain' });
      expect(r.cases).toBeGreaterThan(10);
      expect(r.failed).toEqual([]);
    }
  }, timeout);

  it('plain TF32 (WSF_GEMM=tf32) writes every output and stays within TF32 rounding (NMSE < 1e-5), but is not FP32-exact', () => {
    const r = check('tf32');
    expect(r.kernels.gemm).toBe('tf32');
    expect(r.cases).toBeGreaterThan(10);
    // Coverage and guard checks must all pass; only value tolerances may fail at TF32 precision.
    expect(r.failed.filter((f) => !/: `[^`]+`: /.test(f) || /fully written|guards and inputs/.test(f))).toEqual([]);
    expect(r.worstNmse).toBeLessThan(1e-5);
    expect(r.worstNmse).toBeGreaterThan(1e-10);
  }, timeout);

  it('the attention kernels with 8 and 16 warps per block (WSF_ATTN_WARPS) pass the parity tolerances', () => {
    for (const w of ['8', '16']) {
      const r = check('v2', { WSF_ATTN_WARPS: w, WSF_TEST_OPS: 'attention' });
      expect(r.kernels).toEqual({ gemm: 'v2', splitkRows: 512, attentionWarps: Number(w), flowStep: 'plain' });
      expect(r.cases).toBeGreaterThanOrEqual(4);
      expect(r.failed).toEqual([]);
    }
  }, timeout);

  it('recompute mode (VectorField recompute) gives the default mode\'s outputs and gradients bit for bit on CUDA', () => {
    const arch = mlp([30, 16, 16, 2]);
    const B = 2;
    const rng = new Rng(4);
    const xt = rng.fillNormal(new Float32Array(B * arch.numParams), 0, 0.3);
    const dy = rng.fillNormal(new Float32Array(B * arch.numParams), 0, 1);
    const runs = [false, true].map((recompute) => {
      const f = VectorField.create({ arch, D: 16, layers: 3, heads: 2, seed: 3, device: 'cuda', recompute });
      try {
        const out = f.forward(xt, Float32Array.of(0.3, 0.8), { training: true });
        f.zeroGrad();
        const inputGrad = new Float32Array(xt.length);
        f.backward(dy, { inputGrad });
        return { out, inputGrad, grads: Float32Array.from(f.getGrads()), held: f.bytesHeld };
      } finally {
        f.dispose();
      }
    });
    for (const k of ['out', 'inputGrad', 'grads'] as const) {
      let d = 0;
      for (let i = 0; i < runs[0]![k].length; i++) if (!Object.is(runs[0]![k][i], runs[1]![k][i])) d++;
      expect(d, k).toBe(0);
    }
    expect(runs[1]!.held).toBeLessThan(runs[0]!.held);
  }, timeout);

  it('chunked recompute mode (VectorField chunkRows) gives recompute mode\'s outputs and input gradients on CUDA, parameter gradients to rounding', () => {
    const arch = mlp([30, 16, 16, 2]);
    const B = 2;
    const rng = new Rng(6);
    const xt = rng.fillNormal(new Float32Array(B * arch.numParams), 0, 0.3);
    const dy = rng.fillNormal(new Float32Array(B * arch.numParams), 0, 1);
    const runs = [0, 37].map((chunkRows) => {
      const f = VectorField.create({ arch, D: 16, layers: 3, heads: 2, seed: 3, device: 'cuda', recompute: true, chunkRows });
      try {
        const out = f.forward(xt, Float32Array.of(0.3, 0.8), { training: true });
        f.zeroGrad();
        const inputGrad = new Float32Array(xt.length);
        f.backward(dy, { inputGrad });
        return { out, inputGrad, grads: Float32Array.from(f.getGrads()), held: f.bytesHeld, chunk: f.chunkRows };
      } finally {
        f.dispose();
      }
    });
    expect(runs.map((r) => r.chunk)).toEqual([0, 37]);
    for (const k of ['out', 'inputGrad'] as const) {
      let d = 0;
      for (let i = 0; i < runs[0]![k].length; i++) if (!Object.is(runs[0]![k][i], runs[1]![k][i])) d++;
      expect(d, k).toBe(0);
    }
    const cmp = compareArrays(runs[1]!.grads, runs[0]!.grads, 1e-5, 1e-4);
    expect(cmp.pass, cmp.report).toBe(true);
    expect(cmp.nmse).toBeLessThan(1e-10);
    expect(runs[1]!.held).toBeLessThan(runs[0]!.held);
  }, timeout);

  it('the whole engine passes its CPU parity under the tensor-core GEMM, 16-row splits with 16 attention warps, and v1 with 8 warps', () => {
    // (Plain TF32 is left out: it is not FP32-exact, and the op-level test above bounds it.)
    for (const env of [{ WSF_GEMM: 'tc' }, { WSF_SPLITK_ROWS: '16', WSF_ATTN_WARPS: '16' }, { WSF_GEMM: 'v1', WSF_ATTN_WARPS: '8' }]) {
      const r = JSON.parse(execFileSync(process.execPath, ['-e', engineChild], { env: { ...process.env, WSF_QUIET: '1', ...env }, maxBuffer: 1 << 30 }).toString()) as { checks: number; failed: string[]; kernels: Kernels };
      expect(r.kernels, JSON.stringify(env)).toMatchObject({ gemm: env.WSF_GEMM ?? 'v2', splitkRows: Number(env.WSF_SPLITK_ROWS ?? 512), attentionWarps: Number(env.WSF_ATTN_WARPS ?? 4) });
      expect(r.checks, JSON.stringify(env)).toBeGreaterThanOrEqual(20);
      expect(r.failed, JSON.stringify(env)).toEqual([]);
    }
  }, timeout);

  it('unrecognised settings fall back to the defaults (and cudaInfo says so)', () => {
    const r = check('bogus', { WSF_SPLITK_ROWS: '100', WSF_ATTN_WARPS: '3', WSF_CUDA_GRAPH: 'yes', WSF_TEST_OPS: 'no-op-cases' }); // only the settings are read
    expect(r.kernels).toEqual({ gemm: 'v2', splitkRows: 512, attentionWarps: 4, flowStep: 'plain' });
  }, timeout);
});
