/**
 * The process a per-process reader is about, resolved once: the pid checked,
 * the root chosen, a thread id turned into its process (thread group), and
 * whether it is this very process (whose labels and registries apply).
 */
import * as path from 'node:path';

import { KsmUnsupportedError, withHint, type SystemError } from '../errors.js';
import { checkOptions, checkPid, checkRoot, type RootOption } from '../validate.js';
import { isDirectory } from './files.js';
import { isKernelThread, readProcStat } from './stat.js';
import { readProcStatusIfReadable } from './status.js';

export interface ProcessTarget {
  /** The process: its thread group id. */
  pid: number;
  /** Its directory under `<root>/proc`: the pid, or `self` for "this process" (also in fixture trees). */
  dir: number | 'self';
  /** Directory that holds `proc/` and `sys/`: `/`, or a fixture tree. */
  root: string;
  /** This very process on this machine. */
  self: boolean;
  /** The id the caller gave, when it named a thread of the process rather than the process. */
  thread: number | undefined;
  /** A kernel thread (kthreadd, ksmd, ...): no user memory, so no smaps_rollup or pagemap to read. */
  kernelThread?: boolean;
  /** Its effective uid, from the status read that resolved it (undefined where unreadable, or not read). */
  euid?: number;
}

/** Fixture roots stand for other machines; the real /proc exists only on Linux. */
export function assertProcRoot(root: string): void {
  if (root === '/' && process.platform !== 'linux') {
    throw new KsmUnsupportedError(`there is no /proc with KSM accounting on ${process.platform}`);
  }
}

/**
 * Checks `pid` and `options.root` as every per-process function takes them,
 * and resolves a thread id to its process (the kernel accepts /proc/TID for
 * any thread, and would answer for the whole process under the thread's id).
 *
 * @throws TypeError / RangeError for a bad pid or root.
 */
export function resolveTarget(pid: unknown, options: unknown, name = 'pid'): ProcessTarget {
  const { given, root } = checkTarget(pid, options, name);
  if (given === undefined) return { pid: process.pid, dir: 'self', root, self: root === '/', thread: undefined };
  return targetOf(root, given);
}

/** resolveTarget()'s checks of the pid and the root. */
function checkTarget(pid: unknown, options: unknown, name: string): { given: number | undefined; root: string } {
  const given = checkPid(pid, name);
  const root = checkRoot(checkOptions<RootOption>(options));
  assertProcRoot(root);
  if (root !== '/' && !isDirectory(path.join(root, 'proc'))) throw noProcError(root);
  return { given, root };
}

/**
 * resolveTarget() for a report that starts its reads of one process at once:
 * `early` names the given pid's own /proc directory, where the reads a
 * report starts first (smaps, ksm_stat, smaps_rollup, task/) show its
 * process's memory even for a thread's id, and resolve() then reads status
 * as resolveTarget() would, while the reader threads read (its read and
 * parse were 0.03x of a 220-VMA call, before its smaps read could start:
 * BENCHMARKS.md section 7). Where startedAsResolved() says the reads were
 * not what the resolved target's would have been, the caller starts again
 * with it (a thread's id costs its smaps read twice). The checks (TypeError, RangeError, a fixture root without proc/)
 * are made at once, as resolveTarget()'s.
 */
export interface EarlyTarget {
  early: ProcessTarget;
  resolve(): ProcessTarget;
}

export function resolveTargetEarly(pid: unknown, options: unknown, name = 'pid'): EarlyTarget {
  const { given, root } = checkTarget(pid, options, name);
  if (given === undefined) {
    const self: ProcessTarget = { pid: process.pid, dir: 'self', root, self: root === '/', thread: undefined };
    return { early: self, resolve: () => self };
  }
  return {
    early: { pid: given, dir: given, root, self: root === '/' && given === process.pid, thread: undefined },
    resolve: () => targetOf(root, given),
  };
}

/**
 * Whether the reads started for resolveTargetEarly()'s `early` are the ones
 * `resolved` would start: the same directory (not a thread's id, whose
 * process reports are about and under whose pid they are told), and no
 * kernel thread (no memory to read beside smaps, no smaps_rollup).
 */
export function startedAsResolved(early: ProcessTarget, resolved: ProcessTarget): boolean {
  return resolved.dir === early.dir && resolved.pid === early.pid && resolved.kernelThread !== true;
}

/** ENOENT, Node-shaped, for a fixture root without proc/ (rather than "no such process"). */
function noProcError(root: string): SystemError {
  const dir = path.join(root, 'proc');
  const error = new Error(`ENOENT: no such file or directory, stat '${dir}'`) as SystemError;
  Object.assign(error, { code: 'ENOENT', errno: -2, syscall: 'stat', path: dir });
  return withHint(error, 'options.root must be a directory holding proc/ (and sys/), as / does');
}

/** This process, on this machine. */
export function selfTarget(): ProcessTarget {
  return { pid: process.pid, dir: 'self', root: '/', self: true, thread: undefined };
}

/** The target for a pid already checked (from a /proc listing, or another target). */
export function targetOf(root: string, pid: number): ProcessTarget {
  const status = readProcStatusIfReadable(root, pid);
  const tgid = status?.tgid;
  const process_ = tgid !== undefined && tgid > 0 && tgid !== pid ? tgid : pid;
  // The process's own uid only (a thread's credentials can differ from its process's).
  const euid = process_ === pid ? status?.euid : undefined;
  return {
    pid: process_,
    dir: process_,
    root,
    self: root === '/' && process_ === process.pid,
    thread: process_ === pid ? undefined : pid,
    kernelThread: status?.kernelThread ?? kernelThreadByFlags(root, process_),
    ...(euid === undefined ? {} : { euid }),
  };
}

/** Before `Kthread:` in status (6.3): PF_KTHREAD in stat's flags; false when unreadable. */
function kernelThreadByFlags(root: string, pid: number): boolean {
  try {
    const stat = readProcStat(root, pid);
    return stat !== undefined && isKernelThread(stat);
  } catch {
    return false;
  }
}

/** Distinct processes of a list of ids: threads resolved to their processes, first occurrence kept. */
export function distinctTargets(root: string, pids: readonly number[]): ProcessTarget[] {
  const seen = new Set<number>();
  const out: ProcessTarget[] = [];
  for (const pid of pids) {
    const target = targetOf(root, pid);
    if (seen.has(target.pid)) continue;
    seen.add(target.pid);
    out.push(target);
  }
  return out;
}
