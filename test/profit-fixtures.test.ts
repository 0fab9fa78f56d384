/**
 * profit() and systemProfit() on fixture trees with known answers: the
 * estimate's formula, the reconciliation with the kernel's own figures, the
 * system ratios of Documentation/admin-guide/mm/ksm.rst, and bad arguments.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { formatBytes, formatPercent, formatTable, profit, systemProfit } from '../lib/index.js';
import { FIXTURES, requireKsm, sysfsNumber } from './helpers/ksm.js';

const ROOT_68 = path.join(FIXTURES, 'smaps', 'root-6.8');
const KB = 1024;

describe('profit() from a 6.8 fixture (estimated)', () => {
  it('derives the fair share from Rss/Pss and reconciles with ksm_stat and smaps_rollup', async () => {
    const report = await profit(4242, { root: ROOT_68, rollup: true });
    expect(report.method).toBe('estimated');
    expect(report.estimateReason).toMatch(/fixture root/);
    expect(report.missing).toEqual([]);
    expect(report.pagesChanged).toBeUndefined();

    // Mergeable or KSM-backed VMAs only, one row each.
    expect(report.regions.map((row) => row.start.toString(16))).toEqual(['7f3a00000000', '7f3a10000000', '7f3a40000000']);
    const [weights, thp, forked] = report.regions;
    // 100 KSM pages mapped 4 times: 400 - (300 - 200) = 300 kB.
    expect(weights).toMatchObject({ mergedBytes: 400 * KB, savedBytes: 300 * KB, kind: 'named-anonymous', label: undefined });
    expect(thp).toMatchObject({ mergedBytes: 0, savedBytes: 0 });
    // Shared beyond KSM (fork): (160 - 80) x 80/160 = 40 kB.
    expect(forked).toMatchObject({ mergedBytes: 80 * KB, savedBytes: 40 * KB });

    // ksm_process_profit = 120 x 4096 - 300 x 64: the item size solves to 64.
    expect(report.rmapItemSize).toBe(64);
    expect(report.rmapItemSizeSource).toBe('ksm_stat');
    expect(report.total).toEqual({
      mergedBytes: 480 * KB,
      savedBytes: 340 * KB,
      zeroPages: 0,
      zeroPageBytes: 0,
      metadataBytes: 300 * 64,
      netBytes: 340 * KB - 300 * 64,
    });
    // Metadata is spread over the mergeable rows by resident anonymous bytes, and adds up.
    const spread = report.regions.reduce((sum, row) => sum + row.metadataBytes!, 0);
    expect(spread).toBeCloseTo(300 * 64, 6);
    expect(weights!.metadataBytes! / thp!.metadataBytes!).toBeCloseTo(600 / 4096, 9);

    const r = report.reconciliation;
    expect(r.rollupKsmBytes).toBe(480 * KB);
    expect(r.rollupDifferenceBytes).toBe(0);
    expect(r.processProfitBytes).toBe(472320);
    // The kept copies: 120 merged pages x 4 KiB minus the 340 KiB fair share.
    expect(r.keptCopyBytes).toBe(472320 - (340 * KB - 300 * 64));
    expect(r.keptCopyBytes).toBe(120 * 4096 - 340 * KB);
    expect(r.explanation).toContain('ksm_process_profit');
    expect(r.explanation).toContain(formatBytes(r.keptCopyBytes));
  });

  it('reads smaps_rollup only with rollup: true', async () => {
    // The same tree with a smaps_rollup that has no KSM line: only a report that reads it says so.
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-ksm-rollup-'));
    try {
      fs.cpSync(ROOT_68, root, { recursive: true });
      fs.writeFileSync(path.join(root, 'proc/4242/smaps_rollup'), '00400000-7fff00000000 ---p 00000000 00:00 0 [rollup]\nRss: 4 kB\n');
      const plain = await profit(4242, { root });
      expect(plain.reconciliation.rollupKsmBytes).toBeUndefined();
      expect(plain.reconciliation.rollupDifferenceBytes).toBeUndefined();
      expect(plain.missing).toEqual([]);
      const withRollup = await profit(4242, { root, rollup: true });
      expect(withRollup.missing).toEqual(['smaps_rollup KSM']);
      // Everything else is the same report.
      expect({ ...withRollup, missing: [] }).toEqual(plain);
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
    await expect(profit(4242, { root: ROOT_68, rollup: 'yes' } as unknown as { rollup: boolean })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('exact: true cannot be had from a fixture root, and says why', async () => {
    await expect(profit(4242, { root: ROOT_68, exact: true })).rejects.toMatchObject({ code: 'EPERM', hint: expect.stringMatching(/root/) });
    const report = await profit(4242, { root: ROOT_68, exact: false });
    expect(report.estimateReason).toBe('options.exact is false');
  });

  it('throws TypeError / RangeError before reading anything', async () => {
    await expect(profit(4242, { root: ROOT_68, exact: 'yes' } as unknown as { exact: boolean })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(profit(-1)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(profit(undefined, 'x' as unknown as object)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(profit(4243, { root: ROOT_68 })).rejects.toMatchObject({ code: 'ERR_KSM_NO_SUCH_PROCESS' });
  });
});

describe('systemProfit()', () => {
  it('computes the saving and the ksm.rst ratios from a fixture', () => {
    const s = systemProfit({ root: ROOT_68 });
    const page = s.pageSize;
    expect(s).toMatchObject({
      pagesShared: 1000,
      pagesSharing: 3000,
      pagesUnshared: 1500,
      pagesVolatile: 500,
      ksmZeroPages: 10,
      savedBytes: 3000 * page,
      zeroPageBytes: 10 * page,
      rmapItems: 6000,
      sharingRatio: 3,
      unsharedRatio: 0.5,
      volatileShare: 500 / 6000,
      maxPageSharing: 256,
      missing: [],
    });
    if (page === 4096) {
      expect(s.generalProfit).toBe(3010 * 4096 - 6000 * 64);
      expect(s.metadataBytes).toBe(6000 * 64);
      expect(s.rmapItemSize).toBe(64);
    }
  });

  it('reads the live machine consistently with sysfs', (ctx) => {
    requireKsm(ctx);
    const s = systemProfit();
    // Counters move while read; the derived figures must follow the ones returned.
    expect(s.savedBytes).toBe(s.pagesSharing * s.pageSize);
    expect(s.zeroPageBytes).toBe(s.ksmZeroPages * s.pageSize);
    expect(s.rmapItems).toBe(s.pagesShared + s.pagesSharing + s.pagesUnshared! + s.pagesVolatile!);
    if (s.pagesShared > 0) expect(s.sharingRatio).toBeCloseTo(s.pagesSharing / s.pagesShared, 12);
    expect(s.maxPageSharing).toBe(sysfsNumber('max_page_sharing'));
    expect(typeof s.generalProfit).toBe('number');
  });
});

describe('formatting helpers', () => {
  it('formats bytes in IEC units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1024)).toBe('1.0 KiB');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(64 * 1024 ** 2)).toBe('64.0 MiB');
    expect(formatBytes(1024 ** 2 - 1)).toBe('1.0 MiB');
    expect(formatBytes(-3 * 1024 ** 3)).toBe('-3.0 GiB');
    expect(formatBytes(5 * 1024 ** 4, { fractionDigits: 2 })).toBe('5.00 TiB');
    expect(formatBytes(2048, { signed: true })).toBe('+2.0 KiB');
    expect(formatBytes(undefined)).toBe('-');
    expect(() => formatBytes('1' as unknown as number)).toThrow(TypeError);
    expect(formatPercent(2 / 3)).toBe('66.7%');
    expect(formatPercent(undefined)).toBe('-');
  });

  it('aligns a table: text left, figures right, no borders by default', () => {
    const rows = [
      { label: 'weights', merged: 64 * 1024 ** 2 },
      { label: 'cache', merged: 1536 },
      { label: 'gone', merged: undefined },
    ];
    const text = formatTable(rows, [
      { header: 'LABEL', value: (row) => row.label },
      { header: 'MERGED', value: (row) => row.merged },
    ]);
    expect(text.split('\n')).toEqual([
      'LABEL      MERGED',
      'weights  64.0 MiB',
      'cache     1.5 KiB',
      'gone            -',
    ]);
    const boxed = formatTable(rows.slice(0, 1), [{ header: 'LABEL', value: (row) => row.label }], { style: 'box' });
    expect(boxed).toContain('│ weights │');
    expect(() => formatTable('x' as unknown as [], [])).toThrow(TypeError);
  });
});
