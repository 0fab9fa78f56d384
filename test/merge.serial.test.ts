/**
 * Real merging across processes, read back from the kernel raw: the
 * mission's main job. Serial: it asserts on machine-wide general_profit.
 */
import { randomFillSync } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';

import { allocMergeable, pageSize, waitForMerge } from '../lib/index.js';
import { rawKsmStat, rawSmapsRange, requireKsm, startFixture, sysfsNumber, untilKsm, type Holder } from './helpers/ksm.js';

const SIZE = 32 * 1024 * 1024;
const N = 3;
let holders: Holder[] = [];

afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

async function startHolders(spec: Record<string, unknown>): Promise<Array<Holder & { ready: Record<string, unknown> }>> {
  const started = await Promise.all(Array.from({ length: N }, () => startFixture('holder.cjs', [JSON.stringify(spec)])));
  holders.push(...started);
  return started;
}

/**
 * ksmd drops the rmap_items of a process that exited (an earlier test's
 * workers) only when its scan next reaches it: general_profit keeps falling
 * for up to a full scan after. Two full scans first, so the delta measured
 * is this test's, whichever test ran before. A few pages of our own keep
 * ksmd scanning meanwhile (it sleeps while nothing is mergeable); their
 * metadata is a few KiB against the MiB asserted.
 */
let held: Buffer | undefined;
async function settledMachine(): Promise<void> {
  held ??= randomFillSync(allocMergeable(16 * pageSize()));
  await waitForMerge({ fullScans: 2, timeoutMs: 90_000 });
}

describe('merging across processes', () => {
  it('allocMergeable buffers with the same bytes merge, and general_profit moves by (N-1) x size', async (ctx) => {
    requireKsm(ctx);
    await settledMachine();
    const profitBefore = sysfsNumber('general_profit');
    const started = await startHolders({ mode: 'alloc', size: SIZE, seed: 11 });
    const result = await waitForMerge({ timeoutMs: 90_000 });
    expect(result.completedScans).toBeGreaterThanOrEqual(2);

    const pages = SIZE / pageSize();
    // Two full scans merge them where nothing interferes; counted scans, not time, bound the wait.
    await untilKsm(() => started.every((h) => Number(rawKsmStat(h.pid).ksm_merging_pages) >= pages), 'every holder merging its buffer');
    for (const holder of started) {
      const stat = rawKsmStat(holder.pid);
      // Every page of the buffer maps a KSM page (merging_pages counts all mappers).
      expect(Number(stat.ksm_merging_pages)).toBeGreaterThanOrEqual(pages);
      const { ksmBytes, flags } = rawSmapsRange(holder.pid, holder.ready.start as bigint, holder.ready.end as bigint);
      expect(ksmBytes).toBe(SIZE);
      expect(flags.every((f) => f.includes('mg'))).toBe(true);
    }
    const expected = (N - 1) * SIZE;
    const moved = sysfsNumber('general_profit') - profitBefore;
    expect(moved).toBeGreaterThanOrEqual(0.9 * expected);
  });

  it('enableMerge() makes plain Buffer.alloc memory merge', async (ctx) => {
    requireKsm(ctx);
    await settledMachine();
    const profitBefore = sysfsNumber('general_profit');
    const started = await startHolders({ mode: 'plain', size: SIZE, seed: 23, enableMerge: true });
    for (const holder of started) expect(rawKsmStat(holder.pid).ksm_merge_any).toBe('yes');
    await waitForMerge({ timeoutMs: 90_000 });
    const bytes = (h: Holder & { ready: Record<string, unknown> }): number => Number((h.ready.end as bigint) - (h.ready.start as bigint));
    const ksmOf = (h: Holder & { ready: Record<string, unknown> }): number => rawSmapsRange(h.pid, h.ready.start as bigint, h.ready.end as bigint).ksmBytes;
    await untilKsm(() => started.every((h) => ksmOf(h) >= bytes(h)), 'every holder merging its buffer');
    for (const holder of started) {
      // The VMA around the Buffer's pages (malloc's own mapping) may merge more.
      const { ksmBytes } = rawSmapsRange(holder.pid, holder.ready.start as bigint, holder.ready.end as bigint);
      expect(ksmBytes).toBeGreaterThanOrEqual(Number((holder.ready.end as bigint) - (holder.ready.start as bigint)));
    }
    const moved = sysfsNumber('general_profit') - profitBefore;
    expect(moved).toBeGreaterThanOrEqual(0.9 * (N - 1) * SIZE);
  });
});
