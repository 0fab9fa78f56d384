/**
 * The V8 flags of mergeable heaps, and why each is there. Measured on Node 20
 * (V8 11.3); BENCHMARKS.md section 9 has the figures.
 */
import * as path from 'node:path';

/** The preload the primary puts on each worker's command line. */
export const PRELOAD = path.join(__dirname, 'preload.js');

/**
 * On the command line of every sibling. `--random-seed` seeds the platform
 * generator that picks V8's mmap hints (same heap page addresses in every
 * sibling) and each isolate's generator (hash seed, identity hashes).
 * `--predictable` implies single-threaded GC, no concurrent recompilation and
 * no memory reducer, and is the only switch for V8's deterministic GC
 * worklist order (otherwise segment sizes follow malloc_usable_size). Both
 * are left out of V8's code-cache flag hash: Node's embedded code cache
 * still loads.
 */
export function startupArgs(seed: number): string[] {
  return [`--random-seed=${seed}`, '--predictable'];
}

/**
 * Set by the worker for its start-up only: incremental marking is scheduled
 * by wall time, the rest of start-up is not. Any flag outside V8's
 * predictable set rejects Node's embedded code cache while it is set.
 */
export const STARTUP_ONLY_FLAGS = '--no-incremental-marking';

/** What the worker switches back on when start-up is over. */
export type ServingMode = 'mergeable' | 'concurrent' | 'deterministic';

export const SERVING_MODES: readonly ServingMode[] = ['mergeable', 'concurrent', 'deterministic'];

/**
 * Never in the list: --concurrent-marking and --parallel-marking. V8 builds
 * its ConcurrentMarking without worklists when both are off at Heap::SetUp,
 * and switching either on later crashes the first major GC (SIGSEGV).
 * --concurrent-recompilation cannot come back either: Isolate::Init only
 * creates the compile dispatcher when it is on at start (switching it on
 * later changes nothing). `--no-single-threaded-gc` has to come first: V8
 * re-applies flag implications on every change.
 */
const SERVING_FLAGS: Record<ServingMode, string | undefined> = {
  // Incremental marking back, with time-bounded steps, and the memory
  // reducer: the GC pauses of a normal process, GC work still on one thread.
  mergeable: '--no-predictable --incremental-marking --memory-reducer',
  // Everything V8 can still turn on: parallel scavenge, concurrent sweeping,
  // parallel compaction. These place objects in a different order in every
  // sibling, and the saving after traffic drops.
  concurrent:
    '--no-predictable --incremental-marking --memory-reducer --no-single-threaded-gc --parallel-scavenge ' +
    '--concurrent-sweeping --concurrent-array-buffer-sweeping --parallel-compaction --parallel-pointer-update',
  deterministic: undefined,
};

export function servingFlags(mode: ServingMode): string | undefined {
  return SERVING_FLAGS[mode];
}

/** `--random-seed` only takes a non-zero int: 0 means "system random". */
export const SEED_MAX = 2 ** 31 - 1;

/**
 * `execArgv` without the mode's arguments: a seed (`--random-seed=N` or
 * `--random-seed N`), `--predictable`, and `--require` of our preload.
 */
export function stripModeArgs(execArgv: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (/^--random[-_]seed=/.test(arg) || arg === '--predictable') continue;
    if (/^--random[-_]seed$/.test(arg) || ((arg === '--require' || arg === '-r') && execArgv[i + 1] === PRELOAD)) {
      i += 1;
      continue;
    }
    if (arg === `--require=${PRELOAD}`) continue;
    kept.push(arg);
  }
  return kept;
}
