/**
 * The `wsflow` command line. Subcommands follow the pipeline; each validates its options before any work and
 * exits non-zero with one clear line on bad input.
 */
import { parseArgs } from 'node:util';
import { isWsfError } from '../errors.js';
import { runtimeInfo } from '../info.js';
import { version } from '../version.js';

interface Command {
  summary: string;
  usage: string;
  run(argv: string[]): Promise<number>;
}

const commands: Record<string, Command> = {
  info: {
    summary: 'backend, device, build flags and versions',
    usage: `wsflow info [--json]

Prints the wsflow and Node versions, the loaded native binary and its build flags (CUDA on/off, architectures),
the CUDA device (or why there is none), the backend that 'auto' selects, CPU threads and the TF.js backend.

Options:
  --json     print one JSON object instead of a table

Examples:
  wsflow info
  WSF_DEVICE=cpu wsflow info --json`,
    async run(argv) {
      const { values } = parseArgs({ args: argv, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true });
      if (values.help === true) {
        process.stdout.write(this.usage + '\n');
        return 0;
      }
      const info = await runtimeInfo({ tfjs: true });
      if (values.json === true) {
        process.stdout.write(JSON.stringify(info, null, 2) + '\n');
        return 0;
      }
      const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;
      const cuda = info.cuda.deviceCount > 0
        ? `${info.cuda.name} (sm_${info.cuda.ccMajor}${info.cuda.ccMinor}, ${gib(info.cuda.totalMem)}, ${info.cuda.multiprocessors} SMs), driver ${info.cuda.driverVersion}`
        : `none (${info.cuda.error})`;
      const rows: [string, string][] = [
        ['wsflow', info.wsflow],
        ['node', `${info.node} (${info.platform})`],
        ['binary', info.binding],
        ['build', `CUDA ${info.build.cuda ? `on (archs ${info.build.archs}, runtime ${info.cuda.runtimeVersion})` : 'off'}, ${info.build.compiler}, N-API ${info.build.napiVersion}, ${info.build.buildType}`],
        ['cuda device', cuda],
        ['backend', info.backend === 'cuda' ? 'cuda' : 'cpu'],
        ['cpu', `${info.cpus.model} × ${info.cpus.count}, ${info.threads} worker threads`],
        ['tfjs', info.tfjs ?? 'not loaded'],
      ];
      const w = Math.max(...rows.map((r) => r[0].length));
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
      return 0;
    },
  },
};

function help(): string {
  const lines = [`wsflow ${version} — generative flows over neural-network weights`, '', 'Usage: wsflow <command> [options]', '', 'Commands:'];
  for (const [name, c] of Object.entries(commands)) lines.push(`  ${name.padEnd(10)} ${c.summary}`);
  lines.push('', "Run 'wsflow <command> --help' for a command's options and examples.");
  return lines.join('\n');
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name === undefined ? 1 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(version + '\n');
    return 0;
  }
  const cmd = commands[name];
  if (cmd === undefined) {
    process.stderr.write(`wsflow: unknown command '${name}'. Commands: ${Object.keys(commands).join(', ')}\n`);
    return 2;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (isWsfError(e) || err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' || err.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
      process.stderr.write(`wsflow ${name}: ${err.message.split('\n')[0]}\n`);
      return 2;
    }
    throw e;
  }
}
