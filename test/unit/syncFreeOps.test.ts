// The CPU references of the CUDA flow step's sync-free ops (CpuOps::sum_squares_dev, step_gate, adam_gated,
// ema_update_gated, fill_normal_dev; the CUDA ops are compared with these in test/parity/ops.gpu.test.ts), checked here
// against what they stand for: the established ops they wrap (sum_squares, adam with step and gradient scale,
// ema_update, fill_normal) and RtEngine::adam_step's host rule written out in JS.
import { describe, expect, it } from 'vitest';
import { adamConstants, buildOpCases, type OpCase, runOp, wideF64 } from '../../lib/internal/backendParity.js';
import { binding } from '../../lib/native/binding.js';
import { Rng } from '../../lib/util/rng.js';

const run = (c: OpCase): { outputs: Record<string, Float32Array>; result: number } => {
  const r = runOp(binding(), 'cpu', c);
  expect(r.problems, c.name).toEqual([]);
  return r;
};
const bits = (a: Float32Array): number[] => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const normal = (rng: Rng, n: number, sd = 1): Float32Array => rng.fillNormal(new Float32Array(n), 0, sd);
const HYPER = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

describe('the sync-free flow-step ops, CPU references', () => {
  it('adamConstants (the op cases’ device constants, in JS) equals the native adam_constants bit for bit', () => {
    for (const step of [1, 2, 3, 7, 250, 10_000, 123_457]) {
      for (const [h, clip] of [[HYPER, 0], [{ lr: 3e-4, beta1: 0.95, beta2: 0.98, eps: 1e-6, weightDecay: 0 }, 2.5]] as const) {
        const out = run({ name: 'consts', op: 'adam_constants', inputs: {}, outputs: { out: { len: 16 } }, scalars: { lr: h.lr, beta1: h.beta1, beta2: h.beta2, eps: h.eps, weight_decay: h.weightDecay, step, clip }, tol: { atol: 0, rtol: 0, nmse: 0 } }).outputs.out!;
        const native = Array.from(new Float64Array(out.buffer.slice(out.byteOffset, out.byteOffset + 64)));
        expect(adamConstants(h, step, clip), `step ${step}`).toEqual(native);
      }
    }
  });

  it('step_gate is RtEngine::adam_step’s rule: apply when loss and √Σg² are finite, scale clip/norm above the clip', () => {
    for (const sumsq of [0, 0.25, 4, 1e30, 1e300 * 1e10, Infinity, NaN]) {
      for (const loss of [1.5, -2, Infinity, -Infinity, NaN]) {
        for (const clip of [0, 1, 3]) {
          const { outputs } = run({ name: 'gate', op: 'step_gate', inputs: { sumsq: wideF64([sumsq]), loss: Float32Array.of(loss), consts: wideF64(adamConstants(HYPER, 3, clip)) }, outputs: { gate: { len: 2 } }, scalars: {}, tol: { atol: 0, rtol: 0, nmse: 0 } });
          const norm = Math.sqrt(sumsq);
          const applies = Number.isFinite(norm) && Number.isFinite(loss);
          const scale = clip > 0 && norm > clip ? clip / norm : 1;
          expect(Array.from(outputs.gate!), `sumsq ${sumsq} loss ${loss} clip ${clip}`).toEqual([Math.fround(scale), applies ? 1 : 0]);
        }
      }
    }
  });

  it('adam_gated with adam_constants(step, clip) and gate [s, 1] is adam(step, grad scale s), bit for bit; gate [s, 0] changes nothing', () => {
    const rng = new Rng(4);
    for (const n of [1, 1000, 40000]) {
      for (const [step, s] of [[1, 1], [7, 0.3], [250, 0.01]] as [number, number][]) {
        const g = normal(rng, n, 1e-2);
        const init = { p: normal(rng, n), m: normal(rng, n, 1e-2), v: normal(rng, n).map((x) => x * x * 1e-3) };
        const outputs = { p: { len: n, init: init.p }, m: { len: n, init: init.m }, v: { len: n, init: init.v } };
        const tol = { atol: 0, rtol: 0, nmse: 0 };
        const plain = run({ name: 'adam', op: 'adam', inputs: { g }, outputs, scalars: { n, lr: HYPER.lr, beta1: HYPER.beta1, beta2: HYPER.beta2, eps: HYPER.eps, weight_decay: HYPER.weightDecay, step, grad_scale: s }, tol }).outputs;
        const consts = wideF64(adamConstants(HYPER, step, 1));
        const gated = run({ name: 'adam_gated', op: 'adam_gated', inputs: { g, consts, gate: Float32Array.of(s, 1) }, outputs, scalars: { n }, tol }).outputs;
        for (const k of ['p', 'm', 'v']) expect(bits(gated[k]!), `n ${n} step ${step} ${k}`).toEqual(bits(plain[k]!));
        expect(bits(plain.p!)).not.toEqual(bits(init.p)); // the step moved the parameters
        const off = run({ name: 'adam_gated off', op: 'adam_gated', inputs: { g, consts, gate: Float32Array.of(s, 0) }, outputs, scalars: { n }, tol }).outputs;
        for (const k of ['p', 'm', 'v'] as const) expect(bits(off[k]!), `gate off ${k}`).toEqual(bits(init[k]));
      }
    }
  });

  it('ema_update_gated is ema_update when the gate is on and nothing when it is off; fill_normal_dev and sum_squares_dev are fill_normal and sum_squares', () => {
    const rng = new Rng(5);
    const tol = { atol: 0, rtol: 0, nmse: 0 };
    for (const n of [1, 2, 1001, 70000]) {
      const p = normal(rng, n);
      const ema0 = normal(rng, n);
      const plain = run({ name: 'ema', op: 'ema_update', inputs: { p }, outputs: { ema: { len: n, init: ema0 } }, scalars: { n, decay: 0.99 }, tol }).outputs.ema!;
      const on = run({ name: 'ema on', op: 'ema_update_gated', inputs: { p, gate: Float32Array.of(0.5, 1) }, outputs: { ema: { len: n, init: ema0 } }, scalars: { n, decay: 0.99 }, tol }).outputs.ema!;
      const off = run({ name: 'ema off', op: 'ema_update_gated', inputs: { p, gate: Float32Array.of(0.5, 0) }, outputs: { ema: { len: n, init: ema0 } }, scalars: { n, decay: 0.99 }, tol }).outputs.ema!;
      expect(bits(on)).toEqual(bits(plain));
      expect(bits(off)).toEqual(bits(ema0));

      const [hi, lo] = [0x12345678, 0x9abcdef0 + n];
      const seed = (BigInt(hi) << 32n) | BigInt(lo >>> 0);
      const fromDev = run({ name: 'fnd', op: 'fill_normal_dev', inputs: { seed: new Float32Array(new BigUint64Array([seed]).buffer) }, outputs: { out: { len: n } }, scalars: { n, mean: 0.25, stddev: 1.5 }, tol }).outputs.out!;
      const fromArg = run({ name: 'fn', op: 'fill_normal', inputs: {}, outputs: { out: { len: n } }, scalars: { n, seed_hi: hi, seed_lo: lo >>> 0, mean: 0.25, stddev: 1.5 }, tol }).outputs.out!;
      expect(bits(fromDev)).toEqual(bits(fromArg));

      const x = normal(rng, n);
      let ss = 0;
      for (const v of x) ss += v * v;
      const dev = run({ name: 'ssd', op: 'sum_squares_dev', inputs: { x }, outputs: {}, scalars: { n }, tol }).result;
      expect(dev).toBe(run({ name: 'ss', op: 'sum_squares', inputs: { x }, outputs: {}, scalars: { n }, tol }).result);
      expect(dev).toBeCloseTo(ss, 9 - Math.ceil(Math.log10(ss))); // and Σx² in f64 up to summation order
    }
    expect(run({ name: 'ssd 0', op: 'sum_squares_dev', inputs: { x: new Float32Array(0) }, outputs: {}, scalars: { n: 0 }, tol }).result).toBe(0);
  });

  it('the parity suite carries a case for each of them (what test/parity/ops.gpu.test.ts compares on CUDA)', () => {
    const names = ['sum_squares_dev', 'step_gate', 'adam_gated', 'ema_update_gated', 'fill_normal_dev'];
    const cases = buildOpCases(1).filter((c) => names.includes(c.op));
    for (const op of names) expect(cases.some((c) => c.op === op), op).toBe(true);
    // Every case of them runs on the CPU reference without a guard or input problem.
    for (const c of cases) run(c);
  });
});
