/** Can this process use KSM, and if not, why not. */
import * as os from 'node:os';

import { binding, bindingState, type NativeBinding } from '../binding.js';
import { KsmUnsupportedError, isSystemError } from '../errors.js';
import { ksmSysfsPresent } from './sysfs.js';

export interface SupportInfo {
  /** The addon loaded and the kernel has KSM (/sys/kernel/mm/ksm exists). */
  supported: boolean;
  /** Why not, when not. */
  reason: string | undefined;
  platform: NodeJS.Platform;
  arch: string;
  /** `uname -r`. */
  kernelRelease: string;
  addon: { loaded: boolean; error: string | undefined };
  /** /sys/kernel/mm/ksm exists (CONFIG_KSM). */
  ksmSysfs: boolean;
  /** prctl(PR_SET_MEMORY_MERGE), probed with PR_GET_MEMORY_MERGE (Linux 6.4+). */
  prctlMerge: { available: boolean; reason: string | undefined };
  /** Bytes per page, where the addon loaded. */
  pageSize: number | undefined;
  /** Running as root: needed to change KSM knobs and for exact per-page accounting. */
  root: boolean;
}

let sysfsPresent: boolean | undefined;

function unsupportedReason(): string | undefined {
  const state = bindingState();
  if (!state.loaded) return state.reason;
  sysfsPresent ??= ksmSysfsPresent('/');
  if (!sysfsPresent) return 'the kernel was built without CONFIG_KSM (/sys/kernel/mm/ksm does not exist)';
  return undefined;
}

/** Whether KSM can be used from this process. Never throws. */
export function isSupported(): boolean {
  return unsupportedReason() === undefined;
}

/** The binding, when KSM is usable here; KsmUnsupportedError with the reason otherwise. */
export function requireKsm(): NativeBinding {
  const reason = unsupportedReason();
  if (reason !== undefined) throw new KsmUnsupportedError(reason);
  return binding();
}

export function probePrctl(native: NativeBinding): { available: boolean; reason: string | undefined } {
  try {
    native.getMemoryMerge();
    return { available: true, reason: undefined };
  } catch (error) {
    if (isSystemError(error) && error.code === 'EINVAL') {
      return { available: false, reason: 'PR_GET_MEMORY_MERGE returned EINVAL: Linux 6.4+ is needed' };
    }
    if (isSystemError(error) && error.code === 'EPERM') {
      return { available: false, reason: 'prctl is blocked (EPERM): a seccomp filter or LSM policy refuses it' };
    }
    return { available: false, reason: error instanceof Error ? error.message : String(error) };
  }
}

/** What this platform offers, and why not where not. Never throws. */
export function supportInfo(): SupportInfo {
  const state = bindingState();
  const reason = unsupportedReason();
  const ksmSysfs = process.platform === 'linux' && ksmSysfsPresent('/');
  let prctlMerge: SupportInfo['prctlMerge'];
  if (!state.loaded) {
    prctlMerge = { available: false, reason: state.reason };
  } else if (!ksmSysfs) {
    prctlMerge = { available: false, reason: 'the kernel was built without CONFIG_KSM' };
  } else {
    prctlMerge = probePrctl(state.binding);
  }
  return {
    supported: reason === undefined,
    reason,
    platform: process.platform,
    arch: process.arch,
    kernelRelease: os.release(),
    addon: { loaded: state.loaded, error: state.loaded ? undefined : state.reason },
    ksmSysfs,
    prctlMerge,
    pageSize: state.loaded ? state.binding.pageSize() : undefined,
    root: typeof process.getuid === 'function' && process.getuid() === 0,
  };
}
