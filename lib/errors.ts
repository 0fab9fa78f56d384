/**
 * Errors of the library itself. Kernel refusals are not KsmErrors: they are
 * Node-shaped system errors (`code`, `errno`, `syscall`) from the binding,
 * see {@link SystemError}.
 *
 * `instanceof` is answered through a `Symbol.for` marker, so it holds even
 * when two copies of the package are loaded (the undici pattern).
 */

import { KSM_DIR } from './kernel/names.js';

const kKsmError = Symbol.for('node-ksm.KsmError');

export type KsmErrorCode =
  | 'ERR_KSM_UNSUPPORTED'
  | 'ERR_KSM_NOT_MERGEABLE'
  | 'ERR_KSM_NOT_RUNNING'
  | 'ERR_KSM_TIMEOUT'
  | 'ERR_KSM_NO_SUCH_PROCESS'
  | 'ERR_KSM_INSUFFICIENT_MEMORY'
  | 'ERR_KSM_MISSING_DEPENDENCY';

export class KsmError extends Error {
  readonly code: KsmErrorCode;

  constructor(code: KsmErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KsmError';
    this.code = code;
  }

  get [kKsmError](): true {
    return true;
  }

  /** Matches by marker and `code`, so it holds across two copies of the package. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    if ((value as Record<symbol, unknown>)[kKsmError] !== true) return false;
    const code = (this as { readonly CODE?: string }).CODE;
    return code === undefined || (value as { code?: unknown }).code === code;
  }
}

/** This platform or kernel cannot do KSM; `reason` says why. */
export class KsmUnsupportedError extends KsmError {
  static readonly CODE = 'ERR_KSM_UNSUPPORTED';
  declare readonly code: 'ERR_KSM_UNSUPPORTED';
  readonly reason: string;

  constructor(reason: string) {
    super('ERR_KSM_UNSUPPORTED', `KSM is not supported here: ${reason}`);
    this.name = 'KsmUnsupportedError';
    this.reason = reason;
  }
}

/** A VMA the kernel left without the `mg` flag after MADV_MERGEABLE. */
export interface UnmergeableMapping {
  start: bigint;
  end: bigint;
  pathname: string;
  vmFlags: string[];
  /** Why the kernel refuses it, from its flags, where they tell. */
  why: string;
}

/** madvise(MADV_MERGEABLE) returned 0 but the kernel did not mark the range. */
export class KsmNotMergeableError extends KsmError {
  static readonly CODE = 'ERR_KSM_NOT_MERGEABLE';
  declare readonly code: 'ERR_KSM_NOT_MERGEABLE';
  readonly mappings: UnmergeableMapping[];

  constructor(message: string, mappings: UnmergeableMapping[]) {
    super('ERR_KSM_NOT_MERGEABLE', message);
    this.name = 'KsmNotMergeableError';
    this.mappings = mappings;
  }
}

/** KSM is built in but `run` is not 1, so nothing will be scanned. */
export class KsmNotRunningError extends KsmError {
  static readonly CODE = 'ERR_KSM_NOT_RUNNING';
  declare readonly code: 'ERR_KSM_NOT_RUNNING';
  readonly run: number | undefined;

  constructor(run: number | undefined) {
    super(
      'ERR_KSM_NOT_RUNNING',
      `KSM is not running (${KSM_DIR}/run is ${run ?? 'unreadable'}); ` +
        `start it as root with: echo 1 > ${KSM_DIR}/run`,
    );
    this.name = 'KsmNotRunningError';
    this.run = run;
  }
}

/** A wait passed its deadline. */
export class KsmTimeoutError extends KsmError {
  static readonly CODE = 'ERR_KSM_TIMEOUT';
  declare readonly code: 'ERR_KSM_TIMEOUT';
  /**
   * True when ksmd did no work at all during a wait of a second or more
   * (full_scans and pages_scanned stood still): no process had mergeable
   * memory, so no scan rate would have helped. False when it scanned, just
   * not enough, or when the wait was too short to tell.
   */
  readonly idle: boolean;

  constructor(message: string, idle = false) {
    super('ERR_KSM_TIMEOUT', message);
    this.name = 'KsmTimeoutError';
    this.idle = idle;
  }
}

/** The process asked about does not exist (or left while it was read). */
export class KsmNoSuchProcessError extends KsmError {
  static readonly CODE = 'ERR_KSM_NO_SUCH_PROCESS';
  declare readonly code: 'ERR_KSM_NO_SUCH_PROCESS';
  readonly pid: number;

  constructor(pid: number, options?: ErrorOptions) {
    super('ERR_KSM_NO_SUCH_PROCESS', `no such process: ${pid}`, options);
    this.name = 'KsmNoSuchProcessError';
    this.pid = pid;
  }
}

/** An optional peer dependency (prom-client for metrics) is not installed. */
export class KsmMissingDependencyError extends KsmError {
  static readonly CODE = 'ERR_KSM_MISSING_DEPENDENCY';
  declare readonly code: 'ERR_KSM_MISSING_DEPENDENCY';
  readonly dependency: string;

  constructor(dependency: string, install: string, options?: ErrorOptions) {
    super('ERR_KSM_MISSING_DEPENDENCY', `${dependency} is not installed; it is an optional peer dependency: ${install}`, options);
    this.name = 'KsmMissingDependencyError';
    this.dependency = dependency;
  }
}

/** Figures of an unmerge preflight, as KsmInsufficientMemoryError carries them. */
export interface UnmergeShortfall {
  /** Bytes unmerging would allocate. */
  bytes: number;
  /** Bytes the machine or the cgroup can still give, whichever is less. */
  headroom: number;
  /** Which limit is the tighter one. */
  limitedBy: 'MemAvailable' | 'cgroup';
}

/**
 * Unmerging was refused (`requireHeadroom`): copying the merged pages back
 * would need more memory than MemAvailable or the cgroup's memory.max
 * headroom, and could end in the OOM killer. Nothing was changed.
 */
export class KsmInsufficientMemoryError extends KsmError {
  static readonly CODE = 'ERR_KSM_INSUFFICIENT_MEMORY';
  declare readonly code: 'ERR_KSM_INSUFFICIENT_MEMORY';
  readonly bytes: number;
  readonly headroom: number;
  readonly limitedBy: 'MemAvailable' | 'cgroup';

  constructor(what: string, shortfall: UnmergeShortfall) {
    super(
      'ERR_KSM_INSUFFICIENT_MEMORY',
      `refusing to unmerge ${what}: it would allocate ${shortfall.bytes} bytes but only ${shortfall.headroom} ` +
        `are available (${shortfall.limitedBy === 'cgroup' ? "the cgroup's memory.max headroom" : 'MemAvailable'}); ` +
        'nothing was changed',
    );
    this.name = 'KsmInsufficientMemoryError';
    this.bytes = shortfall.bytes;
    this.headroom = shortfall.headroom;
    this.limitedBy = shortfall.limitedBy;
  }
}

/** The shape of a failed system call, as Node's own errors have it. */
export interface SystemError extends Error {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  /** What to do about it, where we know. */
  hint?: string;
}

export function isSystemError(value: unknown): value is SystemError {
  return (
    value instanceof Error &&
    typeof (value as Partial<SystemError>).code === 'string' &&
    typeof (value as Partial<SystemError>).errno === 'number' &&
    typeof (value as Partial<SystemError>).syscall === 'string'
  );
}

/** Adds a hint to a system error, in its message and as `hint`. */
export function withHint<E extends SystemError>(error: E, hint: string): E {
  error.hint = hint;
  error.message = `${error.message} (${hint})`;
  return error;
}

/** AbortError the way Node's timers/promises rejects. */
export function abortError(signal: AbortSignal): Error {
  const error = new Error('The operation was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as Error & { code: string }).code = 'ABORT_ERR';
  return error;
}
