// The four weight-graph layouts (native/core/rt_graph.cc), read back through the engine's debug buffers: the hybrid
// graph is the sparse one plus every other ordered pair among the non-input neurons, the virtual graph the sparse one
// plus a node joined to every neuron, with the pair counts, the direction codes, the weight indices and the reverse
// index each layout promises.
import { describe, expect, it } from 'vitest';
import { binding } from '../../lib/native/binding.js';
import type { NativeEngineConfig } from '../../lib/native/types.js';

const widths = [3, 4, 5, 2];
const cfg = (mode: NativeEngineConfig['mode']): NativeEngineConfig => ({
  D: 4, layers: 1, heads: 1, inputSlots: 3, hiddenSlots: 2, outputSlots: 2, mode, timeRule: 'all', dirEmbed: true, reverseValue: true, inFeatures: 1,
});

interface Pair { dir: number; param: number }
function pairsOf(mode: NativeEngineConfig['mode'], batch: number[][] = [widths]): { M: number; N: number; P: number; pairs: Map<string, Pair>; rev: ArrayLike<number>; row: ArrayLike<number>; col: ArrayLike<number>; outNodeParam: ArrayLike<number> } {
  const e = new (binding().NativeEngine)(cfg(mode), 1, 'cpu', 'f32');
  try {
    e.setGraph(batch);
    const { M, N, P } = e.graphInfo();
    const row = e.debugBuffer('edge_row'), col = e.debugBuffer('edge_col'), dir = e.debugBuffer('edge_dir'), param = e.debugBuffer('edge_param');
    const pairs = new Map<string, Pair>();
    for (let k = 0; k < M; k++) {
      const key = `${row[k]},${col[k]}`;
      expect(pairs.has(key), `pair ${key} twice`).toBe(false);
      pairs.set(key, { dir: dir[k]!, param: param[k]! });
    }
    return { M, N, P, pairs, rev: e.debugBuffer('edge_rev'), row, col, outNodeParam: e.debugBuffer('out_node_param') };
  } finally {
    e.dispose();
  }
}

describe('weight-graph layouts', () => {
  it('hybrid = sparse pairs + all other pairs among non-input neurons (dir 3, no value)', () => {
    const sparse = pairsOf('sparse');
    const hybrid = pairsOf('hybrid');
    const dense = pairsOf('dense');
    const N = widths.reduce((a, b) => a + b, 0);
    const upper = N - widths[0]!;
    let weights = 0;
    for (let l = 1; l < widths.length; l++) weights += widths[l - 1]! * widths[l]!;
    expect(sparse.M).toBe(2 * weights + N);
    expect(dense.M).toBe(N * N);
    expect(hybrid.M).toBe(upper * upper + 2 * widths[0]! * widths[1]! + widths[0]!);
    expect(hybrid.P).toBe(sparse.P);
    // Every sparse pair is in the hybrid graph with the same direction and weight index.
    for (const [key, p] of sparse.pairs) expect(hybrid.pairs.get(key), key).toEqual(p);
    // The rest are exactly the non-input pairs the sparse graph lacks, as the dense graph labels them (dir 3).
    for (const [key, p] of hybrid.pairs) {
      if (sparse.pairs.has(key)) continue;
      const [u, v] = key.split(',').map(Number) as [number, number];
      expect(u >= widths[0]! && v >= widths[0]!, key).toBe(true);
      expect(p).toEqual({ dir: 3, param: -1 });
      expect(dense.pairs.get(key)).toEqual(p);
    }
    for (let u = widths[0]!; u < N; u++) for (let v = widths[0]!; v < N; v++) expect(hybrid.pairs.has(`${u},${v}`)).toBe(true);
    // The reverse index is an involution that swaps the endpoints.
    for (let k = 0; k < hybrid.M; k++) {
      const r = hybrid.rev[k]!;
      expect(hybrid.rev[r]).toBe(k);
      expect([hybrid.row[r], hybrid.col[r]]).toEqual([hybrid.col[k], hybrid.row[k]]);
    }
  });

  it('virtual = sparse pairs + one node per network joined to each of its neurons both ways and to itself', () => {
    const other = [2, 3, 2];
    const sparse = pairsOf('sparse', [widths, other]);
    const virt = pairsOf('virtual', [widths, other]);
    const n0 = widths.reduce((a, b) => a + b, 0), n1 = other.reduce((a, b) => a + b, 0);
    expect(virt.N).toBe(sparse.N + 2);
    expect(virt.M).toBe(sparse.M + 2 * n0 + 1 + 2 * n1 + 1);
    expect(virt.P).toBe(sparse.P);
    // Node numbering: network 0's neurons, its virtual node, network 1's neurons, its virtual node.
    const shift = (u: number): number => (u < n0 ? u : u + 1);
    for (const [key, p] of sparse.pairs) {
      const [u, v] = key.split(',').map(Number) as [number, number];
      expect(virt.pairs.get(`${shift(u)},${shift(v)}`), key).toEqual(p);
    }
    const hubs = [{ hub: n0, first: 0, count: n0 }, { hub: n0 + 1 + n1, first: n0 + 1, count: n1 }];
    for (const { hub, first, count } of hubs) {
      expect(virt.pairs.get(`${hub},${hub}`)).toEqual({ dir: 2, param: -1 });
      for (let u = first; u < first + count; u++) {
        expect(virt.pairs.get(`${u},${hub}`), `${u}→hub`).toEqual({ dir: 3, param: -1 });
        expect(virt.pairs.get(`${hub},${u}`), `hub→${u}`).toEqual({ dir: 4, param: -1 });
      }
    }
    // No pair joins one network's virtual node to another network's neurons.
    let hubPairs = 0;
    for (let k = 0; k < virt.M; k++) if (virt.row[k] === n0 || virt.col[k] === n0) hubPairs++;
    expect(hubPairs).toBe(2 * n0 + 1);
    for (let k = 0; k < virt.M; k++) {
      const r = virt.rev[k]!;
      expect(virt.rev[r]).toBe(k);
      expect([virt.row[r], virt.col[r]]).toEqual([virt.col[k], virt.row[k]]);
    }
    // The outputs are the same biases in the same order (the virtual nodes have none).
    expect(Array.from(virt.outNodeParam)).toEqual(Array.from(sparse.outNodeParam));
  });

  it('a virtual-node model has one more positional row and two more direction rows than a sparse one', () => {
    const count = (mode: NativeEngineConfig['mode']): number => {
      const e = new (binding().NativeEngine)({ ...cfg(mode), D: 8 }, 1, 'cpu', 'f32');
      try {
        return e.numParams();
      } finally {
        e.dispose();
      }
    };
    expect(count('virtual') - count('sparse')).toBe((1 + 2) * 8);
  });

  it('rejects an unknown layout with a typed error', () => {
    expect(() => new (binding().NativeEngine)(cfg('star' as never), 1, 'cpu', 'f32')).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/virtual/) }));
  });
});
