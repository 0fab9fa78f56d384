/** The shapes profit() answers with. */
import type { KsmStat } from '../../kernel/ksm-stat.js';
import type { RegionKind } from '../regions.js';
import type { RootOption } from '../../validate.js';

export interface ProfitOptions extends RootOption {
  /**
   * `true`: page by page (needs root; throws without). `false`: estimated
   * from smaps. Default: exact where this process may read frames (root),
   * estimated otherwise, and `estimateReason` says why.
   */
  exact?: boolean;
  /**
   * As regions(): read threads and memory for Node's kinds (default true);
   * false: the report at the cost of its /proc reads, those regions `anonymous`.
   */
  layoutReads?: boolean;
  /**
   * `true`: read smaps_rollup too, for `reconciliation.rollupKsmBytes` (a
   * second walk of the process's page tables, as long as smaps' own when
   * the process is large: 18 against 22 ms for 256 MiB). Default false:
   * `ksm_stat`'s ksm_merging_pages already gives the kernel's count beside
   * smaps `KSM`, in the explanation.
   */
  rollup?: boolean;
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
  /** What the kind was told from (Node's layout kinds, the heap). */
  kindEvidence: string | undefined;
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
  /** smaps_rollup `KSM`, bytes, with `{ rollup: true }` (undefined without it, before 6.6, or without smaps_rollup). */
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

