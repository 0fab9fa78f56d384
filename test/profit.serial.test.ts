/**
 * The machine-wide invariant behind profit(): the exact fair shares of every
 * process that maps KSM pages add up to pages_sharing x page size. Serial: it
 * reads every process on the machine against one global counter.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { KsmNoSuchProcessError, pageSize, profit, waitForMerge } from '../lib/index.js';
import { requireKsm, startFixture, sysfsNumber, type Holder } from './helpers/ksm.js';

let workers: Holder[] = [];

afterEach(async () => {
  await Promise.all(workers.map((worker) => worker.kill()));
  workers = [];
});

function rollupKsm(pid: number): number {
  const match = /^KSM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

/** Pids whose smaps_rollup shows KSM pages, read raw. */
function pidsMappingKsm(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const match = /^KSM:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${entry}/smaps_rollup`, 'utf8'));
      if (match && Number(match[1]) > 0) pids.push(Number(entry));
    } catch {
      // Gone, or a kernel thread without an mm.
    }
  }
  return pids;
}

interface Attempt {
  pagesSharingBefore: number;
  pagesSharingAfter: number;
  savedBytes: number;
  pagesChanged: number;
  processes: number;
  vanished: number;
}

async function attempt(): Promise<Attempt> {
  const pagesSharingBefore = sysfsNumber('pages_sharing');
  let savedBytes = 0;
  let pagesChanged = 0;
  let vanished = 0;
  const pids = pidsMappingKsm();
  for (const pid of pids) {
    try {
      const report = await profit(pid, { exact: true });
      savedBytes += report.total.savedBytes;
      pagesChanged += report.pagesChanged ?? 0;
    } catch (error) {
      if (!(error instanceof KsmNoSuchProcessError)) throw error;
      vanished++;
    }
  }
  return { pagesSharingBefore, pagesSharingAfter: sysfsNumber('pages_sharing'), savedBytes, pagesChanged, processes: pids.length, vanished };
}

function undisturbed(a: Attempt): boolean {
  return a.pagesSharingBefore === a.pagesSharingAfter && a.pagesChanged === 0 && a.vanished === 0;
}

describe('exact savedBytes over the machine', () => {
  it('sum to pages_sharing x page size', async (ctx) => {
    requireKsm(ctx);
    const nonce = randomUUID();
    const layout = (c: number) => [
      { label: 'all', pages: 256, group: 'all' },
      { label: 'pair', pages: 128, group: c < 2 ? 'pair' : `pair-${c}` },
    ];
    workers = await Promise.all([0, 1, 2].map((c) => startFixture('profit-child.cjs', [JSON.stringify({ nonce, buffers: layout(c) })])));
    const page = pageSize();
    // Merged as laid out (polled raw: full scans are slow while other runs hold memory).
    const deadline = Date.now() + 240_000;
    const expected = [384, 384, 256].map((pages) => pages * page);
    while (Date.now() < deadline && !workers.every((w, c) => rollupKsm(w.pid) >= expected[c]!)) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }

    // Other runs on this machine merge and unmerge while we read; an attempt
    // counts only if nothing changed during it. First with ksmd running, then
    // with ksmd paused for the read (run=0 keeps merged pages merged), the
    // window kept short and run restored in finally.
    const attempts: Attempt[] = [];
    for (let i = 0; i < 8; i++) {
      const pause = i >= 3;
      const run = fs.readFileSync('/sys/kernel/mm/ksm/run', 'utf8').trim();
      let result: Attempt;
      if (pause && run === '1') {
        // One full scan first, so ksmd has dropped rmap_items of pages unmapped since.
        await waitForMerge({ fullScans: 1, timeoutMs: 60_000 }).catch(() => undefined);
        fs.writeFileSync('/sys/kernel/mm/ksm/run', '0');
        try {
          result = await attempt();
        } finally {
          fs.writeFileSync('/sys/kernel/mm/ksm/run', run);
        }
      } else {
        result = await attempt();
      }
      attempts.push(result);
      if (undisturbed(result) && Math.abs(result.savedBytes - result.pagesSharingBefore * page) < 1e-3) break;
      await waitForMerge({ fullScans: 1, timeoutMs: 30_000 }).catch(() => undefined);
    }
    const clean = attempts.filter(undisturbed);
    expect(clean.length, `no undisturbed read in ${attempts.length} attempts: ${JSON.stringify(attempts)}`).toBeGreaterThan(0);
    const last = clean[clean.length - 1]!;
    expect(last.processes).toBeGreaterThanOrEqual(3);
    expect(last.pagesSharingBefore).toBeGreaterThanOrEqual(2 * 256 + 128);
    expect(last.savedBytes).toBeCloseTo(last.pagesSharingBefore * page, 3);
  }, 600_000);
});
