/**
 * Option parsing and validation shared by every `wsflow` subcommand: one declarative spec per command drives
 * `node:util` parseArgs (strict), the conversion and range checks of every value, the existence checks of input
 * files, and the `--help` text. Every problem becomes a {@link UsageError}: one line naming the option and what
 * was expected, exit code 2, before any work starts.
 */
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';

/** A bad command line: printed as one line on stderr, exit code 2. */
export class UsageError extends Error {
  readonly code = 'ERR_USAGE';

  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** How an option's value is read. */
export type OptType = 'string' | 'int' | 'number' | 'boolean' | 'ints' | 'numbers';

/** One option of a command. */
export interface OptSpec {
  readonly type: OptType;
  readonly description: string;
  readonly short?: string;
  /** Applied when the option is absent (and shown in the help). */
  readonly default?: string | number | boolean | readonly number[];
  /** Allowed values (strings). */
  readonly choices?: readonly string[];
  /** Inclusive bounds for numbers (each element of a list). */
  readonly min?: number;
  readonly max?: number;
  /** Exclusive lower bound for numbers. */
  readonly above?: number;
  /** The value must name an existing file, folder, or either. */
  readonly exists?: 'file' | 'dir' | 'any';
  /** Placeholder in the help, e.g. 'N' or 'DIR'. */
  readonly metavar?: string;
  /** Shown in the help only (the command checks it, e.g. required unless another option is given). */
  readonly required?: boolean;
  /**
   * Takes effect only with this other option given (or given one of `values`, its default counting when absent): alone
   * it is refused, since it would be ignored without a word.
   */
  readonly needs?: string | { readonly option: string; readonly values: readonly string[] };
}

/** A command's declarative description. */
export interface CommandSpec {
  readonly name: string;
  /** One line for `wsflow --help`. */
  readonly summary: string;
  /** Synopsis lines after `Usage:`. */
  readonly usage: readonly string[];
  /** Paragraph(s) explaining what the command does and writes. */
  readonly description: string;
  readonly options: Readonly<Record<string, OptSpec>>;
  /** Positional arguments (name, description); none when absent. */
  readonly positionals?: readonly { readonly name: string; readonly description: string; readonly required?: boolean }[];
  readonly examples: readonly string[];
}

type ValueOf<O> = O extends { type: 'boolean' } ? boolean : O extends { type: 'int' | 'number' } ? number : O extends { type: 'ints' | 'numbers' } ? number[] : string;

/** Parsed values: options with a default are always present. */
export type Values<S extends Readonly<Record<string, OptSpec>>> = { [K in keyof S]: S[K] extends { default: unknown } ? ValueOf<S[K]> : ValueOf<S[K]> | undefined };

/** Options most commands share. */
export const COMMON = {
  device: { type: 'string', choices: ['auto', 'cpu', 'cuda'], description: "where the native engine runs ('auto': CUDA when a device works, else the CPU; default: WSF_DEVICE, else auto)" },
  seed: { type: 'int', min: 0, max: 2 ** 31 - 1, default: 0, metavar: 'N', description: 'base seed of everything random in this command' },
  threads: { type: 'int', min: 1, max: 1024, metavar: 'N', description: 'CPU worker threads of the native engine (default: all cores, or WSF_NUM_THREADS)' },
  json: { type: 'boolean', description: 'print the result as one JSON object on stdout; progress as JSON lines on stderr' },
} as const satisfies Record<string, OptSpec>;

const HELP: OptSpec = { type: 'boolean', short: 'h', description: 'show this help' };

function flag(name: string): string {
  return `--${name}`;
}

function convertNumber(name: string, o: OptSpec, raw: string, integer: boolean): number {
  const t = raw.trim();
  // (Number() would also read hexadecimal, octal and binary literals: '0x10' as 16)
  const v = t === '' || /^[+-]?0[xob]/i.test(t) ? NaN : Number(t);
  const kind = integer ? 'an integer' : 'a number';
  if (!Number.isFinite(v) || (integer && !Number.isInteger(v))) throw new UsageError(`${flag(name)}: expected ${kind}${range(o)}, got '${raw}'`);
  if ((o.min !== undefined && v < o.min) || (o.max !== undefined && v > o.max) || (o.above !== undefined && v <= o.above)) {
    throw new UsageError(`${flag(name)}: expected ${kind}${range(o)}, got ${raw}`);
  }
  return v;
}

function range(o: OptSpec): string {
  const lo = o.above !== undefined ? `> ${o.above}` : o.min !== undefined ? `≥ ${o.min}` : '';
  const hi = o.max !== undefined ? `≤ ${o.max}` : '';
  return lo !== '' && hi !== '' ? ` in ${o.above !== undefined ? '(' : '['}${o.min ?? o.above}, ${o.max}]` : lo !== '' ? ` ${lo}` : hi !== '' ? ` ${hi}` : '';
}

function convert(name: string, o: OptSpec, raw: string | boolean, checkPaths: boolean): unknown {
  if (o.type === 'boolean') return raw === true;
  const s = String(raw);
  switch (o.type) {
    case 'int':
      return convertNumber(name, o, s, true);
    case 'number':
      return convertNumber(name, o, s, false);
    case 'ints':
    case 'numbers': {
      const parts = s.split(',').map((p) => p.trim());
      if (parts.length === 0 || parts.some((p) => p === '')) throw new UsageError(`${flag(name)}: expected a comma-separated list of ${o.type === 'ints' ? 'integers' : 'numbers'}, got '${s}'`);
      return parts.map((p) => convertNumber(name, o, p, o.type === 'ints'));
    }
    default: {
      if (o.choices !== undefined && !o.choices.includes(s)) throw new UsageError(`${flag(name)}: expected one of ${o.choices.join(', ')}, got '${s}'`);
      if (s === '') throw new UsageError(`${flag(name)}: expected a value, got an empty string`);
      if (o.exists !== undefined && checkPaths) checkExists(flag(name), s, o.exists);
      return s;
    }
  }
}

/** Throws a UsageError unless `p` exists as the given kind. */
export function checkExists(label: string, p: string, kind: 'file' | 'dir' | 'any'): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new UsageError(`${label}: ${p} does not exist`);
  }
  if (kind === 'file' && !st.isFile()) throw new UsageError(`${label}: ${p} is not a file`);
  if (kind === 'dir' && !st.isDirectory()) throw new UsageError(`${label}: ${p} is not a folder`);
}

/**
 * Parses a command line against a command's options: unknown options, values of the wrong type or outside their
 * range or choices, extra or missing positionals throw a UsageError; `help` is true when -h/--help was given (nothing
 * else is validated then). `checkPaths: false` skips the checks that options naming files make of the filesystem
 * (for checking documented command lines).
 */
export function parseCommand<S extends CommandSpec>(spec: S, argv: readonly string[], opts: { checkPaths?: boolean } = {}): { values: Values<S['options']>; positionals: string[]; help: boolean } {
  if (argv.includes('--help') || argv.includes('-h')) return { values: {} as Values<S['options']>, positionals: [], help: true };
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, o] of Object.entries(spec.options)) options[name] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short !== undefined ? { short: o.short } : {}) };
  const allowPositionals = (spec.positionals?.length ?? 0) > 0;
  // parseArgs takes '-1' for an option: join a negative number to its valued option ('--lr -1' → '--lr=-1') so
  // that range checks, not the parser, report it.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const o = a.startsWith('--') && !a.includes('=') ? spec.options[a.slice(2)] : undefined;
    if (o !== undefined && o.type !== 'boolean' && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else args.push(a);
  }
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals }) as typeof parsed;
  } catch (e) {
    throw translateParseError(spec, e as Error & { code?: string });
  }
  // An option given twice would silently take its last value.
  const seen = new Set<string>();
  for (const a of args) {
    const m = /^--([^=]+)/.exec(a);
    if (m === null || spec.options[m[1]!] === undefined) continue;
    if (seen.has(m[1]!)) throw new UsageError(`--${m[1]}: given more than once`);
    seen.add(m[1]!);
  }
  for (const [name, o] of Object.entries(spec.options)) {
    if (o.needs === undefined || parsed.values[name] === undefined) continue;
    if (typeof o.needs === 'string') {
      const parent = parsed.values[o.needs];
      if (parent === undefined || parent === false) throw new UsageError(`--${name}: applies with --${o.needs} only`);
    } else {
      const { option, values: allowed } = o.needs;
      const parent = String(parsed.values[option] ?? spec.options[option]?.default ?? '');
      if (!allowed.includes(parent)) throw new UsageError(`--${name}: applies with --${option} ${allowed.join(' or ')} only (here --${option} is ${parent})`);
    }
  }
  const values: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    const raw = parsed.values[name];
    if (raw === undefined) {
      if (o.default !== undefined) values[name] = Array.isArray(o.default) ? [...(o.default as number[])] : o.default;
      continue;
    }
    values[name] = convert(name, o, raw, opts.checkPaths ?? true);
  }
  const max = spec.positionals?.length ?? 0;
  if (parsed.positionals.length > max) throw new UsageError(`unexpected argument '${parsed.positionals[max]}' (see 'wsflow ${spec.name} --help')`);
  for (const [i, p] of (spec.positionals ?? []).entries()) {
    if (p.required === true && parsed.positionals[i] === undefined) throw new UsageError(`missing <${p.name}>: ${p.description}`);
  }
  return { values: values as Values<S['options']>, positionals: parsed.positionals, help: false };
}

function translateParseError(spec: CommandSpec, e: Error & { code?: string }): Error {
  const quoted = /'(-{1,2}[^' ]+)/.exec(e.message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(`unknown option '${quoted ?? e.message}' (see 'wsflow ${spec.name} --help')`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const name = quoted ?? '';
      const o = spec.options[name.replace(/^-+/, '')];
      if (o?.type === 'boolean') return new UsageError(`${name}: takes no value`);
      return new UsageError(`${name}: expected a value${o?.metavar !== undefined ? ` (${o.metavar})` : ''}`);
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return new UsageError(`unexpected argument '${/'([^']+)'/.exec(e.message)?.[1] ?? ''}' (see 'wsflow ${spec.name} --help')`);
    default:
      return new UsageError(e.message.split('\n')[0] ?? String(e));
  }
}

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  lines.push(line);
  return lines.join(`\n${indent}`);
}

/** The `--help` text of a command. */
export function helpText(spec: CommandSpec): string {
  const lines: string[] = ['Usage:'];
  for (const u of spec.usage) lines.push(`  ${u}`);
  lines.push('', spec.description, '');
  if ((spec.positionals?.length ?? 0) > 0) {
    lines.push('Arguments:');
    for (const p of spec.positionals!) lines.push(`  <${p.name}>`.padEnd(30) + p.description);
    lines.push('');
  }
  lines.push('Options:');
  const entries: [string, OptSpec][] = [...Object.entries(spec.options), ['help', HELP]];
  for (const [name, o] of entries) {
    const mv = o.type === 'boolean' ? '' : ` ${o.metavar ?? (o.choices !== undefined ? o.choices.join('|') : o.type === 'int' || o.type === 'number' ? 'N' : o.type === 'ints' || o.type === 'numbers' ? 'LIST' : 'VALUE')}`;
    const left = `  ${o.short !== undefined ? `-${o.short}, ` : ''}--${name}${mv}`;
    const def = o.default !== undefined && o.type !== 'boolean' ? ` (default ${Array.isArray(o.default) ? (o.default as number[]).join(',') : String(o.default)})` : '';
    const req = o.required === true ? ' (required)' : '';
    const text = `${o.description}${req}${def}`;
    const pad = 34;
    const head = left.length >= pad ? `${left}\n${' '.repeat(pad)}` : left.padEnd(pad);
    lines.push(head + wrap(text, 118 - pad, ' '.repeat(pad)));
  }
  lines.push('', 'Examples:');
  for (const ex of spec.examples) lines.push(`  ${ex}`);
  return lines.join('\n');
}
