/**
 * Process-wide opt-in: prctl(PR_SET_MEMORY_MERGE). Every compatible
 * anonymous mapping of this process, and of every process it forks or
 * execs, becomes a KSM candidate.
 */
import { isSystemError, withHint } from '../errors.js';
import { reapplyAdvice } from './security.js';
import { requireKsm } from '../kernel/support.js';
import { checkUnmergeOptions, enforceHeadroom, processPreflight, type UnmergeOptions, type UnmergePreflight } from './headroom.js';

// Whether this process turned merge-any on itself: the flag is inherited
// across fork and exec, so prctl alone cannot tell doctor() who set it. Kept
// under a Symbol.for key so two copies of the package agree.
const kEnabledHere = Symbol.for('node-ksm.enableMergeCalled');
const processState = process as unknown as Record<symbol, boolean | undefined>;

function setEnabledHere(value: boolean): void {
  processState[kEnabledHere] = value;
  processState[kDisabledHere] = !value;
}

// Whether this process turned merge-any off itself (disableMerge()): its own choice, not a lost flag.
const kDisabledHere = Symbol.for('node-ksm.disableMergeCalled');

/** Internal: disableMerge() turned merge-any off in this process (and enableMerge() did not turn it on again). */
export function disableMergeCalled(): boolean {
  return processState[kDisabledHere] === true;
}

/** Internal: enableMerge() succeeded in this process and was not undone. */
export function enableMergeCalled(): boolean {
  return processState[kEnabledHere] === true;
}

function prctlHint(error: unknown): unknown {
  if (!isSystemError(error)) return error;
  switch (error.code) {
    case 'EINVAL':
      return withHint(
        error,
        'PR_SET_MEMORY_MERGE needs Linux 6.4+; allocMergeable() and markMergeable() still work on this kernel',
      );
    case 'EPERM':
      return withHint(error, 'prctl is blocked by a seccomp filter or LSM policy (check the container runtime\'s seccomp profile)');
    case 'ENOMEM':
    case 'EAGAIN':
      return withHint(error, 'the kernel ran short of memory while changing the merge state of the mappings; retry');
    default:
      return error;
  }
}

/**
 * Opts the whole process in (PR_SET_MEMORY_MERGE 1). The flag is inherited
 * by children, across fork and exec.
 *
 * @throws KsmUnsupportedError where KSM is not available.
 * @throws SystemError EINVAL before Linux 6.4, EPERM under seccomp.
 */
export function enableMerge(): void {
  const native = requireKsm();
  try {
    native.setMemoryMerge(true);
  } catch (error) {
    throw prctlHint(error);
  }
  setEnabledHere(true);
  // PR_SET_MEMORY_MERGE 1 marks every VMA, markSensitive()'s (any thread's) included.
  reapplyAdvice(native);
}

/**
 * Opts the process out (PR_SET_MEMORY_MERGE 0). The kernel unmerges every
 * merged page of every mergeable mapping of the process first (those of
 * allocMergeable() too): memory use rises by what was saved.
 *
 * The kernel also clears VM_MERGEABLE on every mapping, the package's own
 * included; right after, this advises MADV_MERGEABLE again on every live
 * allocMergeable() buffer and markMergeable() range of the process (every
 * thread's), and MADV_UNMERGEABLE on every markSensitive() range. So those
 * stay candidates (`mg`) and merge again over the next scans; only what
 * merge-any alone made mergeable stops merging.
 *
 * With `dryRun` nothing changes and the preflight is returned; with
 * `requireHeadroom` the call refuses, changing nothing, when MemAvailable or
 * the cgroup's headroom cannot cover the copies.
 *
 * @returns the preflight when `dryRun` or `requireHeadroom` asked for one.
 * @throws KsmInsufficientMemoryError (ERR_KSM_INSUFFICIENT_MEMORY) with `requireHeadroom`.
 * @throws KsmUnsupportedError, SystemError as enableMerge().
 */
export function disableMerge(options?: UnmergeOptions): UnmergePreflight | undefined {
  const { dryRun, requireHeadroom } = checkUnmergeOptions(options);
  const native = requireKsm();
  let preflight: UnmergePreflight | undefined;
  if (dryRun || requireHeadroom) {
    preflight = processPreflight(native.pageSize(), isMergeEnabled());
    if (dryRun) return preflight;
    enforceHeadroom('this process (disableMerge)', preflight);
  }
  try {
    native.setMemoryMerge(false);
  } catch (error) {
    // A failed PR_SET_MEMORY_MERGE 0 marks every VMA mergeable again, the sensitive ones included.
    try {
      reapplyAdvice(native);
    } catch {
      // The prctl error is the one to report; doctor names a sensitive range left mergeable.
    }
    throw prctlHint(error);
  }
  setEnabledHere(false);
  reapplyAdvice(native);
  return preflight;
}

/**
 * Whether merge-any is on for this process (PR_GET_MEMORY_MERGE). False on
 * kernels before 6.4, where it cannot be on.
 *
 * @throws KsmUnsupportedError where KSM is not available.
 */
export function isMergeEnabled(): boolean {
  const native = requireKsm();
  try {
    return native.getMemoryMerge();
  } catch (error) {
    if (isSystemError(error) && error.code === 'EINVAL') return false;
    throw prctlHint(error);
  }
}
