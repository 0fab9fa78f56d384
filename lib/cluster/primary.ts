/**
 * The primary side of mergeable heaps: one seed per primary process, the
 * check that this machine can merge, and the worker's extra arguments.
 */
import { randomInt } from 'node:crypto';

import { KsmUnsupportedError } from '../errors.js';
import { supportInfo } from '../kernel/support.js';
import { enableMerge } from '../merge/opt-in.js';
import { PRELOAD, SEED_MAX, startupArgs, stripModeArgs } from './flags.js';
import { CONFIG_ENV, workerConfig, type ResolvedOptions } from './options.js';

// Under Symbol.for so two copies of the package in one primary agree.
const kSeed = Symbol.for('node-ksm.siblingSeed');
const kWarned = Symbol.for('node-ksm.mergeableHeapsWarned');
const processState = process as unknown as Record<symbol, number | boolean | undefined>;

/**
 * The siblings' seed: chosen with crypto the first time this primary starts
 * a worker, the same for every worker it starts, never written anywhere
 * else. Another primary (another host, a restart) draws its own.
 */
export function siblingSeed(): number {
  let seed = processState[kSeed];
  if (typeof seed !== 'number') {
    seed = randomInt(1, SEED_MAX + 1);
    processState[kSeed] = seed;
  }
  return seed;
}

/** Why this machine cannot merge the workers' memory, or undefined when it can. */
function whyNot(): string | undefined {
  const info = supportInfo();
  if (!info.supported) return info.reason;
  if (!info.prctlMerge.available) return info.prctlMerge.reason;
  return undefined;
}

/**
 * Whether workers can be started mergeable. Switches merge-any on in the
 * primary (its children inherit it). Where the machine cannot merge: throws
 * with `requireMerge`, else warns once and returns false (plain workers).
 */
export function preparePrimary(options: ResolvedOptions): boolean {
  let reason = whyNot();
  if (reason === undefined) {
    try {
      enableMerge();
      return true;
    } catch (error) {
      if (options.requireMerge) throw error;
      reason = (error as Error).message;
    }
  }
  if (options.requireMerge) throw new KsmUnsupportedError(`mergeable heaps need KSM and PR_SET_MEMORY_MERGE: ${reason}`);
  if (processState[kWarned] !== true) {
    processState[kWarned] = true;
    process.emitWarning(`mergeable heaps are off, workers start as usual: ${reason}`, {
      type: 'KsmWarning',
      code: 'KSM_MERGEABLE_HEAPS',
    });
  }
  return false;
}

/** The arguments that put a worker in the mode, before its own execArgv (the preload must run first). */
export function modeExecArgv(): string[] {
  return [...startupArgs(siblingSeed()), '--require', PRELOAD];
}

export function modeEnv(options: ResolvedOptions): Record<string, string> {
  return { [CONFIG_ENV]: JSON.stringify(workerConfig(options)) };
}

/**
 * `execArgv` with the mode's arguments first; the caller's own seed,
 * --predictable or our preload dropped. Taken from process.execArgv of a
 * `node -e` primary, the eval switch goes, as child_process.fork() drops it
 * for that array (else every child runs the primary's script again).
 */
export function withModeArgs(execArgv: readonly string[]): string[] {
  let own = execArgv;
  const evalScript = (process as unknown as { _eval?: string })._eval;
  if (execArgv === process.execArgv && evalScript !== undefined) {
    const index = execArgv.lastIndexOf(evalScript);
    if (index > 0) own = [...execArgv.slice(0, index - 1), ...execArgv.slice(index + 1)];
  }
  return [...modeExecArgv(), ...stripModeArgs(own)];
}
