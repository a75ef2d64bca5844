// Documentation that matches the code: every `wsflow …` command line written in the documentation (fenced shell
// blocks of README.md, results/FINDINGS.md, bench/README.md and results/**/README.md, inline commands without
// placeholders) and every example of every command's --help is parsed by that command's own option parser — an
// option renamed or removed, a value outside its choices or of the wrong type fails here, naming file and line.
// Only the parse is checked (no command runs): required options and checks that need files come later in run().
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../lib/cli/args.js';
import { COMMANDS } from '../../lib/cli/main.js';

const ROOT = path.resolve(__dirname, '..', '..');

/** Shell-like words of one command: quotes group, backslash-newlines were joined before. */
function words(cmd: string): string[] {
  const out: string[] = [];
  const re = /'([^']*)'|"([^"]*)"|(\S+)/g;
  for (const m of cmd.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

interface DocCommand { where: string; text: string; inline: boolean }

/** The wsflow invocations of one shell line: split at && ; |, comments and optional [ … ] parts removed. */
export function invocations(line: string): string[] {
  const noComment = line.replace(/(^|\s)#.*$/, '');
  const noOptional = noComment.replace(/\[[^\]]*\]/g, ' ');
  return noOptional
    .split(/&&|;|\|(?!\|)/)
    .map((s) => s.trim())
    .filter((s) => /^wsflow\s/.test(s) || s === 'wsflow');
}

/** Placeholders (upper-case metavariables, ellipses, alternatives, angle brackets, λ/ρ) mark a usage line, not a command. */
function isConcrete(cmd: string): boolean {
  return !/…|\.\.\.|<|>|\||λ|ρ|\b[A-Z]{1,}[A-Z_]*\b/.test(cmd.replace(/^wsflow\s+/, ''));
}

function docFiles(): string[] {
  const files = ['README.md', 'results/FINDINGS.md', 'bench/README.md'];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name === 'README.md') files.push(rel);
    }
  };
  walk('results');
  return files.filter((f) => fs.existsSync(path.join(ROOT, f)));
}

function docCommands(): DocCommand[] {
  const out: DocCommand[] = [];
  for (const f of docFiles()) {
    const lines = fs.readFileSync(path.join(ROOT, f), 'utf8').split('\n');
    let fence = false;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (/^\s*```/.test(line)) {
        fence = !fence;
        continue;
      }
      if (fence) {
        let full = line;
        const first = i;
        while (/\\\s*$/.test(full) && i + 1 < lines.length) full = full.replace(/\\\s*$/, ' ') + lines[++i]!;
        for (const c of invocations(full)) out.push({ where: `${f}:${first + 1}`, text: c, inline: false });
      } else {
        for (const m of line.matchAll(/`(wsflow(?: [^`]*)?)`/g)) {
          if (isConcrete(m[1]!)) out.push({ where: `${f}:${i + 1} (inline)`, text: m[1]!, inline: true });
        }
      }
    }
  }
  return out;
}

/** Parses one invocation with its command's parser; returns an error message or null. */
function check(text: string, inline = false): string | null {
  const argv = words(text).slice(1);
  if (argv.length === 0) return null;
  const name = argv[0]!;
  if (name.startsWith('-')) return name === '--help' || name === '--version' || name === '-h' ? null : `unknown top-level option ${name}`;
  const cmd = COMMANDS[name];
  if (cmd === undefined) return `no command '${name}'`;
  try {
    // `wsflow bench SCRIPT -- ARGS` hands what follows `--` to the script (bench.ts splits there before parsing).
    const rest = argv.slice(1);
    const dash = rest.indexOf('--');
    parseCommand(cmd.spec, dash >= 0 ? rest.slice(0, dash) : rest, { checkPaths: false });
    return null;
  } catch (e) {
    // Prose names an option inline without its value ("`wsflow eval --zoo`"): a mention, not a command line.
    const last = argv[argv.length - 1]!;
    if (inline && last.startsWith('--') && (e as Error).message.startsWith(`${last}: expected a value`)) return null;
    return (e as Error).message;
  }
}

describe('documented commands parse', () => {
  const cmds = docCommands();

  it('finds the documented commands (the pipeline, the headline reproduction, the CLI options)', () => {
    expect(cmds.length).toBeGreaterThan(30);
    const names = new Set(cmds.map((c) => words(c.text)[1]));
    for (const n of ['zoo', 'align', 'train', 'sample', 'eval', 'export']) expect(names.has(n), n).toBe(true);
  });

  it('every wsflow command in the documentation parses with the options it names', () => {
    const bad = cmds.map((c) => ({ ...c, error: check(c.text, c.inline) })).filter((c) => c.error !== null);
    expect(bad.map((b) => `${b.where}: ${b.text} → ${b.error}`)).toEqual([]);
  });

  it('every --help example of every command parses', () => {
    const bad: string[] = [];
    let n = 0;
    for (const [name, c] of Object.entries(COMMANDS)) {
      for (const ex of c.spec.examples ?? []) {
        for (const inv of invocations(ex)) {
          n++;
          const error = check(inv);
          if (error !== null) bad.push(`${name}: ${inv} → ${error}`);
        }
      }
    }
    expect(n).toBeGreaterThan(20);
    expect(bad).toEqual([]);
  });

  it('the checker itself rejects a renamed option, a value outside its choices and an unknown command', () => {
    expect(check('wsflow train --zoo z --graph virtual')).toBeNull();
    expect(check('wsflow train --zoo z --graph star')).toMatch(/graph/);
    expect(check('wsflow train --zoo z --stepz 10')).toMatch(/stepz/);
    expect(check('wsflow train --zoo z --steps ten')).toMatch(/steps/);
    expect(check('wsflow trian --zoo z')).toMatch(/trian/);
    expect(check('wsflow eval --zoo', true)).toBeNull();
    expect(check('wsflow eval --zoo')).toMatch(/--zoo: expected a value/);
    expect(invocations('wsflow align --zoo z && wsflow train --zoo z   # comment [--x]')).toEqual(['wsflow align --zoo z', 'wsflow train --zoo z']);
    expect(invocations('wsflow sample --flow f --out s [--solver rk4]')).toEqual(['wsflow sample --flow f --out s']);
    expect(isConcrete('wsflow info --memory ARCH --batch N')).toBe(false);
    expect(isConcrete('wsflow train --graph virtual')).toBe(true);
  });
});
