/**
 * The estimate holds once KSM is on: four workers with a known layout are
 * estimated before they opt in, then merged for real, and what merged is
 * read back page by page from pagemap + kpageflags (root), independently of
 * the code under test. Serial: it waits on ksmd's machine-wide scans.
 */
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { KsmNotRunningError, estimate, pageSize, waitForMerge } from '../lib/index.js';
import { hashPaths, withHashPath, type HashPath } from './helpers/hash.js';
import { needs, rawSmapsRange, requireKsm, startFixture, sysfsNumber, type Holder } from './helpers/ksm.js';

let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

const KPF_KSM = 1n << 21n;
const KPF_ZERO_PAGE = 1n << 24n;
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/** Per page of [start, end): the PFN and its kpageflags, for present pages. */
function rawPages(pid: number, start: bigint, end: bigint): Array<{ pfn: bigint; flags: bigint }> {
  const page = BigInt(pageSize());
  const count = Number((end - start) / page);
  const map = Buffer.alloc(count * 8);
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  fs.readSync(fd, map, 0, map.length, Number((start / page) * 8n));
  fs.closeSync(fd);
  const flagsFd = fs.openSync('/proc/kpageflags', 'r');
  const one = Buffer.alloc(8);
  const out: Array<{ pfn: bigint; flags: bigint }> = [];
  for (let i = 0; i < count; i++) {
    const entry = map.readBigUInt64LE(i * 8);
    if ((entry & PRESENT) === 0n) continue;
    const pfn = entry & PFN_MASK;
    fs.readSync(flagsFd, one, 0, 8, Number(pfn * 8n));
    out.push({ pfn, flags: one.readBigUInt64LE(0) });
  }
  fs.closeSync(flagsFd);
  return out;
}

const USE_ZERO_PAGES = '/sys/kernel/mm/ksm/use_zero_pages';

describe('estimate() against real merging', () => {
  // Both zero-page modes: as the machine has it, and the other one (set for
  // the length of the test only, restored in finally).
  it.for(['as set', 'toggled'])('predicts what KSM merges in 4 workers within 2 percent of the candidate pages, use_zero_pages %s', async (mode, ctx) => {
    requireKsm(ctx);
    needs(ctx, process.getuid?.() === 0, 'root, to read /proc/kpageflags');
    const saved = fs.readFileSync(USE_ZERO_PAGES, 'utf8').trim();
    if (mode === 'toggled') fs.writeFileSync(USE_ZERO_PAGES, saved === '1' ? '0' : '1');
    try {
      await accuracy();
    } finally {
      if (mode === 'toggled') fs.writeFileSync(USE_ZERO_PAGES, saved);
    }
  });
});

/**
 * Three full scans past the opt-in. KSM is one machine-wide resource: a
 * concurrent test run elsewhere may stop it (run=0) for a moment; that stops
 * scanning without unmerging, so wait for it to come back and go on.
 */
async function settle(): Promise<void> {
  const deadline = Date.now() + 100_000;
  for (;;) {
    try {
      await waitForMerge({ fullScans: 3, timeoutMs: Math.max(1, deadline - Date.now()) });
      return;
    } catch (error) {
      if (!(error instanceof KsmNotRunningError) || Date.now() > deadline) throw error;
      while (sysfsNumber('run') !== 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function accuracy(): Promise<void> {
  {
    const pages = 4096; // 16 MiB per worker
    const seed = Math.floor(Math.random() * 1e9);
    const segments = [
      { kind: 'seq', pages: pages / 2, seed }, // 50% identical across the workers
      { kind: 'zero', pages: 410 }, // 10% zero
      { kind: 'volatile', pages: 410, everyMs: 100 }, // 10% rewritten every 100 ms
      { kind: 'unique', pages: pages - pages / 2 - 820 }, // the rest unique
    ];
    const workers = await Promise.all(
      Array.from({ length: 4 }, () => startFixture('estimate-worker.cjs', [JSON.stringify({ mergeable: false, segments })])),
    );
    holders.push(...workers);
    const ranges = workers.map((w) => ({ pid: w.pid, start: w.ready.start as bigint, end: w.ready.end as bigint }));

    // Before: nothing is mergeable; the estimate says what enabling would
    // save. Once per page hash path, each held to what then merges.
    const useZeroPages = fs.readFileSync(USE_ZERO_PAGES, 'utf8').trim() === '1';
    const predictions: Array<{ path: HashPath; candidates: number; predicted: number; predictedMappers: number; useZeroPages: boolean }> = [];
    for (const path of hashPaths()) {
      const result = await withHashPath(path, () => estimate(workers.map((w) => w.pid), { intervalMs: 400, useZeroPages }));
      let candidates = 0;
      let predicted = 0;
      let predictedMappers = 0;
      for (const r of ranges) {
        const vma = result.processes.find((p) => p.pid === r.pid)!.vmas.find((v) => v.start === r.start)!;
        expect(vma).toMatchObject({ end: r.end, mergeable: false, candidateAfterEnableMerge: true });
        expect(vma.candidatePages).toBe(pages);
        expect(vma.volatilePages).toBe(410);
        expect(vma.zeroPages).toBe(410);
        expect(vma.duplicatePages).toBe(pages / 2);
        candidates += vma.candidatePages;
        predicted += vma.predictedSavedPages;
        predictedMappers += vma.duplicatePages + (result.useZeroPages ? 0 : vma.zeroPages);
      }
      predictions.push({ path, candidates, predicted, predictedMappers, useZeroPages: result.useZeroPages });
    }

    // Opt in, let ksmd merge, read back what merged, page by page.
    await Promise.all(workers.map((w) => w.send({ cmd: 'enableMerge' })));
    await settle();
    let ksmMappers = 0;
    let zeroMerged = 0;
    const ksmPfns = new Set<bigint>();
    let smapsKsm = 0;
    for (const r of ranges) {
      for (const { pfn, flags } of rawPages(r.pid, r.start, r.end)) {
        if ((flags & KPF_KSM) !== 0n) {
          ksmMappers++;
          ksmPfns.add(pfn);
        } else if ((flags & KPF_ZERO_PAGE) !== 0n) {
          zeroMerged++;
        }
      }
      smapsKsm += rawSmapsRange(r.pid, r.start, r.end).ksmBytes / pageSize();
    }
    // The knob is machine-wide: a concurrent run elsewhere may flip it.
    expect(fs.readFileSync(USE_ZERO_PAGES, 'utf8').trim() === '1', 'use_zero_pages changed during the test (another run?)').toBe(useZeroPages);
    // k mappers of one KSM page saved k - 1; a zero-page merge saved one.
    const merged = ksmMappers - ksmPfns.size + zeroMerged;
    for (const { path, candidates, predicted, predictedMappers, useZeroPages: zeroPagesOn } of predictions) {
      console.log(
        `estimate accuracy (${path.name}): candidates ${candidates}, predicted saved ${predicted.toFixed(1)} pages, ` +
          `merged ${merged} (KSM mappers ${ksmMappers} on ${ksmPfns.size} KSM pages, zero-page merges ${zeroMerged}; ` +
          `smaps KSM ${smapsKsm} pages, predicted mappers ${predictedMappers}), ` +
          `error ${(((predicted - merged) / candidates) * 100).toFixed(3)}% of candidates, use_zero_pages ${zeroPagesOn}`,
      );
      expect(Math.abs(predicted - merged), path.name).toBeLessThanOrEqual(0.02 * candidates);
      expect(Math.abs(predictedMappers - smapsKsm), path.name).toBeLessThanOrEqual(0.02 * candidates);
    }
  }
}
