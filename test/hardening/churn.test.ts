/**
 * Churn: allocation and advice cycles must give back everything they take.
 * In a child with --expose-gc, after warm-up, against a baseline: RSS,
 * the number of mappings and V8's external memory return to it.
 */
import { describe, expect, it } from 'vitest';

import { pageSize } from '../../lib/index.js';
import { requireKsm } from '../helpers/ksm.js';
import { SANITIZED, runFixture } from './helpers.js';

interface Sample {
  rss: number;
  maps: number;
  /** Bytes of the VMAs flagged `mg`: this process's mergeable mappings. */
  mergeableBytes: number;
  external: number;
  arrayBuffers: number;
}

const MiB = 1024 * 1024;
// Under test:asan freed malloc memory waits in ASan's quarantine (256 MiB by
// default) and every byte has shadow: RSS says little there; the exact
// checks (mergeable mappings, external memory) still hold.
const RSS_SLACK = SANITIZED ? 512 * MiB : 16 * MiB;

describe('churn', () => {
  it('100,000 allocMergeable/free cycles of mixed sizes return RSS, mappings and external memory to baseline', async (ctx) => {
    requireKsm(ctx);
    const run = await runFixture('churn.cjs', ['alloc'], ['--expose-gc']);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const { baseline, final, peakMaps } = run.result as { baseline: Sample; final: Sample; peakMaps: number };
    // Our own mappings, exactly: the `mg` VMAs are all gone again.
    expect(final.mergeableBytes).toBe(baseline.mergeableBytes);
    // One leaked mapping per thousand cycles would be 100 more lines; V8's own
    // heap may add a few dozen as it grows.
    expect(final.maps - baseline.maps).toBeLessThan(100);
    expect(peakMaps - baseline.maps).toBeLessThan(1000);
    // Every buffer touched at least one page: a leak shows in RSS by the hundreds of MiB.
    expect(final.rss - baseline.rss).toBeLessThan(RSS_SLACK);
    // Each mapping is reported to V8 by its whole pages, up on alloc and down in the finalizer.
    expect(Math.abs(final.external - baseline.external)).toBeLessThan(pageSize());
    expect(final.arrayBuffers).toBe(baseline.arrayBuffers);
  });

  it('1,000 mark/unmark cycles on the same memory leave no split mappings, no growth, the bytes intact', async (ctx) => {
    requireKsm(ctx);
    const run = await runFixture('churn.cjs', ['mark'], ['--expose-gc']);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const result = run.result as {
      baseline: Sample;
      final: Sample;
      covered: number;
      intact: boolean;
      vmasBefore: { own: number; heap: number };
      vmasAfter: { own: number; heap: number };
    };
    const page = pageSize();
    expect(result.intact).toBe(true);
    expect(result.final.mergeableBytes).toBe(result.baseline.mergeableBytes);
    // The allocMergeable buffer whole, and the whole pages inside the unaligned heap view.
    expect(result.covered).toBeGreaterThanOrEqual(64 * page + 62 * page);
    expect(result.covered % page).toBe(0);
    // MADV_UNMERGEABLE restores the flags, so the kernel re-joins the VMAs it split.
    expect(result.vmasAfter).toEqual(result.vmasBefore);
    // The process as a whole: V8 may map or unmap a few dozen heap chunks
    // meanwhile; 1,000 cycles leaking one VMA each would be 1,000.
    expect(Math.abs(result.final.maps - result.baseline.maps)).toBeLessThan(64);
    expect(result.final.rss - result.baseline.rss).toBeLessThan(RSS_SLACK);
    expect(Math.abs(result.final.external - result.baseline.external)).toBeLessThan(page);
  });
});
