// Shared by the bench/quality scripts: the compiled package, command-line options, the git commit, the device
// string, and the trained reference set (the last checkpoint of every zoo run).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { usageOf } from '../util/args.mjs';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const requireDist = (rel) => {
  warnIfDistStale();
  return createRequire(import.meta.url)(path.join(root, 'dist', rel));
};

/**
 * Warns (once) when a lib/ source is newer than the compiled dist/: a script would otherwise run the old code and
 * record results under options that code ignores. A warning, not an error: copies (e.g. to a GPU host) can give
 * sources fresh modification times.
 */
let distChecked = false;
function warnIfDistStale() {
  if (distChecked) return;
  distChecked = true;
  const built = fs.statSync(path.join(root, 'dist', 'index.js'), { throwIfNoEntry: false })?.mtimeMs;
  if (built === undefined) return;
  const newer = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const f = path.join(dir, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.ts') && fs.statSync(f).mtimeMs > built) newer.push(path.relative(root, f));
    }
  };
  if (fs.existsSync(path.join(root, 'lib'))) walk(path.join(root, 'lib'));
  if (newer.length > 0) {
    console.error(`warning: ${newer.length} lib/ source(s) are newer than dist/ (${newer.slice(0, 3).join(', ')}${newer.length > 3 ? ', …' : ''}): run npx tsc -p tsconfig.build.json, or the results are the old code's`);
  }
}

/**
 * The first problem with `argv` given the script's options (`known`, e.g. ['--zoo', '--steps']; flags listed in
 * `flags` take no value): an unknown option — a typo would otherwise run silently with the default — or an option
 * without its value. Undefined when there is none.
 */
export function unknownOptions(argv, known, flags = []) {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) continue;
    const name = a.includes('=') ? a.slice(0, a.indexOf('=')) : a;
    if (!known.includes(name)) return `unknown option ${name}; this script takes ${known.join(' ')}`;
    if (a.includes('=')) return `write ${name} VALUE, not ${name}=VALUE`;
    if (!flags.includes(name) && (i + 1 >= argv.length || argv[i + 1].startsWith('--'))) return `${name} needs a value`;
    if (!flags.includes(name)) i++;
  }
  return undefined;
}

/**
 * `--key value` options: get(key, default); all(key) for repeated keys. `-h`/`--help` on the command line prints the
 * running script's usage (its header comment) and exits 0. With `known` (the script's options; `flags`, those of them
 * that take no value) anything else exits 2 before any work (see unknownOptions).
 */
export function cliArgs(argv = process.argv.slice(2), known = undefined, flags = []) {
  if ((argv.includes('--help') || argv.includes('-h')) && process.argv[1]) {
    process.stdout.write(`${usageOf(path.resolve(process.argv[1]))}\n`);
    process.exit(0);
  }
  if (known !== undefined) {
    const bad = unknownOptions(argv, known, flags);
    if (bad !== undefined) {
      console.error(`${path.basename(process.argv[1] ?? 'script')}: ${bad} (see --help)`);
      process.exit(2);
    }
  }
  return {
    get: (k, d) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; },
    all: (k) => argv.flatMap((a, i) => (a === k && i + 1 < argv.length ? [argv[i + 1]] : [])),
  };
}

/**
 * The options of the scripts that probe saved flows against a zoo: `--zoo <file> --flow <file> [--flow …]
 * [--samples N] [--steps N] [--out file]`; prints the usage and exits 2 without a zoo or a flow.
 */
export function zooFlowArgs(defaultSamples, extra = []) {
  const { get, all } = cliArgs(undefined, ['--zoo', '--flow', '--samples', '--steps', '--out', '--align-by', ...extra]);
  const zooFile = get('--zoo');
  const flows = all('--flow');
  if (!zooFile || flows.length === 0) { console.error('usage: --zoo <file> --flow <file> [--flow <file> ...] [--samples N] [--steps N] [--out file]'); process.exit(2); }
  return { get, zooFile, flows, n: Number(get('--samples', String(defaultSamples))), steps: Number(get('--steps', '32')) };
}

/** The commit: WSF_COMMIT when set (a copied tree on the GPU host has no .git), else git's, '-dirty' with uncommitted code. */
export function gitCommit() {
  if (process.env.WSF_COMMIT) return process.env.WSF_COMMIT;
  const git = (args) => execSync(`git ${args}`, { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
  try {
    // '-dirty' when the code that runs differs from the commit (results files being appended do not count): the paths
    // the reproduce records check too.
    const dirty = git(`status --porcelain --untracked-files=no -- ${requireDist('reproduce/harness.js').CODE_PATHS.join(' ')}`) !== '';
    return git('rev-parse --short HEAD') + (dirty ? '-dirty' : '');
  } catch { return 'unknown'; }
}

export const cpuDevice = () => `cpu (${os.cpus()[0]?.model}, ${os.cpus().length} cores)`;

/** The device a trial ran on, in words: the CPU, or the CUDA device's name and compute capability. */
export function deviceLabel(device) {
  if (device !== 'cuda') return cpuDevice();
  const { binding } = requireDist('native/binding.js');
  const c = binding().cudaInfo();
  return `cuda (${c.name}, cc ${c.ccMajor}.${c.ccMinor})`;
}

/** Indices of the last checkpoint of every run (the zoo's final epoch, one per run). */
export function lastCheckpoints(zoo) {
  const maxEpoch = Math.max(...zoo.epoch);
  const seen = new Set();
  const last = [];
  for (let i = 0; i < zoo.n; i++) {
    if (zoo.epoch[i] !== maxEpoch || seen.has(zoo.run[i])) continue;
    seen.add(zoo.run[i]);
    last.push(i);
  }
  return last;
}

/** Rows `idx` of a B×P batch, packed. */
export function pickRows(x, idx, P) {
  const o = new Float32Array(idx.length * P);
  idx.forEach((k, j) => o.set(x.subarray(k * P, (k + 1) * P), j * P));
  return o;
}

/**
 * The zoo aligned as the scripts do (weight matching, seed 0): each checkpoint on its own, or with `--align-by run`
 * on the command line one permutation per training run (see `groups` of alignNetworks).
 */
export function alignedZoo(w, zoo, argv = process.argv.slice(2)) {
  const by = cliArgs(argv).get('--align-by', 'checkpoint');
  if (by !== 'checkpoint' && by !== 'run') { console.error(`--align-by must be checkpoint or run, got ${by}`); process.exit(2); }
  return { ...w.alignNetworks(zoo.arch, zoo.weights, { seed: 0, ...(by === 'run' ? { groups: zoo.run } : {}) }), by };
}

/**
 * Test accuracy and loss of a B×P batch of networks (summaries), with model-averaging accuracy at the sizes `bmaNs`
 * that fit (5 random ensembles each; omitted when `bmaNs` is empty).
 */
export async function evalWithBma(w, task, arch, x, bmaNs) {
  const e = await w.evaluateNetworks(task, arch, x);
  const k = x.length / arch.numParams;
  const bma = bmaNs.length === 0 ? undefined : (await w.bmaCurve(task, arch, x, { ns: bmaNs.filter((m) => m <= k), repeats: 5, seed: 0 })).points.map((p) => ({ n: p.n, acc: p.accuracy.mean }));
  return { acc: e.accuracySummary, loss: e.lossSummary, ...(bma !== undefined ? { bma } : {}) };
}

/** Appends `entry` to the JSON array in `file` (created when absent), written atomically. */
export function appendJsonRun(w, file, entry) {
  const prev = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : [];
  prev.push(entry);
  w.writeFileAtomic(file, `${JSON.stringify(prev, null, 1)}\n`);
}
