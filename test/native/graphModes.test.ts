// The three weight-graph layouts (native/core/rt_graph.cc), read back through the engine's debug buffers: the hybrid
// graph is the sparse one plus every other ordered pair among the non-input neurons, with the pair counts, the
// direction codes, the weight indices and the reverse index each layout promises.
import { describe, expect, it } from 'vitest';
import { binding } from '../../lib/native/binding.js';
import type { NativeEngineConfig } from '../../lib/native/types.js';

const widths = [3, 4, 5, 2];
const cfg = (mode: NativeEngineConfig['mode']): NativeEngineConfig => ({
  D: 4, layers: 1, heads: 1, inputSlots: 3, hiddenSlots: 2, outputSlots: 2, mode, timeRule: 'all', dirEmbed: true, reverseValue: true, inFeatures: 1,
});

interface Pair { dir: number; param: number }
function pairsOf(mode: NativeEngineConfig['mode']): { M: number; P: number; pairs: Map<string, Pair>; rev: ArrayLike<number>; row: ArrayLike<number>; col: ArrayLike<number> } {
  const e = new (binding().NativeEngine)(cfg(mode), 1, 'cpu', 'f32');
  try {
    e.setGraph([widths]);
    const { M, P } = e.graphInfo();
    const row = e.debugBuffer('edge_row'), col = e.debugBuffer('edge_col'), dir = e.debugBuffer('edge_dir'), param = e.debugBuffer('edge_param');
    const pairs = new Map<string, Pair>();
    for (let k = 0; k < M; k++) {
      const key = `${row[k]},${col[k]}`;
      expect(pairs.has(key), `pair ${key} twice`).toBe(false);
      pairs.set(key, { dir: dir[k]!, param: param[k]! });
    }
    return { M, P, pairs, rev: e.debugBuffer('edge_rev'), row, col };
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

  it('rejects an unknown layout with a typed error', () => {
    expect(() => new (binding().NativeEngine)(cfg('star' as never), 1, 'cpu', 'f32')).toThrow(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/hybrid/) }));
  });
});
