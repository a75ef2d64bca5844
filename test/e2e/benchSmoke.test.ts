// The benchmark scripts that `wsflow bench <script>` and `npm run bench` run, each at its smallest setting on the CPU
// (one WDBC workload, a step or two, nothing written to bench/results): they must finish and print their result lines.
// Their timings are not judged here — that is what the scripts are for.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { binding } from '../../lib/native/binding.js';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/native/loadBinding.js';

function run(script: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(packageRoot, 'bench', script), ...args], { encoding: 'utf8', cwd: packageRoot, timeout: 240_000, env: { ...process.env, WSF_QUIET: '1', PEER_PYTHON: '/nonexistent' } });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

describe('benchmark scripts at their smallest setting', () => {
  const results = path.join(packageRoot, 'bench', 'results');
  const before = fs.existsSync(results) ? fs.readdirSync(results).sort() : [];

  it('engine.mjs: one WDBC training step and the sampling rate, with the FMA ceiling and the recorded peer ratio', () => {
    const r = run('engine.mjs', ['--only', 'wdbc', '--repeats', '1', '--no-write', '--no-peer']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/FMA peak \(measured/);
    expect(r.out).toMatch(/^wdbc +train +[\d.]+ ms .*sampling [\d.]+ nets\/s .*peer 1274 ms → [\d.]+×/m);
  }, 240_000);

  it.skipIf(!binding().cpuIsa().bf16)('engine.mjs --bf16: the bf16 row and the alternating rounds (CPUs with AVX-512 BF16)', () => {
    const r = run('engine.mjs', ['--only', 'wdbc', '--repeats', '1', '--no-write', '--no-peer', '--bf16', '--bf16-rounds', '1']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^wdbc-bf16 +train +[\d.]+ ms .*vs f32: training [\d.]+×, sampling [\d.]+×/m);
    expect(r.out).toMatch(/^wdbc +float vs bf16 over 1 alternating rounds: [\d.]+\/[\d.]+ ms → [\d.]+×/m);
  }, 240_000);

  it('flow.mjs: two fused training steps and sampling per geometry on WDBC', () => {
    const r = run('flow.mjs', ['--only', 'wdbc', '--steps', '2', '--step', 'fused', '--sample-n', '4', '--sample-steps', '2', '--no-write']);
    expect(r.code, r.err).toBe(0);
    for (const g of ['euclidean', 'normalized', 'geometric']) expect(r.out).toMatch(new RegExp(`^wdbc +${g} +fused +train [\\d.]+ ms/step .*sampling [\\d.]+ nets/s`, 'm'));
  }, 240_000);

  it('geometry.mjs: every geometry kernel timed on the host path', () => {
    const r = run('geometry.mjs', ['--seconds', '0.02', '--no-write']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/canonicalizeBackward +geometric\/corrected +cpu +host/);
  }, 240_000);

  it('zoo.mjs: a two-run WDBC zoo with its accuracy summary as JSON', () => {
    const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-benchzoo-')), 'zoo.safetensors');
    const r = run('zoo.mjs', ['wdbc', '--runs', '2', '--epochs', '12', '--out', out]);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(r.out.trim().split('\n').pop()!) as { task: string; networks: number; runs: number };
    expect(summary).toMatchObject({ task: 'wdbc', runs: 2 });
    expect(summary.networks).toBeGreaterThan(0);
    expect(fs.existsSync(out)).toBe(true);
  }, 240_000);

  it('wrote nothing into bench/results', () => {
    const after = fs.existsSync(results) ? fs.readdirSync(results).sort() : [];
    expect(after).toEqual(before);
  });
});
