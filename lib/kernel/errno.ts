/**
 * One translation of a failed /proc read into what it means: the process is
 * gone, we may not read it, or the kernel has no such file. Every reader of
 * another process's files decides through here.
 */
import { KsmNoSuchProcessError, isSystemError, withHint } from '../errors.js';

export type ProcFailure =
  /** ESRCH / ENOENT: it exited (or never existed). */
  | 'gone'
  /** EACCES / EPERM: another user's process, or one that is not dumpable. */
  | 'not-allowed'
  /** ENOTSUP / EINVAL / ENOTTY: the kernel does not offer this here. */
  | 'unsupported';

/** What a failed read of a /proc file means, or undefined for anything else. */
export function procFailure(error: unknown): ProcFailure | undefined {
  if (!isSystemError(error)) return undefined;
  switch (error.code) {
    case 'ESRCH':
    case 'ENOENT':
      return 'gone';
    case 'EACCES':
    case 'EPERM':
      return 'not-allowed';
    case 'ENOTSUP':
    case 'EOPNOTSUPP':
    case 'EINVAL':
    case 'ENOTTY':
      return 'unsupported';
    default:
      return undefined;
  }
}

export const NOT_ALLOWED_HINT = "reading /proc/PID of another user's process needs root or the same uid";

/** Turns a failed /proc read into the error a caller can act on. */
export function procReadError(error: unknown, pid: number): unknown {
  const failure = procFailure(error);
  if (failure === 'gone') return new KsmNoSuchProcessError(pid, { cause: error });
  if (failure === 'not-allowed' && isSystemError(error) && error.hint === undefined) {
    return withHint(error, NOT_ALLOWED_HINT.replace('PID', String(pid)));
  }
  return error;
}
