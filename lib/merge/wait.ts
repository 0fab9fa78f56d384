/**
 * Waiting for ksmd: a page merges only after its checksum held across two
 * visits, so data written before a call is settled once two full scans that
 * began after the call have completed.
 */
import { KsmNotRunningError, KsmTimeoutError, abortError } from '../errors.js';
import { readKsmCounter, systemStat, type SystemStat } from '../kernel/sysfs.js';
import { requireKsm } from '../kernel/support.js';
import { checkDuration, checkOptions, checkSignal, optionalNumber } from '../validate.js';

export interface WaitForMergeOptions {
  /** Full scans to wait for (default 2, the kernel's own rule). */
  fullScans?: number;
  /** Give up after this long (default 600000 = 10 minutes; Infinity for never). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface WaitForMergeResult {
  /** full_scans when the call was made. */
  startFullScans: number;
  /** full_scans when the wait ended. */
  endFullScans: number;
  /** Full scans that began and completed after the call. */
  completedScans: number;
  elapsedMs: number;
  /** The KSM sysfs counters as they read when the wait ended. */
  stat: SystemStat;
}

const DEFAULT_TIMEOUT_MS = 600_000;
/** The shortest wait after which standing counters mean ksmd is idle. */
const IDLE_WINDOW_MS = 1_000;

/**
 * Resolves once `fullScans` full scans have both started and completed since
 * the call (the scan under way at the call may already have passed the
 * caller's pages, so it does not count).
 *
 * @throws KsmNotRunningError when run is not 1, at the call or while waiting.
 * @throws KsmTimeoutError when `timeoutMs` passes first.
 * @throws AbortError (code ABORT_ERR) when `signal` aborts.
 */
export async function waitForMerge(options?: WaitForMergeOptions): Promise<WaitForMergeResult> {
  const opts = checkOptions<WaitForMergeOptions>(options);
  // undefined means the default; null is a wrong type, as everywhere else.
  const scans = optionalNumber('options.fullScans', opts.fullScans, { integer: true, min: 1, max: 1_000_000 }) ?? 2;
  const timeoutMs = checkDuration('options.timeoutMs', opts.timeoutMs) ?? DEFAULT_TIMEOUT_MS;
  const signal = checkSignal(opts.signal);
  requireKsm();
  if (signal?.aborted) throw abortError(signal);

  const initial = systemStat();
  if (initial.run !== 1) throw new KsmNotRunningError(initial.run);
  const startFullScans = initial.fullScans ?? 0;
  const startPagesScanned = initial.pagesScanned;
  const target = startFullScans + scans + 1;
  const startedAt = performance.now();
  const pollMs = Math.min(Math.max(initial.sleepMillisecs ?? 20, 10), 200);

  return new Promise<WaitForMergeResult>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (error: Error | undefined, result?: WaitForMergeResult): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (error !== undefined) reject(error);
      else resolve(result!);
    };
    const onAbort = (): void => finish(abortError(signal!));
    signal?.addEventListener('abort', onAbort, { once: true });

    const poll = (): void => {
      const run = readKsmCounter('run');
      if (run !== 1) return finish(new KsmNotRunningError(run));
      const fullScans = readKsmCounter('full_scans') ?? startFullScans;
      const elapsedMs = performance.now() - startedAt;
      if (fullScans >= target) {
        return finish(undefined, {
          startFullScans,
          endFullScans: fullScans,
          completedScans: fullScans - startFullScans - 1,
          elapsedMs,
          stat: systemStat(),
        });
      }
      if (elapsedMs >= timeoutMs) {
        const stat = systemStat();
        const waited =
          `waited ${Math.round(elapsedMs)} ms for ${scans} full scan(s); ` +
          `${Math.max(0, fullScans - startFullScans - 1)} completed`;
        // ksmd sleeps while no process has mergeable memory (its list of
        // mms is empty): then full_scans and pages_scanned stand still, and
        // no scan rate helps. pages_scanned exists from Linux 6.7.
        // A wait shorter than a few of ksmd's sleeps cannot tell.
        const idle =
          elapsedMs >= Math.max(IDLE_WINDOW_MS, 3 * (stat.sleepMillisecs ?? 20)) &&
          fullScans === startFullScans &&
          startPagesScanned !== undefined &&
          stat.pagesScanned === startPagesScanned;
        return finish(
          new KsmTimeoutError(
            idle
              ? `${waited}: ksmd was idle (full_scans and pages_scanned did not move). ` +
                  'It scans only while some process has mergeable memory: allocMergeable(), markMergeable() ' +
                  'or enableMerge() in the process whose pages should merge, before waiting'
              : `${waited} (pages_to_scan ${stat.pagesToScan ?? '?'}, sleep_millisecs ${stat.sleepMillisecs ?? '?'}): ` +
                  'raise pages_to_scan or the timeout',
            idle,
          ),
        );
      }
      timer = setTimeout(poll, Math.min(pollMs, Math.max(1, timeoutMs - elapsedMs)));
    };
    poll();
  });
}
