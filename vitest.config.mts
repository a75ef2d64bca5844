import { defineConfig } from 'vitest/config';

// Native addon tests: forked workers (a crash stays contained). Two projects:
//   unit — everything but the GPU files;
//   gpu  — test/**/*.gpu.test.ts, one file at a time (one device). They skip without CUDA;
//          `npm run test:gpu` sets WSF_REQUIRE_CUDA=1 so that a missing device fails instead.
// `vitest run` runs both projects; `--project gpu` only the GPU files.
export default defineConfig({
  test: {
    pool: 'forks',
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
