import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

// Native addon tests: forked workers (a crash stays contained). Two projects:
//   unit — everything but the GPU files;
//   gpu  — test/**/*.gpu.test.ts, one file at a time (one device). They skip without CUDA;
//          `npm run test:gpu` sets WSF_REQUIRE_CUDA=1 so that a missing device fails instead.
// `vitest run` runs both projects; `--project gpu` only the GPU files.
// Workers: vitest's default is one fewer than the cores, so on a 2-core machine (CI's) the files ran one at a time
// while the longest (the arm64 cross-compile, ptxas) kept one core busy; two workers there took the unit run from
// 285 s to 173 s.
export default defineConfig({
  test: {
    pool: 'forks',
    maxWorkers: Math.max(2, availableParallelism() - 1),
    setupFiles: ['test/helpers/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: { WSF_QUIET: '1' },
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/**/*.gpu.test.ts'] } },
      { extends: true, test: { name: 'gpu', include: ['test/**/*.gpu.test.ts'], fileParallelism: false } },
    ],
  },
});
