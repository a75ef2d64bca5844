// What `npm install wsflow` gets: the file list of `npm pack` (dry run, from package.json "files") must hold
// everything the installed package needs at install time (the addon's sources for cmake-js, the install script) and
// at run time (every module reachable from "main", "types" and "bin", the shipped data), must leave out the
// development tree (tests, benchmarks, results, the kernel lab), and every package the shipped code loads must be a
// Node builtin or a (optional) dependency — a devDependency loaded at run time works in the repository and breaks
// for every user. Needs dist/ (npx tsc -p tsconfig.build.json), as the CLI tests do.
import { execFileSync, spawnSync } from 'node:child_process';
import { builtinModules } from 'node:module';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  main: string;
  types: string;
  bin: Record<string, string>;
  files: string[];
  scripts: Record<string, string>;
  license: string;
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
};

let packed: Set<string>;
let unpackedSize = 0;

/** Git-tracked files under a folder (the checkout's own list, independent of package.json "files"). */
function tracked(dir: string): string[] {
  return execFileSync('git', ['ls-files', '--', dir], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((f) => f.length > 0);
}

/**
 * The specifiers a compiled CommonJS module loads with a literal: require("…"), import("…"), and the loaders made
 * by createRequire in lib/ (`req(…)`, `req.resolve(…)`, `requireNative(…)`).
 */
function specifiers(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(/\b(?:require|import|req|requireNative)(?:\.resolve)?\(\s*["'`]([^"'`$]+)["'`]\s*[,)]/g)) out.push(m[1]!);
  return out;
}

/** Resolves a relative specifier from `from` (a package-relative path) the way Node's CommonJS loader would. */
function resolveLocal(from: string, spec: string): string | null {
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), spec));
  for (const c of [base, `${base}.js`, `${base}.json`, path.posix.join(base, 'index.js')]) {
    const abs = path.join(ROOT, c);
    if (fs.existsSync(abs) && fs.statSync(abs).isFile()) return c;
  }
  return null;
}

/** The package name of a bare specifier ('@scope/name/sub' → '@scope/name', 'name/sub' → 'name'). */
function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

beforeAll(() => {
  if (!fs.existsSync(path.join(ROOT, pkg.main))) throw new Error(`${pkg.main} is missing: run npx tsc -p tsconfig.build.json before the tests`);
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, npm_config_update_notifier: 'false', npm_config_loglevel: 'error' },
  });
  const report = JSON.parse(out) as { files: { path: string }[]; unpackedSize: number }[];
  packed = new Set(report[0]!.files.map((f) => f.path));
  unpackedSize = report[0]!.unpackedSize;
}, 60_000);

describe('the npm package (npm pack --dry-run)', () => {
  it('ships the install step and every source the addon build compiles', () => {
    expect(pkg.scripts.install).toBe('node scripts/install.js');
    for (const f of ['package.json', 'README.md', 'CMakeLists.txt', 'scripts/install.js', 'data/README.md', 'docs/METHOD.md']) expect(packed.has(f), f).toBe(true);
    // CMakeLists.txt globs native/core/*.{cc,cu} and native/binding/*.cc; their headers come along.
    const native = [...tracked('native/core'), ...tracked('native/binding')];
    expect(native.length).toBeGreaterThan(20);
    const missing = native.filter((f) => !packed.has(f));
    expect(missing).toEqual([]);
    // The build's own inputs outside those folders: CMakeLists.txt must not need anything that is not shipped
    // in a default (non-emulator, non-lab) build.
    const cmake = fs.readFileSync(path.join(ROOT, 'CMakeLists.txt'), 'utf8');
    for (const m of cmake.matchAll(/\$\{CMAKE_CURRENT_SOURCE_DIR\}\/([\w./*-]+)/g)) {
      const ref = m[1]!;
      if (ref.startsWith('native/dev')) continue; // only with -DWSF_CUDA_EMU=ON / -DWSF_BUILD_DEV=ON (source checkout)
      const dir = ref.includes('*') ? path.posix.dirname(ref) : ref;
      expect([...packed].some((f) => f === dir || f.startsWith(`${dir}/`)), `CMakeLists.txt uses ${ref}`).toBe(true);
    }
  });

  it('the install step, when the addon does not compile, ends with what the build needs and how to retry', () => {
    // A copy of the install script in a folder with nothing to build, no binary, and a PATH without cmake or a
    // compiler (cmake-js found through NODE_PATH): the compile fails as on a machine without the tools.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wsflow-install-'));
    try {
      fs.mkdirSync(path.join(dir, 'scripts'));
      fs.copyFileSync(path.join(ROOT, 'scripts', 'install.js'), path.join(dir, 'scripts', 'install.js'));
      const emptyPath = fs.mkdtempSync(path.join(os.tmpdir(), 'wsflow-nopath-'));
      const r = spawnSync(process.execPath, [path.join(dir, 'scripts', 'install.js')], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 60_000,
        env: { HOME: dir, PATH: emptyPath, NODE_PATH: path.join(ROOT, 'node_modules') },
      });
      fs.rmSync(emptyPath, { recursive: true, force: true });
      expect(r.status, r.stdout + r.stderr).not.toBe(0);
      const last = r.stderr.trim().split('\n').at(-1) ?? '';
      expect(last).toMatch(/^wsflow: the native addon did not compile \(see above\)\. It needs cmake >= 3\.18 and a C\+\+17 compiler/);
      expect(last).toMatch(/npm rebuild wsflow/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ships every module reachable from main, types and bin, and loads only builtins and dependencies', () => {
    // Optional peers (package.json peerDependenciesMeta) count: the code loads them inside a try, e.g. tfjs-node.
    const runtimeDeps = new Set([...Object.keys(pkg.dependencies), ...Object.keys(pkg.optionalDependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})]);
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    const entries = [pkg.main, ...Object.values(pkg.bin)];
    for (const e of [...entries, pkg.types]) expect(packed.has(e), e).toBe(true);
    // bin/wsflow.js loads the compiled CLI by a computed path (so it can say when dist/ is missing): start there too.
    expect(fs.readFileSync(path.join(ROOT, pkg.bin.wsflow!), 'utf8')).toMatch(/'dist', 'cli', 'main\.js'/);
    const seen = new Set<string>();
    const queue = [...entries, 'dist/cli/main.js'];
    const unresolved: string[] = [];
    const foreign: string[] = [];
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      if (!file.endsWith('.js')) continue;
      for (const spec of specifiers(fs.readFileSync(path.join(ROOT, file), 'utf8'))) {
        if (spec.startsWith('.')) {
          const target = resolveLocal(file, spec);
          if (target === null) unresolved.push(`${file} → ${spec}`);
          else queue.push(target);
        } else if (!builtins.has(spec) && !runtimeDeps.has(packageName(spec))) {
          foreign.push(`${file} → ${spec}`);
        }
      }
    }
    expect(unresolved).toEqual([]);
    expect(foreign).toEqual([]);
    expect(seen.size).toBeGreaterThan(50);
    const notShipped = [...seen].filter((f) => !packed.has(f));
    expect(notShipped).toEqual([]);
    // Type declarations beside every shipped module, so TypeScript users resolve the whole public surface.
    const noTypes = [...seen].filter((f) => f.startsWith('dist/') && !packed.has(f.replace(/\.js$/, '.d.ts')));
    expect(noTypes).toEqual([]);
  });

  it('ships the data the tasks read and the licence, and none of the development tree', () => {
    for (const f of tracked('data')) expect(packed.has(f), f).toBe(true);
    expect(pkg.license).toBe('MIT');
    expect(packed.has('LICENSE'), 'LICENSE (package.json declares MIT)').toBe(true);
    const dev = [...packed].filter((f) => /^(test|bench|results|native\/dev|build[^/]*|node_modules|\.gpu|\.ci|lib)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'));
    expect(dev).toEqual([]);
    // A few MB at most: a stray zoo, sample file or build folder would show here first.
    expect(unpackedSize).toBeLessThan(16 * 2 ** 20);
  });
});
