import { defineConfig } from 'vitest/config';

// Files named *.serial.test.ts read or move machine-wide KSM counters
// (pages_sharing, general_profit): they run one at a time, after the rest.
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
          exclude: ['test/**/*.serial.test.ts'],
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
