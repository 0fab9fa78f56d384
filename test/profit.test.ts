/**
 * profit() in workers holding labelled buffers with known duplicate layouts:
 * each labelled region reports exactly what the layout implies, read back
 * against the kernel's own smaps. Per-process assertions only: parallel-safe.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { profit, type ProfitReport, type RegionProfit } from '../lib/index.js';
import { needs, PAGE, rawKsmStat, rawSmapsRange, requireKsm, startFixture, startSparse, untilKsm, type Holder } from './helpers/ksm.js';

const PAGES = { all: 64, pair: 48, unique: 32 } as const;
// Full scans slow down when other runs hold much mergeable memory.
const SETTLE_MS = 240_000;
const TEST_MS = SETTLE_MS + 60_000;

interface Ready {
  pid: number;
  pageSize: number;
  buffers: Array<{ label: string; start: bigint; end: bigint }>;
}

type Child = Holder & { ready: Ready };

let children: Child[] = [];

afterEach(async () => {
  await Promise.all(children.map((child) => child.kill()));
  children = [];
});

/** Child c holds: `all` (same bytes in all three), `pair` (same in children 0 and 1), `unique`. */
function layout(c: number): Array<{ label: string; pages: number; group: string }> {
  return [
    { label: 'all', pages: PAGES.all, group: 'all' },
    { label: 'pair', pages: PAGES.pair, group: c < 2 ? 'pair' : `pair-${c}` },
    { label: 'unique', pages: PAGES.unique, group: `unique-${c}` },
  ];
}

/** KSM bytes the layout implies for child c's buffer `label`. */
function expectedMerged(c: number, label: string, page: number): number {
  if (label === 'all') return PAGES.all * page;
  if (label === 'pair') return c < 2 ? PAGES.pair * page : 0;
  return 0;
}

/** Fair share: a page mapped by k processes saves (k-1)/k per mapping. */
function expectedSaved(c: number, label: string, page: number): number {
  if (label === 'all') return PAGES.all * page * (2 / 3);
  if (label === 'pair') return c < 2 ? PAGES.pair * page * (1 / 2) : 0;
  return 0;
}

async function startWorkers(count = 3): Promise<Child[]> {
  const nonce = randomUUID();
  const started = await Promise.all(
    Array.from({ length: count }, (_, c) =>
      startFixture('profit-child.cjs', [JSON.stringify({ nonce, buffers: layout(c) })]) as unknown as Promise<Child>),
  );
  children.push(...started);
  return started;
}

/**
 * KSM bytes of the VMAs holding a worker's buffers, read raw. The kernel
 * merges adjacent mappings with equal flags, so one VMA may hold several
 * buffers: count each VMA once.
 */
function rawKsmOfBuffers(worker: Child): number {
  const text = fs.readFileSync(`/proc/${worker.pid}/smaps`, 'utf8');
  let inside = false;
  let bytes = 0;
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (header) {
      const start = BigInt(`0x${header[1]}`);
      const end = BigInt(`0x${header[2]}`);
      inside = worker.ready.buffers.some((b) => b.start < end && b.end > start);
      continue;
    }
    const ksm = /^KSM:\s+(\d+) kB/.exec(line);
    if (inside && ksm) bytes += Number(ksm[1]) * 1024;
  }
  return bytes;
}

function expectedWorkerMerged(worker: Child, c: number): number {
  return worker.ready.buffers.reduce((sum, b) => sum + expectedMerged(c, b.label, worker.ready.pageSize), 0);
}

/**
 * Waits until the kernel's own smaps shows every buffer merged as the layout
 * says. Polls that state rather than counting full scans: on a machine
 * shared with other runs a full scan can take a minute, and the state is
 * what the assertions need. The nonce makes over-merging impossible.
 */
async function settle(workers: Child[], timeoutMs = SETTLE_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!workers.every((worker, c) => rawKsmOfBuffers(worker) === expectedWorkerMerged(worker, c))) {
    if (Date.now() > deadline) {
      const seen = workers.map((worker, c) => `${rawKsmOfBuffers(worker)}/${expectedWorkerMerged(worker, c)}`);
      throw new Error(`buffers did not merge as laid out within ${timeoutMs} ms (KSM bytes seen/expected: ${seen.join(', ')})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function rowsByLabel(report: ProfitReport): Map<string, RegionProfit> {
  const out = new Map<string, RegionProfit>();
  for (const row of report.regions) if (row.label !== undefined) out.set(row.label, row);
  return out;
}

function rawRollupKsm(pid: number): number {
  const match = /^KSM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return Number(match![1]) * 1024;
}

describe('profit() in three workers with labelled buffers', () => {
  it('names each buffer and credits exactly the fair share its layout implies', async (ctx) => {
    requireKsm(ctx);
    const workers = await startWorkers();
    await settle(workers);

    const reports = await Promise.all(workers.map((worker) => worker.send<ProfitReport>({ cmd: 'profit', options: { rollup: true } })));
    let savedAll = 0;
    let savedPair = 0;
    reports.forEach((report, c) => {
      const page = report.pageSize;
      expect(report.method).toBe('exact');
      expect(report.estimateReason).toBeUndefined();
      expect(report.pagesChanged).toBe(0);
      const rows = rowsByLabel(report);
      expect([...rows.keys()].sort()).toEqual(['all', 'pair', 'unique']);
      for (const [label, row] of rows) {
        const buffer = workers[c]!.ready.buffers.find((b) => b.label === label)!;
        expect(row.start).toBe(buffer.start);
        expect(row.end).toBe(buffer.end);
        expect(row.mergeable).toBe(true);
        expect(row.mergedBytes).toBe(expectedMerged(c, label, page));
        expect(Math.abs(row.savedBytes - expectedSaved(c, label, page))).toBeLessThan(1e-6);
      }
      // The kernel's own count for the VMAs holding the buffers.
      expect([...rows.values()].reduce((sum, row) => sum + row.mergedBytes, 0)).toBe(rawKsmOfBuffers(workers[c]!));
      expect(rows.get('all')!.sharing).toEqual([{ mappings: 3, pages: PAGES.all }]);
      expect(rows.get('pair')!.sharing).toEqual(c < 2 ? [{ mappings: 2, pages: PAGES.pair }] : []);
      expect(rows.get('unique')!.sharing).toEqual([]);
      savedAll += rows.get('all')!.savedBytes;
      savedPair += rows.get('pair')!.savedBytes;

      // Totals reconcile with the kernel: smaps_rollup KSM and ksm_process_profit.
      const pid = workers[c]!.pid;
      expect(report.total.mergedBytes).toBe(rawRollupKsm(pid));
      expect(report.reconciliation.rollupDifferenceBytes).toBe(0);
      const stat = rawKsmStat(pid);
      expect(report.kernel.processProfit).toBe(Number(stat.ksm_process_profit));
      expect(report.rmapItemSizeSource).toBe('ksm_stat');
      expect(report.total.metadataBytes).toBe(Number(stat.ksm_rmap_items) * report.rmapItemSize);
      expect(report.reconciliation.keptCopyBytes).toBeCloseTo(report.kernel.processProfit! - report.total.netBytes!, 6);
      expect(report.reconciliation.explanation).toMatch(/ksm_process_profit/);
    });
    // Across the workers: k-1 pages saved per KSM page, nothing counted twice.
    const page = reports[0]!.pageSize;
    expect(savedAll).toBeCloseTo(2 * PAGES.all * page, 6);
    expect(savedPair).toBeCloseTo(PAGES.pair * page, 6);
    // What the kernel's per-process profit would claim for the same pages: 3 + 2 copies too many.
    const claimed = reports.reduce((sum, report) => sum + report.regions.reduce((s, row) => s + row.mergedBytes, 0), 0);
    expect(claimed - (savedAll + savedPair)).toBeCloseTo((PAGES.all + PAGES.pair) * page, 6);
  }, TEST_MS);

  it('estimates from Rss/Pss without exact, within 1 KiB per VMA, and says so', async (ctx) => {
    requireKsm(ctx);
    const workers = await startWorkers();
    await settle(workers);
    for (const worker of workers) {
      const exact = await worker.send<ProfitReport>({ cmd: 'profit', options: { exact: true } });
      const estimated = await worker.send<ProfitReport>({ cmd: 'profit', options: { exact: false } });
      expect(exact.method).toBe('exact');
      expect(estimated.method).toBe('estimated');
      expect(estimated.estimateReason).toBe('options.exact is false');
      expect(estimated.total.mergedBytes).toBe(exact.total.mergedBytes);
      const vmasWithKsm = new Set(estimated.regions.filter((row) => row.mergedBytes > 0).map((row) => row.start)).size;
      expect(Math.abs(estimated.total.savedBytes - exact.total.savedBytes)).toBeLessThanOrEqual(1024 * Math.max(vmasWithKsm, 1));
      // Labels are there in both modes; exact rows carry the k histogram, estimated ones do not.
      expect(estimated.regions.flatMap((row) => row.labels).sort()).toEqual(['all', 'pair', 'unique']);
      expect(estimated.regions.every((row) => row.sharing === undefined)).toBe(true);
    }
  }, TEST_MS);

  it('without root: estimated figures, flagged, and exact: true refused with a hint', async (ctx) => {
    requireKsm(ctx);
    const workers = await startWorkers(2);
    await settle(workers);
    const dropped = await workers[0]!.send<{ uid: number; euid: number }>({ cmd: 'drop' });
    expect(dropped.euid).not.toBe(0);

    const report = await workers[0]!.send<ProfitReport>({ cmd: 'profit' });
    expect(report.method).toBe('estimated');
    expect(report.estimateReason).toMatch(/root/);
    // setuid() made the process non-dumpable: ksm_stat is root's now, and the report says so.
    expect(report.missing).toContain('ksm_stat (EACCES)');
    expect(report.total.metadataBytes).toBeUndefined();
    const page = report.pageSize;
    // smaps speaks per VMA: an estimated row is a whole VMA, naming every buffer in it.
    const ours = report.regions.filter((row) => row.labels.length > 0);
    expect(ours.flatMap((row) => row.labels).sort()).toEqual(['all', 'pair', 'unique']);
    for (const row of ours) expect(row.sharing).toBeUndefined();
    // Two workers: `all` and `pair` are each mapped twice, saving half a page per mapping.
    const merged = ours.reduce((sum, row) => sum + row.mergedBytes, 0);
    const saved = ours.reduce((sum, row) => sum + row.savedBytes, 0);
    expect(merged).toBe((PAGES.all + PAGES.pair) * page);
    expect(Math.abs(saved - merged / 2)).toBeLessThanOrEqual(1024 * ours.length);
    expect(report.total.mergedBytes).toBe(rawRollupKsm(workers[0]!.pid));

    await expect(workers[0]!.send({ cmd: 'profit', options: { exact: true } })).rejects.toThrow(/EACCES|EPERM/);
  }, TEST_MS);
});

// Exact attribution reads pagemap for every range with KSM pages: a 64 GiB
// reservation used to be 16 Mi entries read one by one. PAGEMAP_SCAN visits
// the few runs that are there; NODE_KSM_PAGEMAP_SCAN=0 forces the old read.
describe('profit() exact of a sparse 64 GiB mapping', () => {
  it('attributes its KSM pages exactly, with PAGEMAP_SCAN and with the linear read', async (ctx) => {
    requireKsm(ctx);
    needs(ctx, process.geteuid?.() === 0, 'root, for pagemap PFNs and /proc/kpageflags');
    // No zero group: the twins are the only pages KSM can merge.
    const sparse = await startSparse(ctx, ['mergeable', 'nozero']);
    const saved = process.env.NODE_KSM_PAGEMAP_SCAN;
    const figures: unknown[] = [];
    try {
      const { twins, read } = sparse.layout;
      await untilKsm(() => rawSmapsRange(sparse.pid, sparse.start, sparse.end).ksmBytes === twins * PAGE, 'the twins in the sparse mapping merged', 16, SETTLE_MS);
      for (const knob of [undefined, '0']) {
        if (knob === undefined) delete process.env.NODE_KSM_PAGEMAP_SCAN;
        else process.env.NODE_KSM_PAGEMAP_SCAN = knob;
        const report = await profit(sparse.pid, { exact: true });
        expect(report.method).toBe('exact');
        const rows = report.regions.filter((row) => row.start >= sparse.start && row.end <= sparse.end);
        expect(rows.length).toBeGreaterThan(0);
        // One KSM page mapped by all 64 twins: 64 pages merged, 63 saved.
        expect(rows.reduce((sum, row) => sum + row.mergedBytes, 0)).toBe(rawSmapsRange(sparse.pid, sparse.start, sparse.end).ksmBytes);
        expect(rows.reduce((sum, row) => sum + row.mergedBytes, 0)).toBe(twins * PAGE);
        expect(rows.flatMap((row) => row.sharing ?? [])).toEqual([{ mappings: twins, pages: twins }]);
        expect(rows.reduce((sum, row) => sum + (row.zeroPageMappings ?? 0), 0)).toBe(read);
        expect(report.pagesChanged).toBe(0);
        figures.push(rows.map(({ start, end, mergedBytes, savedBytes, zeroPageMappings, sharing }) => ({ start, end, mergedBytes, savedBytes, zeroPageMappings, sharing })));
      }
    } finally {
      if (saved === undefined) delete process.env.NODE_KSM_PAGEMAP_SCAN;
      else process.env.NODE_KSM_PAGEMAP_SCAN = saved;
      await sparse.kill();
    }
    expect(figures[1]).toEqual(figures[0]);
  }, TEST_MS);
});
