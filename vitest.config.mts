import { defineConfig } from 'vitest/config';

// Files named *.serial.test.ts read or move machine-wide KSM counters
// (pages_sharing, general_profit): they run one at a time, after the rest.

// Under `npm run test:asan` (scripts/asan.sh preloads the ASan runtime), the
// two files that never load the sanitized build stay out: the npm pack test
// installs the prebuild, the cmake-js test loads its own build.
const sanitized = /libclang_rt\.asan/.test(process.env.LD_PRELOAD ?? '');
const notSanitized = sanitized ? ['test/package.test.ts', 'test/cmake.test.ts'] : [];

export default defineConfig({
  test: {
    pool: 'forks',
    globalSetup: ['test/setup/ksm-knobs.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'parallel',
          sequence: { groupOrder: 0 },
          include: ['test/**/*.test.ts'],
          exclude: ['test/**/*.serial.test.ts', ...notSanitized],
        },
      },
      {
        extends: true,
        test: {
          name: 'serial',
          include: ['test/**/*.serial.test.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
