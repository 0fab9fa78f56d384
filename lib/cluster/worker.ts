/**
 * The worker side of mergeable heaps, run by the preload before the
 * application: its own Math.random() state, merge-any re-asserted, a
 * deterministic start-up, then the switch to serving. Kept apart from the
 * primary's code so other launchers can start it too.
 */
import { randomInt } from 'node:crypto';
import * as diagnosticsChannel from 'node:diagnostics_channel';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { isMainThread } from 'node:worker_threads';

import { bindingState } from '../binding.js';
import { ownComm, setOwnComm } from '../kernel/comm.js';
import { enableMerge } from '../merge/opt-in.js';
import { SEED_MAX, STARTUP_ONLY_FLAGS, servingFlags, stripModeArgs } from './flags.js';
import type { WorkerConfig } from './options.js';

/** Node 20.?+ publishes this once a server listens (cluster workers included). */
const LISTEN_CHANNEL = 'tracing:net.server.listen:asyncEnd';

interface WorkerState {
  config: WorkerConfig;
  serving: boolean;
  timer: NodeJS.Timeout | undefined;
  onListen: (() => void) | undefined;
  /** Whether this context's Math.random() got its own seed. */
  ownRandom: boolean;
}

// Under Symbol.for so two copies of the package in one process share it.
const kState = Symbol.for('node-ksm.mergeableHeapWorker');
const processState = process as unknown as Record<symbol, WorkerState | undefined>;

function warn(message: string): void {
  process.emitWarning(message, { type: 'KsmWarning', code: 'KSM_MERGEABLE_HEAPS' });
}

/**
 * Gives the calling context a Math.random() state of its own. V8 seeds a
 * context's generator at its first Math.random() call from --random-seed
 * when that is set: the flag is set to a fresh random value for that call,
 * then to 0, so contexts and worker threads created later seed themselves
 * from their isolate's generator instead. Returns false when Math.random()
 * had been called before (its state then came from the siblings' seed):
 * a new context, seeded from the same value, must agree with it.
 */
export function reseedMathRandom(): boolean {
  const seed = randomInt(1, SEED_MAX + 1);
  v8.setFlagsFromString(`--random-seed=${seed}`);
  try {
    const fresh = Math.random();
    const probe = vm.runInNewContext('Math.random()') as number;
    return fresh === probe;
  } finally {
    v8.setFlagsFromString('--random-seed=0');
  }
}

/** Takes the mode's own arguments out of execArgv (children do not join the group) and the seed out of the title. */
function hideModeArgs(): void {
  const hidden = process.execArgv.some((arg) => /^--random[-_]seed/.test(arg));
  const kept = stripModeArgs(process.execArgv);
  process.execArgv.splice(0, process.execArgv.length, ...kept);
  // The command line (procfs cmdline) is readable by every local user: the seed tells V8's
  // mmap hints and hash seed. The title overwrites argv's memory; it also
  // renames the process, so its comm ("node") is put back.
  if (!hidden) return;
  const comm = ownComm();
  process.title = [process.argv0, ...kept, ...process.argv.slice(1)].join(' ');
  if (comm !== undefined) setOwnComm(comm);
}

/**
 * Ends start-up: switches on what the serving mode keeps, gives malloc's
 * free memory back. Returns true when it switched now, false when it had
 * already or the mode is not running in this process.
 */
export function enterServing(): boolean {
  const state = processState[kState];
  if (!state || state.serving) return false;
  state.serving = true;
  if (state.timer) clearTimeout(state.timer);
  if (state.onListen) diagnosticsChannel.unsubscribe(LISTEN_CHANNEL, state.onListen);
  state.timer = undefined;
  state.onListen = undefined;
  const flags = servingFlags(state.config.serving);
  if (flags !== undefined) v8.setFlagsFromString(flags);
  if (state.config.trimMalloc) {
    const addon = bindingState();
    if (addon.loaded) addon.binding.trimMalloc();
  }
  return true;
}

/** Whether this process runs as a mergeable-heap worker, and where it is. */
export function workerStatus(): { active: boolean; serving: boolean; ownRandom: boolean } {
  const state = processState[kState];
  return { active: state !== undefined, serving: state?.serving ?? false, ownRandom: state?.ownRandom ?? false };
}

/** Everything the preload does, once per process, in the main thread only. */
export function startWorker(config: WorkerConfig): void {
  if (!isMainThread || processState[kState]) return;
  const ownRandom = reseedMathRandom();
  if (!ownRandom) {
    warn('Math.random() was called before the mergeable-heap preload ran: its sequence is the one every sibling has');
  }
  hideModeArgs();
  try {
    enableMerge();
  } catch (error) {
    warn(`enableMerge() failed in the worker: ${(error as Error).message}`);
  }
  const state: WorkerState = { config, serving: false, timer: undefined, onListen: undefined, ownRandom };
  processState[kState] = state;
  v8.setFlagsFromString(STARTUP_ONLY_FLAGS);
  if (config.onListening) {
    state.onListen = () => setImmediate(enterServing);
    diagnosticsChannel.subscribe(LISTEN_CHANNEL, state.onListen);
  }
  if (config.startupTimeoutMs !== null) {
    state.timer = setTimeout(enterServing, config.startupTimeoutMs);
    state.timer.unref();
  }
}
