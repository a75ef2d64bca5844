// CLI option parsing (lib/cli/args.ts) and the report's SVG plots (lib/pipeline/svg.ts).
import { describe, expect, it } from 'vitest';
import { type CommandSpec, UsageError, helpText, parseCommand } from '../../lib/cli/args.js';
import { histogram, lineChart } from '../../lib/pipeline/svg.js';

const spec = {
  name: 'toy',
  summary: 'a toy command',
  usage: ['wsflow toy [options]'],
  description: 'Does nothing.',
  options: {
    n: { type: 'int', min: 1, max: 10, default: 3, description: 'a count' },
    x: { type: 'number', description: 'a number' },
    ns: { type: 'ints', min: 1, description: 'a list' },
    mode: { type: 'string', choices: ['a', 'b'], default: 'a', description: 'a mode' },
    flag: { type: 'boolean', description: 'a switch' },
  },
  positionals: [{ name: 'what', description: 'a thing' }],
  examples: ['wsflow toy --n 2'],
} as const satisfies CommandSpec;

function err(argv: string[]): string {
  try {
    parseCommand(spec, argv);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('parseCommand', () => {
  it('converts values and applies defaults', () => {
    const { values, positionals } = parseCommand(spec, ['thing', '--x', '-2.5', '--ns', '1,4,16', '--flag']);
    expect(values).toEqual({ n: 3, x: -2.5, ns: [1, 4, 16], mode: 'a', flag: true });
    expect(positionals).toEqual(['thing']);
    expect(parseCommand(spec, ['--x=1e-3']).values.x).toBe(0.001);
  });

  it('reports one problem per message, naming the option', () => {
    expect(err(['--n', '11'])).toBe('--n: expected an integer in [1, 10], got 11');
    expect(err(['--n', '-1'])).toBe('--n: expected an integer in [1, 10], got -1');
    expect(err(['--n', '2.5'])).toBe("--n: expected an integer in [1, 10], got '2.5'");
    expect(err(['--x', 'abc'])).toBe("--x: expected a number, got 'abc'");
    expect(err(['--ns', '1,,2'])).toMatch(/^--ns: expected a comma-separated list of integers/);
    expect(err(['--mode', 'c'])).toBe("--mode: expected one of a, b, got 'c'");
    expect(err(['--nope'])).toBe("unknown option '--nope' (see 'wsflow toy --help')");
    expect(err(['--n'])).toBe('--n: expected a value');
    expect(err(['--flag=yes'])).toBe('--flag: takes no value');
    expect(err(['a', 'b'])).toBe("unexpected argument 'b' (see 'wsflow toy --help')");
  });

  it('--help short-circuits validation', () => {
    expect(parseCommand(spec, ['--n', 'bad', '--help']).help).toBe(true);
    const h = helpText(spec);
    expect(h).toMatch(/--n N +a count \(default 3\)/);
    expect(h).toMatch(/--mode a\|b/);
    expect(h).toMatch(/Examples:\n {2}wsflow toy --n 2/);
  });
});

describe('svg plots', () => {
  it('line charts skip non-finite points and stay self-contained', () => {
    const s = lineChart({ title: 'T <1>', xLabel: 'x', yLabel: 'y', logX: true, series: [{ name: 'a', points: [[1, 0.5], [2, NaN], [4, 0.7]], band: [0.1, 0, 0.1] }] });
    expect(s.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(s).toContain('T &lt;1&gt;');
    expect(s).not.toMatch(/NaN|Infinity|<script|href=/);
    expect(lineChart({ title: 'empty', xLabel: 'x', yLabel: 'y', series: [] })).toContain('no data');
  });

  it('histograms show one bar group per series', () => {
    const s = histogram({ title: 'h', xLabel: 'acc', bins: 4, range: [0, 1], series: [{ name: 'a', values: [0.1, 0.2, 0.9] }, { name: 'b', values: [0.5] }] });
    expect((s.match(/fill-opacity="0.45"/g) ?? []).length).toBe(3); // a: bins 0 and 3, b: bin 2
    expect(s).not.toMatch(/NaN/);
  });
});
