import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { mlp, VectorField, WsfError, type Architecture } from '../../lib/index.js';
import { Rng } from '../../lib/util/rng.js';
import { readSafetensors, writeSafetensors } from '../../lib/io/safetensors.js';

// Independent permutation of hidden neurons on the flat layout (written here from METHOD.md §1.2, not taken from
// the library): perms[l−1] permutes the neurons of hidden layer l.
function permuteFlat(arch: Architecture, flat: Float32Array, perms: Int32Array[]): Float32Array {
  const out = new Float32Array(flat.length);
  const P = arch.numParams;
  const L = arch.numLayers;
  const w = arch.widths;
  const id = (n: number) => Int32Array.from({ length: n }, (_, i) => i);
  for (let b = 0; b < flat.length / P; b++) {
    for (let l = 1; l <= L; l++) {
      const pin = l - 1 >= 1 ? perms[l - 2]! : id(w[l - 1]!); // permutation of the layer's inputs
      const pout = l < L ? perms[l - 1]! : id(w[l]!);
      for (let i = 0; i < w[l - 1]!; i++) {
        for (let j = 0; j < w[l]!; j++) out[b * P + arch.weightIndex(l, pin[i]!, pout[j]!)] = flat[b * P + arch.weightIndex(l, i, j)]!;
      }
      for (let j = 0; j < w[l]!; j++) out[b * P + arch.biasIndex(l, pout[j]!)] = flat[b * P + arch.biasIndex(l, j)]!;
    }
  }
  return out;
}

describe('VectorField', () => {
  it('has the published parameter counts (METHOD.md §2.5) minus the unused graph-level head', () => {
    // Dense reference configuration, no direction embedding: 145,769 − 11,681 = 134,088 (MNIST D=32);
    // 436,809 − 12,609 = 424,200 (UCI D=64). The sparse default adds a 3×D direction table.
    const mn = VectorField.create({ arch: [784, 10, 10], D: 32, graph: 'dense', semantics: 'reference', device: 'cpu' });
    expect(mn.numParams).toBe(134088);
    const uci = VectorField.create({ arch: [30, 16, 16, 2], D: 64, graph: 'dense', semantics: 'reference', device: 'cpu' });
    expect(uci.numParams).toBe(424200);
    const sp = VectorField.create({ arch: [784, 10, 10], D: 32, device: 'cpu' });
    expect(sp.numParams).toBe(134088 + 3 * 32);
    for (const v of [mn, uci, sp]) v.dispose();
  });

  it('is permutation-equivariant: permuting hidden neurons of the inputs permutes the output', () => {
    const arch = mlp([6, 5, 4, 3]);
    const rng = new Rng(3);
    for (const graph of ['sparse', 'dense', 'hybrid', 'virtual'] as const) {
      const vf = VectorField.create({ arch, D: 8, layers: 2, graph, seed: 1, device: 'cpu' });
      const xt = rng.fillNormal(new Float32Array(2 * arch.numParams));
      const t = Float32Array.from([0.2, 0.7]);
      const perms = [rng.permutation(5), rng.permutation(4)];
      const y = vf.forward(xt, t);
      const yp = vf.forward(permuteFlat(arch, xt, perms), t);
      // f32: attention sums run in a different order after permutation.
      expect(yp).toAllClose(permuteFlat(arch, y, perms), { atol: 1e-5, rtol: 1e-4 });
      vf.dispose();
    }
  });

  it('hiddenIdentity: one positional row per hidden neuron; equal rows reproduce the shared-slot field exactly', () => {
    const arch = mlp([6, 5, 4, 3]);
    const rng = new Rng(8);
    const D = 8;
    const shared = VectorField.create({ arch, D, layers: 2, seed: 2, device: 'cpu' });
    const ident = VectorField.create({ arch, D, layers: 2, seed: 2, device: 'cpu', hiddenIdentity: true });
    // Rows: 6 inputs + (5 + 4 per-neuron hidden rows, padded to the widest layer: 2 × 5) + 3 outputs = 19 vs 11.
    expect(ident.numParams - shared.numParams).toBe((19 - 11) * D);
    expect(ident.config.hiddenWidthSlots).toBe(5);
    // Copy every tensor of the shared field; the per-neuron rows of hidden layer l all get layer l's shared row.
    const ps = shared.getParams();
    const pi = ident.getParams();
    const tabS = new Map(shared.paramTable().map((t) => [t.name, t]));
    for (const t of ident.paramTable()) {
      const src = tabS.get(t.name)!;
      if (t.name !== 'pos_embed') {
        pi.set(ps.subarray(src.offset, src.offset + src.size), t.offset);
        continue;
      }
      const rowOf = (r: number): number => (r < 6 ? r : r < 16 ? 6 + Math.floor((r - 6) / 5) : r - 16 + 8);
      for (let r = 0; r < 19; r++) pi.set(ps.subarray(src.offset + rowOf(r) * D, src.offset + (rowOf(r) + 1) * D), t.offset + r * D);
    }
    ident.setParams(pi);
    const xt = rng.fillNormal(new Float32Array(2 * arch.numParams));
    const t = Float32Array.from([0.3, 0.8]);
    const ys = shared.forward(xt, t);
    expect(ident.forward(xt, t)).toAllClose(ys, { atol: 0, rtol: 0 });
    // With distinct rows the field tells hidden neurons apart: permuting them no longer permutes the output.
    const perms = [rng.permutation(5), rng.permutation(4)];
    const fresh = VectorField.create({ arch, D, layers: 2, seed: 2, device: 'cpu', hiddenIdentity: true });
    const y = fresh.forward(xt, t);
    const yp = fresh.forward(permuteFlat(arch, xt, perms), t);
    let maxDiff = 0;
    const py = permuteFlat(arch, y, perms);
    for (let i = 0; i < y.length; i++) maxDiff = Math.max(maxDiff, Math.abs(yp[i]! - py[i]!));
    expect(maxDiff).toBeGreaterThan(1e-3);
    // A hidden layer wider than the slots is a shape error naming them; save/load keeps the option.
    expect(() => fresh.forward(new Float32Array(mlp([6, 7, 4, 3]).numParams), 0.5, { arch: mlp([6, 7, 4, 3]) })).toThrow(/hidden-neuron slots/);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wsflow-hid-')), 'f.safetensors');
    fresh.save(file);
    const back = VectorField.load(file, { device: 'cpu' });
    expect(back.config.hiddenWidthSlots).toBe(5);
    expect(back.forward(xt, t)).toAllClose(y, { atol: 0, rtol: 0 });
    for (const v of [shared, ident, fresh, back]) v.dispose();
  });

  it('auxInputs: A columns, entry p column c at aux[p·A + c], each read like the value', () => {
    const arch = mlp([5, 4, 3]);
    const rng = new Rng(22);
    const D = 8, A = 3, B = 2;
    const plain = VectorField.create({ arch, D, layers: 2, seed: 4, device: 'cpu' });
    const multi = VectorField.create({ arch, D, layers: 2, seed: 4, device: 'cpu', auxInputs: A });
    expect(multi.config.auxFeatures).toBe(A);
    expect(multi.numParams - plain.numParams).toBe(2 * D * A); // A more columns in edge_in.0 and node_in.0
    const ps = plain.getParams();
    const tabP = new Map(plain.paramTable().map((t) => [t.name, t]));
    const xt = rng.fillNormal(new Float32Array(B * arch.numParams));
    const t = Float32Array.from([0.3, 0.7]);
    const y = plain.forward(xt, t);
    for (let c = 0; c < A; c++) {
      // The value weights moved onto aux column c (all other input weights zero): the plain field's output when
      // column c of aux holds xt and the value column and the other aux columns hold noise.
      const pa = multi.getParams();
      for (const tt of multi.paramTable()) {
        const src = tabP.get(tt.name)!;
        if (tt.name !== 'edge_in.0.weight' && tt.name !== 'node_in.0.weight') {
          pa.set(ps.subarray(src.offset, src.offset + src.size), tt.offset);
          continue;
        }
        for (let o = 0; o < D; o++) {
          for (let k = 0; k <= A; k++) pa[tt.offset + o * (1 + A) + k] = 0;
          pa[tt.offset + o * (1 + A) + 1 + c] = ps[src.offset + o]!;
        }
      }
      multi.setParams(pa);
      const aux = rng.fillNormal(new Float32Array(B * arch.numParams * A));
      for (let p = 0; p < xt.length; p++) aux[p * A + c] = xt[p]!;
      const noise = rng.fillNormal(new Float32Array(xt.length));
      expect(multi.forward(noise, t, { aux }), `column ${c}`).toAllClose(y, { atol: 1e-6, rtol: 1e-5 });
    }
    expect(() => multi.forward(xt, t, { aux: new Float32Array(xt.length) })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => multi.forward(xt, t)).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/3 aux inputs .*3 × the length of `xt`/) }));
    expect(() => VectorField.create({ arch, device: 'cpu', auxInputs: 65 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    expect(() => VectorField.create({ arch, device: 'cpu', auxInput: true, auxInputs: 0 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
    plain.dispose();
    multi.dispose();
  });

  it('auxInput: the extra column is read like the value — moving the value weights onto it reproduces the plain field', () => {
    const arch = mlp([5, 4, 3]);
    const rng = new Rng(21);
    const D = 8;
    for (const timeInput of [false, true]) {
      const plain = VectorField.create({ arch, D, layers: 2, seed: 4, device: 'cpu', timeInput });
      const withAux = VectorField.create({ arch, D, layers: 2, seed: 4, device: 'cpu', timeInput, auxInput: true });
      const dIn = timeInput ? 2 : 1; // the plain field's input columns; the aux field has one more, last
      expect(withAux.numParams - plain.numParams).toBe(2 * D); // one more column in edge_in.0 and node_in.0
      const ps = plain.getParams();
      const tabP = new Map(plain.paramTable().map((t) => [t.name, t]));
      const build = (mode: 'zero-aux' | 'swap'): Float32Array => {
        const pa = withAux.getParams();
        for (const t of withAux.paramTable()) {
          const src = tabP.get(t.name)!;
          if (t.name !== 'edge_in.0.weight' && t.name !== 'node_in.0.weight') {
            pa.set(ps.subarray(src.offset, src.offset + src.size), t.offset);
            continue;
          }
          // [D, din] row-major: copy the plain columns, then zero the aux column or move the value column onto it.
          for (let o = 0; o < D; o++) {
            for (let c = 0; c < dIn; c++) pa[t.offset + o * (dIn + 1) + c] = ps[src.offset + o * dIn + c]!;
            pa[t.offset + o * (dIn + 1) + dIn] = 0;
            if (mode === 'swap') {
              pa[t.offset + o * (dIn + 1) + dIn] = ps[src.offset + o * dIn]!;
              pa[t.offset + o * (dIn + 1)] = 0;
            }
          }
        }
        return pa;
      };
      const xt = rng.fillNormal(new Float32Array(3 * arch.numParams));
      const other = rng.fillNormal(new Float32Array(3 * arch.numParams));
      const t = Float32Array.from([0.2, 0.5, 0.9]);
      const y = plain.forward(xt, t);
      withAux.setParams(build('zero-aux'));
      expect(withAux.forward(xt, t, { aux: other })).toAllClose(y, { atol: 0, rtol: 0 });
      // The value read from aux, with the same pair/bias mapping and reverse pairs (equal up to f32 rounding: the
      // input GEMM now adds 0·value before w·aux; a wrong mapping would differ by O(0.1)).
      withAux.setParams(build('swap'));
      expect(withAux.forward(other, t, { aux: xt })).toAllClose(y, { atol: 1e-6, rtol: 1e-5 });
      // With both columns live, aux changes the output; it is required, typed, and kept by save/load.
      const fresh = VectorField.create({ arch, D, layers: 2, seed: 4, device: 'cpu', timeInput, auxInput: true });
      const a = fresh.forward(xt, t, { aux: other });
      const b2 = fresh.forward(xt, t, { aux: new Float32Array(other.length) });
      expect(Math.max(...a.map((v, i) => Math.abs(v - b2[i]!)))).toBeGreaterThan(1e-4);
      expect(() => fresh.forward(xt, t)).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/pass `aux`/) }));
      expect(() => plain.forward(xt, t, { aux: other })).toThrow(expect.objectContaining({ code: 'ERR_INVALID' }));
      expect(() => fresh.forward(xt, t, { aux: new Float32Array(5) })).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wsflow-aux-')), 'f.safetensors');
      fresh.save(file);
      const back = VectorField.load(file, { device: 'cpu' });
      expect(back.config.auxFeatures).toBe(1);
      expect(back.forward(xt, t, { aux: other })).toAllClose(a, { atol: 0, rtol: 0 });
      for (const v of [plain, withAux, fresh, back]) v.dispose();
    }
  });

  it('runs the same parameters on a wider network (784-10-10 → 784-32-10) and on mixed batches', () => {
    const rng = new Rng(5);
    const a = mlp([784, 10, 10]);
    const wide = mlp([784, 32, 10]);
    const vf = VectorField.create({ arch: a, D: 8, layers: 1, device: 'cpu' });
    const xa = rng.fillNormal(new Float32Array(a.numParams), 0, 0.1);
    const xw = rng.fillNormal(new Float32Array(wide.numParams), 0, 0.1);
    const ya = vf.forward(xa, 0.5);
    const yw = vf.forward(xw, 0.5, { arch: wide });
    expect(yw.length).toBe(wide.numParams);
    expect(yw.every(Number.isFinite)).toBe(true);
    // A mixed batch gives each network the same prediction it gets alone (graphs do not interact).
    const mixed = new Float32Array(a.numParams + wide.numParams);
    mixed.set(xa);
    mixed.set(xw, a.numParams);
    const ym = vf.forward(mixed, Float32Array.from([0.5, 0.5]), { archs: [a, wide] });
    expect(ym.subarray(0, a.numParams)).toAllClose(ya, { atol: 1e-6, rtol: 1e-5 });
    expect(ym.subarray(a.numParams)).toAllClose(yw, { atol: 1e-6, rtol: 1e-5 });
    // A network that does not fit the slots is a shape error, and the field keeps working.
    const deep = mlp([784, 4, 4, 10]);
    expect(() => vf.forward(new Float32Array(deep.numParams), 0.5, { arch: deep })).toThrow(/hidden-layer slots/);
    expect(vf.forward(xa, 0.5)).toAllClose(ya, { atol: 0, rtol: 0 });
    vf.dispose();
  });

  it("gives each network the same prediction bit for bit whatever else is in the batch (samplers chunk batches)", () => {
    // Rows are split over threads at batch-dependent boundaries; every elementwise kernel must give a value the
    // same result wherever it falls (a vector body with a scalar tail once did not: GELU of the tail differed).
    const rng = new Rng(12);
    const wide = mlp([784, 32, 10]);
    for (const D of [8, 16]) {
      const vf = VectorField.create({ arch: wide, D, layers: 2, seed: 3, device: 'cpu' });
      const x = rng.fillNormal(new Float32Array(3 * wide.numParams), 0, 0.1);
      const t = Float32Array.from([0.3, 0.6, 0.9]);
      const y3 = vf.forward(x, t);
      const y2 = vf.forward(x.subarray(0, 2 * wide.numParams), t.subarray(0, 2));
      const y1 = vf.forward(x.subarray(2 * wide.numParams), t.subarray(2));
      expect(y2).toAllClose(y3.subarray(0, 2 * wide.numParams), { atol: 0, rtol: 0 });
      expect(y1).toAllClose(y3.subarray(2 * wide.numParams), { atol: 0, rtol: 0 });
      vf.dispose();
    }
  });

  it('overfits a fixed batch: the MSE loss falls by orders of magnitude', () => {
    const arch = mlp([5, 4, 3]);
    const rng = new Rng(11);
    const vf = VectorField.create({ arch, D: 16, layers: 2, seed: 2, device: 'cpu' });
    const B = 4;
    const xt = rng.fillNormal(new Float32Array(B * arch.numParams));
    const target = rng.fillNormal(new Float32Array(B * arch.numParams), 0, 0.5);
    const t = Float32Array.from([0.1, 0.4, 0.6, 0.9]);
    const first = vf.trainStepMse(xt, t, target, { lr: 3e-3 });
    let last = first;
    for (let i = 0; i < 600; i++) last = vf.trainStepMse(xt, t, target, { lr: 3e-3 });
    expect(vf.stepCount).toBe(601);
    expect(last).toBeLessThan(first / 100);
    vf.dispose();
  });

  it('saves and loads parameters, optimiser state and config; corrupt files are ERR_IO', () => {
    const arch = mlp([4, 3, 2]);
    const rng = new Rng(2);
    const vf = VectorField.create({ arch, D: 8, layers: 2, seed: 9, device: 'cpu' });
    const xt = rng.fillNormal(new Float32Array(3 * arch.numParams));
    const tgt = rng.fillNormal(new Float32Array(3 * arch.numParams));
    vf.trainStepMse(xt, 0.3, tgt);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-vf-'));
    const file = path.join(dir, 'flow.safetensors');
    vf.save(file, { optimizer: true });
    const back = VectorField.load(file, { device: 'cpu' });
    expect(back.stepCount).toBe(1);
    expect(back.config).toEqual(vf.config);
    expect(back.forward(xt, 0.3)).toAllClose(vf.forward(xt, 0.3), { atol: 0, rtol: 0 });
    // Continuing training from the checkpoint gives bit-identical parameters (Adam state restored).
    vf.trainStepMse(xt, 0.3, tgt);
    back.trainStepMse(xt, 0.3, tgt);
    expect(back.getParams()).toAllClose(vf.getParams(), { atol: 0, rtol: 0 });
    // A non-finite parameter or optimiser value (a damaged file, a diverged run) is refused, naming the tensor.
    const f = readSafetensors(file);
    const m = (f.tensors['__adam_v']!.data as Float32Array).slice();
    m[2] = Infinity;
    writeSafetensors(file, { ...f.tensors, __adam_v: { ...f.tensors['__adam_v']!, data: m } }, f.metadata);
    expect(() => VectorField.load(file)).toThrowError(expect.objectContaining({ code: 'ERR_IO', message: expect.stringMatching(/tensor `__adam_v` holds a non-finite value \(Infinity at element 2\)/) }));
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    expect(() => VectorField.load(file)).toThrowError(WsfError);
    vf.dispose();
    back.dispose();
  });

  it('a virtual-node field keeps its graph through save/load and runs other architectures of the same depth', () => {
    const arch = mlp([5, 4, 3]);
    const rng = new Rng(12);
    const vf = VectorField.create({ arch, D: 8, layers: 2, graph: 'virtual', seed: 4, device: 'cpu' });
    const xt = rng.fillNormal(new Float32Array(2 * arch.numParams));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-vf-'));
    const file = path.join(dir, 'virtual.safetensors');
    vf.save(file);
    const back = VectorField.load(file, { device: 'cpu' });
    expect(back.config.mode).toBe('virtual');
    expect(back.forward(xt, 0.4)).toAllClose(vf.forward(xt, 0.4), { atol: 0, rtol: 0 });
    // The virtual node is part of the message passing: the same parameters on the sparse graph give other outputs.
    const sparse = VectorField.create({ arch, D: 8, layers: 2, graph: 'sparse', seed: 4, device: 'cpu' });
    const shared = new Map(sparse.paramTable().map((t) => [t.name, t]));
    const ps = sparse.getParams();
    const pv = vf.getParams();
    for (const t of vf.paramTable()) {
      const u = shared.get(t.name)!;
      ps.set(pv.subarray(t.offset, t.offset + Math.min(t.size, u.size)), u.offset);
    }
    sparse.setParams(ps);
    const a = sparse.forward(xt, 0.4), b = vf.forward(xt, 0.4);
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    expect(diff).toBeGreaterThan(1e-3);
    const wide = mlp([5, 7, 3]);
    expect(back.forward(rng.fillNormal(new Float32Array(wide.numParams)), 0.4, { arch: wide }).length).toBe(wide.numParams);
    for (const v of [vf, back, sparse]) v.dispose();
  });

  it('rejects bad input with typed errors and survives; disposed fields throw ERR_DISPOSED', () => {
    const arch = mlp([4, 3, 2]);
    const vf = VectorField.create({ arch, D: 4, layers: 1, device: 'cpu' });
    const code = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        return (e as WsfError).code;
      }
      return undefined;
    };
    expect(code(() => vf.forward(new Float32Array(arch.numParams + 1), 0.5))).toBe('ERR_SHAPE');
    expect(code(() => vf.forward(new Float32Array(2 * arch.numParams), Float32Array.from([0.5])))).toBe('ERR_SHAPE');
    expect(code(() => vf.backward(new Float32Array(2 * arch.numParams)))).toBe('ERR_INVALID'); // no training forward yet
    expect(code(() => VectorField.create({ arch, D: 6, heads: 4 }))).toBe('ERR_INVALID');
    expect(code(() => VectorField.create({ arch, semantics: 'reference' }))).toBe('ERR_INVALID');
    expect(code(() => VectorField.create({ arch, device: 'tpu' as never }))).toBe('ERR_INVALID');
    expect(vf.forward(new Float32Array(arch.numParams), 0.5).length).toBe(arch.numParams);
    vf.dispose();
    expect(code(() => vf.forward(new Float32Array(arch.numParams), 0.5))).toBe('ERR_DISPOSED');
    vf.dispose(); // idempotent
  });
});
