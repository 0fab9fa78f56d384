/**
 * waitForMerge(): full scans counted from the raw full_scans, deadlines,
 * aborts and bad options. Stopping KSM is in wait.serial.test.ts.
 */
import { randomFillSync } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import { KsmError, KsmTimeoutError, allocMergeable, isSupported, waitForMerge } from '../lib/index.js';
import { rejectionOf, requireKsm, retryIfStopped, sysfsNumber } from './helpers/ksm.js';

// Other runs on this machine may stop KSM for a moment: the tests below are
// not about that (wait.serial.test.ts is), so they retry once run is 1 again.

describe('waitForMerge()', () => {
  // ksmd sleeps while no process on the machine has mergeable memory, and
  // then no full scan ever completes: this file holds some of its own, as a
  // caller of waitForMerge() does, instead of counting on other files.
  let _held: Buffer | undefined;
  beforeAll(() => {
    if (isSupported()) _held = randomFillSync(allocMergeable(16 * 4096, { label: 'wait.test' }));
  });
  afterAll(() => {
    _held = undefined;
  });
  beforeEach((ctx) => requireKsm(ctx));

  it.each([[1], [2]])('fullScans %i: resolves once that many scans began and completed after the call', async (scans) => {
    const before = sysfsNumber('full_scans');
    const result = await retryIfStopped(() => waitForMerge({ fullScans: scans, timeoutMs: 90_000 }));
    const after = sysfsNumber('full_scans');
    expect(result.startFullScans).toBeGreaterThanOrEqual(before);
    // The scan under way at the call does not count.
    expect(result.endFullScans).toBeGreaterThanOrEqual(result.startFullScans + scans + 1);
    expect(result.completedScans).toBe(result.endFullScans - result.startFullScans - 1);
    expect(result.completedScans).toBeGreaterThanOrEqual(scans);
    expect(after).toBeGreaterThanOrEqual(result.endFullScans);
    expect(result.stat.fullScans!).toBeGreaterThanOrEqual(result.endFullScans);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(0);
  });

  it('defaults to two full scans', async (ctx) => {
    requireKsm(ctx);
    const result = await retryIfStopped(() => waitForMerge());
    expect(result.completedScans).toBeGreaterThanOrEqual(2);
  });

  it.each([[0], [1], [50]])('timeoutMs %i before the scans: KsmTimeoutError', async (timeoutMs) => {
    let started = 0;
    const error = await rejectionOf(() => {
      started = performance.now();
      return waitForMerge({ fullScans: 1_000_000, timeoutMs });
    });
    expect(error).toBeInstanceOf(KsmTimeoutError);
    expect(error).toBeInstanceOf(KsmError);
    expect(error).toMatchObject({ name: 'KsmTimeoutError', code: 'ERR_KSM_TIMEOUT' });
    expect((error as Error).message).toMatch(/pages_to_scan/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(timeoutMs);
  });

  it('an abort while waiting: AbortError with the reason as cause', async (ctx) => {
    requireKsm(ctx);
    const reason = new Error('shutting down');
    const error = await rejectionOf(() => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(reason), 30);
      return waitForMerge({ fullScans: 1_000_000, signal: controller.signal });
    });
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: reason });
  });

  it('an already aborted signal: AbortError at once', async (ctx) => {
    requireKsm(ctx);
    expect(await rejectionOf(() => waitForMerge({ signal: AbortSignal.abort() }))).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

});

describe('waitForMerge() with bad options', () => {
  it.each([
    ['options a string', 'x', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['options null', null, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ["fullScans '2'", { fullScans: '2' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['fullScans 0', { fullScans: 0 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['fullScans -1', { fullScans: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['fullScans 1.5', { fullScans: 1.5 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['fullScans NaN', { fullScans: NaN }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['fullScans Infinity', { fullScans: Infinity }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['fullScans 1e7', { fullScans: 1e7 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ["timeoutMs '1'", { timeoutMs: '1' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['timeoutMs -1', { timeoutMs: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['timeoutMs NaN', { timeoutMs: NaN }, 'RangeError', 'ERR_OUT_OF_RANGE'],
    ['signal {}', { signal: {} }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ['signal an AbortController', { signal: new AbortController() }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
  ])('%s: rejects with %s', async (_name, options, name, code) => {
    await expect(waitForMerge(options as never)).rejects.toMatchObject({ name, code });
  });
});
