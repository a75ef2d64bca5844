// Dense mode with the reference time rule reproduces the published relational transformer exactly: the state
// dict of test/fixtures/golden/rt_dense_tiny.json (produced by running the published code in float64) is mapped
// onto our parameter names; the output and every parameter gradient of the MSE loss must match.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { binding } from '../../lib/native/binding.js';
import type { CpuIsaName, NativeEngineConfig } from '../../lib/native/types.js';
import { cpuIsaLevels, withCpuIsa } from '../helpers/native.js';

interface Golden {
  layer_layout: number[];
  d_embed: number;
  n_layers: number;
  batch: number;
  num_params_flat: number;
  xt: number[];
  t: number[];
  output: number[];
  target: number[];
  loss: number;
  state_dict: Record<string, { shape: number[]; values: number[] }>;
  grads: Record<string, number[] | null>;
}

const golden = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'fixtures', 'golden', 'rt_dense_tiny.json'), 'utf8')) as Golden;

// Published name → our name.
function ourName(pub: string): string | undefined {
  const rules: [RegExp, string][] = [
    [/^construct_graph\.proj_weight\.(\d)\.(weight|bias)$/, 'edge_in.$1.$2'],
    [/^construct_graph\.proj_bias\.(\d)\.(weight|bias)$/, 'node_in.$1.$2'],
    [/^construct_graph\.proj_edge_in\.(weight|bias)$/, 'edge_in_proj.$1'],
    [/^construct_graph\.proj_node_in\.(weight|bias)$/, 'node_in_proj.$1'],
    [/^construct_graph\.pos_embed$/, 'pos_embed'],
    [/^layers\.(\d+)\.self_attn\.qkv_node\.weight$/, 'layers.$1.qkv_node.weight'],
    [/^layers\.(\d+)\.self_attn\.qkv_edge\.weight$/, 'layers.$1.qkv_edge.weight'],
    [/^layers\.(\d+)\.self_attn\.proj_out\.(weight|bias)$/, 'layers.$1.attn_out.$2'],
    [/^layers\.(\d+)\.(lin0|node_ln0|node_ln1)\.(weight|bias)$/, 'layers.$1.$2.$3'],
    [/^layers\.(\d+)\.node_mlp\.(\d)\.(weight|bias)$/, 'layers.$1.node_mlp.$2.$3'],
    [/^layers\.(\d+)\.edge_updates\.edge_mlp0\.(lin0_e|lin0_s|lin0_t|lin1)\.(weight|bias)$/, 'layers.$1.edge.$2.$3'],
    [/^layers\.(\d+)\.edge_updates\.edge_mlp1\.(\d)\.(weight|bias)$/, 'layers.$1.edge.mlp.$2.$3'],
    [/^layers\.(\d+)\.edge_updates\.eln0\.(weight|bias)$/, 'layers.$1.edge.ln0.$2'],
    [/^layers\.(\d+)\.edge_updates\.eln1\.(weight|bias)$/, 'layers.$1.edge.ln1.$2'],
    [/^edge_proj_out\.(\d)\.(weight|bias)$/, 'edge_head.$1.$2'],
    [/^node_proj_out\.(\d)\.(weight|bias)$/, 'node_head.$1.$2'],
  ];
  for (const [re, rep] of rules) if (re.test(pub)) return pub.replace(re, rep);
  return undefined; // proj_out.* (the unused graph-level head) has no counterpart
}

function makeEngine(dtype: 'f32' | 'f64') {
  const w = golden.layer_layout;
  const cfg: NativeEngineConfig = {
    D: golden.d_embed,
    layers: golden.n_layers,
    heads: 1,
    inputSlots: w[0]!,
    hiddenSlots: w.length - 2,
    outputSlots: w[w.length - 1]!,
    mode: 'dense',
    timeRule: 'reference',
    dirEmbed: false,
    reverseValue: false,
    inFeatures: 1,
  };
  const e = new (binding().NativeEngine)(cfg, 1, 'cpu', dtype);
  const table = e.paramTable();
  const Arr = dtype === 'f64' ? Float64Array : Float32Array;
  const params = new Arr(e.numParams());
  const mapped = new Set<string>();
  for (const [pub, t] of Object.entries(golden.state_dict)) {
    const name = ourName(pub);
    if (name === undefined) {
      expect(pub.startsWith('proj_out.')).toBe(true);
      continue;
    }
    const info = table.find((p) => p.name === name);
    expect(info, `parameter ${name} (from ${pub})`).toBeDefined();
    expect(info!.shape).toEqual(t.shape);
    params.set(t.values, info!.offset);
    mapped.add(name);
  }
  expect(mapped.size).toBe(table.length); // every one of our parameters came from the state dict
  e.setParams(params);
  e.setGraph(Array.from({ length: golden.batch }, () => [...w]));
  return { e, table, Arr };
}

describe('dense reference mode reproduces the published relational transformer (golden vectors)', () => {
  // f32 at every CPU kernel level this machine has: the portable kernels (arm64, CPUs without AVX2) are held to the
  // same published vectors as the AVX2 / AVX-512 ones.
  const cases: ['f64' | 'f32', CpuIsaName | undefined][] = [['f64', undefined], ...cpuIsaLevels().map((l) => ['f32', l] as ['f32', CpuIsaName])];
  for (const [dtype, level] of cases) {
    // f64: exact up to summation order (1e-10); f32: single-precision rounding through 2 layers (1e-5 relative).
    const tol = dtype === 'f64' ? { atol: 1e-10, rtol: 1e-10 } : { atol: 2e-5, rtol: 2e-4 };
    const run = () => {
      const { e, table, Arr } = makeEngine(dtype);
      const P = golden.num_params_flat * golden.batch;
      const out = new Arr(P);
      e.forward(Arr.from(golden.xt), Arr.from(golden.t), out, true);
      expect(out).toAllClose(golden.output, tol);
      e.zeroGrad();
      const loss = e.mse(Arr.from(golden.target), true);
      expect(loss).toAllClose(golden.loss, tol);
      const grads = new Arr(e.numParams());
      e.getGrads(grads);
      for (const [pub, g] of Object.entries(golden.grads)) {
        const name = ourName(pub);
        if (name === undefined || g === null) continue;
        const info = table.find((p) => p.name === name)!;
        expect(grads.subarray(info.offset, info.offset + info.size), name).toAllClose(g, tol);
      }
      e.dispose();
    };
    it(`${dtype}${level ? ` (${level} kernels)` : ''}: output x̂1, MSE loss and every parameter gradient`, () => {
      if (level === undefined) run();
      else withCpuIsa(level, 2, run);
    });
  }
});
