// The benchmark scripts (bench/*.mjs, what `wsflow bench <script>` runs) check their options before any work, as the
// CLI's commands do: --help prints the script's usage and exits 0; an unknown option, a missing or malformed value
// exits 2 with one line naming the script and the option. gpu-check — run once per rare GPU session — hands its
// sections the options in one form whichever form was typed.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/native/loadBinding.js';

const bench = path.join(packageRoot, 'bench');
const scripts = fs.readdirSync(bench).filter((f) => f.endsWith('.mjs')).sort();

function run(script: string, ...args: string[]) {
  const r = spawnSync(process.execPath, [path.join(bench, script), ...args], { encoding: 'utf8', cwd: packageRoot, timeout: 30_000, env: { ...process.env, WSF_QUIET: '1' } });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

describe('bench scripts: options checked before any work', () => {
  it('lists the scripts it checks', () => {
    expect(scripts).toEqual(expect.arrayContaining(['engine.mjs', 'flow.mjs', 'geometry.mjs', 'gpu-check.mjs', 'run.mjs', 'zoo.mjs']));
  });

  for (const s of scripts) {
    it(`${s}: --help prints its usage, an unknown option exits 2 with one line`, () => {
      const first = fs.readFileSync(path.join(bench, s), 'utf8').split('\n').find((l) => l.startsWith('// '))!.slice(3);
      let r = run(s, '--help');
      expect(r.code, r.err).toBe(0);
      expect(r.out.split('\n')[0]).toBe(first);
      r = run(s, '--no-such-option');
      expect(r.code).toBe(2);
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
      expect(r.err).toMatch(new RegExp(`^bench/${s.replace('.', '\\.')}: unknown option --no-such-option; expected `));
      expect(r.out).toBe('');
    });
  }

  it('the research scripts of bench/quality print their usage on --help (and do nothing else)', () => {
    const quality = fs.readdirSync(path.join(bench, 'quality')).filter((f) => f.endsWith('.mjs') && f !== 'common.mjs').sort();
    expect(quality.length).toBeGreaterThan(10);
    for (const s of quality) {
      const first = fs.readFileSync(path.join(bench, 'quality', s), 'utf8').split('\n').find((l) => l.startsWith('// '))!.slice(3);
      const r = run(path.join('quality', s), '--help');
      expect(r.code, `${s}: ${r.err}`).toBe(0);
      expect(r.out.split('\n')[0], s).toBe(first);
    }
  }, 60_000);

  it('the research scripts of bench/quality reject an unknown option (a misspelt one would run with the default) before any work', () => {
    const quality = fs.readdirSync(path.join(bench, 'quality')).filter((f) => f.endsWith('.mjs') && !['common.mjs', 'trials-table.mjs'].includes(f)).sort();
    for (const s of quality) {
      const r = run(path.join('quality', s), '--no-such-option', '3');
      expect(r.code, `${s}: ${r.err}`).toBe(2);
      // (a stale dist/ adds a warning line first; the error is the last line)
      expect(r.err.trimEnd().split('\n').pop(), s).toMatch(new RegExp(`^${s.replace('.', '\\.')}: unknown option --no-such-option; this script takes --`));
      expect(r.out, s).toBe('');
    }
  }, 120_000);

  it('bench/quality/trials.mjs rejects a trial key it does not know, and a --trial that is not a JSON object', () => {
    let r = run('quality/trials.mjs', '--zoo', 'missing.safetensors', '--trial', '{"solver":"rk4","solverStep":8}');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unknown trial key solverStep; known: geometry, D, /);
    r = run('quality/trials.mjs', '--zoo', 'missing.safetensors', '--trial', '[1]');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--trial must be a JSON object/);
    r = run('quality/trials.mjs', '--zoo', 'missing.safetensors', '--trial', '{solver: rk4}');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--trial is not JSON/);
  });

  it('unknownOptions: names the unknown option, a missing value and the --name=value form; flags take no value', async () => {
    const { unknownOptions } = (await import(path.join(bench, 'quality', 'common.mjs'))) as { unknownOptions: (argv: string[], known: string[], flags?: string[]) => string | undefined };
    const known = ['--zoo', '--steps', '--skip-own'];
    expect(unknownOptions(['--zoo', 'z', '--steps', '8'], known)).toBeUndefined();
    expect(unknownOptions(['--zoo', 'z', '--skip-own', '--steps', '8'], known, ['--skip-own'])).toBeUndefined();
    expect(unknownOptions(['--zoo', 'z', '--skip-own', '--steps', '8'], known)).toBe('--skip-own needs a value');
    expect(unknownOptions(['--zoo', 'z', '--step', '8'], known)).toMatch(/unknown option --step; this script takes --zoo --steps --skip-own/);
    expect(unknownOptions(['--zoo'], known)).toBe('--zoo needs a value');
    expect(unknownOptions(['--zoo', '--steps', '8'], known)).toBe('--zoo needs a value');
    expect(unknownOptions(['--steps=8'], known)).toMatch(/write --steps VALUE/);
    expect(unknownOptions(['--steps', '-1'], known)).toBeUndefined();
  });

  it('malformed values and missing arguments exit 2 naming the option', () => {
    let r = run('engine.mjs', '--repeats', 'five');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--repeats expects an integer but received 'five'/);
    r = run('engine.mjs', '--isa', 'sse4');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--isa expects one of avx512, avx2, portable but received 'sse4'/);
    r = run('flow.mjs', '--steps');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--steps expects a value/);
    r = run('geometry.mjs', '--seconds', '0');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--seconds must be > 0/);
    r = run('gpu-check.mjs', '--quick');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/expected a results directory/);
    r = run('zoo.mjs', 'wdbc', 'mnist');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/unexpected argument 'mnist'/);
  });

  it("gpu-check passes its sections --peer and --workloads as --name=value whichever form was given", () => {
    const parse = (args: string[]) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e',
        `const m = await import(${JSON.stringify(path.join(bench, 'gpu-check.mjs'))}); console.log(JSON.stringify(m.parseArgs(${JSON.stringify(args)})));`],
      { encoding: 'utf8', cwd: packageRoot, timeout: 30_000 });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { dir: string; seconds: number; only?: string[]; cpuBench: boolean; quick: boolean; sectionArgs: string[] };
    };
    const a = parse(['out', '--peer', 'none', '--workloads', 'wdbc,mnist', '--bench-only', '--seconds', '0.2', '--only', 'engine']);
    const b = parse(['out', '--peer=none', '--workloads=wdbc,mnist', '--bench-only', '--seconds=0.2', '--only=engine']);
    expect(a).toEqual(b);
    expect(a).toEqual({ dir: 'out', seconds: 0.2, only: ['engine'], cpuBench: true, quick: false, sectionArgs: ['--bench-only', '--peer=none', '--workloads=wdbc,mnist'] });
  });
  it("the GPU check's training table compares with the recorded H200 figures only on an H200", async () => {
    type Table = (train: object, peerRow: (c: string, m: string) => object | undefined, o: { quick: boolean; sameCard: boolean }) => string[];
    const m = (await import(pathToFileURL(path.join(bench, 'gpu', 'engine.mjs')).href)) as { trainTable: Table; sameCardAsRecorded: (n: unknown) => boolean };
    expect(m.sameCardAsRecorded('NVIDIA H200')).toBe(true);
    expect(m.sameCardAsRecorded('NVIDIA H100 80GB HBM3')).toBe(false);
    expect(m.sameCardAsRecorded(undefined)).toBe(false);
    // 20 ms per MNIST step; the recorded compiled peer is 11.868 ms (0.6×).
    const train = { mnist: { D: 32, B: 8, cuda: { train_ms_median: 20, peak_mib: 1000 }, cpu: { skipped: 'x' } } };
    const ratios = (rows: string[]) => rows[1]!.trim().split(/\s{2,}/).slice(-2);
    const none = () => undefined;
    expect(ratios(m.trainTable(train, none, { quick: false, sameCard: true }))).toEqual(['0.59× (rec.)', '—']);
    const other = m.trainTable(train, none, { quick: false, sameCard: false });
    expect(ratios(other)).toEqual(['—', '—']);
    expect(other[1]).toMatch(/11\.87/); // the recorded figure is still shown
    expect(other[1]).not.toMatch(/×/);
    // A peer timed in this run gives both ratios whatever the card.
    const live = (c: string, mode: string) => (mode === 'eager' ? { train_ms_median: 40 } : { train_ms_median: 10 });
    expect(ratios(m.trainTable(train, live, { quick: false, sameCard: false }))).toEqual(['0.50×', '2.0×']);
  });
});
