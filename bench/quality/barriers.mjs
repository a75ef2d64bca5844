// Midpoint loss barriers of a real zoo before and after alignment (METHOD.md §8.4; the thesis reports 0.244 ± 0.009
// → 0.070 ± 0.001 over 250 WDBC Adam networks). Uses the last checkpoint of every run; writes
// results/barriers/<task>.json.
//
//   node bench/quality/barriers.mjs --zoo <zoo.safetensors> [--pairs 256] [--split test]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const w = require(path.join(root, 'dist', 'index.js'));
const argv = process.argv.slice(2);
const get = (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
const zooFile = get('--zoo');
if (!zooFile) { console.error('usage: --zoo <file> [--pairs N] [--split test|val|train]'); process.exit(2); }
const pairs = Number(get('--pairs', '256'));
const split = get('--split', 'test');
const zoo = w.readZoo(zooFile);
const task = w.loadTask(zoo.task);
const arch = zoo.arch;
const P = arch.numParams;
const t0 = performance.now();
const al = w.alignNetworks(arch, zoo.weights, { seed: 0 });
const alignSeconds = (performance.now() - t0) / 1000;
const maxEpoch = Math.max(...zoo.epoch);
const last = [];
for (let i = 0; i < zoo.n; i++) if (zoo.epoch[i] === maxEpoch && (last.length === 0 || zoo.run[last[last.length - 1]] !== zoo.run[i])) last.push(i);
const pick = (x) => { const o = new Float32Array(last.length * P); last.forEach((k, j) => o.set(x.subarray(k * P, (k + 1) * P), j * P)); return o; };
const before = await w.lossBarriers(task, arch, pick(zoo.weights), { pairs, split, seed: 1 });
const after = await w.lossBarriers(task, arch, pick(al.aligned), { pairs, split, seed: 1 });
let sha = 'unknown';
try { sha = execSync('git rev-parse --short HEAD', { cwd: root }).toString().trim(); } catch { /* not a checkout */ }
const s = (r) => ({ mean: r.mean, std: r.std, n: r.n });
const out = { date: new Date().toISOString(), commit: sha, device: `cpu (${os.cpus()[0]?.model}, ${os.cpus().length} cores)`, zoo: path.basename(zooFile), task: zoo.task, arch: arch.key, networks: last.length, split, pairs, alignSeconds, before: s(before), after: s(after), thesis: { before: 0.244, after: 0.070, networks: 250 } };
const file = path.join(root, 'results', 'barriers', `${zoo.task}.json`);
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
console.log(`${zoo.task}: ${last.length} networks, ${before.n} pairs on ${split}: barrier ${before.mean.toFixed(4)} ± ${before.std.toFixed(4)} → ${after.mean.toFixed(4)} ± ${after.std.toFixed(4)} after alignment (thesis 0.244 → 0.070); ${file}`);
