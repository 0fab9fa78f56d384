import { defineConfig } from 'vitest/config';

// Files named *.serial.test.ts read or move machine-wide KSM counters
// (pages_sharing, general_profit): they run one at a time, after the rest.

// Under `npm run test:asan` (scripts/asan.sh preloads the ASan runtime), three
// files stay out; the plain suite runs them. Two never load the sanitized
// build: the npm pack test installs the prebuild, the cmake-js test loads its
// own. process.test.ts switches merge-any on and off in the test worker
// itself, and PR_SET_MEMORY_MERGE 0 then unmerges page by page across every
// VMA, ASan's 16 TiB shadow included: one call runs for many minutes in the
// kernel. (Sanitized processes that call enableMerge() and exit are tested
// there; those that also call disableMerge() run unsanitized.) For the same
// reason doctor-lost.test.ts (a merge-any parent whose sanitized children
// clear the flag) runs in the plain suite only, and register.test.ts, whose
// pm2 daemon and cluster workers, all sanitized, outlast the two-minute hook
// before they are up; both reach the addon only through the prctl calls
// process.test.ts covers.
const sanitized = /libclang_rt\.asan/.test(process.env.LD_PRELOAD ?? '');
const notSanitized = sanitized
  ? ['test/package.test.ts', 'test/cmake.test.ts', 'test/process.test.ts', 'test/doctor-lost.test.ts', 'test/register.test.ts']
  : [];

export default defineConfig({
  test: {
    pool: 'forks',
    globalSetup: ['test/setup/ksm-knobs.ts', 'test/setup/label-files.ts'],
    // Sanitized workers leave through exit(), where LeakSanitizer checks.
    setupFiles: sanitized ? ['test/setup/asan-exit.ts'] : [],
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
