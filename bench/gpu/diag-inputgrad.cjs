// Diagnostic (not a gpu-check section: .cjs is not picked up) for the open parity case of 2026-12-04: one element of
// the sparse MNIST input gradient off on the H200 (seed 1107485112). Two modes:
//   node bench/gpu/diag-inputgrad.cjs [--seeds 1107485112,1,2] [--case 'sparse MNIST']
//       the engine parity case(s) for the given seeds, every failing check in full (run it under compute-sanitizer too);
//   node bench/gpu/diag-inputgrad.cjs --sweep [--seeds 1,…,20]
//       the MNIST case with one setting changed at a time (layers, D, reverse value, direction embedding, one graph),
//       over many seeds: how often the input gradient fails and its worst error relative to the vector's RMS — which
//       component the discrepancy follows.
//   node bench/gpu/diag-inputgrad.cjs --dump [--seeds 1107485112] [--element 13068]
//       the MNIST case's worst input-gradient element traced back: its edges (forward and reverse pair), their
//       feature gradients dEf, and per layer their attention weights, edge pre-activations z and edge states on the
//       device against the CPU, plus how peaked the attention rows holding them are — which stage departs first.
// WSF_DIAG_DEVICE=cpu runs the same against the CPU (a harness check).
const path = require('node:path');
const root = path.resolve(__dirname, '..', '..');
const bp = require(path.join(root, 'dist', 'internal', 'backendParity.js'));
const { binding } = require(path.join(root, 'dist', 'native', 'binding.js'));
const argv = process.argv.slice(2);
const get = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
const b = binding();
const device = process.env.WSF_DIAG_DEVICE ?? 'cuda';

if (argv.includes('--dump')) {
  const { Rng } = require(path.join(root, 'dist', 'util', 'rng.js'));
  const c = bp.ENGINE_CASES.find((x) => x.name.includes('sparse MNIST'));
  for (const seed of get('--seeds', '1107485112').split(',').map(Number)) {
    const run = (dev) => {
      const e = new b.NativeEngine(c.config, seed, dev, 'f32');
      e.setGraph(c.widths);
      const { P, G } = e.graphInfo();
      const rng = new Rng(seed ^ 0x5eed); // the inputs of checkEngineCase
      const xt = rng.fillNormal(new Float32Array(P), 0, 0.5);
      const t = Float32Array.from({ length: G }, () => rng.uniform());
      const target = rng.fillNormal(new Float32Array(P), 0, 0.5);
      const y = new Float32Array(P);
      e.forward(xt, t, y, true);
      e.zeroGrad();
      e.mse(target, true);
      const dx = new Float32Array(P);
      e.backward(target, dx, false);
      const buf = (n) => e.debugBuffer(n);
      return { e, dx, buf };
    };
    const ref = run('cpu');
    const dut = run(device);
    let wi = 0, we = 0;
    for (let i = 0; i < ref.dx.length; i++) {
      const d = Math.abs(dut.dx[i] - ref.dx[i]);
      if (d > we) { we = d; wi = i; }
    }
    if (get('--element') !== undefined) wi = Number(get('--element'));
    console.log(`seed ${seed}: ${get('--element') === undefined ? 'worst' : 'chosen'} input-gradient element ${wi}: ${device} ${dut.dx[wi]} vs cpu ${ref.dx[wi]} (|diff| ${we.toExponential(3)})`);
    const outParam = ref.buf('out_edge_param'), outEdge = ref.buf('out_edge'), rev = ref.buf('edge_rev');
    const row = ref.buf('edge_row'), col = ref.buf('edge_col'), rowPtr = ref.buf('row_ptr');
    const k = outEdge[outParam.indexOf(wi)];
    if (k === undefined) { console.log('  (a bias, not a weight: no pair to trace)'); continue; }
    const pairs = [['forward', k], ['reverse', rev[k]]];
    const show = (name, width, cols = 4) => {
      const a = ref.buf(name), d = dut.buf(name);
      let worstAll = 0;
      for (let i = 0; i < a.length; i++) worstAll = Math.max(worstAll, Math.abs(a[i] - d[i]));
      for (const [label, p] of pairs) {
        let w = 0;
        for (let j = 0; j < width; j++) w = Math.max(w, Math.abs(a[p * width + j] - d[p * width + j]));
        const head = Array.from({ length: Math.min(cols, width) }, (_, j) => `${d[p * width + j].toPrecision(6)}/${a[p * width + j].toPrecision(6)}`).join(' ');
        console.log(`  ${name.padEnd(8)} ${label} pair ${p} (${row[p]}→${col[p]}): max |diff| ${w.toExponential(2)}  [${device}/cpu] ${head}`);
      }
      console.log(`  ${name.padEnd(8)} worst |diff| over all pairs ${worstAll.toExponential(2)}`);
    };
    show('dEf', c.config.inFeatures ?? 1, 2);
    {
      // the output head's ReLU inputs for this weight (a sign flip at |h| ≈ 0 changes the derivative by a whole unit)
      const i = outParam.indexOf(wi), D = c.config.D;
      for (const h of ['he_h1', 'he_h2']) {
        const a = ref.buf(h), d = dut.buf(h);
        let j0 = 0;
        for (let j = 1; j < D; j++) if (Math.abs(a[i * D + j]) < Math.abs(a[i * D + j0])) j0 = j;
        console.log(`  ${h}    head row ${i}: smallest |input| at unit ${j0}: ${device} ${d[i * D + j0]} vs cpu ${a[i * D + j0]}`);
      }
    }
    const H = c.config.D + 1;
    for (let l = 0; l < (c.config.layers ?? 2); l++) {
      show(`alpha:${l}`, c.config.heads ?? 1, 1);
      for (const [label, p] of pairs) {
        const u = row[p], a = ref.buf(`alpha:${l}`);
        let mx = 0;
        for (let q = rowPtr[u]; q < rowPtr[u + 1]; q++) mx = Math.max(mx, a[q]);
        console.log(`    row ${u} of the ${label} pair: ${rowPtr[u + 1] - rowPtr[u]} pairs, largest attention weight ${mx.toPrecision(6)} (cpu)`);
      }
      show(`z:${l}`, c.config.D);
      show(`e_out:${l}`, H);
    }
    ref.e.dispose();
    dut.e.dispose();
  }
} else if (!argv.includes('--sweep')) {
  const seeds = get('--seeds', '1107485112,1,2,3,4,5').split(',').map(Number);
  const name = get('--case', 'sparse MNIST');
  for (const c of bp.ENGINE_CASES.filter((x) => x.name.includes(name))) {
    for (const seed of seeds) {
      const t0 = Date.now();
      const res = bp.checkEngineCase(b, device, c, seed);
      const bad = res.filter((r) => !r.pass);
      console.log(`${c.name} seed ${seed}: ${res.length - bad.length}/${res.length} pass (${Date.now() - t0} ms)`);
      for (const r of bad) console.log(`  FAIL ${r.name}\n    ${r.detail.split('\n').join('\n    ')}`);
    }
  }
} else {
  const seeds = get('--seeds', Array.from({ length: 20 }, (_, i) => i + 1).join(',')).split(',').map(Number);
  const base = bp.ENGINE_CASES.find((x) => x.name.includes('sparse MNIST'));
  const variants = [
    ['base', {}, base.widths],
    ['layers=1', { layers: 1 }, base.widths],
    ['D=16', { D: 16 }, base.widths],
    ['reverseValue=false', { reverseValue: false }, base.widths],
    ['dirEmbed=false', { dirEmbed: false }, base.widths],
    ['one graph', {}, [base.widths[0]]],
  ];
  for (const [label, over, widths] of variants) {
    const c = { ...base, name: `${base.name} ${label}`, config: { ...base.config, ...over }, widths };
    let failed = 0;
    let worst = 0;
    let where = '';
    const t0 = Date.now();
    for (const seed of seeds) {
      const res = bp.checkEngineCase(b, device, c, seed);
      const ig = res.find((r) => r.name.endsWith('input gradient (input-only backward)'));
      if (!ig.pass) failed++;
      const m = /max abs err ([0-9.e+-]+)/.exec(ig.detail);
      const err = m ? Number(m[1]) : NaN;
      if (err > worst) {
        worst = err;
        where = `seed ${seed}: ${ig.detail.split('\n')[0]}`;
      }
    }
    console.log(`${label.padEnd(20)} input gradient fails for ${failed}/${seeds.length} seeds; worst max abs err ${worst.toExponential(2)} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n    ${where}`);
  }
}
