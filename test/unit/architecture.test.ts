import { describe, expect, it } from 'vitest';
import { checkBatch, mlp, parseWidths, WsfError } from '../../lib/index.js';

describe('Architecture: flat layout of METHOD.md §1.2', () => {
  it('counts nodes, edges and parameters as the thesis tables', () => {
    // METHOD.md §1.1: UCI 64/768/802, MNIST 804/7940/7960, 784-32-10 826/25408/25450.
    const cases: [number[], number, number, number][] = [
      [[30, 16, 16, 2], 64, 768, 802],
      [[784, 10, 10], 804, 7940, 7960],
      [[784, 32, 10], 826, 25408, 25450],
    ];
    for (const [w, N, E, P] of cases) {
      const a = mlp(w);
      expect([a.numNodes, a.numWeights, a.numParams]).toEqual([N, E, P]);
    }
  });

  it('places W_l[j,i] at off_l + i·n_l + j and biases after all weights', () => {
    const a = mlp([3, 4, 2]);
    // off_1 = 0, off_2 = 12; E = 20; biases at 20 (layer 1, 4 of them) and 24 (layer 2).
    expect(a.weightIndex(1, 0, 0)).toBe(0);
    expect(a.weightIndex(1, 2, 3)).toBe(2 * 4 + 3);
    expect(a.weightIndex(2, 3, 1)).toBe(12 + 3 * 2 + 1);
    expect(a.biasIndex(1, 0)).toBe(20);
    expect(a.biasIndex(2, 1)).toBe(25);
    // Every index is hit exactly once.
    const seen = new Int32Array(a.numParams);
    for (let l = 1; l <= a.numLayers; l++) {
      for (let i = 0; i < a.widths[l - 1]!; i++) for (let j = 0; j < a.widths[l]!; j++) seen[a.weightIndex(l, i, j)]!++;
      for (let j = 0; j < a.widths[l]!; j++) seen[a.biasIndex(l, j)]!++;
    }
    expect([...seen].every((c) => c === 1)).toBe(true);
  });

  it('lists one sphere per hidden neuron and one for the whole last layer (METHOD.md §3)', () => {
    const a = mlp([30, 16, 16, 2]);
    // UCI: 16 × S^29, 16 × S^15, 1 × S^31.
    expect(a.numSpheres).toBe(33);
    expect([...a.sphereDim.slice(0, 16)].every((k) => k === 30)).toBe(true);
    expect([...a.sphereDim.slice(16, 32)].every((k) => k === 16)).toBe(true);
    expect(a.sphereDim[32]).toBe(32);
    // Hidden neuron j of layer 1: elements off_1 + i·16 + j.
    expect(a.sphereOffset[5]).toBe(5);
    expect(a.sphereStride[5]).toBe(16);
    expect(a.sphereOffset[32]).toBe(a.weightOffset(3));
    expect(a.sphereStride[32]).toBe(1);
    // The sphere factors and the biases partition the parameters.
    const seen = new Int32Array(a.numParams);
    for (let s = 0; s < a.numSpheres; s++) {
      for (let k = 0; k < a.sphereDim[s]!; k++) seen[a.sphereOffset[s]! + k * a.sphereStride[s]!]!++;
    }
    for (let p = a.numWeights; p < a.numParams; p++) seen[p]!++;
    expect([...seen].every((c) => c === 1)).toBe(true);
  });

  it('handles a network without hidden layers (one sphere: the whole matrix)', () => {
    const a = mlp([5, 3]);
    expect(a.numSpheres).toBe(1);
    expect(a.sphereDim[0]).toBe(15);
  });

  it('parses widths from strings and rejects bad ones with typed errors', () => {
    expect(parseWidths('30-16-16-2')).toEqual([30, 16, 16, 2]);
    expect(mlp('784-10-10').numParams).toBe(7960);
    for (const bad of [[3], [3, 0, 2], [3, 1.5, 2], [3, -1]]) {
      expect(() => mlp(bad)).toThrowError(WsfError);
    }
    expect(() => mlp('30-y-2')).toThrow(/Expected an architecture like/);
    for (const other of ['30,16,16,2', '30x16x16x2', ' 30 16 16 2 ', '30 - 16 - 16 - 2']) expect(parseWidths(other), other).toEqual([30, 16, 16, 2]);
    // An empty width is a typo, not a separator: refused, never read as another architecture.
    for (const bad of ['30--2', '30-16--2', '-30-2', '30-2-', '30,,2', '']) expect(() => parseWidths(bad), bad).toThrow(/Expected an architecture like/);
  });

  it('checks batches: kind, length and finiteness, naming the offending element', () => {
    const a = mlp([3, 4, 2]);
    expect(checkBatch(a, 'x', new Float32Array(52))).toBe(2);
    const e1 = (() => { try { checkBatch(a, 'x', new Float64Array(26)); } catch (e) { return e as WsfError; } })();
    expect(e1?.code).toBe('ERR_DTYPE');
    const e2 = (() => { try { checkBatch(a, 'x', new Float32Array(27)); } catch (e) { return e as WsfError; } })();
    expect(e2?.code).toBe('ERR_SHAPE');
    expect(e2?.message).toMatch(/length B·P \(P = 26/);
    const bad = new Float32Array(52);
    bad[30] = NaN;
    const e3 = (() => { try { checkBatch(a, 'x', bad); } catch (e) { return e as WsfError; } })();
    expect(e3?.code).toBe('ERR_NUMERIC');
    expect(e3?.message).toMatch(/network 1, parameter 4/);
  });
});
