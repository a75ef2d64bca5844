// Does the flow bring its start points closer to the zoo's distribution? Accuracy cannot say: a prior whose draws
// score higher than the zoo's checkpoints (a mixture around each run's mean network) can only lose accuracy while the
// flow makes them more zoo-like. This script measures the distance between distributions directly, in the flow's
// space (canonical form for the Normalized/Geometric flows), against a held-out set R of zoo networks:
// - MMD² (unbiased, Gaussian kernels of width h at 1× and 2× the mean nearest-neighbour distance within R — the local
//   scale, which resolves the modes of a multi-run zoo — and at the median pairwise distance of R, the usual
//   heuristic, which on such a zoo sees each run as one point) of the prior draws x0, of
//   the flow's samples x1 from those same x0, and of another disjoint set of zoo networks (the floor: ~0);
// - precision-like: each set's mean distance to its nearest network of R; coverage-like: R's mean distance to its
//   nearest member of the set (the zoo-vs-zoo values are the reference for both).
// A flow that adds something lowers MMD² from x0 to x1.
//
//   node bench/quality/distribution-match.mjs --zoo <zoo.safetensors> --flow <flow.safetensors> [--flow ...]
//        [--samples 256] [--steps 32] [--out results/trials/<name>.json]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alignedZoo, deviceLabel, gitCommit, requireDist, zooFlowArgs } from './common.mjs';

const w = requireDist('index.js');
const { FlowMatcher } = requireDist('flow/FlowMatcher.js');
const { get, zooFile, flows, n, steps } = zooFlowArgs(256);
const zoo = w.readZoo(zooFile);
const arch = zoo.arch, P = arch.numParams;
if (zoo.n < 2 * n) { console.error(`the zoo has ${zoo.n} networks; --samples ${n} needs at least ${2 * n} (two disjoint zoo sets)`); process.exit(2); }
const al = alignedZoo(w, zoo);

// Two disjoint random zoo sets: R (the reference) and Z (the zoo-vs-zoo floor).
const perm = new w.Rng(3).permutation(zoo.n);
const rows = (idx) => { const o = new Float32Array(idx.length * P); idx.forEach((k, j) => o.set(al.aligned.subarray(k * P, (k + 1) * P), j * P)); return o; };
const zooR = rows(Array.from(perm.subarray(0, n)));
const zooZ = rows(Array.from(perm.subarray(n, 2 * n)));

/** Squared distances between the rows of a (na × P) and b (nb × P), f64. */
function sqDist(a, b) {
  const na = a.length / P, nb = b.length / P;
  const d = new Float64Array(na * nb);
  for (let i = 0; i < na; i++) {
    for (let j = 0; j < nb; j++) {
      let s = 0;
      for (let p = 0, oi = i * P, oj = j * P; p < P; p++) { const t = a[oi + p] - b[oj + p]; s += t * t; }
      d[i * nb + j] = s;
    }
  }
  return d;
}

/** Unbiased MMD² between X and Y from their squared-distance matrices, Gaussian kernel exp(−d² / (2h²)). */
function mmd2(dxx, dyy, dxy, nx, ny, h) {
  const k = (d2) => Math.exp(-d2 / (2 * h * h));
  let sxx = 0, syy = 0, sxy = 0;
  for (let i = 0; i < nx; i++) for (let j = 0; j < nx; j++) if (i !== j) sxx += k(dxx[i * nx + j]);
  for (let i = 0; i < ny; i++) for (let j = 0; j < ny; j++) if (i !== j) syy += k(dyy[i * ny + j]);
  for (let i = 0; i < nx * ny; i++) sxy += k(dxy[i]);
  return sxx / (nx * (nx - 1)) + syy / (ny * (ny - 1)) - (2 * sxy) / (nx * ny);
}

const rowMinMean = (d, na, nb) => { let s = 0; for (let i = 0; i < na; i++) { let m = Infinity; for (let j = 0; j < nb; j++) m = Math.min(m, d[i * nb + j]); s += Math.sqrt(m); } return s / na; };
const colMinMean = (d, na, nb) => { let s = 0; for (let j = 0; j < nb; j++) { let m = Infinity; for (let i = 0; i < na; i++) m = Math.min(m, d[i * nb + j]); s += Math.sqrt(m); } return s / nb; };

const results = [];
for (const file of flows) {
  const fm = FlowMatcher.load(file, { device: 'cpu' });
  const canonical = fm.options.geometry !== 'euclidean';
  const space = (x) => (canonical ? w.canonicalize(arch, x) : x);
  const R = space(zooR), Z = space(zooZ);
  const dRR = sqDist(R, R);
  const off = []; for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) off.push(Math.sqrt(dRR[i * n + j]));
  off.sort((a, b) => a - b);
  const median = off[Math.floor(off.length / 2)];
  let nnR = 0;
  for (let i = 0; i < n; i++) { let m = Infinity; for (let j = 0; j < n; j++) if (j !== i) m = Math.min(m, dRR[i * n + j]); nnR += Math.sqrt(m) / n; }
  const hs = [nnR, 2 * nnR, median];
  const hNames = ['nn', '2nn', 'median'];
  const x0 = fm.drawPriorSamples(n, 7);
  const x1 = fm.sample({ n, steps, x0 });
  const sets = { zoo: Z, prior: space(x0), flow: space(x1) };
  const row = { flow: path.basename(file), geometry: fm.options.geometry, prior: fm.options.prior, medianDistance: median, nnDistance: nnR, sets: {} };
  for (const [name, X] of Object.entries(sets)) {
    const dXX = sqDist(X, X), dXR = sqDist(X, R);
    row.sets[name] = {
      mmd2: Object.fromEntries(hs.map((h, i) => [hNames[i], mmd2(dXX, dRR, dXR, n, n, h)])),
      toNearestZoo: rowMinMean(dXR, n, n),
      zooToNearest: colMinMean(dXR, n, n),
    };
  }
  results.push(row);
  const f = (s) => `MMD² ${Object.values(s.mmd2).map((v) => v.toExponential(2)).join(' / ')} | →R ${s.toNearestZoo.toFixed(3)} | R→ ${s.zooToNearest.toFixed(3)}`;
  console.log(`${row.flow} (${row.geometry}, prior ${fm.options.prior.kind}; kernels h = nearest-neighbour distance ${nnR.toFixed(3)} / 2× / median ${median.toFixed(3)})`);
  for (const [name, s] of Object.entries(row.sets)) console.log(`  ${name.padEnd(6)} ${f(s)}`);
  fm.dispose();
}
const out = get('--out');
if (out) {
  fs.writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), commit: gitCommit(), device: deviceLabel('cpu'), zoo: path.basename(zooFile), alignedBy: al.by, networks: zoo.n, samples: n, steps, results }, null, 1)}\n`);
  console.log(`wrote ${out}`);
}
