/**
 * How long the package's MADV_MERGEABLE lasts. disableMerge() (the kernel
 * clears VM_MERGEABLE on every VMA) must not strip allocMergeable() and
 * markMergeable() ranges, in any thread; markMergeable() advice on memory the
 * package does not own ends with the ArrayBuffer it was given, so pages
 * malloc hands out again are not mergeable. Each scenario runs in a process
 * of its own, read back raw from /proc/self/smaps.
 */
import { describe, expect, it } from 'vitest';

import { pageSize } from '../../lib/index.js';
import { requireKsm } from '../helpers/ksm.js';
import { mergeAnyEnv, runFixture } from './helpers.js';

interface Row {
  label: string;
  mergeable: boolean;
  mergedBytes: number;
}

async function scenario(name: string, env: NodeJS.ProcessEnv = process.env): Promise<Record<string, unknown>> {
  const run = await runFixture('mergeable-advice.cjs', [name], ['--expose-gc'], env);
  expect({ code: run.code, stderr: run.stderr, ok: run.result?.ok, error: run.result?.error }).toEqual({ code: 0, stderr: '', ok: true, error: undefined });
  return run.result!;
}

const byLabel = (rows: unknown): Record<string, { mergeable: boolean; merged: boolean }> =>
  Object.fromEntries(
    (rows as Row[]).map((row) => [row.label, { mergeable: row.mergeable, merged: row.mergedBytes > 0 }]),
  );

describe('disableMerge() and the package\'s own mergeable ranges', () => {
  it('advises allocMergeable/markMergeable ranges (any thread\'s) again: mg right after, merged again, labelled rows back in profit(), marks kept', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('disable', mergeAnyEnv());
    const page = pageSize();
    expect(r.mergeAny).toBe(false);
    // Raw smaps right after PR_SET_MEMORY_MERGE 0: every byte of ours is mg
    // again, except the two sensitive pages inside the table.
    expect(r.secretBytes).toBe(2 * page);
    expect(r.mgTable).toBe((r.tableBytes as number) - 2 * page);
    expect(r.mgSecret).toBe(0);
    expect(r.mgMarked).toBe(r.markedBytes);
    expect(r.mgWorker).toBe(r.workerBytes);
    expect(byLabel(r.rowsBefore)).toMatchObject({ table: { mergeable: true, merged: true }, marked: { mergeable: true, merged: true } });
    // The kernel unmerged them (the copies are made), but they are candidates again...
    expect(byLabel(r.rowsAfterDisable)).toMatchObject({ table: { mergeable: true }, marked: { mergeable: true } });
    // ...and merge again.
    expect(r.mergedAgain).toBe(true);
    expect(byLabel(r.rowsMergedAgain)).toMatchObject({ table: { mergeable: true, merged: true }, marked: { mergeable: true, merged: true } });
    expect({ mg: r.mgSecretAfterMerge, ksm: r.secretKsm }).toEqual({ mg: 0, ksm: 0 });
    expect(r.notMergeable).toEqual([]);
    expect({ intact: r.intact, workerIntact: r.workerIntact }).toEqual({ intact: true, workerIntact: true });
  });
});

describe('markMergeable() advice ends with the ArrayBuffer it was given', () => {
  it('heap memory: once the buffer is collected its pages are no longer mg, and later allocations there are not mergeable', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('collected');
    expect(r.length as number).toBeGreaterThan(0);
    expect(r.mgLive).toBe(r.length);
    // The premise: free() kept the pages mapped (they go back to malloc).
    expect(r.stillMapped).toBe(true);
    expect(r.mgAfterCollect).toBe(0);
    expect(r.laterMergeable).toBe(0);
  });

  it('a transfer: advice given through the original ends when it is collected; marked again through the new owner, it stays', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('transfer');
    const [once, twice] = r.lengths as [number, number];
    expect(once).toBeGreaterThan(0);
    expect(r.sameMemory).toEqual([true, true]);
    expect(r.mgBefore).toEqual([once, twice]);
    expect(r.mgAfterCollect).toEqual([0, twice]);
  });

  it('under merge-any a collected buffer\'s pages stay mergeable (merge-any marks every mapping anyway)', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('merge-any-collected', mergeAnyEnv());
    expect(r.length as number).toBeGreaterThan(0);
    expect(r.mgAfterCollect).toBe(r.length);
  });

  it('a worker that exits ends the advice it gave, even on a buffer never collected', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('worker-exit');
    expect(r.length as number).toBeGreaterThan(0);
    expect(r.mgLive).toBe(r.length);
    expect(r.mgAfterExit).toBe(0);
  });
});
