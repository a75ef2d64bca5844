// `node bench/run.mjs`: runs every CPU benchmark script in turn with its defaults (each writes its JSON to bench/results/,
// except zoo.mjs, which prints its figures and writes the zoo under runs/). The GPU check is separate:
// `node bench/gpu-check.mjs <outdir>` on a GPU host (see bench/README.md). Options of one script: run it alone
// (`node bench/<script>.mjs --help`).
//
//   node bench/run.mjs [--no-write]      # --no-write: passed on to every script (nothing written to bench/results/)
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchArgs } from './util/args.mjs';

const args = benchArgs(import.meta.url, { flags: ['--no-write'] });
const here = path.dirname(fileURLToPath(import.meta.url));
const scripts = ['engine.mjs', 'flow.mjs', 'geometry.mjs', 'zoo.mjs'];
let failed = 0;
for (const s of scripts) {
  console.log(`\n== bench/${s}`);
  const r = spawnSync(process.execPath, [path.join(here, s), ...(args.has('--no-write') ? ['--no-write'] : [])], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
