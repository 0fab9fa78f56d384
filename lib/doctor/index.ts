/**
 * doctor(): why nothing merges, and the exact fix. Reads the KSM sysfs knobs
 * and counters, the target's ksm_stat, smaps and status, the mergeable mappings
 * of every readable process, the mount table and the NUMA and THP files,
 * probes prctl on this machine, and turns what it read into findings.
 */
import { resolveTarget } from '../kernel/target.js';
import { checkBoolean, checkOptions, optionalNumber, outOfRange } from '../validate.js';
import { collect } from './collect.js';
import { diagnose } from './diagnose.js';
import type { DoctorOptions, Finding } from './types.js';

export type { DoctorOptions, Evidence, Finding, FindingCode, Fix, SensitiveRange, Severity } from './types.js';

const DEFAULT_TARGET_SCAN_TIME_SEC = 120;
const DEFAULT_MAX_SCAN_TIME_SEC = 180;
const DEFAULT_CHURN_WINDOW_MS = 1000;

function checkSeconds(name: string, value: unknown): number | undefined {
  return optionalNumber(name, value, { min: Number.MIN_VALUE, max: Number.MAX_VALUE, expected: 'a finite number of seconds > 0' });
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
  const handlesSecrets = checkBoolean('options.handlesSecrets', opts.handlesSecrets) ?? false;
  const targetScanTimeSec = checkSeconds('options.targetScanTimeSec', opts.targetScanTimeSec) ?? DEFAULT_TARGET_SCAN_TIME_SEC;
  let maxScanTimeSec = checkSeconds('options.maxScanTimeSec', opts.maxScanTimeSec);
  if (maxScanTimeSec === undefined) {
    maxScanTimeSec = Math.max(DEFAULT_MAX_SCAN_TIME_SEC, targetScanTimeSec);
  } else if (maxScanTimeSec < targetScanTimeSec) {
    throw outOfRange('options.maxScanTimeSec', `at least options.targetScanTimeSec (${targetScanTimeSec})`, maxScanTimeSec);
  }
  const churnWindowMs =
    optionalNumber('options.churnWindowMs', opts.churnWindowMs, { integer: true, min: 0, max: 600_000 }) ?? DEFAULT_CHURN_WINDOW_MS;
  const target = resolveTarget(opts.pid, opts, 'options.pid');
  const facts = await collect(target, { churnWindowMs });
  return diagnose(facts, { handlesSecrets, targetScanTimeSec, maxScanTimeSec });
}
