/**
 * waitForMerge() when KSM is not running: stops KSM for a moment (run=0),
 * restores it in finally. Serial: `run` is global.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import { randomFillSync } from 'node:crypto';

import { KsmError, KsmNotRunningError, KsmTimeoutError, allocMergeable, waitForMerge } from '../lib/index.js';
import { rejectionOf, requireKsm, sysfsNumber } from './helpers/ksm.js';

const RUN = '/sys/kernel/mm/ksm/run';

describe('waitForMerge() and a stopped KSM', () => {
  it('rejects with KsmNotRunningError when run is 0 at the call, and when it drops to 0 while waiting', async (ctx) => {
    requireKsm(ctx);
    const saved = fs.readFileSync(RUN, 'utf8').trim();
    try {
      let atCall: unknown;
      for (let attempt = 0; attempt < 5; attempt++) {
        fs.writeFileSync(RUN, '0');
        atCall = await waitForMerge({ timeoutMs: 10_000 }).catch((e: unknown) => e);
        if (atCall instanceof Error) break;
        // It resolved: another run on this machine started KSM again in
        // between (its setup writes run=1). Stop it again and retry.
        expect(fs.readFileSync(RUN, 'utf8').trim()).not.toBe('0');
      }
      expect(atCall).toBeInstanceOf(KsmNotRunningError);
      expect(atCall).toBeInstanceOf(KsmError);
      expect(atCall).toMatchObject({ name: 'KsmNotRunningError', code: 'ERR_KSM_NOT_RUNNING', run: 0 });
      expect((atCall as Error).message).toMatch(/echo 1 > \/sys\/kernel\/mm\/ksm\/run/);

      fs.writeFileSync(RUN, '1');
      const waiting = waitForMerge({ fullScans: 1_000_000, timeoutMs: 60_000 }).catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 50));
      fs.writeFileSync(RUN, '0');
      expect(await waiting).toMatchObject({ code: 'ERR_KSM_NOT_RUNNING', run: 0 });
    } finally {
      fs.writeFileSync(RUN, saved);
    }
    expect(fs.readFileSync(RUN, 'utf8').trim()).toBe(saved);
  });
});

/** PIDs whose ksm_stat says their mm is on ksmd's list, read raw. */
function mergeablePids(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (/^ksm_mergeable:? yes$/m.test(fs.readFileSync(`/proc/${entry}/ksm_stat`, 'utf8'))) pids.push(Number(entry));
    } catch {
      // exited, a kernel thread, or not ours to read
    }
  }
  return pids;
}

describe('waitForMerge() and an idle ksmd', () => {
  // Serial: the parallel files, whose workers hold mergeable memory, are done.
  it('a timeout while no process has mergeable memory says ksmd was idle; one while it scans does not', async (ctx) => {
    requireKsm(ctx);
    const counters = (): string => `${sysfsNumber('full_scans')}/${sysfsNumber('pages_scanned')}`;

    const pidsBefore = mergeablePids();
    const before = counters();
    const idleError = await rejectionOf(() => waitForMerge({ fullScans: 1_000_000, timeoutMs: 1_500 }));
    const stood = counters() === before;
    const pidsAfter = mergeablePids();
    expect(idleError).toBeInstanceOf(KsmTimeoutError);
    // The error agrees with the counters read raw around the wait...
    expect((idleError as KsmTimeoutError).idle).toBe(stood);
    // ...and, with nobody on ksmd's list, the kernel's rule: it did not scan.
    if (pidsBefore.length === 0 && pidsAfter.length === 0) {
      expect(stood).toBe(true);
      expect((idleError as Error).message).toMatch(/ksmd was idle.*allocMergeable\(\)/s);
    } else {
      console.warn(`processes with mergeable memory during the idle check: ${[...pidsBefore, ...pidsAfter].join(' ')}`);
    }

    // With mergeable memory of our own, ksmd scans: a timeout is a slow scan.
    const held = randomFillSync(allocMergeable(16 * 4096));
    const scanBefore = sysfsNumber('pages_scanned');
    const slowError = await rejectionOf(() => waitForMerge({ fullScans: 1_000_000, timeoutMs: 1_500 }));
    expect(sysfsNumber('pages_scanned')).toBeGreaterThan(scanBefore);
    expect(slowError).toMatchObject({ name: 'KsmTimeoutError', idle: false });
    expect((slowError as Error).message).toMatch(/pages_to_scan \d+, sleep_millisecs \d+\): raise pages_to_scan/);
    expect(held.byteLength).toBe(16 * 4096);
  });
});
