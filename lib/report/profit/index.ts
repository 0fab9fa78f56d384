/**
 * What KSM saved, region by region, without the accounting trap: a KSM page
 * mapped k times saves k-1 pages, so each of its k mappings is credited
 * (k-1)/k of a page. The kernel's ksm_process_profit credits every mapping a
 * whole page, so summed over processes it counts each kept copy k times;
 * these fair shares sum to pages_sharing over the machine.
 *
 * Two ways to get the shares (method.ts):
 * - exact (root): page by page from the process's pagemap, kpageflags and
 *   kpagecount, in the addon, off the event loop;
 * - estimated (anyone who can read smaps): per VMA from Rss/Pss
 *   (accounting.ts, estimateSaved()).
 */
import { pageSizeOf, type NativeSmapsScan } from '../../binding.js';
import { isSystemError } from '../../errors.js';
import { readKsmStat } from '../../kernel/ksm-stat.js';
import { rmapItemSize } from '../../kernel/rmap.js';
import { readProcFileIfPresent } from '../../kernel/proc-read.js';
import { parseSmaps, sizeOf, type SmapsSummary } from '../../kernel/smaps.js';
import { readSmaps } from '../../kernel/smaps-reader.js';
import { resolveTargetEarly, startedAsResolved, type ProcessTarget } from '../../kernel/target.js';
import { layoutScanReads, readLayoutFacts, readMallocChunksEarly, readStackPointersEarly, stackPointersOfScan, type EarlyChunks } from '../../kernel/vma-evidence.js';
import { classifyVmas, factKinds } from '../../kernel/vma.js';
import { labelsOf } from '../../merge/published.js';
import { checkBoolean, checkOptions } from '../../validate.js';
import {
  estimatedFigures,
  exactFigures,
  metadataShares,
  pagesChanged,
  type ProfitKsmStat,
} from './accounting.js';
import { reconcile } from './explanation.js';
import { attributeBesideScan, chooseMethod, scanAttribution, type ScanAttribution } from './method.js';
import type { ProfitOptions, ProfitReport, ProfitTotal, RegionProfit } from './types.js';

export type * from './types.js';
export { estimateSaved } from './accounting.js';

/**
 * ksm_stat, or what is known without it. A process that dropped root with
 * setuid() is no longer dumpable: its /proc files then belong to root, and
 * ksm_stat (mode 0400) is unreadable even to itself, while smaps (0444) is not.
 */
async function ksmStatOrUnreadable(target: ProcessTarget, deadlineMs: number | undefined): Promise<ProfitKsmStat> {
  try {
    return await readKsmStat(target, deadlineMs);
  } catch (error) {
    if (!isSystemError(error) || (error.code !== 'EACCES' && error.code !== 'EPERM')) throw error;
    return {
      pid: target.pid,
      rmapItems: undefined,
      zeroPages: undefined,
      mergingPages: undefined,
      processProfit: undefined,
      mergeAny: undefined,
      mergeable: undefined,
      source: 'none',
      missing: ['rmapItems', 'zeroPages', 'mergingPages', 'processProfit', 'mergeAny', 'mergeable'],
      unknown: {},
      unreadable: error.code,
    };
  }
}

/** Kernel figures this kernel or this process did not give. */
function missingFigures(vmas: readonly SmapsSummary[], stat: ProfitKsmStat): string[] {
  const missing: string[] = [];
  if (vmas.length > 0 && vmas.every((vma) => vma.ksm === undefined)) missing.push('smaps KSM');
  if (stat.unreadable !== undefined) missing.push(`ksm_stat (${stat.unreadable})`);
  else for (const field of stat.missing) missing.push(`ksm_stat ${field}`);
  return missing;
}

/**
 * What KSM saved for a process (default: this one), per region and in total,
 * as fair shares that add up across processes.
 *
 * @throws KsmNoSuchProcessError when the process does not exist.
 * @throws SystemError EACCES for another user's process without root;
 *   EPERM/EACCES with `exact: true` without root.
 */
export async function profit(pid?: number, options?: ProfitOptions): Promise<ProfitReport> {
  const opts = checkOptions<ProfitOptions>(options);
  const wantExact = checkBoolean('options.exact', opts.exact);
  const layoutReads = checkBoolean('options.layoutReads', opts.layoutReads) ?? true;
  const rollup = checkBoolean('options.rollup', opts.rollup) ?? false;
  const { early, resolve } = resolveTargetEarly(pid, opts);
  return profitOfTarget(early, wantExact, undefined, layoutReads, rollup, resolve);
}

/**
 * profit() of a resolved target; every read of its files within
 * `deadlineMs` where one is given (readers of many processes give one).
 * `layoutReads` false leaves out the reads only some kinds need (stack
 * pointers, malloc headers): those rows then say what the layout alone tells.
 * `rollup` reads smaps_rollup as well (reconciliation.rollupKsmBytes).
 * With `resolve`, `started` is resolveTargetEarly()'s early target: the
 * reads start before the target is resolved, and start again for the
 * resolved one where they are not what it would have read.
 */
export async function profitOfTarget(
  started: ProcessTarget,
  wantExact: boolean | undefined,
  deadlineMs: number | undefined,
  layoutReads = true,
  rollup = false,
  resolve?: () => ProcessTarget,
): Promise<ProfitReport> {
  let target = started;
  // Set where the reads are started again for the resolved target: the first ones' results are let go.
  let superseded = false;
  // With `rollup`, smaps_rollup (a walk of the page tables of its own) is read
  // beside smaps, going on through exact mode's page reads as well. A kernel
  // thread has no memory: its smaps is empty and smaps_rollup gives ESRCH.
  const startRollup = (of: ProcessTarget): Promise<Buffer | undefined> => {
    const read = !rollup || of.kernelThread === true ? Promise.resolve(undefined) : readProcFileIfPresent(of, 'smaps_rollup', deadlineMs);
    // Awaited with the method below; failing meanwhile, it must not count as unhandled.
    read.catch(() => {});
    return read;
  };
  // A target still to be resolved reads it once resolved, when whether it is
  // a kernel thread is known (started before it, the rows with rollup were
  // 0.1x slower at 216 VMAs, over six runs of bench/profit.mjs).
  let rollupRead = resolve === undefined ? startRollup(target) : undefined;
  // Beside the scan, on the reader threads: the first chunk headers of the
  // reported candidates, and where exact mode is to be tried the attribution
  // of the VMAs with KSM pages (its pagemap and kpage* reads cost about what
  // the smaps read does at 16 MiB merged: BENCHMARKS.md section 7).
  let early: EarlyChunks | undefined;
  let attributed: ScanAttribution | undefined;
  let scanned: Map<number, bigint> | undefined;
  const layoutScan = layoutReads ? layoutScanReads(target, 'reported') : undefined;
  const attribute = attributeBesideScan(target, wantExact);
  const besideScan = layoutScan === undefined && attribute === undefined ? undefined : {
    ...layoutScan,
    ...(attribute === undefined ? {} : { attribute }),
    onScan: (scan: NativeSmapsScan, made: SmapsSummary[]) => {
      // Not for reads started again for the resolved target (their own callback does that).
      if (superseded) return;
      if (layoutScan?.chunks !== undefined) early = readMallocChunksEarly(target, scan, made, pageSizeOf(), deadlineMs);
      if (layoutScan?.stackPointers === true) scanned = stackPointersOfScan(scan);
      attributed = scanAttribution(scan, made);
    },
  };
  // ksm_stat first: its small read takes an idle reader thread at once (queued
  // after smaps, it waited 2-3 ms for a third thread beside the smaps read
  // and its helper on a 2-vCPU machine, and came after smaps 1 call in 5 at 224 VMAs).
  const statRead = ksmStatOrUnreadable(target, deadlineMs);
  const reads = Promise.all([readSmaps(target, deadlineMs, true, besideScan), statRead]);
  reads.catch(() => {}); // awaited below
  if (resolve !== undefined) {
    // Status read while the reader threads read; the scan's callback above runs after.
    target = resolve();
    if (!startedAsResolved(started, target)) {
      superseded = true;
      return profitOfTarget(target, wantExact, deadlineMs, layoutReads, rollup);
    }
  }
  rollupRead ??= startRollup(target);
  // The labels' small synchronous reads (and the stack pointers' where the scan does not bring them) while the reader threads read.
  const labels = labelsOf(target);
  const stackPointers = layoutReads ? readStackPointersEarly(target, layoutScan) : undefined;
  const [{ vmas }, stat] = await reads;
  const pageSize = pageSizeOf();
  const missing = missingFigures(vmas, stat);
  const reportedAt: number[] = [];
  // Whether each VMA is mergeable, by VMA index: VMAs of one VmFlags line share its list (readSmaps' sharedFlags), so each list is searched once.
  const mergeableAt: boolean[] = new Array<boolean>(vmas.length);
  let lastFlags: readonly string[] | undefined;
  let lastMergeable = false;
  for (let i = 0; i < vmas.length; i++) {
    const vma = vmas[i]!;
    if (vma.vmFlags !== lastFlags) {
      lastFlags = vma.vmFlags;
      lastMergeable = lastFlags.includes('mg');
    }
    mergeableAt[i] = lastMergeable;
    if ((vma.ksm ?? 0) > 0 || lastMergeable) reportedAt.push(i); // as native/header-read.h's kReported
  }
  const reported = reportedAt.map((i) => vmas[i]!);
  const zeroPages = stat.zeroPages ?? 0;
  // The layout's other read (the chunk headers of the reported VMAs only, on
  // the reader thread since the scan came; the stack pointers were read
  // beside smaps) goes on beside exact mode's page reads and the layout's
  // kinds, worked out meanwhile; the kinds it tells come after, as in regions().
  const facts = layoutReads ? readLayoutFacts(target, reported, pageSize, deadlineMs, scanned ?? stackPointers, early) : undefined;
  facts?.catch(() => {}); // awaited below
  const method = chooseMethod(target, wantExact, reported, labels, zeroPages, attributed);
  method.catch(() => {}); // awaited below
  const layout = classifyVmas(vmas);
  const [chosen, rollupText] = await Promise.all([method, rollupRead]);
  // Each row's VMA's kind: rows come in the order of `reported`, several to a VMA where exact rows are cut.
  const kindAt: number[] = new Array<number>(chosen.rows.length);
  for (let r = 0, k = 0; r < chosen.rows.length; r++) {
    while (k < reported.length - 1 && reported[k] !== chosen.rows[r]!.vma) k++;
    kindAt[r] = reportedAt[k]!;
  }

  const item = rmapItemSize(stat, pageSize);
  const metadataTotal = stat.rmapItems === undefined ? undefined : stat.rmapItems * item.size;
  const rowMergeable = kindAt.map((i) => mergeableAt[i]!);
  const metadata = metadataShares(chosen.rows, metadataTotal, rowMergeable);
  const regions: RegionProfit[] = chosen.rows.map((row, r) => {
    const figures = chosen.exact === undefined
      ? estimatedFigures(row.vma)
      : exactFigures(chosen.exact, chosen.exactIndex.get(row), pageSize);
    const metadataBytes = metadata[r];
    const classified = layout[kindAt[r]!]!;
    return {
      start: row.start,
      end: row.end,
      size: sizeOf(row),
      kind: classified.kind,
      kindEvidence: classified.evidence,
      pathname: row.vma.pathname,
      label: row.labels.length === 0 ? undefined : row.labels.join(', '),
      labels: row.labels,
      mergeable: rowMergeable[r]!,
      mergedBytes: figures.mergedBytes,
      savedBytes: figures.savedBytes,
      metadataBytes,
      netBytes: metadataBytes === undefined ? undefined : figures.savedBytes - metadataBytes,
      zeroPageMappings: figures.zeroPageMappings,
      sharing: figures.sharing,
    };
  });
  // The kinds the reads tell, on the rows of the VMAs they change (the rows were made meanwhile).
  const read = facts === undefined ? undefined : await facts;
  if (read !== undefined) {
    const changed = factKinds(reported, reportedAt.map((i) => layout[i]!), read);
    for (const [k, classified] of changed) layout[reportedAt[k]!] = classified;
    if (changed.length > 0) {
      regions.forEach((region, r) => {
        const classified = layout[kindAt[r]!]!;
        region.kind = classified.kind;
        region.kindEvidence = classified.evidence;
      });
    }
  }

  const savedBytes = regions.reduce((sum, row) => sum + row.savedBytes, 0);
  const zeroPageBytes = zeroPages * pageSize;
  const total: ProfitTotal = {
    mergedBytes: vmas.reduce((sum, vma) => sum + (vma.ksm ?? 0), 0),
    savedBytes,
    zeroPages,
    zeroPageBytes,
    metadataBytes: metadataTotal,
    netBytes: metadataTotal === undefined ? undefined : savedBytes + zeroPageBytes - metadataTotal,
  };
  const rollupKsm = rollupText === undefined ? undefined : parseSmaps(rollupText.toString('latin1')).vmas[0]?.fields.KSM;
  if (rollupText !== undefined && rollupKsm === undefined) missing.push('smaps_rollup KSM');

  return {
    pid: target.pid,
    method: chosen.method,
    estimateReason: chosen.estimateReason,
    pageSize,
    rmapItemSize: item.size,
    rmapItemSizeSource: item.source,
    regions,
    total,
    kernel: {
      rmapItems: stat.rmapItems,
      zeroPages: stat.zeroPages,
      mergingPages: stat.mergingPages,
      processProfit: stat.processProfit,
      mergeAny: stat.mergeAny,
      source: stat.source,
    },
    reconciliation: reconcile(total, stat, rollupKsm, pageSize),
    pagesChanged: chosen.exact === undefined ? undefined : pagesChanged(chosen.rows, chosen.exactIndex, chosen.exact, pageSize),
    missing,
  };
}
