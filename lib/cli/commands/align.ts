/** `wsflow align`: permutation-aligns a zoo to one reference network and writes the aligned zoo beside it. */
import * as path from 'node:path';
import { alignZooFile } from '../../pipeline/align.js';
import { ALIGNED_FILE, ZOO_FILE } from '../../pipeline/layout.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { checkWritableFile, duration, zooFor } from '../common.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'align',
  summary: 'permutation-align a zoo to one reference network (weight matching)',
  usage: ['wsflow align --zoo DIR [--by run|checkpoint] [--reference N] [--out FILE]'],
  description: `Permutes the hidden neurons of every network in DIR/${ZOO_FILE} to match one reference network by weight
matching (Git Re-Basin; exact per-layer assignments), which preserves every network's function, and writes
DIR/${ALIGNED_FILE}: the same tensors with aligned weights, each run's initial weights permuted like its last
checkpoint, the permutations (tensor \`perms\`) and the metadata \`aligned_to\` (source file and reference index) and
\`alignment\` (distances to the reference before and after). 'wsflow train --zoo DIR' then uses the aligned zoo.
By default all checkpoints of a training run share one permutation (the match of the run's mean network): neurons
keep their identity along a run. --by checkpoint matches each checkpoint on its own, as the thesis did; that can
permute one run's checkpoints differently (20 % of an official-MNIST zoo's, 89 % of a WDBC zoo's) and blends neurons
in the mixture prior's per-run components: on official MNIST the default flow's samples score 0.940 aligned by run
against 0.893 checkpoint by checkpoint.
Ctrl-C stops between chunks of networks; nothing is written then (alignment takes seconds for the WDBC zoo).`,
  options: {
    zoo: { type: 'string', metavar: 'DIR|FILE', exists: 'any', required: true, description: `zoo folder (reads ${ZOO_FILE}) or zoo file` },
    out: { type: 'string', metavar: 'FILE', description: `aligned zoo file (default: ${ALIGNED_FILE} beside the zoo)` },
    reference: { type: 'int', min: 0, metavar: 'N', description: 'index of the reference network (default: the network nearest to the mean)' },
    by: { type: 'string', choices: ['run', 'checkpoint'], default: 'run', description: "'run': one permutation per training run; 'checkpoint': each network matched on its own (the thesis)" },
    'max-iterations': { type: 'int', min: 1, default: 100, metavar: 'N', description: 'coordinate-descent sweeps per network' },
    seed: COMMON.seed,
    json: COMMON.json,
  },
  examples: ['wsflow align --zoo zoos/wdbc', 'wsflow align --zoo zoos/mnist --by checkpoint', 'wsflow align --zoo zoos/wdbc/zoo.safetensors --reference 0 --out /tmp/aligned.safetensors --json'],
} as const satisfies CommandSpec;

export const alignCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    if (v.zoo === undefined) throw new UsageError('--zoo: expected the zoo folder to align (e.g. --zoo zoos/wdbc)');
    const { loc, zoo } = zooFor('--zoo', v.zoo, 'raw');
    if (v.reference !== undefined && v.reference >= zoo.n) throw new UsageError(`--reference: expected an index below the zoo's ${zoo.n} networks, got ${v.reference}`);
    const out = v.out ?? path.join(loc.dir, ALIGNED_FILE);
    if (path.resolve(out) === path.resolve(loc.file)) throw new UsageError(`--out: ${out} is the input zoo; choose another file`);
    checkWritableFile('--out', out);
    const bar = ctx.progress({ label: 'align', total: zoo.n, unit: 'networks' });
    let r;
    try {
      r = await alignZooFile(zoo, loc.file, out, { by: v.by as 'checkpoint' | 'run', maxIterations: v['max-iterations'], seed: v.seed, signal: ctx.signal, progress: bar, ...(v.reference !== undefined ? { reference: v.reference } : {}) });
    } finally {
      bar.done();
    }
    const res = { file: out, source: loc.file, networks: zoo.n, by: v.by, reference: r.referenceIndex, distanceBefore: r.distanceBefore, distanceAfter: r.distanceAfter, converged: r.converged, seconds: r.seconds };
    ctx.result(res, () =>
      [
        `wrote ${out}: ${zoo.n} networks aligned to network ${r.referenceIndex} of ${loc.file}`,
        `distance to the reference: ${r.distanceBefore.mean.toFixed(3)} → ${r.distanceAfter.mean.toFixed(3)} (mean); ${r.converged} of ${zoo.n} converged; ${duration(r.seconds)}`,
      ].join('\n'),
    );
    return 0;
  },
};
