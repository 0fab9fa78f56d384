/**
 * regions(): every VMA of a process from its smaps, with what KSM needs
 * to know about it: its kind, whether it is mergeable (`mg`), how much of it
 * is backed by KSM pages, and the label our own buffers were given.
 *
 * Async on purpose: smaps of a large process is megabytes that the kernel
 * builds while walking every page table (tens of milliseconds for 10,000
 * VMAs); a service asking for its own report must not stall its event loop
 * for that. The read runs off the event loop (lib/kernel/smaps-reader.ts);
 * only the scan runs on the caller's thread.
 */
import type { SmapsSummary } from '../kernel/smaps.js';
import { readSmaps } from '../kernel/smaps-reader.js';
import { resolveTarget } from '../kernel/target.js';
import { liveLabels, type LabelledRange } from '../merge/labels.js';
import type { RootOption } from '../validate.js';

/**
 * What a VMA is, as far as /proc tells:
 * - `heap`, `stack`, `vdso`, `vvar`, `vsyscall`: the kernel's named areas,
 * - `file`: a file mapping (shared libraries, mmapped files),
 * - `shared-memory`: shmem, SysV, memfd and /dev/zero shared mappings (never mergeable),
 * - `named-anonymous`: anonymous memory named with PR_SET_VMA_ANON_NAME (`[anon:name]`),
 * - `jit-code`: anonymous executable memory; in Node that is V8's code space
 *   (JIT and wasm code), since only a JIT maps anonymous memory executable,
 * - `reserved`: anonymous address space with no access (`---p`): guard pages
 *   and reservations (V8's code range, malloc arenas); never resident,
 * - `anonymous`: every other anonymous mapping. V8's heap lives here, in
 *   256 KiB chunks that nothing in /proc names: it cannot be told from other
 *   anonymous memory reliably, so it is not guessed at.
 * - `special`: other `[...]` areas (`[uprobes]`, ...).
 */
export type RegionKind =
  | 'heap'
  | 'stack'
  | 'vdso'
  | 'vvar'
  | 'vsyscall'
  | 'file'
  | 'shared-memory'
  | 'named-anonymous'
  | 'jit-code'
  | 'reserved'
  | 'anonymous'
  | 'special';

/** A labelled range of ours inside a region, clipped to the region. */
export interface RegionLabel {
  label: string;
  start: bigint;
  end: bigint;
}

export interface Region {
  start: bigint;
  end: bigint;
  /** end - start, in bytes. */
  size: number;
  /** e.g. `rw-p`: the last letter is `p` (private) or `s` (shared). */
  perms: string;
  offset: bigint;
  dev: string;
  inode: number;
  /** As the kernel printed it: a path, `[heap]`, `[anon:name]`, or '' for anonymous memory. */
  pathname: string;
  kind: RegionKind;
  /** The name of a `[anon:name]` or `[anon_shmem:name]` region. */
  anonName: string | undefined;
  /** smaps figures in bytes; undefined where this kernel printed no such line. */
  rss: number | undefined;
  pss: number | undefined;
  anonymous: number | undefined;
  anonHugePages: number | undefined;
  /** Bytes backed by KSM pages (smaps `KSM:`, Linux 6.6+; undefined before). */
  ksm: number | undefined;
  swap: number | undefined;
  sharedClean: number | undefined;
  sharedDirty: number | undefined;
  privateClean: number | undefined;
  privateDirty: number | undefined;
  vmFlags: string[];
  /** VM_MERGEABLE (`mg`): KSM scans this region. */
  mergeable: boolean;
  /**
   * The label given to allocMergeable / markMergeable, when this region is
   * ours (this process only). The kernel merges adjacent mappings with equal
   * flags into one VMA, so one region can hold several labelled buffers: then
   * this lists their labels, comma-separated, and `labels` has their ranges.
   */
  label: string | undefined;
  labels: RegionLabel[];
}

export interface RegionsResult {
  pid: number;
  regions: Region[];
  /** smaps lines that matched no known shape (0 for the kernel's own output). */
  skippedLines: number;
}

const NAMED: Record<string, RegionKind> = {
  '[heap]': 'heap',
  '[stack]': 'stack',
  '[vdso]': 'vdso',
  '[vvar]': 'vvar',
  '[vvar_vclock]': 'vvar',
  '[vsyscall]': 'vsyscall',
};

export function regionKind(vma: Pick<SmapsSummary, 'pathname' | 'perms' | 'inode'>): { kind: RegionKind; anonName: string | undefined } {
  const path = vma.pathname;
  if (path === '') {
    if (vma.perms.startsWith('---')) return { kind: 'reserved', anonName: undefined };
    if (vma.perms[2] === 'x') return { kind: 'jit-code', anonName: undefined };
    return { kind: 'anonymous', anonName: undefined };
  }
  const named = NAMED[path];
  if (named !== undefined) return { kind: named, anonName: undefined };
  if (path.startsWith('[stack:')) return { kind: 'stack', anonName: undefined };
  if (path.startsWith('[anon:') && path.endsWith(']')) return { kind: 'named-anonymous', anonName: path.slice(6, -1) };
  if (path.startsWith('[anon_shmem:') && path.endsWith(']')) return { kind: 'shared-memory', anonName: path.slice(12, -1) };
  if (path.startsWith('[')) return { kind: 'special', anonName: undefined };
  if (path.startsWith('/SYSV') || path.startsWith('/memfd:') || path.startsWith('/dev/zero') ||
    path.startsWith('/dev/shm/') || (vma.perms.endsWith('s') && vma.inode !== 0 && path.startsWith('/dev/'))) {
    return { kind: 'shared-memory', anonName: undefined };
  }
  return { kind: 'file', anonName: undefined };
}

/** Labelled ranges overlapping [start, end), clipped; `labels` sorted by start. */
export function labelsWithin(labels: readonly LabelledRange[], start: bigint, end: bigint): RegionLabel[] {
  const out: RegionLabel[] = [];
  for (const range of labels) {
    if (range.start >= end) break;
    if (range.end <= start) continue;
    out.push({
      label: range.label,
      start: range.start > start ? range.start : start,
      end: range.end < end ? range.end : end,
    });
  }
  return out;
}

export function toRegion(vma: SmapsSummary, labels: readonly LabelledRange[]): Region {
  const { kind, anonName } = regionKind(vma);
  const inside = labels.length > 0 ? labelsWithin(labels, vma.start, vma.end) : [];
  return {
    start: vma.start,
    end: vma.end,
    size: Number(vma.end - vma.start),
    perms: vma.perms,
    offset: vma.offset,
    dev: vma.dev,
    inode: vma.inode,
    pathname: vma.pathname,
    kind,
    anonName,
    rss: vma.rss,
    pss: vma.pss,
    anonymous: vma.anonymous,
    anonHugePages: vma.anonHugePages,
    ksm: vma.ksm,
    swap: vma.swap,
    sharedClean: vma.sharedClean,
    sharedDirty: vma.sharedDirty,
    privateClean: vma.privateClean,
    privateDirty: vma.privateDirty,
    vmFlags: vma.vmFlags,
    mergeable: vma.vmFlags.includes('mg'),
    label: inside.length === 0 ? undefined : [...new Set(inside.map((l) => l.label))].join(', '),
    labels: inside,
  };
}

/**
 * Every VMA of a process (default: this one), from its smaps, in
 * address order. Labels are ours, so they appear for this process only.
 *
 * @throws KsmNoSuchProcessError when the process does not exist.
 * @throws SystemError EACCES for another user's process without root.
 */
export async function regions(pid?: number, options?: RootOption): Promise<RegionsResult> {
  const target = resolveTarget(pid, options);
  const { vmas, skippedLines } = await readSmaps(target);
  const labels = target.self ? liveLabels() : [];
  return { pid: target.pid, regions: vmas.map((vma) => toRegion(vma, labels)), skippedLines };
}
