// GPU-check section "geometry" (run by bench/gpu-check.mjs): CUDA vs CPU parity for every geometry op, forward
// and backward, then the geometry benchmark (bench/geometry.mjs) on CUDA (host and device-resident paths) and on
// this machine's CPU for the ratios.
//
// Parity (ggml test-backend-ops style): for each architecture (odd sizes, a single hidden neuron, no hidden
// layer, K = 784), kind (geometric, euclidean) and semantics, every op runs on the CPU and on the device under
// test into outputs pre-filled with a NaN sentinel between guard regions; a case passes when both outputs are
// fully written, guards are intact, NaN/Inf positions agree and |dut − cpu| ≤ atol + rtol·|cpu| elementwise with
// NMSE ≤ 1e-7. Tolerances (HOUSE_STYLE reductions): atol 1e-5, rtol 1e-4; gradients (scaled by w_s/B ≈ 1e-3)
// atol 1e-7, rtol 1e-4. Backward passes are also compared with the f64 CPU reference cast to f32.
// Inputs plant the special branches: an antipodal pair, a zero factor, a small-angle pair.
import { benchGeometry, CONFIGS } from '../geometry.mjs';

const SENTINEL = 0x7fc0dead;
const GUARD = 16;
const TOL = { atol: 1e-5, rtol: 1e-4 };
const TOL_GRAD = { atol: 1e-7, rtol: 1e-4 };
const NMSE_MAX = 1e-7;

function guarded(n) {
  const buf = new Float32Array(n + 2 * GUARD);
  const bits = new Uint32Array(buf.buffer);
  bits.fill(SENTINEL);
  return {
    view: buf.subarray(GUARD, GUARD + n),
    unwritten() {
      let c = 0;
      for (let i = 0; i < n; i++) if (bits[GUARD + i] === SENTINEL) c++;
      return c;
    },
    guardsBroken() {
      let c = 0;
      for (let i = 0; i < GUARD; i++) c += (bits[i] !== SENTINEL) + (bits[GUARD + n + i] !== SENTINEL);
      return c;
    },
  };
}

/** Elementwise comparison with NaN/Inf agreement first. */
function compare(a, e, { atol, rtol }) {
  let bad = 0;
  let nonFinite = 0;
  let maxAbs = 0;
  let maxRel = 0;
  let se = 0;
  let ss = 0;
  for (let i = 0; i < e.length; i++) {
    const x = a[i];
    const y = e[i];
    if (!Number.isFinite(x) || !Number.isFinite(y)) {
      if (!((Number.isNaN(x) && Number.isNaN(y)) || x === y)) nonFinite++;
      continue;
    }
    const d = Math.abs(x - y);
    maxAbs = Math.max(maxAbs, d);
    if (y !== 0) maxRel = Math.max(maxRel, d / Math.abs(y));
    se += d * d;
    ss += y * y;
    if (d > atol + rtol * Math.abs(y)) bad++;
  }
  const nmse = ss > 0 ? se / ss : se;
  return { bad, nonFinite, maxAbs, maxRel, nmse };
}

function makeRng(seed) {
  // a tiny LCG + Box–Muller: deterministic test inputs without importing internals of dist/
  let s = BigInt(seed) * 0x9e3779b97f4a7c15n + 1n;
  const uni = () => {
    s = (s * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    return (Number(s >> 11n) + 0.5) / 9007199254740992;
  };
  const normal = () => Math.sqrt(-2 * Math.log(uni())) * Math.cos(2 * Math.PI * uni());
  return { uni, fill: (a, std = 1) => a.map(() => std * normal()) };
}

/**
 * Inputs with the special branches planted (geometric kind, B ≥ 3). In reference semantics an exactly antipodal
 * pair is ill-conditioned by design (geoopt's logmap scales the rounding noise w ≈ 1e-7 by θ/max(‖w‖, 1e-4)), so
 * there the pair is near-antipodal instead, at π − 0.3 (closer to π, geoopt's gradient −2θ/√(1−c²)·y
 * amplifies the float32 rounding of ⟨x,y⟩ by ≈ 1/sin²θ).
 */
export function inputs(ctx, arch, kind, B, seed, mode = 'accurate') {
  const P = arch.numParams;
  const rng = makeRng(seed);
  const plan = ctx.createPlan(arch, kind);
  const proj = (v) => {
    const o = new Float32Array(v.length);
    plan.project(o, v, 'cpu', 'accurate');
    return o;
  };
  const x = proj(rng.fill(new Float32Array(B * P)));
  const y = proj(rng.fill(new Float32Array(B * P)));
  const u = new Float32Array(B * P);
  plan.tangentProject(u, x, rng.fill(new Float32Array(B * P), 0.5), 'cpu', 'accurate');
  const raw = rng.fill(new Float32Array(B * P), 0.3);
  const t = new Float32Array(B).map(() => rng.uni());
  if (kind === 'geometric' && B >= 3) {
    const S = arch.numSpheres;
    const idx = (s) => Array.from({ length: arch.sphereDim[s] }, (_, i) => arch.sphereOffset[s] + i * arch.sphereStride[s]);
    if (mode === 'accurate') {
      for (const i of idx(0)) y[i] = -x[i]; // network 0: antipodal
    } else {
      // network 0: near-antipodal, Exp_x(v) with a tangent v of length π − 0.3
      const v = new Float32Array(B * P);
      plan.tangentProject(v, x, rng.fill(new Float32Array(B * P)), 'cpu', 'accurate');
      let n2 = 0;
      for (const i of idx(0)) n2 += v[i] * v[i];
      const k = (Math.PI - 0.3) / Math.sqrt(n2);
      for (let i = 0; i < v.length; i++) v[i] *= k;
      const far = new Float32Array(B * P);
      plan.expmap(far, x, v, 'cpu', 'accurate');
      for (const i of idx(0)) y[i] = far[i];
    }
    for (const i of idx(S - 1)) {
      raw[P + i] = 0; // network 1: zero factor
      x[P + i] = 0;
    }
    const s2 = Math.min(1, S - 1); // network 2: small angle (1.5e-3 rad, far below the reference clamp 0.0141)
    let n2 = 0;
    for (const i of idx(s2)) n2 += u[2 * P + i] * u[2 * P + i];
    const tmp = new Float32Array(B * P);
    const step = u.map((v) => (v * 1.5e-3) / Math.sqrt(n2));
    plan.expmap(tmp, x, step, 'cpu', 'accurate');
    for (const i of idx(s2)) y[2 * P + i] = tmp[2 * P + i];
  }
  return { plan, x, y, u, raw, t, B, P };
}

/** One parity case: op(outs, device) on CPU and on the device under test. */
function parityCase(ctx, name, lengths, op, tols) {
  const cpu = lengths.map(guarded);
  const dut = lengths.map(guarded);
  try {
    op(
      cpu.map((g) => g.view),
      'cpu',
    );
    op(
      dut.map((g) => g.view),
      ctx.device,
    );
  } catch (e) {
    return { name, pass: false, note: `threw: ${e?.message ?? e}` };
  }
  let pass = true;
  const agg = { maxAbs: 0, maxRel: 0, nmse: 0 };
  const notes = [];
  lengths.forEach((_, k) => {
    const tol = tols[k] ?? TOL;
    const c = compare(dut[k].view, cpu[k].view, tol);
    const unwritten = cpu[k].unwritten() + dut[k].unwritten();
    const guards = cpu[k].guardsBroken() + dut[k].guardsBroken();
    agg.maxAbs = Math.max(agg.maxAbs, c.maxAbs);
    agg.maxRel = Math.max(agg.maxRel, c.maxRel);
    agg.nmse = Math.max(agg.nmse, c.nmse);
    if (unwritten > 0) notes.push(`output ${k}: ${unwritten} unwritten`);
    if (guards > 0) notes.push(`output ${k}: ${guards} guard elements overwritten`);
    if (c.nonFinite > 0) notes.push(`output ${k}: ${c.nonFinite} NaN/Inf mismatches`);
    if (c.bad > 0) notes.push(`output ${k}: ${c.bad} elements out of tolerance`);
    if (c.nmse > NMSE_MAX) notes.push(`output ${k}: NMSE ${c.nmse.toExponential(2)} > ${NMSE_MAX}`);
    pass = pass && unwritten === 0 && guards === 0 && c.nonFinite === 0 && c.bad === 0 && c.nmse <= NMSE_MAX;
  });
  return { name, pass, ...agg, ...(notes.length > 0 ? { note: notes.join('; ') } : {}) };
}

function vsF64(ctx, name, dut, f64, tol) {
  const c = compare(dut, Float32Array.from(f64), tol);
  const pass = c.bad === 0 && c.nonFinite === 0;
  return { name, pass, maxAbs: c.maxAbs, maxRel: c.maxRel, nmse: c.nmse, ...(pass ? {} : { note: `${c.bad} out of tolerance, ${c.nonFinite} NaN/Inf mismatches` }) };
}

const ARCHS = [
  [7, 5, 3],
  [30, 16, 16, 2],
  [784, 10, 10],
  [4, 1, 3],
  [3, 2],
];

export async function run(ctx) {
  const { mlp } = ctx.dist;
  const parity = [];
  for (const widths of ARCHS) {
    const arch = mlp(widths);
    for (const kind of ['geometric', 'euclidean']) {
      for (const mode of ['accurate', 'reference']) {
        const B = 5;
        const d = inputs(ctx, arch, kind, B, widths.length * 100 + arch.numParams, mode);
        const { plan, x, y, u, raw, t, P } = d;
        const n = B * P;
        const F = plan.numFactors;
        const pre = `geometry/${arch.key}/${kind}/${mode}`;
        parity.push(parityCase(ctx, `${pre}/project`, [n], ([o], dev) => plan.project(o, raw, dev, mode), [TOL]));
        parity.push(parityCase(ctx, `${pre}/tangentProject`, [n], ([o], dev) => plan.tangentProject(o, x, raw, dev, mode), [TOL]));
        parity.push(parityCase(ctx, `${pre}/expmap`, [n], ([o], dev) => plan.expmap(o, x, u, dev, mode), [TOL]));
        parity.push(parityCase(ctx, `${pre}/logmap`, [n], ([o], dev) => plan.logmap(o, x, y, dev, mode), [TOL]));
        parity.push(parityCase(ctx, `${pre}/dist`, [B * F], ([o], dev) => plan.dist(o, x, y, dev, mode), [TOL]));
        parity.push(parityCase(ctx, `${pre}/interpolate`, [n], ([o], dev) => plan.interpolate(o, x, y, t, dev, mode), [TOL]));
        parity.push(parityCase(ctx, `${pre}/eulerStep`, [n], ([o], dev) => plan.eulerStep(o, x, raw, 0.125, dev, mode), [TOL]));
        parity.push(parityCase(ctx, `${pre}/loss`, [B, n], ([per, g], dev) => void plan.loss(per, g, raw, y, dev, mode), [TOL, TOL_GRAD]));
        parity.push(parityCase(ctx, `${pre}/loss(on-manifold)`, [B, n], ([per, g], dev) => void plan.loss(per, g, x, y, dev, mode), [TOL, TOL_GRAD]));
        parity.push(parityCase(ctx, `${pre}/lossNoGrad`, [B], ([per], dev) => void plan.loss(per, null, raw, y, dev, mode), [TOL]));
        // batch loss scalar
        const lc = plan.loss(new Float32Array(B), null, raw, y, 'cpu', mode);
        const ld = plan.loss(new Float32Array(B), null, raw, y, ctx.device, mode);
        parity.push({ name: `${pre}/lossScalar`, pass: Math.abs(ld - lc) <= TOL.atol + TOL.rtol * Math.abs(lc), maxAbs: Math.abs(ld - lc), maxRel: lc !== 0 ? Math.abs(ld - lc) / Math.abs(lc) : 0, nmse: 0 });
        const g = new Float32Array(n);
        plan.loss(new Float32Array(B), g, raw, y, ctx.device, mode);
        const g64 = new Float64Array(n);
        plan.lossF64(new Float64Array(B), g64, Float64Array.from(raw), Float64Array.from(y), mode);
        parity.push(vsF64(ctx, `${pre}/lossGrad-vs-f64`, g, g64, TOL_GRAD));
        if (mode === 'accurate') {
          for (const c of [1, Math.SQRT2]) {
            parity.push(parityCase(ctx, `${pre}/canonicalize(c=${c.toFixed(3)})`, [n], ([o], dev) => plan.canonicalize(o, raw, c, dev), [TOL]));
            parity.push(parityCase(ctx, `${pre}/canonicalizeBackward(c=${c.toFixed(3)})`, [n], ([o], dev) => plan.canonicalizeBackward(o, raw, u, c, dev), [TOL]));
            const dx = new Float32Array(n);
            plan.canonicalizeBackward(dx, raw, u, c, ctx.device);
            const dx64 = new Float64Array(n);
            plan.canonicalizeBackwardF64(dx64, Float64Array.from(raw), Float64Array.from(u), c);
            parity.push(vsF64(ctx, `${pre}/canonicalizeBackward-vs-f64(c=${c.toFixed(3)})`, dx, dx64, TOL));
          }
          // in place: out = x
          const expected = new Float32Array(n);
          plan.expmap(expected, x, u, 'cpu', mode);
          const buf = x.slice();
          plan.expmap(buf, buf, u, ctx.device, mode);
          const c = compare(buf, expected, TOL);
          parity.push({ name: `${pre}/expmap(in-place)`, pass: c.bad === 0 && c.nonFinite === 0, maxAbs: c.maxAbs, maxRel: c.maxRel, nmse: c.nmse });
        }
        plan.dispose();
      }
    }
    ctx.log(`parity ${arch.key}: ${parity.filter((p) => p.name.includes(`/${arch.key}/`)).length} cases`);
  }
  // large batches exercise the grid sizes
  for (const [widths, B] of [
    [[30, 16, 16, 2], 4096],
    [[784, 10, 10], 1024],
  ]) {
    const arch = mlp(widths);
    const d = inputs(ctx, arch, 'geometric', B, 7);
    const n = B * d.P;
    const pre = `geometry/${arch.key}/B=${B}`;
    parity.push(parityCase(ctx, `${pre}/interpolate`, [n], ([o], dev) => d.plan.interpolate(o, d.x, d.y, d.t, dev, 'accurate'), [TOL]));
    parity.push(parityCase(ctx, `${pre}/loss`, [B, n], ([per, g], dev) => void d.plan.loss(per, g, d.raw, d.y, dev, 'accurate'), [TOL, TOL_GRAD]));
    parity.push(parityCase(ctx, `${pre}/canonicalizeBackward`, [n], ([o], dev) => d.plan.canonicalizeBackward(o, d.raw, d.u, 1, dev), [TOL]));
    d.plan.dispose();
  }
  const failed = parity.filter((p) => !p.pass).length;
  ctx.log(`parity: ${parity.length} cases, ${failed} failed`);

  // benchmarks at the agreed sizes (smaller batches in a CPU selftest, which only checks the harness)
  const configs = ctx.selftest ? CONFIGS.map((c) => ({ ...c, B: Math.max(8, c.B / 64) })) : CONFIGS;
  const minSeconds = ctx.selftest ? Math.min(ctx.minSeconds, 0.05) : ctx.minSeconds;
  const label = (r) => ({ name: `${r.arch} B=${r.B} ${r.op} ${r.kind}/${r.semantics}`, ...r });
  const bench = benchGeometry({ device: ctx.device, configs, minSeconds, resident: true, log: ctx.log }).map(label);
  if (ctx.cpuBench && ctx.device !== 'cpu') bench.push(...benchGeometry({ device: 'cpu', configs, minSeconds, resident: false, log: ctx.log }).map(label));
  const { disposeSharedPlans } = await import('../../dist/geometry/plan.js');
  disposeSharedPlans(); // the standalone canonicalize's cached tables, so the section ends with no live allocations
  return { parity, bench };
}
