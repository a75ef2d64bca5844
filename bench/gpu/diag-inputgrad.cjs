// Diagnostic (not a gpu-check section: .cjs is not picked up): the sparse MNIST engine parity case on CUDA for
// given seeds, printing every failing check in full. Run under compute-sanitizer to look for out-of-bounds reads.
//   node bench/gpu/diag-inputgrad.cjs [--seeds 1107485112,1,2] [--case 'sparse MNIST']
const path = require('node:path');
const root = path.resolve(__dirname, '..', '..');
const bp = require(path.join(root, 'dist', 'internal', 'backendParity.js'));
const { binding } = require(path.join(root, 'dist', 'native', 'binding.js'));
const argv = process.argv.slice(2);
const get = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
const seeds = get('--seeds', '1107485112,1,2,3,4,5').split(',').map(Number);
const name = get('--case', 'sparse MNIST');
const b = binding();
const device = process.env.WSF_DIAG_DEVICE ?? 'cuda';
for (const c of bp.ENGINE_CASES.filter((x) => x.name.includes(name))) {
  for (const seed of seeds) {
    const t0 = Date.now();
    const res = bp.checkEngineCase(b, device, c, seed);
    const bad = res.filter((r) => !r.pass);
    console.log(`${c.name} seed ${seed}: ${res.length - bad.length}/${res.length} pass (${Date.now() - t0} ms)`);
    for (const r of bad) console.log(`  FAIL ${r.name}\n    ${r.detail.split('\n').join('\n    ')}`);
  }
}
