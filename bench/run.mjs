// `npm run bench`: runs every CPU benchmark script in turn (each writes its JSON to bench/results/). The GPU check
// is separate: `node bench/gpu-check.mjs <outdir>` on a GPU host (see bench/README.md).
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const scripts = ['engine.mjs', 'flow.mjs', 'geometry.mjs', 'zoo.mjs'];
let failed = 0;
for (const s of scripts) {
  console.log(`\n== bench/${s}`);
  const r = spawnSync(process.execPath, [path.join(here, s), ...process.argv.slice(2)], { stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exit(failed === 0 ? 0 : 1);
