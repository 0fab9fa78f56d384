/**
 * What KSM's per-page metadata costs: one `struct ksm_rmap_item` for every
 * page ksmd tracks. Its size is not exported by the kernel, but ksm_stat
 * gives enough to solve for it: mm/ksm.c computes
 * `ksm_process_profit = (ksm_merging_pages + ksm_zero_pages) x PAGE - ksm_rmap_items x sizeof(rmap_item)`.
 */
import type { KsmStat } from './ksm-stat.js';

export interface RmapItemSize {
  /** Bytes per rmap_item. */
  size: number;
  /** `ksm_stat`: solved from this process's figures; `assumed`: the struct's size on this architecture's word size. */
  source: 'ksm_stat' | 'assumed';
}

const ARCH_64 = ['x64', 'arm64', 'ppc64', 's390x', 'riscv64', 'loong64', 'mips64el'];

/** What the rmap_item costs here: solved from ksm_stat where it can be, else 64 B (32 on 32-bit). */
export function rmapItemSize(
  stat: Pick<KsmStat, 'rmapItems' | 'zeroPages' | 'mergingPages' | 'processProfit'>,
  pageSize: number,
): RmapItemSize {
  const { rmapItems, mergingPages, processProfit } = stat;
  if (rmapItems !== undefined && rmapItems > 0 && mergingPages !== undefined && processProfit !== undefined) {
    const size = ((mergingPages + (stat.zeroPages ?? 0)) * pageSize - processProfit) / rmapItems;
    // A figure outside what the struct can be means the counters moved between lines of the file.
    if (Number.isInteger(size) && size >= 16 && size <= 1024) return { size, source: 'ksm_stat' };
  }
  return { size: ARCH_64.includes(process.arch) ? 64 : 32, source: 'assumed' };
}
