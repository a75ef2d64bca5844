// Chunked recompute mode (VectorField `chunkRows`, RtConfig::chunk_rows): with recompute, each layer's pair-wise work
// runs in chunks of pairs and only full-size pair states are kept. The model is the same: outputs and input
// gradients equal recompute mode's bit for bit (every pair's arithmetic is unchanged), and the parameter gradients
// equal them to rounding (their sums over pairs are cut into chunks) — checked in f64 to 1e-12 and in f32 to the
// parity tolerances. Its memory is what the engine predicts, and it brings MLP 784-128-128-10 (D=32, batch 8) under
// 3 GB.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mlp } from '../../lib/arch/Architecture.js';
import { setFreeMemoryProbe, VectorField, type VectorFieldOptions } from '../../lib/engine/VectorField.js';
import { binding } from '../../lib/native/binding.js';
import { Rng } from '../../lib/util/rng.js';

type Opts = Omit<VectorFieldOptions, 'recompute' | 'chunkRows' | 'dtype'>;
type Arr = Float32Array | Float64Array;

interface Run {
  out: Arr;
  grads: Arr;
  inputGrad: Arr;
  twice: Arr;
  vjp: Arr;
  params: Arr;
  held: number;
  chunk: number;
}

function runField(opts: Opts, chunkRows: number, B: number, dtype: 'f32' | 'f64'): Run {
  const P = mlp(opts.arch as number[]).numParams;
  const Ctor: { new (n: number): Arr; from(a: ArrayLike<number>): Arr } = dtype === 'f64' ? Float64Array : Float32Array;
  const rng = new Rng(23);
  const fill = (n: number, s: number): Arr => Ctor.from(Array.from({ length: n }, () => s * rng.normal()));
  const xt = fill(B * P, 0.3);
  const t = Ctor.from(Array.from({ length: B }, (_, i) => (i + 0.5) / B));
  const dy = fill(B * P, 1);
  const u = fill(B * P, 1);
  const aux = opts.auxInput === true ? { aux: fill(B * P, 1) } : {};
  const f = VectorField.create({ ...opts, recompute: true, chunkRows, dtype, seed: 5, device: 'cpu' });
  try {
    const out = Ctor.from(f.forward(xt as Float32Array, t as Float32Array, { training: true, ...aux }));
    f.zeroGrad();
    const inputGrad = new Ctor(B * P);
    f.backward(dy as Float32Array, { inputGrad: inputGrad as Float32Array });
    const grads = Ctor.from(f.getGrads());
    f.backward(dy as Float32Array);
    const twice = Ctor.from(f.getGrads());
    const vjp = Ctor.from(f.inputVjp(u as Float32Array));
    f.step({ lr: 1e-2 });
    f.forward(xt as Float32Array, t as Float32Array, { training: true, ...aux });
    f.zeroGrad();
    f.backward(dy as Float32Array);
    f.step({ lr: 1e-2 });
    return { out, grads, inputGrad, twice, vjp, params: Ctor.from(f.getParams()), held: f.bytesHeld, chunk: f.chunkRows };
  } finally {
    f.dispose();
  }
}

function differing(a: Arr, b: Arr): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) d++;
  return a.length === b.length ? d : Number.POSITIVE_INFINITY;
}
/** max |a − b| / max(max |b|, tiny) */
function relDiff(a: Arr, b: Arr): number {
  let m = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    m = Math.max(m, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return m / Math.max(s, 1e-30);
}

const CASES: [string, Opts, number, number][] = [
  ['sparse 6-5-4-3, 3 layers, 2 heads, 7 pairs per chunk', { arch: [6, 5, 4, 3], D: 8, layers: 3, heads: 2 }, 3, 7],
  ['dense, time input, 4 layers, 5 pairs', { arch: [5, 4, 3], D: 8, layers: 4, graph: 'dense', timeInput: true }, 2, 5],
  ['hybrid, aux input, 1 pair', { arch: [6, 5, 4, 3], D: 12, layers: 2, graph: 'hybrid', auxInput: true }, 2, 1],
  ['virtual node, 2 heads, 3 pairs (the virtual row spans chunks)', { arch: [6, 5, 4, 3], D: 8, layers: 2, heads: 2, graph: 'virtual' }, 2, 3],
  ['one layer, 30 pairs', { arch: [6, 5, 3], D: 8, layers: 1 }, 2, 30],
  ['no layers, 11 pairs', { arch: [6, 5, 3], D: 8, layers: 0 }, 2, 11],
  ['hidden identity, D=32, 50 pairs', { arch: [20, 10, 10], D: 32, layers: 5, hiddenIdentity: true }, 2, 50],
];

describe('chunked recompute mode', () => {
  it.each(CASES)('f64, %s: recompute mode\'s outputs and input gradients bit for bit, parameter gradients to 1e-12', (_name, opts, B, chunk) => {
    const rc = runField(opts, 0, B, 'f64');
    const ck = runField(opts, chunk, B, 'f64');
    expect([rc.chunk, ck.chunk]).toEqual([0, chunk]);
    expect(differing(ck.out, rc.out)).toBe(0);
    expect(differing(ck.inputGrad, rc.inputGrad)).toBe(0);
    expect(differing(ck.vjp, rc.vjp)).toBe(0);
    expect(rc.grads.some((g) => g !== 0)).toBe(true);
    expect(relDiff(ck.grads, rc.grads)).toBeLessThan(1e-12);
    expect(relDiff(ck.twice, rc.twice)).toBeLessThan(1e-12);
    expect(relDiff(ck.twice, rc.grads.map((g) => 2 * g))).toBeLessThan(1e-12);
    expect(relDiff(ck.params, rc.params)).toBeLessThan(1e-10);
  });

  it.each(CASES.slice(0, 3))('f32, %s: the same to f32 rounding; less memory than recompute mode', (_name, opts, B, chunk) => {
    const rc = runField(opts, 0, B, 'f32');
    const ck = runField(opts, chunk, B, 'f32');
    expect(differing(ck.out, rc.out)).toBe(0);
    expect(differing(ck.inputGrad, rc.inputGrad)).toBe(0);
    expect(relDiff(ck.grads, rc.grads)).toBeLessThan(1e-5);
    expect(relDiff(ck.params, rc.params)).toBeLessThan(1e-4);
    expect(ck.held).toBeLessThan(rc.held);
  });

  it('the engine predicts its memory exactly (trainingBytes = bytesHeld after a training forward)', () => {
    for (const [name, opts, B, chunk] of CASES) {
      const f = VectorField.create({ ...opts, chunkRows: chunk, device: 'cpu' });
      try {
        const P = mlp(opts.arch as number[]).numParams;
        const aux = opts.auxInput === true ? { aux: new Float32Array(B * P) } : {};
        f.forward(new Float32Array(B * P), 0.5, { training: true, ...aux });
        const native = (f as unknown as { native: { trainingBytes(r: boolean, c?: number): number } }).native;
        expect(native.trainingBytes(true), name).toBe(f.bytesHeld);
        expect(native.trainingBytes(true, chunk), name).toBe(f.bytesHeld);
      } finally {
        f.dispose();
      }
    }
  });

  it('MLP 784-128-128-10 (D=32, batch 8, thesis sizes): under 3 GB with 65,536-pair chunks (recompute alone: 5.9 GB)', () => {
    const cfg = { D: 32, layers: 5, heads: 1, inputSlots: 784, hiddenSlots: 2, outputSlots: 10, mode: 'sparse' as const, timeRule: 'all' as const, dirEmbed: true, reverseValue: true, inFeatures: 1 as const };
    const e = new (binding().NativeEngine)(cfg, 1, 'cpu', 'f32');
    try {
      e.setGraph(Array.from({ length: 8 }, () => [784, 128, 128, 10]));
      const [dflt, rc, ck] = [e.trainingBytes(false, 0), e.trainingBytes(true, 0), e.trainingBytes(true, 65536)];
      expect(dflt).toBeGreaterThan(15e9);
      expect(rc).toBeGreaterThan(5.5e9);
      expect(ck).toBeLessThan(3e9);
      // Smaller chunks hold less, down to the full-size pair states.
      expect(e.trainingBytes(true, 4096)).toBeLessThan(ck);
      expect(e.trainingBytes(true, 4096)).toBeGreaterThan(2.5e9);
    } finally {
      e.dispose();
    }
  });

  it("'auto' chunks only when recompute mode would still need more than 60 % of the free memory", () => {
    const arch = mlp([20, 10, 10]);
    const B = 2;
    const xt = new Rng(3).fillNormal(new Float32Array(B * arch.numParams), 0, 0.3);
    const probe = (bytes: number) => setFreeMemoryProbe(() => bytes);
    const prev = probe(1e15);
    try {
      const roomy = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu' });
      roomy.forward(xt, 0.5, { training: true });
      expect([roomy.recomputing, roomy.chunkRows]).toEqual([false, 0]);
      const full = roomy.bytesHeld;
      roomy.dispose();
      // Nothing fits in auto's 60 % share: recompute, and the smallest chunk size tried (4,096 pairs). (With the
      // free memory the smallest chunked step's own size; far less is refused, recompute.test.ts.)
      const planner = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu' });
      const smallest = (planner as unknown as { native: { trainingBytes(r: boolean, c?: number): number; setGraph(w: number[][]): void } }).native;
      smallest.setGraph([[...arch.widths], [...arch.widths]]);
      const need4k = smallest.trainingBytes(true, 4096);
      expect(need4k).toBeGreaterThan(0.6 * (need4k + planner.bytesHeld));
      planner.dispose();
      probe(need4k);
      const tight = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu' });
      tight.forward(xt, 0.5, { training: true });
      const M = (tight as unknown as { native: { graphInfo(): { M: number } } }).native.graphInfo().M;
      // This graph has fewer pairs than the smallest chunk: chunks would only add buffers.
      expect(M).toBeLessThan(4096);
      expect(tight.recomputing).toBe(true);
      expect(tight.chunkRows).toBe(4096);
      tight.dispose();
      // Recompute on by request and enough memory for it: no chunks.
      probe(1e15);
      const rc = VectorField.create({ arch, D: 16, layers: 3, device: 'cpu', recompute: true });
      rc.forward(xt, 0.5, { training: true });
      expect([rc.recomputing, rc.chunkRows]).toEqual([true, 0]);
      expect(rc.bytesHeld).toBeLessThan(full);
      rc.dispose();
    } finally {
      setFreeMemoryProbe(prev);
    }
  });

  it('picks the largest power-of-two chunk that fits, below the pair count', () => {
    const arch = mlp([784, 10, 10]);
    const B = 2;
    const xt = new Float32Array(B * arch.numParams);
    const f = VectorField.create({ arch, D: 8, layers: 2, device: 'cpu', recompute: true });
    const native = (f as unknown as { native: { trainingBytes(r: boolean, c?: number): number; setGraph(w: number[][]): void; graphInfo(): { M: number } } }).native;
    native.setGraph([[784, 10, 10], [784, 10, 10]]);
    const M = native.graphInfo().M; // 33,368 pairs
    // Free memory such that 60 % of it (plus what the field holds) lies between the 8,192- and 16,384-pair needs.
    const need8k = native.trainingBytes(true, 8192), need16k = native.trainingBytes(true, 16384);
    expect(need16k).toBeGreaterThan(need8k);
    const prev = setFreeMemoryProbe(() => (need8k + need16k) / 2 / 0.6 - f.bytesHeld);
    try {
      f.forward(xt, 0.5, { training: true });
      expect(M).toBeGreaterThan(16384);
      expect(f.chunkRows).toBe(8192);
    } finally {
      setFreeMemoryProbe(prev);
      f.dispose();
    }
  });

  it('validates the option and keeps it through save/load', () => {
    expect(() => VectorField.create({ arch: [6, 5, 3], device: 'cpu', recompute: false, chunkRows: 64 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/needs recompute mode/) }));
    expect(() => VectorField.create({ arch: [6, 5, 3], device: 'cpu', chunkRows: -1 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => VectorField.create({ arch: [6, 5, 3], device: 'cpu', chunkRows: 1.5 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    const f = VectorField.create({ arch: [6, 5, 3], D: 8, layers: 2, chunkRows: 64, device: 'cpu' });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-ck-'));
    try {
      expect(f.recomputing).toBe(true);
      expect(f.chunkRows).toBe(64);
      const file = path.join(dir, 'f.safetensors');
      f.save(file);
      const g = VectorField.load(file, { device: 'cpu' });
      expect([g.config.recompute, g.config.chunkRows, g.chunkRows]).toEqual([true, 64, 64]);
      g.dispose();
    } finally {
      f.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
