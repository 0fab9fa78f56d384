/**
 * The accounting: a KSM page mapped k times saves k-1 pages, so each of its
 * k mappings is credited (k-1)/k of a page. Exact rows count it page by page
 * from what pagemap and kpagecount said; estimated rows solve it from smaps.
 * The process's rmap_item cost is spread over its mergeable rows.
 */
import type { PageAttribution } from '../../binding.js';
import type { KsmStat } from '../../kernel/ksm-stat.js';
import { sizeOf, type SmapsSummary } from '../../kernel/smaps.js';
import type { Row } from './rows.js';
import type { SharingBucket } from './types.js';

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

/** A row's KSM figures, exact or estimated. */
export interface RowFigures {
  mergedBytes: number;
  savedBytes: number;
  zeroPageMappings: number | undefined;
  sharing: SharingBucket[] | undefined;
}

/** A row's figures from attribution range `index`, or none when smaps showed it holds no KSM page. */
export function exactFigures(exact: PageAttribution, index: number | undefined, pageSize: number): RowFigures {
  // smaps said no KSM pages here and no zero pages anywhere.
  if (index === undefined) return { mergedBytes: 0, savedBytes: 0, zeroPageMappings: 0, sharing: [] };
  const pairs = exact.sharing[index]!;
  const sharing: SharingBucket[] = [];
  let savedPages = 0;
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const k = pairs[i]!;
    const pages = pairs[i + 1]!;
    sharing.push({ mappings: k, pages });
    if (k > 1) savedPages += (pages * (k - 1)) / k;
  }
  return {
    mergedBytes: exact.ksmPages[index]! * pageSize,
    savedBytes: savedPages * pageSize,
    zeroPageMappings: exact.zeroPages[index]!,
    sharing,
  };
}

export function estimatedFigures(vma: SmapsSummary): RowFigures {
  return { mergedBytes: vma.ksm ?? 0, savedBytes: estimateSaved(vma), zeroPageMappings: undefined, sharing: undefined };
}

/**
 * The process's rmap_item cost (the kernel counts rmap_items per process
 * only), spread over its mergeable rows by resident anonymous bytes: each
 * row's share, in the order of `rows`. `mergeable[r]`: whether row r's VMA
 * is mergeable (VmFlags mg).
 */
export function metadataShares(rows: readonly Row[], metadataTotal: number | undefined, mergeable: readonly boolean[]): Array<number | undefined> {
  const weights = rows.map((row, r) => {
    if (!mergeable[r]) return 0;
    const anonymous = row.vma.anonymous ?? 0;
    // A whole VMA's row (every estimated one) weighs its anonymous bytes: no sizes to work out.
    return row.start === row.vma.start && row.end === row.vma.end ? anonymous : (anonymous * sizeOf(row)) / sizeOf(row.vma);
  });
  const weightTotal = weights.reduce((sum, weight) => sum + weight, 0);
  return weights.map((weight) => (metadataTotal === undefined ? undefined : weightTotal > 0 ? (metadataTotal * weight) / weightTotal : 0));
}

/**
 * Exact mode: KSM pages pagemap counted minus those smaps reported for the
 * same VMAs (each VMA once): pages that merged or unmerged between the reads.
 */
export function pagesChanged(rows: readonly Row[], exactIndex: ReadonlyMap<Row, number>, exact: PageAttribution, pageSize: number): number {
  let pagemapKsmPages = 0;
  let smapsKsmPages = 0;
  const vmasRead = new Set<SmapsSummary>();
  for (const row of rows) {
    const index = exactIndex.get(row);
    if (index === undefined) continue;
    pagemapKsmPages += exact.ksmPages[index]!;
    if (vmasRead.has(row.vma)) continue;
    vmasRead.add(row.vma);
    smapsKsmPages += (row.vma.ksm ?? 0) / pageSize;
  }
  return Math.abs(pagemapKsmPages - smapsKsmPages);
}

/** KsmStat of a process whose ksm_stat could not be read, with why. */
export type ProfitKsmStat = KsmStat & { unreadable?: string };
