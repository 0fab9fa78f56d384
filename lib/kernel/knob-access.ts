/**
 * May this process write the KSM knobs? Asked of the kernel (access(2) on
 * /sys/kernel/mm/ksm/run, W_OK) before anything is written, so a caller can
 * say what to do instead of failing halfway through a set of writes.
 */
import { checkOptions, checkRoot, type RootOption } from '../validate.js';
import { ksmRunWriteError } from './system.js';

/**
 * - `writable`: root (or CAP_DAC_OVERRIDE) on a writable /sys,
 * - `read-only`: /sys is mounted read-only (EROFS: most containers), whoever asks,
 * - `not-permitted`: writing needs root (EACCES / EPERM),
 * - `missing`: no /sys/kernel/mm/ksm/run (a kernel without CONFIG_KSM).
 */
export type KnobAccess = 'writable' | 'read-only' | 'not-permitted' | 'missing';

export function knobAccess(options?: RootOption): KnobAccess {
  const root = checkRoot(checkOptions<RootOption>(options));
  const code = ksmRunWriteError(root);
  if (code === undefined) return 'writable';
  if (code === 'EROFS') return 'read-only';
  if (code === 'ENOENT' || code === 'ENOTDIR') return 'missing';
  return 'not-permitted';
}
