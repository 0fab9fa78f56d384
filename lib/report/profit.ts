/**
 * What KSM saved, region by region, without the accounting trap: a KSM page
 * mapped k times saves k-1 pages, so each of its k mappings is credited
 * (k-1)/k of a page. The kernel's ksm_process_profit credits every mapping a
 * whole page, so summed over processes it counts each kept copy k times;
 * these fair shares sum to pages_sharing over the machine.
 *
 * Two ways to get the shares:
 * - exact (root): page by page, /proc/PID/pagemap -> frame, /proc/kpageflags
 *   -> KPF_KSM, /proc/kpagecount -> k. Native, batched preads, off the event loop.
 * - estimated (anyone who can read smaps): per VMA from Rss/Pss, see
 *   estimateSaved().
 */
import { bindingState, pagemapScanEnabled, type PageAttribution } from '../binding.js';
import { KsmUnsupportedError, isSystemError, withHint, type SystemError } from '../errors.js';
import { formatBytes } from '../format.js';
import { liveLabels, type LabelledRange } from '../merge/labels.js';
import { procPath } from '../kernel/paths.js';
import { ksmStat, type KsmStat } from '../kernel/ksm-stat.js';
import { rmapItemSize } from '../kernel/rmap.js';
import { processTarget, readProcFile, readSmapsScan, regionKind, type RegionKind } from './regions.js';
import { parseSmaps, type SmapsSummary } from '../kernel/smaps.js';
import { systemStat, type SystemStat } from '../kernel/sysfs.js';
import { checkBoolean, checkOptions, checkRoot, type RootOption } from '../validate.js';

export interface ProfitOptions extends RootOption {
  /**
   * `true`: page by page (needs root; throws without). `false`: estimated
   * from smaps. Default: exact where this process may read frames (root),
   * estimated otherwise, and `estimateReason` says why.
   */
  exact?: boolean;
}

export type ProfitMethod = 'exact' | 'estimated';

/** How many of a region's KSM pages are mapped `mappings` times, machine-wide. */
export interface SharingBucket {
  /** Page tables mapping the KSM page (kpagecount): k. */
  mappings: number;
  pages: number;
}

export interface RegionProfit {
  start: bigint;
  end: bigint;
  size: number;
  kind: RegionKind;
  pathname: string;
  /**
   * Our label for this range (this process only). Exact rows are cut at our
   * buffers, one label each; an estimated row is a whole VMA, which may hold
   * several buffers: then their labels, comma-separated.
   */
  label: string | undefined;
  labels: string[];
  mergeable: boolean;
  /** Bytes of the range backed by KSM pages. */
  mergedBytes: number;
  /** Fair share of the saving: (k-1)/k of a page per mapped KSM page. */
  savedBytes: number;
  /**
   * This range's share of the process's rmap_item cost, apportioned by
   * resident anonymous bytes (the kernel counts rmap_items per process only).
   * Undefined when ksm_stat is unreadable.
   */
  metadataBytes: number | undefined;
  /** savedBytes - metadataBytes. */
  netBytes: number | undefined;
  /**
   * Exact mode: pages of the range that map the shared zero page. pagemap
   * cannot tell KSM's zero pages (use_zero_pages) from read-faulted ones,
   * so this is an upper bound per range; the process total is ksm_stat's.
   */
  zeroPageMappings: number | undefined;
  /** Exact mode: the k of each KSM page, counted. */
  sharing: SharingBucket[] | undefined;
}

export interface ProfitTotal {
  /** Sum of smaps `KSM:` over the process: equals smaps_rollup `KSM`. */
  mergedBytes: number;
  savedBytes: number;
  /** ksm_zero_pages of the process: pages merged into the zero page. */
  zeroPages: number;
  /** Each zero page merged saved a whole page: zeroPages x page size. */
  zeroPageBytes: number;
  /** ksm_rmap_items x rmapItemSize; undefined when ksm_stat is unreadable. */
  metadataBytes: number | undefined;
  /** savedBytes + zeroPageBytes - metadataBytes: what this process's share saved the machine. */
  netBytes: number | undefined;
}

export interface ProfitReconciliation {
  /** smaps_rollup `KSM`, bytes (undefined before 6.6 or without smaps_rollup). */
  rollupKsmBytes: number | undefined;
  /** total.mergedBytes - rollupKsmBytes: nonzero only when pages changed between the two reads. */
  rollupDifferenceBytes: number | undefined;
  /** ksm_process_profit, bytes. */
  processProfitBytes: number | undefined;
  /**
   * processProfitBytes - total.netBytes: the 1/k share of each KSM page this
   * process maps that stays in memory, which ksm_process_profit counts as
   * saved (and, summed over processes, counts k times).
   */
  keptCopyBytes: number | undefined;
  /** The same, in words, with this process's figures. */
  explanation: string;
}

export interface ProfitReport {
  pid: number;
  method: ProfitMethod;
  /** Why the estimate was used, when exact was not ruled out by the caller. */
  estimateReason: string | undefined;
  pageSize: number;
  /** Bytes per rmap_item, from ksm_stat when it gives enough to solve for it. */
  rmapItemSize: number;
  rmapItemSizeSource: 'ksm_stat' | 'assumed';
  /** Regions KSM scans (`mg`) or that hold KSM pages: exact ones cut at our buffers, estimated ones whole VMAs. */
  regions: RegionProfit[];
  total: ProfitTotal;
  kernel: Pick<KsmStat, 'rmapItems' | 'zeroPages' | 'mergingPages' | 'processProfit' | 'mergeAny' | 'source'>;
  reconciliation: ProfitReconciliation;
  /**
   * Exact mode: KSM pages counted in pagemap minus those smaps reported for
   * the same VMAs: pages that merged or unmerged between the two reads.
   */
  pagesChanged: number | undefined;
  /** Kernel figures this kernel does not provide (`smaps KSM`, `ksm_stat ...`). */
  missing: string[];
}


/** A piece of a VMA: the VMA itself, or one labelled buffer in it, or a gap between them. */
interface Row {
  vma: SmapsSummary;
  start: bigint;
  end: bigint;
  /** Our labelled ranges inside (estimated rows may hold several). */
  labels: string[];
}

/**
 * Exact rows: the VMA cut at our labelled ranges, so each buffer gets its own
 * row even where the kernel merged adjacent mappings into one VMA.
 */
function splitRows(vma: SmapsSummary, labels: readonly LabelledRange[]): Row[] {
  const rows: Row[] = [];
  let cursor = vma.start;
  for (const range of labels) {
    if (range.start >= vma.end) break;
    if (range.end <= vma.start) continue;
    const start = range.start > vma.start ? range.start : vma.start;
    const end = range.end < vma.end ? range.end : vma.end;
    if (start > cursor) rows.push({ vma, start: cursor, end: start, labels: [] });
    rows.push({ vma, start, end, labels: [range.label] });
    cursor = end;
  }
  if (cursor < vma.end) rows.push({ vma, start: cursor, end: vma.end, labels: [] });
  return rows;
}

/**
 * Estimated rows: smaps only speaks per VMA, so a VMA holding several of our
 * buffers stays one row naming them all, rather than a split that would look
 * precise and be made up.
 */
function wholeRow(vma: SmapsSummary, labels: readonly LabelledRange[]): Row {
  const inside: string[] = [];
  for (const range of labels) {
    if (range.start >= vma.end) break;
    if (range.end > vma.start && !inside.includes(range.label)) inside.push(range.label);
  }
  return { vma, start: vma.start, end: vma.end, labels: inside };
}

/**
 * The fair share of one VMA, from smaps alone.
 *
 * In a private anonymous VMA, a page with mapcount 1 adds its whole size to
 * Pss and to Private_*; a page mapped k > 1 times adds PAGE/k to Pss and
 * PAGE to Shared_*. So over the shared pages:
 *
 *     Shared - (Pss - Private) = sum over shared pages of PAGE x (1 - 1/k)
 *
 * which is exactly the fair share when every shared page is a KSM page (KSM
 * pages mapped once are private and save nothing, as they should). When
 * Shared exceeds KSM, some shared pages are not KSM's (pages still shared
 * with a parent or child after fork()): the sum is scaled by KSM / Shared,
 * i.e. those pages are assumed shared as widely as the KSM ones. The kernel
 * prints Pss in whole kB, so the figure is within 1 KiB per VMA.
 */
export function estimateSaved(vma: Pick<SmapsSummary, 'ksm' | 'pss' | 'sharedClean' | 'sharedDirty' | 'privateClean' | 'privateDirty'>): number {
  const ksm = vma.ksm ?? 0;
  if (ksm <= 0) return 0;
  const shared = (vma.sharedClean ?? 0) + (vma.sharedDirty ?? 0);
  const priv = (vma.privateClean ?? 0) + (vma.privateDirty ?? 0);
  if (shared <= 0 || vma.pss === undefined) return 0;
  const sharedSaving = shared - (vma.pss - priv);
  const scaled = shared > ksm ? (sharedSaving * ksm) / shared : sharedSaving;
  return Math.min(Math.max(scaled, 0), ksm);
}

function permissionError(message: string, hint: string): SystemError {
  const error = new Error(`EPERM: operation not permitted, ${message}`) as SystemError;
  error.code = 'EPERM';
  error.errno = -1;
  error.syscall = 'pread';
  return withHint(error, hint);
}

const EXACT_HINT = 'exact attribution reads page frames from /proc/PID/pagemap and /proc/kpageflags: it needs root (CAP_SYS_ADMIN)';

/**
 * ksm_stat, or what is known without it. A process that dropped root with
 * setuid() is no longer dumpable: its /proc files then belong to root, and
 * ksm_stat (mode 0400) is unreadable even to itself, while smaps (0444) is not.
 */
function readKsmStat(pid: number | undefined, root: string): KsmStat & { unreadable?: string } {
  try {
    return ksmStat(pid, { root });
  } catch (error) {
    if (!isSystemError(error) || (error.code !== 'EACCES' && error.code !== 'EPERM')) throw error;
    return {
      pid: pid ?? process.pid,
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

async function readOptional(file: string, pid: number): Promise<Buffer | undefined> {
  try {
    return await readProcFile(file, pid);
  } catch (error) {
    if (isSystemError(error) && error.code === 'ENOENT') return undefined;
    throw error;
  }
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
  const target = processTarget(pid, opts);
  const { root } = target;

  // smaps and smaps_rollup walk the page tables separately: read them side by side.
  const [{ vmas }, rollup] = await Promise.all([
    readSmapsScan(procPath(root, target.dir, 'smaps'), target.pid),
    readOptional(procPath(root, target.dir, 'smaps_rollup'), target.pid),
  ]);
  const stat = readKsmStat(target.dir === 'self' ? undefined : target.pid, root);
  const state = bindingState();
  const pageSize = state.loaded ? state.binding.pageSize() : 4096;
  const labels = target.self ? liveLabels() : [];
  const missing: string[] = [];
  if (vmas.length > 0 && vmas.every((vma) => vma.ksm === undefined)) missing.push('smaps KSM');
  if (stat.unreadable !== undefined) missing.push(`ksm_stat (${stat.unreadable})`);
  else for (const field of stat.missing) missing.push(`ksm_stat ${field}`);

  let mergedTotal = 0;
  const reported: SmapsSummary[] = [];
  for (const vma of vmas) {
    const ksm = vma.ksm ?? 0;
    mergedTotal += ksm;
    if (ksm > 0 || vma.vmFlags.includes('mg')) reported.push(vma);
  }

  // Exact, estimated, and why.
  let method: ProfitMethod = 'estimated';
  let estimateReason: string | undefined;
  let exact: PageAttribution | undefined;
  let exactRows: Row[] = [];
  let rows: Row[] | undefined;
  const zeroPages = stat.zeroPages ?? 0;
  if (wantExact !== false) {
    const native = state.loaded ? state.binding : undefined;
    const euid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
    if (root !== '/') {
      estimateReason = 'a fixture root has no page frames to read';
    } else if (native === undefined || typeof native.pageAttribution !== 'function') {
      estimateReason = state.loaded ? 'the loaded addon predates pageAttribution: rebuild it' : state.reason;
    } else if (euid !== 0 && wantExact !== true) {
      estimateReason = `${EXACT_HINT}; this process runs as uid ${euid}`;
    } else {
      const split = reported.flatMap((vma) => splitRows(vma, labels));
      exactRows = split.filter((row) => (row.vma.ksm ?? 0) > 0 || (zeroPages > 0 && row.vma.vmFlags.includes('mg')) || row.vma.ksm === undefined);
      try {
        exact = await native.pageAttribution(
          target.pid,
          BigUint64Array.from(exactRows, (row) => row.start),
          BigUint64Array.from(exactRows, (row) => row.end),
          pagemapScanEnabled(),
        );
        if (exact.pfnHidden) {
          exact = undefined;
          throw permissionError(`/proc/${target.pid}/pagemap shows no page frames`, EXACT_HINT);
        }
        method = 'exact';
        rows = split;
      } catch (error) {
        if (wantExact === true) {
          if (isSystemError(error) && (error.code === 'EACCES' || error.code === 'EPERM') && error.hint === undefined) {
            throw withHint(error, EXACT_HINT);
          }
          throw error;
        }
        if (!isSystemError(error) || (error.code !== 'EACCES' && error.code !== 'EPERM')) throw error;
        estimateReason = `${EXACT_HINT} (${error.message})`;
      }
    }
    if (wantExact === true && method !== 'exact') {
      throw permissionError(`exact attribution of process ${target.pid}`, estimateReason ?? EXACT_HINT);
    }
  }

  rows ??= reported.map((vma) => wholeRow(vma, labels));

  // Metadata: the process's rmap_items, spread over mergeable ranges by resident anonymous bytes.
  const item = rmapItemSize(stat, pageSize);
  const metadataTotal = stat.rmapItems === undefined ? undefined : stat.rmapItems * item.size;
  const weightOf = (row: Row): number => {
    if (!row.vma.vmFlags.includes('mg')) return 0;
    const vmaSize = Number(row.vma.end - row.vma.start);
    return ((row.vma.anonymous ?? 0) * Number(row.end - row.start)) / vmaSize;
  };
  const weightTotal = rows.reduce((sum, row) => sum + weightOf(row), 0);

  const exactIndex = new Map<Row, number>();
  exactRows.forEach((row, index) => exactIndex.set(row, index));
  let pagemapKsmPages = 0;
  let smapsKsmPagesRead = 0;
  const vmasRead = new Set<SmapsSummary>();

  const regionRows: RegionProfit[] = rows.map((row) => {
    const size = Number(row.end - row.start);
    const { kind } = regionKind(row.vma);
    let mergedBytes: number;
    let savedBytes: number;
    let zeroPageMappings: number | undefined;
    let sharing: SharingBucket[] | undefined;
    const index = exactIndex.get(row);
    if (exact !== undefined) {
      if (index !== undefined) {
        const pairs = exact.sharing[index]!;
        sharing = [];
        let savedPages = 0;
        for (let i = 0; i + 1 < pairs.length; i += 2) {
          const k = pairs[i]!;
          const pages = pairs[i + 1]!;
          sharing.push({ mappings: k, pages });
          if (k > 1) savedPages += (pages * (k - 1)) / k;
        }
        mergedBytes = exact.ksmPages[index]! * pageSize;
        savedBytes = savedPages * pageSize;
        zeroPageMappings = exact.zeroPages[index]!;
        pagemapKsmPages += exact.ksmPages[index]!;
        if (!vmasRead.has(row.vma)) {
          vmasRead.add(row.vma);
          smapsKsmPagesRead += (row.vma.ksm ?? 0) / pageSize;
        }
      } else {
        // smaps said no KSM pages here and no zero pages anywhere.
        mergedBytes = 0;
        savedBytes = 0;
        zeroPageMappings = 0;
        sharing = [];
      }
    } else {
      mergedBytes = row.vma.ksm ?? 0;
      savedBytes = estimateSaved(row.vma);
    }
    const metadataBytes = metadataTotal === undefined ? undefined : weightTotal > 0 ? (metadataTotal * weightOf(row)) / weightTotal : 0;
    return {
      start: row.start,
      end: row.end,
      size,
      kind,
      pathname: row.vma.pathname,
      label: row.labels.length === 0 ? undefined : row.labels.join(', '),
      labels: row.labels,
      mergeable: row.vma.vmFlags.includes('mg'),
      mergedBytes,
      savedBytes,
      metadataBytes,
      netBytes: metadataBytes === undefined ? undefined : savedBytes - metadataBytes,
      zeroPageMappings,
      sharing,
    };
  });

  const savedTotal = regionRows.reduce((sum, row) => sum + row.savedBytes, 0);
  const zeroPageBytes = zeroPages * pageSize;
  const total: ProfitTotal = {
    mergedBytes: mergedTotal,
    savedBytes: savedTotal,
    zeroPages,
    zeroPageBytes,
    metadataBytes: metadataTotal,
    netBytes: metadataTotal === undefined ? undefined : savedTotal + zeroPageBytes - metadataTotal,
  };

  const rollupKsm = rollup === undefined ? undefined : parseSmaps(rollup.toString('latin1')).vmas[0]?.fields.KSM;
  if (rollup !== undefined && rollupKsm === undefined) missing.push('smaps_rollup KSM');
  const reconciliation = reconcile(total, stat, rollupKsm, pageSize);

  return {
    pid: target.pid,
    method,
    estimateReason: method === 'exact' ? undefined : estimateReason ?? (wantExact === false ? 'options.exact is false' : undefined),
    pageSize,
    rmapItemSize: item.size,
    rmapItemSizeSource: item.source,
    regions: regionRows,
    total,
    kernel: {
      rmapItems: stat.rmapItems,
      zeroPages: stat.zeroPages,
      mergingPages: stat.mergingPages,
      processProfit: stat.processProfit,
      mergeAny: stat.mergeAny,
      source: stat.source,
    },
    reconciliation,
    pagesChanged: exact === undefined ? undefined : Math.abs(pagemapKsmPages - smapsKsmPagesRead),
    missing,
  };
}

function reconcile(total: ProfitTotal, stat: KsmStat & { unreadable?: string }, rollupKsm: number | undefined, pageSize: number): ProfitReconciliation {
  const processProfit = stat.processProfit;
  const keptCopyBytes = processProfit === undefined || total.netBytes === undefined ? undefined : processProfit - total.netBytes;
  const merged = stat.mergingPages === undefined ? total.mergedBytes : stat.mergingPages * pageSize;
  if (stat.unreadable !== undefined) {
    return {
      rollupKsmBytes: rollupKsm,
      rollupDifferenceBytes: rollupKsm === undefined ? undefined : total.mergedBytes - rollupKsm,
      processProfitBytes: undefined,
      keptCopyBytes: undefined,
      explanation:
        `ksm_stat is unreadable (${stat.unreadable}): a process that dropped root with setuid() is not dumpable and its ` +
        '/proc files belong to root. Merged and saved bytes come from smaps; the rmap_item cost and ' +
        'ksm_process_profit are unknown. Each KSM page mapped k times is credited (k-1)/k per mapping: ' +
        `${formatBytes(total.savedBytes)} here.`,
    };
  }
  const parts = [
    `ksm_process_profit (${formatBytes(processProfit)}) credits this process a whole page for each of the ` +
      `${Math.round(merged / pageSize)} pages it maps to a KSM page (${formatBytes(merged)}). ` +
      'A KSM page mapped k times saved k-1 pages among all its mappers, so each mapping is credited (k-1)/k: ' +
      `${formatBytes(total.savedBytes)} here.`,
  ];
  if (keptCopyBytes !== undefined) {
    parts.push(
      `The difference, ${formatBytes(keptCopyBytes)}, is this process's share of the copies that stay in memory; ` +
        'adding ksm_process_profit over processes counts each kept copy once per mapper and overstates the saving. ' +
        'The fair shares (savedBytes) of all processes add up to pages_sharing x page size.',
    );
  }
  if (stat.mergingPages !== undefined && stat.mergingPages * pageSize !== total.mergedBytes) {
    parts.push(
      `ksm_merging_pages (${formatBytes(stat.mergingPages * pageSize)}) counts pages ksmd merged for this process; ` +
        `smaps KSM (${formatBytes(total.mergedBytes)}) counts pages mapped now, including KSM pages inherited ` +
        'through fork() that ksmd has not visited, and excluding pages unmapped since.',
    );
  }
  return {
    rollupKsmBytes: rollupKsm,
    rollupDifferenceBytes: rollupKsm === undefined ? undefined : total.mergedBytes - rollupKsm,
    processProfitBytes: processProfit,
    keptCopyBytes,
    explanation: parts.join(' '),
  };
}

export interface SystemProfit {
  pageSize: number;
  pagesShared: number;
  pagesSharing: number;
  pagesUnshared: number | undefined;
  pagesVolatile: number | undefined;
  ksmZeroPages: number;
  /** The machine's saving from merged pages: pages_sharing x page size. */
  savedBytes: number;
  /** Pages merged into the zero page: ksm_zero_pages x page size. */
  zeroPageBytes: number;
  /** All rmap_items: pages_shared + pages_sharing + pages_unshared + pages_volatile. */
  rmapItems: number | undefined;
  /** What they cost, from general_profit where the kernel has it. */
  metadataBytes: number | undefined;
  /** Bytes per rmap_item solved from general_profit, when it solves. */
  rmapItemSize: number | undefined;
  /** general_profit: savedBytes + zeroPageBytes - metadataBytes, by the kernel. */
  generalProfit: number | undefined;
  /**
   * pages_sharing / pages_shared: mappings per KSM page beyond the first. High
   * is good sharing; max_page_sharing caps it. Undefined with nothing shared.
   */
  sharingRatio: number | undefined;
  /** pages_unshared / pages_sharing: "a high ratio indicates wasted effort" (ksm.rst). */
  unsharedRatio: number | undefined;
  /**
   * pages_volatile / rmapItems: "a high proportion there would also indicate
   * poor use of madvise MADV_MERGEABLE" (ksm.rst).
   */
  volatileShare: number | undefined;
  maxPageSharing: number | undefined;
  /** Counters this kernel does not have. */
  missing: string[];
}

/**
 * The machine's real saving, from /sys/kernel/mm/ksm. Synchronous: a dozen
 * one-line sysfs files.
 *
 * @throws KsmUnsupportedError without CONFIG_KSM.
 */
export function systemProfit(options?: RootOption): SystemProfit {
  const root = checkRoot(checkOptions<RootOption>(options));
  const stat: SystemStat = systemStat({ root });
  const state = bindingState();
  const pageSize = state.loaded ? state.binding.pageSize() : 4096;
  const missing = ['pagesShared', 'pagesSharing', 'pagesUnshared', 'pagesVolatile', 'ksmZeroPages', 'generalProfit']
    .filter((name) => stat[name as keyof SystemStat] === undefined);
  if (stat.pagesShared === undefined || stat.pagesSharing === undefined) {
    throw new KsmUnsupportedError('pages_shared / pages_sharing are unreadable: nothing to account');
  }
  const shared = stat.pagesShared;
  const sharing = stat.pagesSharing;
  const zero = stat.ksmZeroPages ?? 0;
  const rmapItems = stat.pagesUnshared === undefined || stat.pagesVolatile === undefined
    ? undefined
    : shared + sharing + stat.pagesUnshared + stat.pagesVolatile;
  const general = stat.generalProfit;
  const metadataBytes = general === undefined ? undefined : (sharing + zero) * pageSize - general;
  const itemSize = metadataBytes !== undefined && rmapItems !== undefined && rmapItems > 0 ? metadataBytes / rmapItems : undefined;
  return {
    pageSize,
    pagesShared: shared,
    pagesSharing: sharing,
    pagesUnshared: stat.pagesUnshared,
    pagesVolatile: stat.pagesVolatile,
    ksmZeroPages: zero,
    savedBytes: sharing * pageSize,
    zeroPageBytes: zero * pageSize,
    rmapItems,
    metadataBytes,
    // Counters are read one file at a time; a size that does not solve to an integer raced with ksmd.
    rmapItemSize: itemSize !== undefined && Number.isInteger(itemSize) ? itemSize : undefined,
    generalProfit: general,
    sharingRatio: shared > 0 ? sharing / shared : undefined,
    unsharedRatio: stat.pagesUnshared !== undefined && sharing > 0 ? stat.pagesUnshared / sharing : undefined,
    volatileShare: stat.pagesVolatile !== undefined && rmapItems !== undefined && rmapItems > 0 ? stat.pagesVolatile / rmapItems : undefined,
    maxPageSharing: stat.maxPageSharing,
    missing,
  };
}
