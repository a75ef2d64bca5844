// Diagnostic (not a gpu-check section: .cjs is not picked up) for the open parity case of 2026-12-04: one element of
// the sparse MNIST input gradient off on the H200 (seed 1107485112). Two modes:
//   node bench/gpu/diag-inputgrad.cjs [--seeds 1107485112,1,2] [--case 'sparse MNIST']
//       the engine parity case(s) for the given seeds, every failing check in full (run it under compute-sanitizer too);
//   node bench/gpu/diag-inputgrad.cjs --sweep [--seeds 1,…,20]
//       the MNIST case with one setting changed at a time (layers, D, reverse value, direction embedding, one graph),
//       over many seeds: how often the input gradient fails and its worst error relative to the vector's RMS — which
//       component the discrepancy follows.
// WSF_DIAG_DEVICE=cpu runs the same against the CPU (a harness check).
const path = require('node:path');
const root = path.resolve(__dirname, '..', '..');
const bp = require(path.join(root, 'dist', 'internal', 'backendParity.js'));
const { binding } = require(path.join(root, 'dist', 'native', 'binding.js'));
const argv = process.argv.slice(2);
const get = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
const b = binding();
const device = process.env.WSF_DIAG_DEVICE ?? 'cuda';

if (!argv.includes('--sweep')) {
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
