import { defineConfig } from 'vitest/config';

// Native addon tests: forked workers (a crash stays contained), one file per worker. GPU files
// (*.gpu.test.ts) skip without CUDA; `npm run test:gpu` sets WSF_REQUIRE_CUDA=1 so they fail instead.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    setupFiles: ['test/helpers/setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: { WSF_QUIET: '1' },
  },
});
