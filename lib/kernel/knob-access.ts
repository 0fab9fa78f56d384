/**
 * May this process write the KSM knobs? Asked of the kernel (access(2) on
 * /sys/kernel/mm/ksm/run, W_OK) before anything is written, so a caller can
 * say what to do instead of failing halfway through a set of writes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { isSystemError } from '../errors.js';
import { checkOptions, checkRoot, type RootOption } from '../validate.js';
import { ksmSysfsDir } from './paths.js';

/**
 * - `writable`: root (or CAP_DAC_OVERRIDE) on a writable /sys,
 * - `read-only`: /sys is mounted read-only (EROFS: most containers), whoever asks,
 * - `not-permitted`: writing needs root (EACCES / EPERM),
 * - `missing`: no /sys/kernel/mm/ksm/run (a kernel without CONFIG_KSM).
 */
export type KnobAccess = 'writable' | 'read-only' | 'not-permitted' | 'missing';

export function knobAccess(options?: RootOption): KnobAccess {
  const root = checkRoot(checkOptions<RootOption>(options));
  try {
    fs.accessSync(path.join(ksmSysfsDir(root), 'run'), fs.constants.W_OK);
    return 'writable';
  } catch (error) {
    if (!isSystemError(error)) throw error;
    if (error.code === 'EROFS') return 'read-only';
    if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return 'missing';
    return 'not-permitted';
  }
}
