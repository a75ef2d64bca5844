/**
 * The `wsflow reproduce` harness: an experiment is a function that returns a result object, a Markdown table
 * (ours beside the thesis' numbers) and optional SVG plots; the harness writes them to
 * `<out>/<experiment>/<scale>/{result.json, table.md, *.svg}` with the command, git commit, device, machine and
 * date recorded, and keeps intermediate files (zoos, flows) under `work/` there so that a re-run resumes.
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Device } from '../device.js';
import { WsfError } from '../errors.js';
import { makeDirs, writeFileAtomic } from '../io/safetensors.js';
import { binding } from '../native/binding.js';
import { createProgress, type Progress, type ProgressOptions } from '../util/progress.js';
import { checkChoice, checkObject, checkOptionKeys, optionKeys } from '../util/validate.js';
import { version } from '../version.js';

/** The scales every experiment knows. */
export type Scale = 'quick' | 'paper';

/** What an experiment gets. */
export interface ExperimentContext {
  readonly scale: Scale;
  /** Results folder (`<out>/<experiment>/<scale>`). */
  readonly dir: string;
  /** Folder for intermediate files (zoos, flows), reused on re-runs. */
  readonly work: string;
  readonly device: Device;
  readonly seed: number;
  readonly signal?: AbortSignal;
  /** Overrides the configured flow-training steps. */
  readonly steps?: number;
  /**
   * The configuration to run: the experiment's `config[scale]`, or {@link RunExperimentOptions.config} when given
   * (tests run smoke-size configurations this way). Experiments that read it cast it to their config type.
   */
  readonly config: unknown;
  /** Experiment-specific switches (e.g. `dense` for wdbc). */
  readonly flags: Readonly<Record<string, boolean>>;
  /** Base progress options (stream, json), or false when silent (for buildZoo). */
  readonly progressOptions: ProgressOptions | false;
  progress(label: string, total: number, unit: string): Progress;
  log(message: string): void;
}

/** What an experiment returns. */
export interface ExperimentOutput {
  /** Everything measured (JSON-serialisable). */
  readonly result: unknown;
  /** Markdown: our numbers beside the thesis'. */
  readonly table: string;
  /** File name → SVG markup. */
  readonly plots?: Readonly<Record<string, string>>;
  /** Free-text notes appended to table.md (caveats, what differs from the thesis). */
  readonly notes?: readonly string[];
}

/** A registered experiment. */
export interface Experiment {
  readonly name: string;
  readonly title: string;
  /** Where the thesis' numbers are (METHOD.md section). */
  readonly section: string;
  readonly description: string;
  /** Configuration per scale (what `--list` shows and result.json records). */
  readonly config: Readonly<Record<Scale, unknown>>;
  /** The thesis' numbers this experiment compares with. */
  readonly thesis: unknown;
  /** Optional switches this experiment understands (name → description). */
  readonly flags?: Readonly<Record<string, string>>;
  /** Why it cannot run at this scale on this device, or null when it can. */
  unavailable(scale: Scale, device: Device): string | null;
  run(ctx: ExperimentContext): Promise<ExperimentOutput>;
}

/** Thrown when an experiment cannot run here (the message says why). */
export class ExperimentUnavailable extends WsfError {
  constructor(message: string) {
    super(message, 'ERR_INVALID');
    this.name = 'WsfExperimentUnavailable';
  }
}

/** The package root (dist/reproduce → ../..; lib/reproduce in tests → ../..). */
const ROOT = path.resolve(__dirname, '..', '..');

/** The checkout's paths whose uncommitted changes make a run '-dirty': the code that runs, not the results it writes. */
export const CODE_PATHS = ['lib', 'native', 'bench', 'bin', 'scripts', 'CMakeLists.txt', 'package.json'] as const;

/**
 * `git rev-parse HEAD` of the package's checkout (+ '-dirty' when the code that runs, {@link CODE_PATHS}, has
 * uncommitted changes; results files written by earlier runs do not count), or null.
 */
export function gitCommit(cwd = ROOT): string | null {
  try {
    const sha = execFileSync('git', ['rev-parse', 'HEAD'], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', ...CODE_PATHS], { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return sha + (dirty ? '-dirty' : '');
  } catch {
    return null;
  }
}

const RUN_EXPERIMENT_KEYS = optionKeys<RunExperimentOptions>()(['scale', 'out', 'device', 'seed', 'steps', 'config', 'flags', 'signal', 'progress', 'log', 'command']);

/** Options of {@link runExperiment}. */
export interface RunExperimentOptions {
  readonly scale: Scale;
  /** Results root (default 'results'). */
  readonly out?: string;
  readonly device: Device;
  readonly seed?: number;
  readonly steps?: number;
  /**
   * Replaces the scale's configuration (same shape as `exp.config[scale]`), e.g. a smoke-size one in tests;
   * result.json records the configuration actually run. Experiments that do not read `ctx.config` ignore it.
   */
  readonly config?: unknown;
  readonly flags?: Readonly<Record<string, boolean>>;
  readonly signal?: AbortSignal;
  readonly progress?: ProgressOptions | false;
  readonly log?: (message: string) => void;
  readonly command?: string;
}

/** What {@link runExperiment} returns. */
export interface ExperimentRecord {
  readonly experiment: string;
  readonly title: string;
  readonly section: string;
  readonly scale: Scale;
  readonly command: string | null;
  readonly commit: string | null;
  readonly device: Device;
  readonly machine: { readonly cpus: string; readonly cores: number; readonly threads: number; readonly loadAverage: readonly number[]; readonly node: string };
  readonly date: string;
  readonly wsflow: string;
  readonly seconds: number;
  readonly config: unknown;
  readonly thesis: unknown;
  readonly result: unknown;
  readonly files: { readonly dir: string; readonly result: string; readonly table: string; readonly plots: readonly string[] };
}

/**
 * Runs an experiment and writes its files.
 * @throws ExperimentUnavailable when it cannot run here; the experiment's own errors
 */
export async function runExperiment(exp: Experiment, o: RunExperimentOptions): Promise<ExperimentRecord> {
  checkObject('exp', exp, '(an experiment, e.g. EXPERIMENTS.wdbc)');
  checkObject('options', o, "holding `scale` ('quick' or 'paper') and `device`");
  checkOptionKeys('runExperiment', o, RUN_EXPERIMENT_KEYS);
  checkChoice('scale', o.scale, ['quick', 'paper'] as const);
  const why = exp.unavailable(o.scale, o.device);
  if (why !== null) throw new ExperimentUnavailable(`${exp.name} at ${o.scale} scale cannot run here: ${why}`);
  const t0 = performance.now();
  const date = new Date().toISOString();
  // The code that runs is the checkout's state now (a long run can outlive later commits).
  const commit = gitCommit();
  const loadAverage = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const dir = path.join(o.out ?? 'results', exp.name, o.scale);
  const work = path.join(dir, 'work');
  makeDirs(work);
  const ctx: ExperimentContext = {
    scale: o.scale,
    dir,
    work,
    device: o.device,
    seed: o.seed ?? 0,
    ...(o.signal !== undefined ? { signal: o.signal } : {}),
    ...(o.steps !== undefined ? { steps: o.steps } : {}),
    config: o.config ?? exp.config[o.scale],
    flags: o.flags ?? {},
    progressOptions: o.progress ?? {},
    progress: (label, total, unit) => createProgress(o.progress === false ? { silent: true } : { ...(o.progress ?? {}), label, total, unit }),
    log: o.log ?? ((): void => undefined),
  };
  const out = await exp.run(ctx);
  const seconds = (performance.now() - t0) / 1000;
  const plots = Object.keys(out.plots ?? {});
  for (const [name, svg] of Object.entries(out.plots ?? {})) writeFileAtomic(path.join(dir, name), svg);
  const record: ExperimentRecord = {
    experiment: exp.name,
    title: exp.title,
    section: exp.section,
    scale: o.scale,
    command: o.command ?? null,
    commit,
    device: o.device,
    machine: { cpus: `${os.cpus()[0]?.model ?? 'unknown'} × ${os.cpus().length}`, cores: os.cpus().length, threads: binding().numThreads(), loadAverage, node: process.version },
    date,
    wsflow: version,
    seconds,
    config: ctx.config,
    thesis: exp.thesis,
    result: out.result,
    files: { dir, result: path.join(dir, 'result.json'), table: path.join(dir, 'table.md'), plots: plots.map((p) => path.join(dir, p)) },
  };
  writeFileAtomic(record.files.result, JSON.stringify(record, null, 1) + '\n');
  const md = [
    `# ${exp.title} (${o.scale} scale)`,
    '',
    `Thesis numbers: METHOD.md ${exp.section}. ${exp.description}`,
    '',
    `- command: \`${o.command ?? `runExperiment('${exp.name}')`}\``,
    `- commit: ${commit ?? 'unknown (not a git checkout)'}; wsflow ${version}; ${process.version}`,
    `- device: ${o.device} (${record.machine.cpus}, ${record.machine.threads} threads, load average ${loadAverage.join(' / ')} at start)`,
    `- date: ${date}; wall time ${seconds.toFixed(1)} s`,
    '',
    out.table,
    ...(out.notes !== undefined && out.notes.length > 0 ? ['', 'Notes:', '', ...out.notes.map((n) => `- ${n}`)] : []),
    ...(plots.length > 0 ? ['', ...plots.map((p) => `![${p}](${p})`)] : []),
    '',
  ].join('\n');
  writeFileAtomic(record.files.table, md);
  return record;
}

/** An `unavailable` check for flow experiments: the paper scale needs CUDA; `what` says what it trains. */
export const needsGpu =
  (what: string) =>
  (scale: Scale, device: string): string | null =>
    scale === 'paper' && device !== 'cuda' ? `the paper scale ${what}; that needs a CUDA GPU (wsflow info shows the device), or use --scale quick` : null;

/** Formats mean ± std for Markdown. */
export function fmtStat(m: number, s: number, d = 3): string {
  return Number.isFinite(m) ? `${m.toFixed(d)} ± ${s.toFixed(d)}` : '—';
}

/** A Markdown table. */
export function mdTable(head: readonly string[], rows: readonly (readonly string[])[]): string {
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
