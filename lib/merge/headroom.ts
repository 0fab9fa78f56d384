/**
 * Unmerging copies every merged page back into a private page: memory use
 * rises by the merged pages of what is unmerged, and the kernel may OOM-kill
 * to find it. The preflight says how much that is and whether the machine
 * (MemAvailable) and this process's cgroup (memory.max - memory.current, at
 * every level) can cover it.
 */
import { KsmInsufficientMemoryError } from '../errors.js';
import { readKsmStatSync, type KsmStat } from '../kernel/ksm-stat.js';
import { cgroupHeadroom, memAvailable } from '../kernel/memory-limits.js';
import { ksmPagesExact } from '../kernel/pagemap.js';
import { overlapping } from '../kernel/smaps.js';
import { readOwnSmapsSync } from '../kernel/smaps-reader.js';
import { selfTarget } from '../kernel/target.js';
import { checkBoolean, checkOptions } from '../validate.js';

export interface UnmergeOptions {
  /** Report what unmerging would take, change nothing (default false). */
  dryRun?: boolean;
  /**
   * Refuse with KsmInsufficientMemoryError (ERR_KSM_INSUFFICIENT_MEMORY),
   * changing nothing, when MemAvailable or the cgroup's headroom cannot
   * cover the pages unmerging allocates (default false).
   */
  requireHeadroom?: boolean;
}

export interface UnmergePreflight {
  /** Bytes unmerging will allocate: one private page per merged page mapped. */
  bytes: number;
  /** The same in pages. */
  pages: number;
  /**
   * Where the count came from: `ksm_stat` (the whole process: merging and
   * zero pages), `pagemap` (page by page, KPF_KSM; needs root), `smaps`
   * (the `KSM:` lines of the VMAs; exact when the range covers them whole).
   */
  source: 'ksm_stat' | 'pagemap' | 'smaps';
  /** False when `smaps` could only bound a range that covers part of a VMA. */
  exact: boolean;
  /** MemAvailable (meminfo) in bytes, where readable. */
  memAvailable: number | undefined;
  /** The least of memory.max - memory.current over this cgroup and its ancestors. */
  cgroupHeadroom: number | undefined;
  /** The cgroup read (`/` for the root), where there is one with memory control. */
  cgroup: string | undefined;
  /** min(memAvailable, cgroupHeadroom) of those known. */
  headroom: number | undefined;
  /** bytes <= headroom; undefined when neither limit could be read. */
  fits: boolean | undefined;
}

export interface UnmergeCheck {
  dryRun: boolean;
  requireHeadroom: boolean;
}

export function checkUnmergeOptions(options: unknown): UnmergeCheck {
  const opts = checkOptions<UnmergeOptions>(options);
  return {
    dryRun: checkBoolean('options.dryRun', opts.dryRun) ?? false,
    requireHeadroom: checkBoolean('options.requireHeadroom', opts.requireHeadroom) ?? false,
  };
}

function limits(bytes: number, count: Omit<UnmergePreflight, 'memAvailable' | 'cgroupHeadroom' | 'cgroup' | 'headroom' | 'fits'>): UnmergePreflight {
  const available = memAvailable();
  const { cgroup, headroom: cgroupFree } = cgroupHeadroom();
  const known = [available, cgroupFree].filter((value): value is number => value !== undefined);
  const headroom = known.length > 0 ? Math.min(...known) : undefined;
  return {
    ...count,
    bytes,
    memAvailable: available,
    cgroupHeadroom: cgroupFree,
    cgroup,
    headroom,
    fits: headroom === undefined ? undefined : bytes <= headroom,
  };
}

/**
 * What disableMerge() would allocate: with merge-any on, PR_SET_MEMORY_MERGE
 * 0 unmerges every mergeable VMA of the process (allocMergeable buffers
 * included): ksm_merging_pages + ksm_zero_pages pages. Nothing when it is off.
 */
export function processPreflight(pageSize: number, mergeAny: boolean): UnmergePreflight {
  if (!mergeAny) return limits(0, { bytes: 0, pages: 0, source: 'ksm_stat', exact: true });
  let stat: KsmStat | undefined;
  try {
    stat = readKsmStatSync(selfTarget());
  } catch {
    stat = undefined; // not readable (a process that dropped root): nothing known to unmerge
  }
  const pages = (stat?.mergingPages ?? 0) + (stat?.zeroPages ?? 0);
  return limits(pages * pageSize, { bytes: pages * pageSize, pages, source: 'ksm_stat', exact: true });
}

/**
 * What MADV_UNMERGEABLE over [start, end) would allocate: the pages of the
 * range backed by KSM pages. Exact page by page where pagemap shows PFNs
 * (root); else from smaps `KSM:`, exact for VMAs inside the range and an
 * upper bound (the overlap, at most the VMA's KSM bytes) for VMAs that
 * straddle its ends.
 */
export function rangePreflight(start: bigint, end: bigint, pageSize: number): UnmergePreflight {
  const exact = ksmPagesExact(start, end, pageSize);
  if (exact !== undefined) {
    return limits(exact * pageSize, { bytes: exact * pageSize, pages: exact, source: 'pagemap', exact: true });
  }
  const { vmas } = readOwnSmapsSync(selfTarget());
  let bytes = 0;
  let whole = true;
  for (const vma of overlapping(vmas, start, end)) {
    const ksm = vma.ksm ?? 0;
    if (vma.start >= start && vma.end <= end) {
      bytes += ksm;
    } else {
      whole = false;
      const overlap = Number((vma.end < end ? vma.end : end) - (vma.start > start ? vma.start : start));
      bytes += Math.min(ksm, overlap);
    }
  }
  const pages = Math.ceil(bytes / pageSize);
  return limits(pages * pageSize, { bytes: pages * pageSize, pages, source: 'smaps', exact: whole });
}

/** Throws KsmInsufficientMemoryError when the preflight says it does not fit. */
export function enforceHeadroom(what: string, preflight: UnmergePreflight): void {
  if (preflight.fits !== false || preflight.headroom === undefined) return;
  const limitedBy =
    preflight.cgroupHeadroom !== undefined && preflight.cgroupHeadroom === preflight.headroom ? 'cgroup' : 'MemAvailable';
  throw new KsmInsufficientMemoryError(what, { bytes: preflight.bytes, headroom: preflight.headroom, limitedBy });
}
