/**
 * regions(): every VMA of a process from /proc/PID/smaps, with what KSM needs
 * to know about it: its kind, whether it is mergeable (`mg`), how much of it
 * is backed by KSM pages, and the label our own buffers were given.
 *
 * Async on purpose: smaps of a large process is megabytes that the kernel
 * builds while walking every page table (tens of milliseconds for 10,000
 * VMAs); a service asking for its own report must not stall its event loop
 * for that. The read runs on libuv's pool; only the scan runs on the caller's
 * thread.
 */
import * as fs from 'node:fs/promises';

import { bindingState } from '../binding.js';
import { liveLabels, type LabelledRange } from '../merge/labels.js';
import { procPath } from '../kernel/paths.js';
import { assertProcRoot, procReadError } from '../kernel/ksm-stat.js';
import { scanSmaps, type SmapsScan, type SmapsSummary } from '../kernel/smaps.js';
import { regionKind, type RegionKind } from '../kernel/vma.js';
import { checkOptions, checkPid, checkRoot, type RootOption } from '../validate.js';

export { regionKind, type RegionKind };

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
 * Reads a /proc file whole, off the event loop. seq_files such as smaps hand
 * out one page per read(2): fs.promises.readFile would make each page a
 * round trip to the libuv pool (2,000 for 10,000 VMAs, doubling the cost on a
 * busy machine), so the addon reads them all in one pool task where it can.
 */
export async function readProcFile(file: string, pid: number): Promise<Buffer> {
  const state = bindingState();
  try {
    if (state.loaded && typeof state.binding.readProcFile === 'function') return await state.binding.readProcFile(file);
    return await fs.readFile(file);
  } catch (error) {
    throw procReadError(error, pid);
  }
}

const SMAPS_ATTEMPTS = 3;

/**
 * /proc/PID/smaps scanned as one consistent picture: VMAs in address order,
 * none overlapping. The kernel prints smaps a page at a time, dropping the
 * mmap lock in between and resuming after the last address it printed: a
 * VMA that grew or merged meanwhile comes out overlapping the one before it
 * (a process that maps and unmaps all the time shows it). Such a torn read
 * is read again; after the last attempt a VMA overlapping its predecessor
 * is left out (it was printed twice, once before and once after the change).
 */
export async function readSmapsScan(file: string, pid: number): Promise<SmapsScan> {
  for (let attempt = 1; ; attempt++) {
    const scan = scanSmaps(await readProcFile(file, pid));
    const vmas: SmapsSummary[] = [];
    for (const vma of scan.vmas) if (vmas.length === 0 || vma.start >= vmas[vmas.length - 1]!.end) vmas.push(vma);
    if (vmas.length === scan.vmas.length) return scan;
    if (attempt >= SMAPS_ATTEMPTS) return { vmas, skippedLines: scan.skippedLines };
  }
}

/** Resolves the pid/options pair every per-process reader takes. */
export function processTarget(pid: unknown, options: unknown): { pid: number; dir: number | 'self'; root: string; self: boolean } {
  const target = checkPid(pid);
  const root = checkRoot(checkOptions<RootOption>(options));
  assertProcRoot(root);
  const self = root === '/' && (target === undefined || target === process.pid);
  return { pid: target ?? process.pid, dir: target ?? 'self', root, self };
}

/**
 * Every VMA of a process (default: this one), from /proc/PID/smaps, in
 * address order. Labels are ours, so they appear for this process only.
 *
 * @throws KsmNoSuchProcessError when the process does not exist.
 * @throws SystemError EACCES for another user's process without root.
 */
export async function regions(pid?: number, options?: RootOption): Promise<RegionsResult> {
  const target = processTarget(pid, options);
  const { vmas, skippedLines } = await readSmapsScan(procPath(target.root, target.dir, 'smaps'), target.pid);
  const labels = target.self ? liveLabels() : [];
  return { pid: target.pid, regions: vmas.map((vma) => toRegion(vma, labels)), skippedLines };
}
