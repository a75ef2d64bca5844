/**
 * The `wsflow` command line. Subcommands follow the pipeline (zoo → align → train → sample → eval → export), plus the demo,
 * benchmarks and the thesis experiments. Each validates every option before any work and exits with code 2 and one
 * line on stderr on bad input; long work shows progress on stderr (a bar on a TTY, JSON lines with --json) and
 * stops cleanly on Ctrl-C (exit code 130) or SIGTERM (143), leaving resumable state where the step supports it.
 *
 * Exit codes: 0 success, 1 failure during work, 2 bad command line or input files, 130 interrupted, 143 terminated.
 */
import type { Writable } from 'node:stream';
import { isWsfError, messageLine } from '../errors.js';
import { version } from '../version.js';
import { UsageError, helpText } from './args.js';
import { alignCommand } from './commands/align.js';
import { benchCommand } from './commands/bench.js';
import { demoCommand } from './commands/demo.js';
import { evalCommand } from './commands/eval.js';
import { exportCommand } from './commands/export.js';
import { infoCommand } from './commands/info.js';
import { reproduceCommand } from './commands/reproduce.js';
import { sampleCommand } from './commands/sample.js';
import { trainCommand } from './commands/train.js';
import type { CliCommand } from './commands/types.js';
import { zooCommand } from './commands/zoo.js';
import { CliContext, type CliIo } from './context.js';

/** Every subcommand, in pipeline order. */
export const COMMANDS: Readonly<Record<string, CliCommand>> = Object.freeze({
  info: infoCommand,
  zoo: zooCommand,
  align: alignCommand,
  train: trainCommand,
  sample: sampleCommand,
  eval: evalCommand,
  export: exportCommand,
  demo: demoCommand,
  bench: benchCommand,
  reproduce: reproduceCommand,
});

function help(): string {
  const lines = [`wsflow ${version} — generative flows over neural-network weights`, '', 'Usage: wsflow <command> [options]', '', 'Commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.spec.summary}`);
  lines.push(
    '',
    'The pipeline:',
    '  wsflow zoo    --task wdbc --runs 100 --epochs 50 --out zoos/wdbc',
    '  wsflow align  --zoo zoos/wdbc',
    '  wsflow train  --zoo zoos/wdbc --geometry geometric --steps 20000 --out flows/wdbc-geo',
    '  wsflow sample --flow flows/wdbc-geo --n 256 --steps 64 --out s.safetensors',
    '  wsflow eval   --weights s.safetensors --bma 1,4,16,64 --zoo zoos/wdbc',
    'or all of it at once, with a report: wsflow demo',
    '',
    "Run 'wsflow <command> --help' for a command's options and examples.",
    'Exit codes: 0 success, 1 failure, 2 bad command line or input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM:',
    '  stopped as by Ctrl-C, state saved).',
  );
  return lines.join('\n');
}

/** Path problems the system reports (a bad --out and the like): bad input, exit 2; other system errors exit 1. */
const PATH_ERRORS = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EEXIST', 'ENAMETOOLONG', 'ELOOP']);

/** A Node system error (fs, child processes), which has a string `code` and a `syscall`. */
function isSystemError(e: unknown): e is NodeJS.ErrnoException & { syscall: string } {
  return e instanceof Error && typeof (e as NodeJS.ErrnoException).code === 'string' && typeof (e as NodeJS.ErrnoException).syscall === 'string';
}

/** One line for a system error: what could not be done to which path, and the system's reason. */
function systemErrorLine(e: NodeJS.ErrnoException & { syscall: string }): string {
  const where = e.path !== undefined ? ` ${e.path}` : '';
  return `cannot ${e.syscall}${where}: ${e.code}`;
}

/** Exit code for an error thrown by a command. */
function exitCode(e: unknown): number | undefined {
  if (e instanceof UsageError) return 2;
  if (isSystemError(e)) return PATH_ERRORS.has(e.code!) ? 2 : 1;
  if (e instanceof RangeError && /Array buffer allocation failed|Invalid typed array length|Invalid array length/.test(e.message)) return 1;
  if (!isWsfError(e)) return undefined;
  switch (e.code) {
    case 'ERR_INTERRUPTED':
      return 130;
    case 'ERR_NUMERIC':
    case 'ERR_CUDA':
    case 'ERR_OOM':
    case 'ERR_CONTEXT_BUSY':
    case 'ERR_NO_BINARY':
    case 'ERR_DISPOSED':
      return 1;
    default:
      return 2; // ERR_INVALID, ERR_IO, ERR_SHAPE, ERR_DTYPE, ERR_NO_CUDA: bad input
  }
}

/** Options of {@link main} (tests pass their own streams and signal). */
export interface MainOptions {
  readonly io?: CliIo;
  /** Aborts long work like Ctrl-C does. */
  readonly signal?: AbortSignal;
  /** Install SIGINT and SIGTERM handlers that abort the work (default true). */
  readonly handleSigint?: boolean;
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: readonly string[], opts: MainOptions = {}): Promise<number> {
  const io: CliIo = opts.io ?? { stdout: process.stdout as Writable, stderr: process.stderr as Writable };
  const [name, ...rest] = argv;
  if (name === 'help' && rest[0] !== undefined && COMMANDS[rest[0]] !== undefined) return main([rest[0], '--help'], opts);
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    // (no command at all is a bad command line: exit code 2, as the exit-code table says)
    io.stdout.write(help() + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    io.stdout.write(version + '\n');
    return 0;
  }
  const cmd = COMMANDS[name];
  if (cmd === undefined) {
    io.stderr.write(`wsflow: unknown command '${name}'. Commands: ${Object.keys(COMMANDS).join(', ')}\n`);
    return 2;
  }
  // (arguments after `--` belong to a bench script: `wsflow bench zoo -- --help` is the script's help)
  const own = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
  if (own.includes('--help') || own.includes('-h')) {
    io.stdout.write(`wsflow ${name} — ${cmd.spec.summary}\n\n${helpText(cmd.spec)}\n`);
    return 0;
  }
  const ac = new AbortController();
  const onExternal = (): void => ac.abort();
  opts.signal?.addEventListener('abort', onExternal, { once: true });
  if (opts.signal?.aborted === true) ac.abort();
  // Ctrl-C (SIGINT) and SIGTERM (`timeout`, a scheduler, `docker stop`) stop the work the same way: state is saved
  // and the exit code is 130 or 143; a second signal exits at once.
  let signals = 0;
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      io.stderr.write('\nwsflow: interrupted again; exiting without cleaning up\n');
      process.exit(sig === 'SIGTERM' ? 143 : 130);
    }
    stoppedBy = sig;
    io.stderr.write(
      sig === 'SIGTERM'
        ? `\nwsflow ${name}: terminated (SIGTERM); saving state…\n`
        : `\nwsflow ${name}: interrupting (saving state; Ctrl-C again to quit at once)…\n`,
    );
    ac.abort();
  };
  const handle = opts.handleSigint !== false;
  if (handle) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  // An interrupted command's exit code (130) says which signal stopped it.
  const interrupted = (code: number): number => (code === 130 && stoppedBy === 'SIGTERM' ? 143 : code);
  const ctx = new CliContext(io, name, ac.signal, ['wsflow', ...argv].join(' '));
  try {
    return interrupted(await cmd.run(ctx, rest));
  } catch (e) {
    const code = exitCode(e);
    if (code === undefined) throw e;
    const msg = isSystemError(e) ? systemErrorLine(e) : e instanceof RangeError ? `out of memory: ${e.message} (ask for less: fewer networks, a smaller batch)` : messageLine(e as Error);
    io.stderr.write(`wsflow ${name}: ${msg}\n`);
    return interrupted(code);
  } finally {
    if (handle) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    opts.signal?.removeEventListener('abort', onExternal);
  }
}
