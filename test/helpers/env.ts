// Environment switches set by a test file and put back after each test.
import { afterEach } from 'vitest';

/** Restores each named environment variable (value or absence) after every test of the calling file. */
export function restoreEnvAfterEach(names: readonly string[]): void {
  const saved = new Map(names.map((k) => [k, process.env[k]] as const));
  afterEach(() => {
    for (const [k, v] of saved) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}
