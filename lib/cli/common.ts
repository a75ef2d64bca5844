/** Helpers shared by the CLI commands: checked loading of tasks, zoos and flows, and text formatting. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { type Architecture, mlp } from '../arch/Architecture.js';
import { isInputError, isWsfError } from '../errors.js';
import { makeDirs } from '../io/safetensors.js';
import { firstNonFinite } from '../util/validate.js';
import { FlowMatcher } from '../flow/FlowMatcher.js';
import type { Device, DeviceRequest } from '../device.js';
import { MATMUL_PRECISIONS, type MatmulPrecision } from '../engine/VectorField.js';
import { binding } from '../native/binding.js';
import { type LoadTaskOptions, loadTask } from '../tasks/loadTask.js';
import type { Task } from '../tasks/Task.js';
import { type ZooData, type ZooLocation, locateFlow, locateZoo } from '../pipeline/layout.js';
import { type Zoo, readZoo } from '../zoo/Zoo.js';
import { UsageError } from './args.js';

/** Runs `f`, turning a WsfError into a UsageError for option `label` (validation before work). */
export function checked<T>(label: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (isInputError(e) || e instanceof UsageError) throw new UsageError(`${label}: ${e.message.split('\n')[0]}`);
    throw e;
  }
}

/** Loads a built-in task for an option. */
export function taskFor(label: string, name: string, opts: LoadTaskOptions = {}): Task {
  try {
    return checked(label, () => loadTask(name, opts));
  } catch (e) {
    // (the library's pointer to customTask() is no help on the command line, which runs the built-in tasks only)
    if (e instanceof UsageError) throw new UsageError(e.message.replace('; use customTask() for your own data', ''));
    throw e;
  }
}

/**
 * Refuses a zoo whose recorded task (`task_spec`) names `task` but holds other data than `task` has now — another
 * split, scaling or data version: its trained networks would be compared on examples they may have trained on.
 * Zoos without a record, or of another task, pass.
 */
export function checkZooTask(label: string, file: string, zoo: Zoo, task: Task): void {
  let spec: { name?: string; hash?: string; seed?: number | null; sizes?: number[]; standardize?: string } | undefined;
  try {
    spec = JSON.parse(zoo.metadata.task_spec ?? 'null') as typeof spec;
  } catch {
    return;
  }
  if (spec === null || spec === undefined || spec.name !== task.name || spec.hash === undefined || task.spec === undefined || spec.hash === task.spec.hash) return;
  throw new UsageError(
    `${label}: ${file} was trained on other '${task.name}' data than this version builds (its split: seed ${spec.seed ?? '—'}, ${(spec.sizes ?? []).join('/')}, scaling '${spec.standardize ?? '?'}'; data hash ${spec.hash.slice(0, 12)}… against ${task.spec.hash.slice(0, 12)}…); ` +
      'comparing with its networks would test them on examples they may have trained on — rebuild the zoo with this version',
  );
}

/** Parses `--arch` and checks it against the task's input and output widths. */
export function archFor(label: string, value: string | undefined, task: Task): Architecture {
  const arch = value === undefined ? mlp(task.defaultArch) : checked(label, () => mlp(value));
  const w = arch.widths;
  if (w[0] !== task.numFeatures || w[w.length - 1] !== task.numClasses) {
    throw new UsageError(`${label}: ${arch.key} does not fit task '${task.name}' (${task.numFeatures} inputs, ${task.numClasses} classes); e.g. ${task.defaultArch.join('-')}`);
  }
  return arch;
}

/** Locates and reads a zoo for `--zoo`; its networks must be finite. */
export function zooFor(label: string, p: string, data: ZooData = 'auto'): { loc: ZooLocation; zoo: Zoo } {
  const loc = checked(label, () => locateZoo(p, data));
  const zoo = checked(label, () => readZoo(loc.file));
  checkFiniteNetworks(label, loc.file, zoo.weights, zoo.arch.numParams);
  return { loc, zoo };
}

/**
 * Refuses a file whose networks hold a NaN or infinite weight, naming the first one.
 * @throws UsageError `label: file: network k has a non-finite weight (parameter p: NaN)`
 */
export function checkFiniteNetworks(label: string, file: string, weights: Float32Array, P: number): void {
  const i = firstNonFinite(weights);
  if (i >= 0) throw new UsageError(`${label}: ${file}: network ${Math.floor(i / P)} has a non-finite weight (parameter ${i % P}: ${weights[i]})`);
}

/** Locates and loads a flow for `--flow` (`matmul`: the CPU engine's weight-product precision, checked by {@link checkMatmul}). */
export function flowFor(label: string, p: string, device: DeviceRequest, matmul?: MatmulPrecision): { file: string; flow: FlowMatcher } {
  const file = checked(label, () => locateFlow(p));
  const flow = checked(label, () => FlowMatcher.load(file, { device, ...(matmul !== undefined ? { matmul } : {}) }));
  return { file, flow };
}

/** The `--matmul` option of train and sample. */
export const MATMUL_OPTION = {
  type: 'string',
  choices: MATMUL_PRECISIONS,
  default: 'f32',
  description:
    "precision of the CPU engine's products against its weights: 'f32', or 'bf16' (operands rounded to bfloat16, sums in float; CPUs with AVX-512 BF16 — `wsflow info` says — on a 2-core AMD EPYC 1.24× faster WDBC training at D=64 and 1.3× faster sampling, MNIST at D=32 1.08× / 1.1×, nothing at D ≤ 16; WDBC and MNIST samples as good)",
} as const;

/**
 * Refuses `--matmul bf16` where the engine cannot run it (CUDA, or a CPU without AVX-512 BF16), before any work.
 * @throws UsageError naming the option and what this machine has
 */
export function checkMatmul(matmul: string, device: Device): MatmulPrecision {
  if (matmul !== 'bf16') return 'f32';
  if (device !== 'cpu') throw new UsageError(`--matmul bf16: a CPU engine option; this run is on ${device} (add --device cpu, or drop --matmul)`);
  const isa = binding().cpuIsa();
  if (!isa.bf16) throw new UsageError(`--matmul bf16: needs a CPU with AVX-512 BF16; this one runs ${isa.active} kernels without it`);
  return 'bf16';
}

/** "0.9512 ± 0.0123". */
export function pm(s: { mean: number; std: number } | undefined, digits = 4): string {
  if (s === undefined || !Number.isFinite(s.mean)) return '—';
  return `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`;
}

/** A plain text table with a header row. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
  return [line(head), w.map((n) => '-'.repeat(n)).join('  '), ...rows.map(line)].join('\n');
}

/** Seconds as "12.3 s" or "4 min 05 s". */
export function duration(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m} min ${String(Math.round(s - 60 * m)).padStart(2, '0')} s`;
}

/**
 * Checks before any work that `file` can be written: its folder exists or can be made, and a file can be created in
 * it (see {@link checkWritableDir}), and `file` itself is not a folder.
 * @throws UsageError naming the option and the reason
 */
export function checkWritableFile(label: string, file: string): void {
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) throw new UsageError(`${label}: ${file} is a folder; expected a file name`);
  probeWritable(label, path.dirname(path.resolve(file)));
}

/**
 * Checks before any work that files can be written in folder `dir` (an output folder option): it is a folder or can
 * be made, and a file can be created in it (a probe file, removed at once). Folders made for the probe are removed
 * again, so a refused command leaves nothing behind (the command makes them when it writes).
 * @throws UsageError naming the option and the reason
 */
export function checkWritableDir(label: string, dir: string): void {
  if (fs.existsSync(dir) && !fs.statSync(dir).isDirectory()) throw new UsageError(`${label}: ${dir} exists and is not a folder`);
  probeWritable(label, dir);
}

function probeWritable(label: string, dir: string): void {
  const abs = path.resolve(dir);
  let firstMade: string | undefined; // the outermost folder the probe makes
  for (let d = abs; !fs.existsSync(d) && path.dirname(d) !== d; d = path.dirname(d)) firstMade = d;
  try {
    makeDirs(abs);
    const probe = path.join(abs, `.wsflow-write-probe-${process.pid}`);
    fs.writeFileSync(probe, '');
    fs.rmSync(probe, { force: true });
  } catch (e) {
    throw unwritable(label, dir, e);
  } finally {
    try {
      if (firstMade !== undefined && fs.existsSync(firstMade)) fs.rmSync(firstMade, { recursive: true, force: true });
    } catch {
      // (a folder the probe made and cannot remove: left empty, harmless)
    }
  }
}

/** The option error for folder `dir` that cannot be made or written in (`e`: what making it or a file in it threw). */
function unwritable(label: string, dir: string, e: unknown): UsageError {
  const why = isWsfError(e) ? e.message : `cannot create files in ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`;
  return new UsageError(`${label}: ${why}`);
}

/** The lock file a long command holds in its output folder while it writes there. */
export const LOCK_FILE = '.wsflow-lock';

/**
 * Runs `work` holding folder `dir` (made if missing) for this process: a lock file there names the process and its
 * command, and a second wsflow process that asks for the same folder is refused (exit 2) instead of writing the same
 * checkpoints and chunks at the same time. A lock whose process is gone on this host (a crash, `kill -9`) is taken
 * over; one from another host is refused, with the file's path to remove when nothing runs there. A folder that
 * cannot be made or written in is refused as {@link checkWritableDir} refuses it.
 * @throws UsageError naming the option, and the process and its command where one holds the folder
 */
export async function withFolderLock<T>(label: string, dir: string, commandLine: string, work: () => Promise<T>): Promise<T> {
  const file = path.join(dir, LOCK_FILE);
  const mine = JSON.stringify({ pid: process.pid, host: os.hostname(), command: commandLine, since: new Date().toISOString() });
  try {
    makeDirs(dir);
  } catch (e) {
    throw unwritable(label, dir, e);
  }
  let taken = false;
  for (let attempt = 0; attempt < 3 && !taken; attempt++) {
    try {
      fs.writeFileSync(file, mine, { flag: 'wx' });
      taken = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw unwritable(label, dir, e);
      refuseIfHeld(label, dir, file);
      fs.rmSync(file, { force: true }); // stale: its process is gone (another process may take it first: try again)
    }
  }
  if (!taken) throw new UsageError(`${label}: ${dir} is in use by another wsflow (its lock kept changing hands); try again`);
  try {
    return await work();
  } finally {
    try {
      if (fs.readFileSync(file, 'utf8') === mine) fs.rmSync(file, { force: true });
    } catch {
      // already gone
    }
  }
}

/** Throws when lock `file` of `dir` is held by a live process on this host or by any process on another host. */
function refuseIfHeld(label: string, dir: string, file: string): void {
  let held: { pid?: unknown; host?: unknown; command?: unknown; since?: unknown } = {};
  try {
    held = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof held;
  } catch {
    return; // unreadable: a lock whose writer died mid-write (or just removed): not held
  }
  const pid = typeof held.pid === 'number' ? held.pid : undefined;
  const who = `pid ${pid ?? '?'}${typeof held.command === 'string' ? `, '${held.command}'` : ''}${typeof held.since === 'string' ? `, since ${held.since}` : ''}`;
  if (typeof held.host === 'string' && held.host !== os.hostname()) {
    throw new UsageError(`${label}: ${dir} is in use by wsflow on ${held.host} (${who}); wait for it, choose another ${label}, or remove ${file} if nothing runs there`);
  }
  if (pid !== undefined && pid !== process.pid && processAlive(pid)) {
    throw new UsageError(`${label}: ${dir} is in use by another wsflow (${who}); wait for it to finish or choose another ${label}`);
  }
}

/** Whether a process with this id runs on this host (signal 0: a permission error still means it exists). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Checks that `count` networks of `P` weights fit in memory as one Float32Array (the samples of one command are
 * held whole): at most 2³¹ values and half the machine's memory.
 * @throws UsageError naming the option, the size and the limit
 */
export function checkHeldNetworks(label: string, count: number, P: number): void {
  const gib = (count * P * 4) / 2 ** 30;
  const limit = Math.min(os.totalmem() / 2 / 2 ** 30, 8); // half the memory; 2³¹ f32 values are 8 GiB
  if (gib > limit) {
    throw new UsageError(`${label}: ${count} networks of ${P} weights take ${gib.toFixed(1)} GiB held at once; the limit here is ${limit.toFixed(1)} GiB (half the memory, at most 2³¹ values): split the work over several runs (different --seed)`);
  }
}
