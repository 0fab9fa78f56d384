/**
 * One reading of what the kernel says about the demo, through the SDK:
 * each worker's ksm_stat (ksmStat) and its table mapping's smaps figures
 * (regions), and the machine's counters (systemStat).
 *
 * The saving: the workers' table mappings hold N x size bytes of identical
 * data; what they cost once merged is the sum of their PSS (a KSM page
 * mapped by k processes charges each 1/k), so the saving is N x mapped -
 * sum(PSS), per process and exact, unmoved by whatever else merges on the
 * machine. pages_sharing and general_profit are machine-wide: shown as
 * deltas since the start, they include any other merging.
 */
import { KsmNoSuchProcessError } from '../../errors.js';
import { ksmStat } from '../../kernel/ksm-stat.js';
import { systemStat, type SystemStat } from '../../kernel/sysfs.js';
import { regions } from '../../report/regions.js';
import type { DemoWorker, WorkerPool } from './pool.js';
import type { DemoProcess, DemoSnapshot } from './types.js';

export interface Baseline {
  startedAt: number;
  /** systemStat() before the workers started. */
  system: SystemStat;
  /** full_scans once the last worker finished writing its table. */
  lastWriteScans: number;
  /** Bytes each worker maps for its table (size rounded up to pages). */
  mapped: number;
  theoreticalSaving: number;
}

async function measureWorker(worker: DemoWorker): Promise<DemoProcess> {
  const { regions: vmas } = await regions(worker.pid);
  const stat = ksmStat(worker.pid);
  let tableKsm: number | undefined;
  let tableRss = 0;
  let tablePss = 0;
  for (const vma of vmas) {
    if (vma.start >= worker.end || vma.end <= worker.start) continue;
    tableRss += vma.rss ?? 0;
    tablePss += vma.pss ?? 0;
    if (vma.ksm !== undefined) tableKsm = (tableKsm ?? 0) + vma.ksm;
  }
  return { pid: worker.pid, ksmStat: stat, tableKsm, tableRss, tablePss };
}

export async function measure(pool: WorkerPool, baseline: Baseline): Promise<DemoSnapshot> {
  const { workers } = pool;
  const processes = await Promise.all(
    workers.map((worker) =>
      measureWorker(worker).catch(async (error: unknown) => {
        throw error instanceof KsmNoSuchProcessError ? await pool.gone(worker) : error;
      }),
    ),
  );
  const system = systemStat();
  const pss = processes.reduce((sum, p) => sum + p.tablePss, 0);
  const savedBytes = Math.max(0, workers.length * baseline.mapped - pss);
  return {
    elapsedMs: performance.now() - baseline.startedAt,
    processes,
    system,
    // The scan under way at the last write may have passed the tables already: it does not count.
    scansSinceWrite: Math.max(0, (system.fullScans ?? 0) - baseline.lastWriteScans - 1),
    pagesSharingDelta: (system.pagesSharing ?? 0) - (baseline.system.pagesSharing ?? 0),
    generalProfitDelta: (system.generalProfit ?? 0) - (baseline.system.generalProfit ?? 0),
    savedBytes,
    savedRatio: baseline.theoreticalSaving > 0 ? savedBytes / baseline.theoreticalSaving : 0,
  };
}
