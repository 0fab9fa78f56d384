/**
 * waitForMerge(): full scans counted from the raw full_scans, deadlines,
 * aborts and bad options. Stopping KSM is in wait.serial.test.ts.
 */
import { describe, expect, it } from 'vitest';

import { KsmError, KsmTimeoutError, waitForMerge } from '../lib/index.js';
import { requireKsm, sysfsNumber } from './helpers/ksm.js';

describe('waitForMerge()', () => {
  it.each([[1], [2]])('fullScans %i: resolves once that many scans began and completed after the call', async (scans) => {
    const before = sysfsNumber('full_scans');
    const result = await waitForMerge({ fullScans: scans, timeoutMs: 90_000 });
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
    const result = await waitForMerge();
    expect(result.completedScans).toBeGreaterThanOrEqual(2);
  });

  it.each([[0], [1], [50]])('timeoutMs %i before the scans: KsmTimeoutError', async (timeoutMs) => {
    const started = performance.now();
    const error = await waitForMerge({ fullScans: 1_000_000, timeoutMs }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KsmTimeoutError);
    expect(error).toBeInstanceOf(KsmError);
    expect(error).toMatchObject({ name: 'KsmTimeoutError', code: 'ERR_KSM_TIMEOUT' });
    expect((error as Error).message).toMatch(/pages_to_scan/);
    expect(performance.now() - started).toBeGreaterThanOrEqual(timeoutMs);
  });

  it('an abort while waiting: AbortError with the reason as cause', async (ctx) => {
    requireKsm(ctx);
    const controller = new AbortController();
    const waiting = waitForMerge({ fullScans: 1_000_000, signal: controller.signal });
    const reason = new Error('shutting down');
    setTimeout(() => controller.abort(reason), 30);
    const error = await waiting.catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR', cause: reason });
  });

  it('an already aborted signal: AbortError at once', async (ctx) => {
    requireKsm(ctx);
    await expect(waitForMerge({ signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
  });

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
