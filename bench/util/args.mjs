// Command-line options of the benchmark scripts, checked before any work as the CLI's are: `-h`/`--help` prints the
// script's usage (its header comment) and exits 0; an unknown option, a missing value, a value of the wrong kind or
// too many positional arguments exits 2 with one line naming the option. Options take `--name value` or
// `--name=value`.
//
//   const args = benchArgs(import.meta.url, {
//     values: { '--repeats': 'int', '--only': 'list', '--device': ['cpu', 'cuda'] },  // kinds: string, number, int, list, [choices]
//     flags: ['--no-write'],
//     positionals: 1,
//   });
//   args.get('--repeats', 5); args.has('--no-write'); args.positionals[0];
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The leading comment block of a script, without the comment markers (its usage text). */
export function usageOf(file) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const out = [];
  for (const line of lines) {
    if (line.startsWith('#!') || line.startsWith('/* global')) continue;
    if (!line.startsWith('//')) break;
    out.push(line.replace(/^\/\/ ?/, ''));
  }
  return out.join('\n');
}

function fail(script, message) {
  process.stderr.write(`${script}: ${message} (--help for usage)\n`);
  process.exit(2);
}

// The script as named from the repository root (bench/engine.mjs, native/dev/ptxas-report.mjs).
const scriptName = (file) => path.relative(path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..'), file);

/** A usage error found after parsing (a missing positional, a value out of range): one line, exit 2. */
export function benchUsageError(scriptUrl, message) {
  fail(scriptName(fileURLToPath(scriptUrl)), message);
}

function convert(script, name, kind, raw) {
  if (Array.isArray(kind)) {
    if (!kind.includes(raw)) fail(script, `${name} expects one of ${kind.join(', ')} but received '${raw}'`);
    return raw;
  }
  if (kind === 'number' || kind === 'int') {
    const v = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(v) || (kind === 'int' && !Number.isInteger(v))) {
      fail(script, `${name} expects ${kind === 'int' ? 'an integer' : 'a number'} but received '${raw}'`);
    }
    return v;
  }
  if (kind === 'list') {
    const v = raw.split(',').filter((s) => s !== '');
    if (v.length === 0) fail(script, `${name} expects a comma-separated list but received '${raw}'`);
    return v;
  }
  return raw;
}

/**
 * Parses process.argv (or `argv`) against the declared options; exits on --help or bad input.
 * @returns {{ get: (name: string, dflt?: unknown) => any, has: (name: string) => boolean, positionals: string[] }}
 */
export function benchArgs(scriptUrl, { values = {}, flags = [], positionals = 0 } = {}, argv = process.argv.slice(2)) {
  const file = fileURLToPath(scriptUrl);
  const script = scriptName(file);
  const got = new Map();
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') {
      process.stdout.write(`${usageOf(file)}\n`);
      process.exit(0);
    }
    if (!a.startsWith('-') || a === '-') {
      if (pos.length >= positionals) fail(script, `unexpected argument '${a}'`);
      pos.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (flags.includes(name)) {
      if (eq > 0) fail(script, `${name} takes no value`);
      got.set(name, true);
    } else if (name in values) {
      let raw;
      if (eq > 0) raw = a.slice(eq + 1);
      else {
        raw = argv[++i];
        if (raw === undefined || (raw.startsWith('--') && raw.length > 2)) fail(script, `${name} expects a value`);
      }
      got.set(name, convert(script, name, values[name], raw));
    } else {
      const known = [...Object.keys(values), ...flags].sort().join(', ');
      fail(script, `unknown option ${name}; expected ${known || 'no options'}`);
    }
  }
  return {
    get: (name, dflt) => (got.has(name) ? got.get(name) : dflt),
    has: (name) => got.has(name),
    positionals: pos,
  };
}
