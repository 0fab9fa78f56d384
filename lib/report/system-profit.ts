/**
 * The machine's real saving, from the KSM sysfs counters: what pages_sharing and
 * general_profit say, with the ratios ksm.rst tells operators to watch.
 */
import { pageSizeOf } from '../binding.js';
import { KsmUnsupportedError } from '../errors.js';
import { systemStat, type SystemStat } from '../kernel/sysfs.js';
import { checkOptions, checkRoot, type RootOption } from '../validate.js';

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
 * The machine's real saving, from the KSM sysfs counters. Synchronous: a dozen
 * one-line sysfs files.
 *
 * @throws KsmUnsupportedError without CONFIG_KSM.
 */
export function systemProfit(options?: RootOption): SystemProfit {
  const root = checkRoot(checkOptions<RootOption>(options));
  const stat: SystemStat = systemStat({ root });
  const pageSize = pageSizeOf();
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
