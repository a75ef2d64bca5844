/** `wsflow bench`: lists and runs the benchmark scripts of a source checkout (`bench/*.mjs`). */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type CommandSpec, UsageError, parseCommand } from '../args.js';
import type { CliCommand } from './types.js';

/** The package root (dist/cli/commands → ../../..). */
const ROOT = path.resolve(__dirname, '..', '..', '..');
const BENCH = path.join(ROOT, 'bench');

const spec = {
  name: 'bench',
  summary: 'list or run the benchmark scripts (bench/*.mjs of a source checkout)',
  usage: ['wsflow bench', 'wsflow bench <script> [-- script options]'],
  description: `Without a script: lists the benchmark scripts and how to run them. With one: runs \`node bench/<script>.mjs\`
with the options after \`--\` and passes its exit code through. The scripts need the compiled package (dist/ and
the addon) and write their results to bench/results/; bench/README.md explains how to read them. The scripts are
part of the source repository, not of the npm package.`,
  options: { json: { type: 'boolean', description: 'list the scripts as one JSON array (name, about) on stdout' } },
  positionals: [{ name: 'script', description: 'a script name, e.g. geometry or zoo' }],
  examples: ['wsflow bench', 'wsflow bench --json', 'wsflow bench geometry -- --seconds 0.5 --device cpu', 'wsflow bench zoo -- wdbc --runs 10'],
} as const satisfies CommandSpec;

function scripts(): { name: string; about: string }[] {
  if (!fs.existsSync(BENCH)) return [];
  return fs
    .readdirSync(BENCH)
    .filter((f) => f.endsWith('.mjs'))
    .sort()
    .map((f) => {
      const text = fs.readFileSync(path.join(BENCH, f), 'utf8').split('\n');
      // The first sentence of the opening comment (it may run over several lines).
      const start = text.findIndex((l) => l.startsWith('//') && !l.includes('global') && !l.startsWith('#!'));
      let about = '';
      for (let i = start; i >= 0 && i < text.length && text[i]!.startsWith('//'); i++) {
        about = `${about} ${text[i]!.replace(/^\/\/\s*/, '')}`.trim();
        const end = /\.(\s|$)/.exec(about);
        if (end !== null) {
          about = about.slice(0, end.index + 1);
          break;
        }
      }
      // A long sentence that opens with a heading (30 characters or more before its colon): the heading.
      const colon = about.indexOf(': ');
      if (about.length > 160 && colon >= 30) about = `${about.slice(0, colon)}.`;
      return { name: f.slice(0, -4), about };
    });
}

export const benchCommand: CliCommand = {
  spec,
  async run(ctx, argv) {
    const dash = argv.indexOf('--');
    const own = dash < 0 ? argv : argv.slice(0, dash);
    const pass = dash < 0 ? [] : argv.slice(dash + 1);
    const { values: v, positionals } = parseCommand(spec, own);
    ctx.json = v.json === true;
    if (ctx.json && positionals.length > 0) throw new UsageError("--json: lists the scripts; a script's own options go after -- (the scripts write JSON to bench/results/)");
    const list = scripts();
    if (ctx.json) {
      ctx.result(list, () => '');
      return 0;
    }
    if (list.length === 0) {
      ctx.io.stdout.write(`No benchmark scripts here (${BENCH} does not exist): they are part of the source repository. Clone it, build (npm install), then run 'npx wsflow bench'.\n`);
      return positionals.length > 0 ? 2 : 0;
    }
    const name = positionals[0];
    if (name === undefined) {
      const w = Math.max(...list.map((s) => s.name.length));
      ctx.io.stdout.write(
        ['Benchmark scripts (bench/README.md explains the numbers):', ...list.map((s) => `  ${s.name.padEnd(w)}  ${s.about}`), '', 'Run one with: wsflow bench <script> [-- options], e.g. wsflow bench geometry -- --seconds 0.5'].join('\n') + '\n',
      );
      return 0;
    }
    if (!list.some((s) => s.name === name)) throw new UsageError(`<script>: no bench/${name}.mjs; scripts: ${list.map((s) => s.name).join(', ')}`);
    const child = spawn(process.execPath, [path.join(BENCH, `${name}.mjs`), ...pass], { cwd: ROOT, stdio: ['inherit', 'pipe', 'pipe'] });
    child.stdout.pipe(ctx.io.stdout, { end: false });
    child.stderr.pipe(ctx.io.stderr, { end: false });
    const onAbort = (): void => void child.kill('SIGINT');
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    const code = await new Promise<number>((resolve) => child.on('close', (c, sig) => resolve(c ?? (sig === 'SIGINT' ? 130 : 1))));
    ctx.signal.removeEventListener('abort', onAbort);
    return code;
  },
};
