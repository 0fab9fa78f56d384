/** `node-ksm status`: the machine's KSM, then the processes that merge. */
import type { Command } from 'commander';

import { mapLimit } from '../concurrency.js';
import { KsmNoSuchProcessError, KsmTimeoutError } from '../errors.js';
import { pageSize } from '../merge/buffers.js';
import { processExists } from '../kernel/processes.js';
import { fairShare, ksmProcesses, type FairShare } from '../report/processes.js';
import { groupShares, type GroupBy, type ShareRow } from '../report/groups.js';
import { groupJson, parseBy, renderGroups } from './groups.js';
import { systemStat, type SystemStat } from '../kernel/sysfs.js';
import { scanTime } from '../tune/tuner.js';
import { lifetimeRates, readKsmCosts, type KsmCosts } from '../report/costs.js';
import type { KsmCostsJson, ProcessJson, StatusJson } from './json.js';
import {
  colors,
  formatBytes,
  formatCount,
  formatRatio,
  formatSeconds,
  printJson,
  printable,
  table,
  type Colors,
  type GlobalOptions,
} from './output.js';

function pageBytes(): number | null {
  try {
    return pageSize();
  } catch {
    return null; // the addon did not load (another platform): sizes stay null
  }
}

const ratio = (a: number | undefined, b: number | undefined): number | null =>
  a === undefined || b === undefined || b === 0 ? null : a / b;

export interface StatusOptions {
  root: string;
  /** Also list processes KSM scans that merged nothing yet. */
  all?: boolean;
  /** Fair share page by page (root). */
  exact?: boolean;
  /** Skip the per-process fair share (faster refreshes). */
  fairShare?: boolean;
  /** Also sum the merging processes per cgroup, unit, pod or container. */
  by?: GroupBy;
}

export async function collectStatus(options: StatusOptions): Promise<StatusJson> {
  const stat = systemStat({ root: options.root });
  const list = await ksmProcesses({ root: options.root, candidates: options.all === true });
  const page = pageBytes();
  const scan = scanTime(stat);
  const withShare = options.fairShare !== false;

  const rows: ShareRow[] = [];
  const unreadable = [...list.unreadable];
  const stalled = [...list.stalled];
  let exactAll = true;
  const shares = await mapLimit(list.processes, 8, async (p): Promise<FairShare | 'gone' | undefined> => {
    if (!withShare) return undefined;
    // Nothing of it is merged (listed by --all): no KSM page, no share, no smaps to read.
    if (!p.merging) return { pid: p.pid, mergedBytes: 0, savedBytes: 0, method: 'exact', labels: [] };
    try {
      const opts: { exact?: boolean; root?: string } = { root: options.root };
      if (options.exact !== undefined) opts.exact = options.exact;
      return await fairShare(p.pid, opts);
    } catch (error) {
      if (error instanceof KsmNoSuchProcessError && !processExists(options.root, p.pid)) return 'gone';
      if (error instanceof KsmTimeoutError) stalled.push({ pid: p.pid, comm: p.comm });
      // Its smaps (or pagemap) could not be read: listed without a fair share, and said so.
      else unreadable.push({ pid: p.pid, code: typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'ERR' });
      return undefined;
    }
  });
  const processes: ProcessJson[] = [];
  list.processes.forEach((p, i) => {
    const share = shares[i];
    if (share === 'gone') return;
    if (share !== undefined && share.method !== 'exact') exactAll = false;
    if (p.merging) rows.push({ pid: p.pid, comm: p.comm, stat: p.stat, share });
    processes.push({
      pid: p.pid,
      comm: p.comm,
      mergingPages: p.stat.mergingPages ?? null,
      zeroPages: p.stat.zeroPages ?? null,
      rmapItems: p.stat.rmapItems ?? null,
      processProfitBytes: p.stat.processProfit ?? null,
      mergeAny: p.stat.mergeAny ?? null,
      savedBytes: share?.savedBytes ?? null,
      mergedBytes: share?.mergedBytes ?? null,
      savedExact: share === undefined ? null : share.method === 'exact',
    });
  });
  processes.sort((a, b) =>
    withShare
      ? (b.savedBytes ?? 0) - (a.savedBytes ?? 0) || a.pid - b.pid
      : (b.mergingPages ?? 0) + (b.zeroPages ?? 0) - ((a.mergingPages ?? 0) + (a.zeroPages ?? 0)) || a.pid - b.pid,
  );

  const sharing = stat.pagesSharing;
  return {
    kind: 'node-ksm/status',
    version: 1,
    time: new Date().toISOString(),
    pageSize: page,
    ksm: knobsJson(stat),
    scan: {
      candidatePages: scan.candidatePages ?? null,
      pagesPerSecond: scan.pagesPerSecond ?? null,
      fullScanSeconds: scan.fullScanSeconds ?? null,
    },
    pages: {
      shared: stat.pagesShared ?? null,
      sharing: sharing ?? null,
      unshared: stat.pagesUnshared ?? null,
      volatile: stat.pagesVolatile ?? null,
      zero: stat.ksmZeroPages ?? null,
    },
    ratios: {
      sharingPerShared: ratio(sharing, stat.pagesShared),
      unsharedPerSharing: ratio(stat.pagesUnshared, sharing),
      volatileShare: ratio(stat.pagesVolatile, scan.candidatePages),
    },
    savedBytes: sharing === undefined || page === null ? null : (sharing + (stat.ksmZeroPages ?? 0)) * page,
    generalProfitBytes: stat.generalProfit ?? null,
    fairShare: !withShare ? 'unavailable' : exactAll ? 'exact' : 'estimated',
    processes,
    unreadable,
    stalled,
    by: options.by ?? null,
    groups: options.by === undefined ? null : (await groupShares(rows, options.by, options.root)).map((g) => groupJson(g, withShare)),
    costs: costsJson(readKsmCosts(options.root)),
  };
}

// ---- costs: copy-on-write breaks and ksmd's CPU ----

export function costsJson(costs: KsmCosts): KsmCostsJson {
  const life = lifetimeRates(costs);
  return {
    cowKsm: costs.cowKsm ?? null,
    ksmSwpinCopy: costs.ksmSwpinCopy ?? null,
    ksmdPid: costs.ksmdPid ?? null,
    ksmdCpuSeconds: costs.ksmdCpuSeconds ?? null,
    sinceKsmdStart:
      life === undefined
        ? null
        : {
            seconds: life.intervalSec,
            cowKsmPerSecond: life.cowKsmPerSecond ?? null,
            ksmSwpinCopyPerSecond: life.ksmSwpinCopyPerSecond ?? null,
            ksmdCpuPercent: life.ksmdCpuPercent ?? null,
          },
  };
}

function costsLine(s: StatusJson, c: Colors): string {
  const k = s.costs;
  const life = k.sinceKsmdStart;
  const rate = (v: number | null | undefined, digits = 2): string => (v === null || v === undefined ? '-' : formatRatio(v, digits));
  return (
    `${c.bold('costs')}    CoW breaks (cow_ksm) ${formatCount(k.cowKsm)}, ${rate(life?.cowKsmPerSecond)}/s; ` +
    `swap-in copies ${formatCount(k.ksmSwpinCopy)}; ksmd CPU ${k.ksmdCpuSeconds === null ? '-' : formatSeconds(k.ksmdCpuSeconds)}` +
    `${life === null ? '' : ` (${rate(life.ksmdCpuPercent)}% of a CPU)`} ${c.dim('since ksmd started')}`
  );
}

export function knobsJson(stat: SystemStat): StatusJson['ksm'] {
  return {
    run: stat.run ?? null,
    runState: stat.runState,
    pagesToScan: stat.pagesToScan ?? null,
    sleepMillisecs: stat.sleepMillisecs ?? null,
    advisorMode: stat.advisorMode ?? null,
    advisorTargetScanTimeSec: stat.advisorTargetScanTimeSec ?? null,
    useZeroPages: stat.useZeroPages ?? null,
    smartScan: stat.smartScan ?? null,
    maxPageSharing: stat.maxPageSharing ?? null,
    fullScans: stat.fullScans ?? null,
  };
}

/** The status as a person reads it. */
export function renderStatus(s: StatusJson, c: Colors, extra: string[] = []): string {
  const lines: string[] = [];
  const state =
    s.ksm.runState === 'running' ? c.green('running') : s.ksm.runState === 'stopped' ? c.red('stopped') : c.yellow(printable(s.ksm.runState));
  const advisor = s.ksm.advisorMode === null ? '' : `   advisor ${printable(s.ksm.advisorMode)}${s.ksm.advisorMode === 'scan-time' ? ` (target ${formatSeconds(s.ksm.advisorTargetScanTimeSec)})` : ''}`;
  lines.push(`${c.bold('KSM')}      ${state} (run=${s.ksm.run ?? '-'})${advisor}`);
  lines.push(
    `${c.bold('scan')}     ${formatCount(s.ksm.pagesToScan)} pages every ${formatCount(s.ksm.sleepMillisecs)} ms = ` +
      `${formatCount(s.scan.pagesPerSecond)} pages/s; one full scan of ${formatCount(s.scan.candidatePages)} pages ` +
      `takes ${c.bold(formatSeconds(s.scan.fullScanSeconds))} (full scans so far: ${formatCount(s.ksm.fullScans)})`,
  );
  lines.push(
    `${c.bold('pages')}    shared ${formatCount(s.pages.shared)}   sharing ${formatCount(s.pages.sharing)}   ` +
      `unshared ${formatCount(s.pages.unshared)}   volatile ${formatCount(s.pages.volatile)}   zero ${formatCount(s.pages.zero)}`,
  );
  lines.push(
    `${c.bold('ratios')}   sharing/shared ${formatRatio(s.ratios.sharingPerShared)} (high: good sharing)   ` +
      `unshared/sharing ${formatRatio(s.ratios.unsharedPerSharing)} (high: wasted effort)   ` +
      `volatile ${s.ratios.volatileShare === null ? '-' : `${(s.ratios.volatileShare * 100).toFixed(0)}%`} of tracked`,
  );
  lines.push(
    `${c.bold('saved')}    ${c.green(formatBytes(s.savedBytes))} (pages_sharing + zero pages); ` +
      `general_profit ${formatBytes(s.generalProfitBytes)} after metadata`,
  );
  lines.push(costsLine(s, c));
  lines.push(...extra);
  lines.push('');
  if (s.processes.length === 0) {
    lines.push(c.dim('no process has merged pages'));
  } else if (s.fairShare === 'unavailable') {
    lines.push(`${c.bold('processes that merge')} ${c.dim('(ksm_stat figures, by merging pages; --no-fair-share)')}`);
    lines.push(
      table(
        ['PID', 'COMM', 'MERGING', 'ZERO', 'RMAP ITEMS', 'KSM_PROCESS_PROFIT*'],
        s.processes.map((p) => [
          String(p.pid),
          printable(p.comm),
          pagesAndBytes(p.mergingPages, s.pageSize),
          formatCount(p.zeroPages),
          formatCount(p.rmapItems),
          formatBytes(p.processProfitBytes),
        ]),
        ['right', 'left', 'right', 'right', 'right', 'right'],
      ),
    );
    lines.push(c.dim('* the kernel counts the copy that had to stay in every process: do not add these up'));
  } else {
    lines.push(`${c.bold('processes that merge')} ${c.dim(`(by fair-share saving, ${s.fairShare})`)}`);
    lines.push(
      table(
        ['PID', 'COMM', 'SAVED', 'MERGED', 'MERGING PAGES', 'RMAP ITEMS', 'KSM_PROCESS_PROFIT*'],
        s.processes.map((p) => [
          String(p.pid),
          printable(p.comm),
          c.green(formatBytes(p.savedBytes)),
          formatBytes(p.mergedBytes),
          formatCount(p.mergingPages),
          formatCount(p.rmapItems),
          formatBytes(p.processProfitBytes),
        ]),
        ['right', 'left', 'right', 'right', 'right', 'right', 'right'],
      ),
    );
    const total = s.processes.reduce((sum, p) => sum + (p.savedBytes ?? 0), 0);
    lines.push(`${c.dim('saved, summed over the processes:')} ${formatBytes(total)}`);
    lines.push(c.dim('* the kernel counts the copy that had to stay in every process: do not add these up'));
  }
  if (s.stalled.length > 0) {
    lines.push(c.yellow(`${s.stalled.length} process(es) skipped: their memory map stayed locked past the deadline: ${s.stalled.map((p) => `${p.pid} (${printable(p.comm)})`).join(', ')}`));
  }
  lines.push(...renderGroups(s, c));
  if (s.unreadable.length > 0) {
    lines.push(c.yellow(`${s.unreadable.length} processes could not be read (${[...new Set(s.unreadable.map((u) => u.code))].join(', ')}): as root they can`));
  }
  return lines.join('\n');
}

function pagesAndBytes(pages: number | null, page: number | null): string {
  if (pages === null) return '-';
  return page === null ? formatCount(pages) : `${formatCount(pages)} (${formatBytes(pages * page)})`;
}

export function register(program: Command): void {
  program
    .command('status')
    .description('is KSM running, how fast it scans, what it saved, and the processes that merge')
    .option('--all', 'also list processes KSM scans that have merged nothing yet')
    .option('--exact', 'fair share page by page from pagemap/kpageflags (root)')
    .option('--no-fair-share', 'skip the per-process fair share (ksm_stat figures only)')
    .option('--by <group>', 'also sum the saving per cgroup, unit, pod or container')
    .option('--json', 'print a StatusJson document (see README)')
    .addHelpText(
      'after',
      `
Scan time is computed: candidate pages / (pages_to_scan x 1000 / sleep_millisecs),
where candidate pages = pages_shared + pages_sharing + pages_unshared + pages_volatile,
the kernel's own count of pages it tracks (its rmap items). Ratios are those of
Documentation/admin-guide/mm/ksm.rst.`,
    )
    .action(async (_options, command: Command) => {
      const opts = command.optsWithGlobals<GlobalOptions & { all?: boolean; exact?: boolean; fairShare?: boolean; by?: string }>();
      const statusOptions: StatusOptions = { root: opts.root ?? '/', all: opts.all === true };
      const by = parseBy(opts.by);
      if (by !== undefined) statusOptions.by = by;
      if (opts.exact === true) statusOptions.exact = true;
      if (opts.fairShare === false) statusOptions.fairShare = false;
      const status = await collectStatus(statusOptions);
      if (opts.json === true) printJson(status);
      else process.stdout.write(`${renderStatus(status, colors(opts))}\n`);
    });
}
