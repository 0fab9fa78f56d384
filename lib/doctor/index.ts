/**
 * doctor(): why nothing merges, and the exact fix. Reads /sys/kernel/mm/ksm,
 * the target's /proc/PID/{ksm_stat,smaps,status}, the mergeable mappings of
 * every readable process, /proc/self/mountinfo and the NUMA and THP files,
 * probes prctl on this machine, and turns what it read into findings.
 */
import { assertProcRoot } from '../kernel/ksm-stat.js';
import { checkBoolean, checkOptions, checkPid, checkRoot, invalidType, outOfRange } from '../validate.js';
import { collect } from './collect.js';
import { diagnose } from './diagnose.js';
import type { DoctorOptions, Finding } from './types.js';

export type { DoctorOptions, Evidence, Finding, FindingCode, Fix, SensitiveRange, Severity } from './types.js';

const DEFAULT_TARGET_SCAN_TIME_SEC = 120;
const DEFAULT_MAX_SCAN_TIME_SEC = 180;

function checkSeconds(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value);
  if (!Number.isFinite(value) || value <= 0) throw outOfRange(name, 'a finite number of seconds > 0', value);
  return value;
}

/**
 * Findings about KSM on this machine and in one process (default: this
 * one), errors first. Never changes anything.
 *
 * @throws TypeError / RangeError for bad options.
 * @throws KsmNoSuchProcessError when `pid` does not exist.
 * @throws SystemError EACCES reading another user's process without root.
 */
export async function doctor(options?: DoctorOptions): Promise<Finding[]> {
  const opts = checkOptions<DoctorOptions>(options);
  const pid = checkPid(opts.pid, 'options.pid');
  const root = checkRoot(opts);
  const handlesSecrets = checkBoolean('options.handlesSecrets', opts.handlesSecrets) ?? false;
  const targetScanTimeSec = checkSeconds('options.targetScanTimeSec', opts.targetScanTimeSec) ?? DEFAULT_TARGET_SCAN_TIME_SEC;
  let maxScanTimeSec = checkSeconds('options.maxScanTimeSec', opts.maxScanTimeSec);
  if (maxScanTimeSec === undefined) {
    maxScanTimeSec = Math.max(DEFAULT_MAX_SCAN_TIME_SEC, targetScanTimeSec);
  } else if (maxScanTimeSec < targetScanTimeSec) {
    throw outOfRange('options.maxScanTimeSec', `at least options.targetScanTimeSec (${targetScanTimeSec})`, maxScanTimeSec);
  }
  assertProcRoot(root);
  const facts = await collect({ root, pid });
  return diagnose(facts, { handlesSecrets, targetScanTimeSec, maxScanTimeSec });
}
