// The commit a reproduce record names (lib/reproduce/harness.ts gitCommit): '-dirty' only when the code that runs has
// uncommitted changes — a results file written by an earlier experiment does not count. Checked on a scratch git
// repository.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gitCommit } from '../../lib/reproduce/harness.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wsf-git-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const git = (...args: string[]): string => execFileSync('git', args, { cwd: tmp, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();

describe('gitCommit', () => {
  it("names HEAD, with '-dirty' for uncommitted code changes only", () => {
    git('init', '-q');
    for (const f of ['lib/a.ts', 'results/r/table.md', 'README.md']) {
      fs.mkdirSync(path.dirname(path.join(tmp, f)), { recursive: true });
      fs.writeFileSync(path.join(tmp, f), 'one\n');
    }
    git('add', '-A');
    git('-c', 'user.name=t', '-c', 'user.email=t@t', 'commit', '-qm', 'first');
    const sha = git('rev-parse', 'HEAD');
    expect(gitCommit(tmp)).toBe(sha);
    fs.writeFileSync(path.join(tmp, 'results/r/table.md'), 'two\n'); // an earlier run's output
    fs.writeFileSync(path.join(tmp, 'README.md'), 'two\n');
    fs.writeFileSync(path.join(tmp, 'lib/new.ts'), 'untracked\n');
    expect(gitCommit(tmp)).toBe(sha);
    fs.writeFileSync(path.join(tmp, 'lib/a.ts'), 'two\n'); // the code that runs
    expect(gitCommit(tmp)).toBe(`${sha}-dirty`);
    expect(gitCommit(path.join(os.tmpdir(), 'wsf-no-such-dir'))).toBeNull();
  });
});
