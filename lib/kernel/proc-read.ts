/**
 * Reading another process's /proc files without ever waiting on it. smaps,
 * smaps_rollup, ksm_stat (for ksm_mergeable) and pagemap take the target's
 * mmap lock, which the target (or anyone driving it) can hold for seconds:
 * switching merge-any off over a large mapping holds it for ~3.7 s per TiB.
 * A read is made off the event loop on a thread of its own (files.ts), and
 * the caller stops waiting at its deadline. A read still stuck past its
 * deadline keeps its thread until the lock is released, so a process with
 * such a read outstanding is not read again until it returns: one stuck
 * process holds one thread, however often it is asked about.
 */
import { KsmNoSuchProcessError, KsmTimeoutError } from '../errors.js';
import { procReadError } from './errno.js';
import type { NativeSmapsScan } from '../binding.js';
import { exists, startRead, startSmapsRead, type PendingRead, type ScanReads } from './files.js';
import { procPath } from './paths.js';
import type { ProcessTarget } from './target.js';

/** Per process (root + pid): the read that outlived its deadline, until it returns. */
const stuck = new Map<string, Promise<unknown>>();

function processKey(target: ProcessTarget): string {
  return `${target.root}\0${target.dir}`;
}

export function timeoutError(target: ProcessTarget, file: string, deadlineMs: number): KsmTimeoutError {
  const error = new KsmTimeoutError(
    `reading /proc/${target.pid}/${file} did not finish within ${deadlineMs} ms: ` +
      "the process's memory map is locked (it is mapping, unmapping or changing its merge state); it was skipped",
  );
  Object.defineProperty(error, 'pid', { value: target.pid, enumerable: true });
  return error;
}

/** Whether a read of this process is still stuck past an earlier deadline. */
export function isStuck(target: ProcessTarget): boolean {
  return stuck.has(processKey(target));
}

/**
 * A whole /proc/PID file, read off the event loop.
 *
 * @throws KsmNoSuchProcessError when the process is gone.
 * @throws KsmTimeoutError (with `pid`) past `deadlineMs`, or at once while an
 *   earlier read of the same process is still stuck.
 * @throws SystemError EACCES (with a hint) for another user's process.
 */
export async function readProcFile(target: ProcessTarget, file: string, deadlineMs?: number): Promise<Buffer> {
  return readPending(target, file, deadlineMs, startRead);
}

/**
 * readProcFile() of smaps, scanned by the addon's reader thread where it can
 * (files.ts startSmapsRead(): `fields` are the columns the caller reads,
 * `reads` what is read beside the scan).
 */
export async function readProcSmaps(
  target: ProcessTarget,
  fields: readonly string[],
  deadlineMs?: number,
  reads?: ScanReads,
): Promise<Buffer | NativeSmapsScan> {
  return readPending(target, 'smaps', deadlineMs, (file) => startSmapsRead(file, fields, reads));
}

async function readPending<T>(target: ProcessTarget, file: string, deadlineMs: number | undefined, start: (path: string) => PendingRead<T>): Promise<T> {
  const key = processKey(target);
  if (deadlineMs !== undefined && stuck.has(key)) throw timeoutError(target, file, deadlineMs);
  const pending = start(procPath(target.root, target.dir, file));
  const read = pending.promise;
  try {
    if (deadlineMs === undefined) return await read;
    return await withDeadline(read, deadlineMs, () => {
      pending.abandon();
      const settled = read.then(
        () => undefined,
        () => undefined,
      );
      stuck.set(key, settled);
      void settled.then(() => {
        if (stuck.get(key) === settled) stuck.delete(key);
      });
      return timeoutError(target, file, deadlineMs);
    });
  } catch (error) {
    throw procReadError(error, target.pid);
  }
}

/** The same, undefined when the kernel has no such file (older kernels) but the process is there. */
export async function readProcFileIfPresent(target: ProcessTarget, file: string, deadlineMs?: number): Promise<Buffer | undefined> {
  try {
    return await readProcFile(target, file, deadlineMs);
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown } }).cause;
    if (error instanceof KsmNoSuchProcessError && cause?.code === 'ENOENT' && exists(procPath(target.root, target.dir))) {
      return undefined;
    }
    throw error;
  }
}

/** `promise`, or the error `onTimeout` makes after `ms`. The timer never holds the process open. */
export function withDeadline<T>(promise: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
