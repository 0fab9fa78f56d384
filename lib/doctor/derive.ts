/**
 * What several rules need, computed once from the facts: the mergeable
 * mappings, whether merge-any is on, resident bytes, the label of each
 * mapping, the prctl and advisor verdicts, this process's tracked-page
 * figures with the rmap_item size they are costed at, and the machine's.
 */
import { procFile } from '../kernel/names.js';
import { rmapItemSize, type RmapItemSize } from '../kernel/rmap.js';
import type { SmapsSummary } from '../kernel/smaps.js';
import type { Facts } from './collect.js';

/** This process's pages as ksmd tracks them (ksm_stat), where the kernel prints rmap_items and merging pages. */
export interface ProcessTracking {
  rmapItems: number;
  mergingPages: number;
  /** ksm_zero_pages, 0 where this kernel does not print it. */
  zeroPages: number;
  /** merging + zero: the pages that map a KSM page or the zero page. */
  mergedPages: number;
  /** rmap_items - merged: tracked pages that have not merged. */
  unmergedPages: number;
  /** rmap_items x rmap_item size. */
  metadataBytes: number;
  /** merged x page size. */
  savedBytes: number;
}

/** What ksmd tracks machine-wide, where all four counters are readable. */
export interface MachineTracking {
  pagesShared: number;
  pagesSharing: number;
  pagesUnshared: number;
  pagesVolatile: number;
  /** The four summed: every page ksmd holds an rmap_item for. */
  tracked: number;
}

export interface Derived {
  /** The target's files, as evidence names them (the process's smaps by its pid). */
  source: { smaps: string; ksmStat: string; status: string };
  /** VMAs with VM_MERGEABLE (`mg`): what ksmd scans. */
  mergeable: SmapsSummary[];
  /** Merge-any (prctl): ksm_stat's word, else whether this process called enableMerge(). */
  mergeAny: boolean;
  /** Merge-any, or at least one mergeable VMA. */
  mergingOn: boolean;
  /** Anonymous bytes over every VMA. */
  anonymousBytes: number;
  /** Resident anonymous bytes in mergeable VMAs (Rss where smaps has no Anonymous line). */
  mergeableResident: number;
  /** Every overlap of a labelled range with a VMA: labels in their order, then VMAs by address. */
  labelled: Array<{ label: string; vma: SmapsSummary }>;
  /** The first label overlapping each labelled VMA. */
  labelOf: ReadonlyMap<SmapsSummary, string>;
  /** PR_SET_MEMORY_MERGE cannot be used: the kernel lacks it, or this process's seccomp/LSM refuses it. */
  prctlRefused: boolean;
  /** The scan-time advisor (6.8+) exists here / is the mode in force. */
  advisor: { present: boolean; on: boolean };
  rmapItem: RmapItemSize;
  tracking: ProcessTracking | undefined;
  machine: MachineTracking | undefined;
}

/** Resident anonymous bytes of a VMA, Rss on kernels whose smaps has no Anonymous line. */
export function residentAnonymous(vma: Pick<SmapsSummary, 'anonymous' | 'rss'>): number {
  return vma.anonymous ?? vma.rss ?? 0;
}

function labelOverlaps(facts: Facts): Derived['labelled'] {
  const out: Derived['labelled'] = [];
  for (const label of facts.labels) {
    for (const vma of facts.vmas) {
      if (vma.start < label.end && vma.end > label.start) out.push({ label: label.label, vma });
    }
  }
  return out;
}

function tracking(facts: Facts, item: RmapItemSize): ProcessTracking | undefined {
  const { rmapItems, mergingPages } = facts.stat;
  if (rmapItems === undefined || mergingPages === undefined) return undefined;
  const zeroPages = facts.stat.zeroPages ?? 0;
  const mergedPages = mergingPages + zeroPages;
  return {
    rmapItems,
    mergingPages,
    zeroPages,
    mergedPages,
    unmergedPages: Math.max(0, rmapItems - mergedPages),
    metadataBytes: rmapItems * item.size,
    savedBytes: mergedPages * facts.pageSize,
  };
}

function machine(facts: Facts): MachineTracking | undefined {
  const { pagesShared, pagesSharing, pagesUnshared, pagesVolatile } = facts.ksm ?? {};
  if (pagesShared === undefined || pagesSharing === undefined || pagesUnshared === undefined || pagesVolatile === undefined) {
    return undefined;
  }
  const tracked = pagesShared + pagesSharing + pagesUnshared + pagesVolatile;
  return { pagesShared, pagesSharing, pagesUnshared, pagesVolatile, tracked };
}

export function derive(facts: Facts): Derived {
  const mergeable = facts.vmas.filter((vma) => vma.vmFlags.includes('mg'));
  const mergeAny = facts.stat.mergeAny ?? facts.enableMergeCalled ?? false;
  const labelled = labelOverlaps(facts);
  const labelOf = new Map<SmapsSummary, string>();
  for (const { label, vma } of labelled) if (!labelOf.has(vma)) labelOf.set(vma, label);
  const rmapItem = rmapItemSize(facts.stat, facts.pageSize);
  return {
    source: {
      smaps: procFile(facts.procName, 'smaps'),
      ksmStat: procFile(facts.procName, 'ksm_stat'),
      status: procFile(facts.procName, 'status'),
    },
    mergeable,
    mergeAny,
    mergingOn: mergeAny || mergeable.length > 0,
    anonymousBytes: facts.vmas.reduce((sum, vma) => sum + (vma.anonymous ?? 0), 0),
    mergeableResident: mergeable.reduce((sum, vma) => sum + residentAnonymous(vma), 0),
    labelled,
    labelOf,
    // The probe runs in this process: its seccomp filter says nothing about another pid's.
    prctlRefused: facts.prctl.state === 'unsupported' || (facts.prctl.state === 'blocked' && facts.self),
    advisor: { present: facts.ksm?.advisorModes?.includes('scan-time') ?? false, on: facts.ksm?.advisorMode === 'scan-time' },
    rmapItem,
    tracking: tracking(facts, rmapItem),
    machine: machine(facts),
  };
}
