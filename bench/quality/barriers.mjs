// Midpoint loss barriers of a real zoo before and after alignment (METHOD.md §8.4; the thesis reports 0.244 ± 0.009
// → 0.070 ± 0.001 over 250 WDBC Adam networks). Uses the last checkpoint of every run; writes
// results/barriers/<task>.json.
//
//   node bench/quality/barriers.mjs --zoo <zoo.safetensors> [--pairs 256] [--split test] [--out results/barriers/<task>.json]
import * as fs from 'node:fs';
import * as path from 'node:path';
import { alignedZoo, cliArgs, cpuDevice, gitCommit, lastCheckpoints, pickRows, requireDist, root } from './common.mjs';

const w = requireDist('index.js');
const { get } = cliArgs(undefined, ['--zoo', '--pairs', '--split', '--align-by', '--out']);
const zooFile = get('--zoo');
if (!zooFile) { console.error('usage: --zoo <file> [--pairs N] [--split test|val|train]'); process.exit(2); }
const pairs = Number(get('--pairs', '256'));
const split = get('--split', 'test');
const zoo = w.readZoo(zooFile);
const task = w.loadTask(zoo.task);
const arch = zoo.arch;
const P = arch.numParams;
const t0 = performance.now();
const al = alignedZoo(w, zoo);
const alignSeconds = (performance.now() - t0) / 1000;
const last = lastCheckpoints(zoo);
const pick = (x) => pickRows(x, last, P);
const before = await w.lossBarriers(task, arch, pick(zoo.weights), { pairs, split, seed: 1 });
const after = await w.lossBarriers(task, arch, pick(al.aligned), { pairs, split, seed: 1 });
const sha = gitCommit();
const s = (r) => ({ mean: r.mean, std: r.std, n: r.n });
const out = { date: new Date().toISOString(), commit: sha, device: cpuDevice(), zoo: path.basename(zooFile), task: zoo.task, arch: arch.key, networks: last.length, split, pairs, alignSeconds, before: s(before), after: s(after), thesis: { before: 0.244, after: 0.070, networks: 250 } };
const file = get('--out', path.join(root, 'results', 'barriers', `${zoo.task}.json`));
fs.mkdirSync(path.dirname(file), { recursive: true });
fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
console.log(`${zoo.task}: ${last.length} networks, ${before.n} pairs on ${split}: barrier ${before.mean.toFixed(4)} ± ${before.std.toFixed(4)} → ${after.mean.toFixed(4)} ± ${after.std.toFixed(4)} after alignment (thesis 0.244 → 0.070); ${file}`);
