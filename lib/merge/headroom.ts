/**
 * Unmerging copies every merged page back into a private page: memory use
 * rises by the merged pages of what is unmerged, and the kernel may OOM-kill
 * to find it. The preflight says how much that is and whether the machine
 * (MemAvailable) and this process's cgroup (memory.max - memory.current, at
 * every level) can cover it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { KsmInsufficientMemoryError } from '../errors.js';
import { parseKsmStat } from '../kernel/ksm-stat.js';
import { parseSmaps } from '../kernel/smaps.js';
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
  /** /proc/meminfo MemAvailable in bytes, where readable. */
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

function readOptional(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** MemAvailable from /proc/meminfo, in bytes. */
export function memAvailable(root = '/'): number | undefined {
  const text = readOptional(path.join(root, 'proc', 'meminfo'));
  const match = text === undefined ? null : /^MemAvailable:\s+(\d+) kB$/m.exec(text);
  if (!match) return undefined;
  const kib = Number(match[1]);
  return Number.isSafeInteger(kib * 1024) ? kib * 1024 : undefined;
}

function readBytes(file: string): number | 'max' | undefined {
  const text = readOptional(file)?.trim();
  if (text === undefined) return undefined;
  if (text === 'max') return 'max';
  if (!/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * Headroom of the memory cgroup of this process: cgroup v2 (`0::/path`,
 * memory.max / memory.current) or v1 (`N:memory:/path`,
 * memory.limit_in_bytes / memory.usage_in_bytes), the least over the cgroup
 * and its ancestors, since any of their limits can trigger the OOM killer.
 */
export function cgroupHeadroom(root = '/'): { cgroup: string | undefined; headroom: number | undefined } {
  const text = readOptional(path.join(root, 'proc', 'self', 'cgroup'));
  if (text === undefined) return { cgroup: undefined, headroom: undefined };
  let dir: string | undefined;
  let cgroup: string | undefined;
  let files: [string, string] | undefined;
  for (const line of text.split('\n')) {
    const [, , controllers, where] = /^(\d+):([^:]*):(.*)$/.exec(line) ?? [];
    if (where === undefined || controllers === undefined) continue;
    if (controllers.split(',').includes('memory')) {
      cgroup = where;
      dir = path.join(root, 'sys', 'fs', 'cgroup', 'memory');
      files = ['memory.limit_in_bytes', 'memory.usage_in_bytes'];
      break;
    }
    if (controllers === '' && line.startsWith('0::')) {
      cgroup = where;
      dir = path.join(root, 'sys', 'fs', 'cgroup');
      files = ['memory.max', 'memory.current'];
    }
  }
  if (dir === undefined || cgroup === undefined || files === undefined) return { cgroup: undefined, headroom: undefined };
  let headroom: number | undefined;
  // From the cgroup up to the root of the mount; the root has no limit files.
  const parts = cgroup.split('/').filter(Boolean);
  for (let depth = parts.length; depth >= 0; depth--) {
    const level = path.join(dir, ...parts.slice(0, depth));
    const max = readBytes(path.join(level, files[0]));
    const current = readBytes(path.join(level, files[1]));
    if (typeof max !== 'number' || typeof current !== 'number') continue;
    // v1 spells "no limit" as a huge page-aligned number.
    if (max >= 2 ** 62) continue;
    const free = Math.max(0, max - current);
    headroom = headroom === undefined ? free : Math.min(headroom, free);
  }
  return { cgroup, headroom };
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
  const text = readOptional('/proc/self/ksm_stat');
  const { values } = parseKsmStat(text ?? '');
  let merging = typeof values.mergingPages === 'number' ? values.mergingPages : undefined;
  if (merging === undefined) {
    const raw = readOptional('/proc/self/ksm_merging_pages')?.trim();
    merging = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : 0;
  }
  const zero = typeof values.zeroPages === 'number' ? values.zeroPages : 0;
  const pages = merging + zero;
  return limits(pages * pageSize, { bytes: pages * pageSize, pages, source: 'ksm_stat', exact: true });
}

const KPF_KSM = 21n;

/** Pages in [start, end) backed by a KSM page, from pagemap + kpageflags; undefined without root. */
function ksmPagesExact(start: bigint, end: bigint, pageSize: number): number | undefined {
  const page = BigInt(pageSize);
  const count = Number((end - start) / page);
  if (count === 0) return 0;
  let pagemap: number | undefined;
  let kpageflags: number | undefined;
  try {
    pagemap = fs.openSync('/proc/self/pagemap', 'r');
    kpageflags = fs.openSync('/proc/kpageflags', 'r');
    const entries = Buffer.alloc(count * 8);
    const read = fs.readSync(pagemap, entries, 0, entries.length, Number((start / page) * 8n));
    if (read !== entries.length) return undefined;
    const flags = Buffer.alloc(8);
    let ksm = 0;
    let sawPfn = false;
    for (let i = 0; i < count; i++) {
      const entry = entries.readBigUInt64LE(i * 8);
      if ((entry >> 63n) === 0n) continue; // not present
      const pfn = entry & ((1n << 55n) - 1n);
      if (pfn === 0n) continue; // PFNs hidden (no CAP_SYS_ADMIN)
      sawPfn = true;
      if (fs.readSync(kpageflags, flags, 0, 8, Number(pfn * 8n)) !== 8) return undefined;
      if ((flags.readBigUInt64LE(0) >> KPF_KSM) & 1n) ksm++;
    }
    // Present pages with no PFN at all: we may not see PFNs, so no answer.
    return sawPfn || entries.every((byte) => byte === 0) ? ksm : undefined;
  } catch {
    return undefined;
  } finally {
    if (pagemap !== undefined) fs.closeSync(pagemap);
    if (kpageflags !== undefined) fs.closeSync(kpageflags);
  }
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
  const { vmas } = parseSmaps(readOptional('/proc/self/smaps') ?? '');
  let bytes = 0;
  let whole = true;
  for (const vma of vmas) {
    if (!(vma.start < end && vma.end > start)) continue;
    const ksm = vma.fields.KSM ?? 0;
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
