// The research scripts of bench/quality — the commands behind every row of results/trials — run end to end at toy
// size on a small WDBC zoo: trials.mjs trains and saves two flows (the default mixture prior and the thesis' Gaussian
// prior), and every other script reads them (or the zoo) and writes its JSON where it is told (never into results/).
// Each must exit 0 and write parseable output; the numbers are not judged here (toy flows sample poorly).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packageRoot } from '../../lib/native/loadBinding.js';
import { buildZoo } from '../../lib/zoo/buildZoo.js';

const quality = path.join(packageRoot, 'bench', 'quality');
let dir = '';
let zoo = '';
let mix = ''; // flow with the default mixture prior
let gauss = ''; // flow with the thesis' N(0, 0.1²) prior

function run(script: string, args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(quality, script), ...args], { encoding: 'utf8', cwd: packageRoot, timeout: 120_000, env: { ...process.env, WSF_QUIET: '1', WSF_THREADS: '1' } });
  return { code: r.status, out: r.stdout ?? '', err: r.stderr ?? '' };
}

function json(file: string): unknown {
  const text = fs.readFileSync(file, 'utf8');
  return file.endsWith('.jsonl') ? text.trim().split('\n').map((l) => JSON.parse(l) as unknown) : JSON.parse(text);
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-quality-'));
  zoo = path.join(dir, 'zoo.safetensors');
  await buildZoo({ task: 'wdbc', out: zoo, runs: 4, epochs: 4, schedule: { skipEpochs: 0, everyIters: 4 }, seed: 3 });
  const base = { steps: 6, batch: 8, D: 8, layers: 1, solverSteps: 4, hiddenIdentity: true, time: 'logit-normal' };
  const r = run('trials.mjs', ['--zoo', zoo, '--align-by', 'run', '--samples', '8', '--bma', '1,4', '--out', path.join(dir, 'wdbc.jsonl'), '--save-flow', path.join(dir, 'flow.safetensors'),
    '--trial', JSON.stringify({ ...base, prior: 'mixture', priorBy: 'run', priorScale: 0.5 }), '--trial', JSON.stringify({ ...base, prior: 'gaussian', probeFeatures: 2 })]);
  expect(r.code, r.err).toBe(0);
  mix = path.join(dir, 'flow.safetensors');
  gauss = `${mix}.1`;
}, 180_000);

afterAll(() => {
  if (dir !== '') fs.rmSync(dir, { recursive: true, force: true });
});

describe('bench/quality scripts at toy size', () => {
  it('trials.mjs wrote a row per trial and saved both flows; a saved flow resamples with another solver', () => {
    const rows = json(path.join(dir, 'wdbc.jsonl')) as { config: { prior: string }; sample: { acc: { n: number } } }[];
    expect(rows.map((r) => r.config.prior)).toEqual(['mixture', 'gaussian']);
    expect(rows.every((r) => r.sample.acc.n === 8)).toBe(true);
    for (const f of [mix, gauss]) expect(fs.existsSync(f), f).toBe(true);
    const r = run('trials.mjs', ['--zoo', zoo, '--align-by', 'run', '--samples', '8', '--load-flow', gauss, '--out', path.join(dir, 'wdbc.jsonl'), '--trial', '{"solver":"rk4","solverSteps":2}']);
    expect(r.code, r.err).toBe(0);
    expect((json(path.join(dir, 'wdbc.jsonl')) as unknown[]).length).toBe(3);
  }, 120_000);

  // [script, arguments] — every script that reads a flow gets the default (mixture-prior) flow where it supports it.
  const cases: [string, () => string[]][] = [
    ['barriers.mjs', () => ['--zoo', zoo, '--pairs', '4', '--align-by', 'run']],
    ['distribution-match.mjs', () => ['--zoo', zoo, '--flow', mix, '--samples', '8', '--steps', '4', '--align-by', 'run']],
    ['flow-displacement.mjs', () => ['--zoo', zoo, '--flow', mix, '--samples', '8', '--steps', '4', '--align-by', 'run']],
    ['learnable-part.mjs', () => ['--zoo', zoo, '--flow', mix, '--samples', '8', '--align-by', 'run']],
    ['mode-check.mjs', () => ['--zoo', zoo, '--flow', mix, '--samples', '8', '--steps', '4', '--align-by', 'run']],
    ['path-diagnostic.mjs', () => ['--flow', mix, '--task', 'wdbc', '--n', '8', '--steps', '8', '--zoo', zoo, '--align-by', 'run']],
    ['prior-spread.mjs', () => ['--zoo', zoo, '--scales', '0,0.5', '--samples', '8', '--align-by', 'run']],
    ['renoise.mjs', () => ['--flow', gauss, '--task', 'wdbc', '--n', '8', '--steps', '4', '--rho', '1,0.6', '--bma', '1,4']],
    ['sgd-sweep.mjs', () => ['--flow', mix, '--task', 'wdbc', '--n', '8', '--steps', '2', '--rows', '8', '--lrs', '0.1']],
    ['start-points.mjs', () => ['--zoo', zoo, '--flow', mix, '--n', '8', '--steps', '4', '--jitter', '0.01']],
    ['trained-bma.mjs', () => ['--zoo', zoo, '--ns', '1,4', '--repeats', '2']],
    ['transfer.mjs', () => ['--flow', mix, '--task', 'wdbc', '--n', '8', '--steps', '4', '--bma', '1,4']],
    ['transfer.mjs', () => ['--flow', gauss, '--task', 'wdbc', '--n', '8', '--steps', '4', '--bma', '1,4', '--zoo', zoo, '--guidance', '0.1', '--rows', '8', '--logit-scale', 'auto', '--sgd-lr', '0.1']],
  ];
  for (const [k, [script, args]] of cases.entries()) {
    it(`${script} ${k === cases.length - 1 ? '(guided, thesis prior) ' : ''}runs and writes JSON`, () => {
      const out = path.join(dir, `${k}-${script}.json`);
      const r = run(script, [...args(), '--out', out]);
      expect(r.code, `${script}: ${r.err.slice(-2000)}`).toBe(0);
      expect(json(out)).toEqual(expect.any(Object));
    }, 120_000);
  }

  it('trials-table.mjs renders the rows as a markdown table', () => {
    const r = run('trials-table.mjs', [dir]);
    expect(r.code, r.err).toBe(0);
    const md = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
    expect(md).toMatch(/^## wdbc$/m);
    expect(md.split('\n').filter((l) => /^\| \d+ \|/.test(l))).toHaveLength(3);
  });
});
