/**
 * Under `npm run test:asan` only (vitest.config.mts adds this file then):
 * vitest stops its fork workers with SIGTERM, whose default action ends the
 * process without running exit handlers, and LeakSanitizer checks for leaks
 * in an exit handler. Exiting on SIGTERM lets it check every test worker.
 */
const key = Symbol.for('node-ksm.test.asan-exit');
const state = globalThis as { [key]?: boolean };
if (!state[key]) {
  state[key] = true;
  process.on('SIGTERM', () => process.exit(process.exitCode ?? 0));
}
