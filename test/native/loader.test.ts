import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bindingCandidates, bindingFix, loadBinding, packageRoot } from '../../lib/native/loadBinding.js';
import { binding } from '../../lib/native/binding.js';
import { resolveDevice, WsfError } from '../../lib/index.js';

const tsx = (code: string, env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['--import', 'data:text/javascript,', '-e', code], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    cwd: packageRoot,
  });

describe('native loader', () => {
  it('resolves explicit override → local build → prebuild, in that order', () => {
    const c = bindingCandidates('/tmp/x/wsflow.node');
    expect(c[0]).toBe('/tmp/x/wsflow.node');
    expect(c[1]).toBe(path.join(packageRoot, 'build', 'Release', 'wsflow.node'));
    expect(c[2]).toBe(path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, 'wsflow.node'));
  });

  it('an explicit path that does not exist is an error naming what was tried and the fix', () => {
    let err: (WsfError & { tried?: string[] }) | undefined;
    try {
      loadBinding('/nonexistent/wsflow.node');
    } catch (e) {
      err = e as WsfError & { tried?: string[] };
    }
    expect(err?.code).toBe('ERR_NO_BINARY');
    expect(err?.tried?.[0]).toMatch(/nonexistent.*not found/);
    expect(err?.message).toMatch(/The path given names no addon that loads/);
  });

  it('says what builds the addon: the build script in a checkout, `npm rebuild wsflow` for an installed package', () => {
    expect(bindingFix('/home/me/wsflow')).toMatch(/npm run build:native/);
    const installed = bindingFix(path.join('/home/me/app', 'node_modules', 'wsflow'));
    expect(installed).toMatch(/npm rebuild wsflow/);
    expect(installed).not.toMatch(/build:native/); // not a script of the user's project
  });

  it('environment variables the addon or TF.js would ignore are refused with one line, not a silent default', () => {
    const wsflow = (args: string[], env: Record<string, string>) =>
      spawnSync(process.execPath, [path.join(packageRoot, 'bin', 'wsflow.js'), ...args], { encoding: 'utf8', cwd: packageRoot, env: { ...process.env, WSF_QUIET: '1', ...env } });
    for (const bad of ['abc', '0', '-2', '2.5', '1e3', '4096']) {
      const r = wsflow(['info'], { WSF_NUM_THREADS: bad });
      expect(r.status, bad).toBe(2);
      expect(r.stderr.trim()).toBe(`wsflow info: Expected a whole number in [1, 1024] for WSF_NUM_THREADS but received '${bad}'`);
    }
    const ok = wsflow(['info', '--json'], { WSF_NUM_THREADS: '3' });
    expect(ok.status, ok.stderr).toBe(0);
    expect((JSON.parse(ok.stdout) as { threads: number }).threads).toBe(3);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'wsflow-tfenv-'));
    try {
      const r = wsflow(['zoo', '--runs', '2', '--epochs', '1', '--out', path.join(out, 'z')], { WSF_TF_BACKEND: 'gpu' });
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toBe("wsflow zoo: Expected 'node', 'wasm' or 'cpu' for WSF_TF_BACKEND but received 'gpu'");
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('the CLI prints the failure on one line with what was tried and the fix, exit 1, blaming no option', () => {
    for (const cmd of [['info'], ['demo', '--json']]) {
      const r = spawnSync(process.execPath, [path.join(packageRoot, 'bin', 'wsflow.js'), ...cmd], {
        encoding: 'utf8',
        cwd: packageRoot,
        env: { ...process.env, WSF_BINDING: '/nonexistent/wsflow.node', WSF_DEVICE: '' },
      });
      expect(r.status, r.stderr).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^wsflow ${cmd[0]}: could not load the native addon \\(tried /nonexistent/wsflow\\.node: not found\\)\\. WSF_BINDING names no addon that loads`));
      expect(lines[0]).not.toMatch(/WSF_DEVICE/);
    }
  });

  it('loads the local build and reports build flags', () => {
    const b = binding();
    expect(b.__path).toMatch(/wsflow\.node$/);
    const info = b.buildInfo();
    expect(info.napiVersion).toBe(8);
    const cuda = b.cudaInfo();
    expect(cuda.compiled).toBe(info.cuda);
    if (cuda.deviceCount === 0) expect(cuda.error.length).toBeGreaterThan(0);
  });

  it("'cuda' without a usable device is ERR_NO_CUDA, never a silent fallback; 'cpu' always works", () => {
    expect(resolveDevice('cpu')).toBe('cpu');
    const cuda = binding().cudaInfo();
    if (cuda.deviceCount === 0) {
      let err: WsfError | undefined;
      try {
        resolveDevice('cuda');
      } catch (e) {
        err = e as WsfError;
      }
      expect(err?.code).toBe('ERR_NO_CUDA');
      expect(resolveDevice('auto')).toBe('cpu');
    } else {
      expect(resolveDevice('cuda')).toBe('cuda');
    }
    expect(() => resolveDevice('tpu' as never)).toThrowError(expect.objectContaining({ code: 'ERR_INVALID', message: expect.stringMatching(/'auto', 'cpu' or 'cuda'.*"tpu"/) }));
  });

  it('native argument errors are WsfErrors with codes and the process survives', () => {
    const b = binding();
    let err: WsfError | undefined;
    try {
      b.setNumThreads(-3);
    } catch (e) {
      err = e as WsfError;
    }
    expect(err).toBeInstanceOf(WsfError);
    expect(err?.code).toBe('ERR_INVALID');
    expect(b.numThreads()).toBeGreaterThan(0);
  });

  const cpuBuild = path.join(packageRoot, 'build-cpu', 'Release', 'wsflow.node');
  it.skipIf(!fs.existsSync(cpuBuild))('the CPU-only variant (build-cpu/) loads and says it has no CUDA', () => {
    const r = tsx(`const b=require(${JSON.stringify(cpuBuild)});process.stdout.write(JSON.stringify([b.buildInfo(),b.cudaInfo()]))`);
    expect(r.status).toBe(0);
    const [build, cuda] = JSON.parse(r.stdout) as [{ cuda: boolean }, { compiled: boolean; error: string }];
    expect(build.cuda).toBe(false);
    expect(cuda.compiled).toBe(false);
    expect(cuda.error).toMatch(/without CUDA/);
  });
});
