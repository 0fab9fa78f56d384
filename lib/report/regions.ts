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
import { sizeOf, type SmapsSummary } from '../kernel/smaps.js';
import { readSmaps } from '../kernel/smaps-reader.js';
import { resolveTarget } from '../kernel/target.js';
import type { LabelledRange } from '../merge/labels.js';
import { labelsOf } from '../merge/published.js';
import { regionKind, type Classified, type LayoutKind, type RegionKind as VmaKind } from '../kernel/vma.js';
import { checkBoolean, checkOptions, type RootOption } from '../validate.js';
import { classifiedInOrder } from './kinds.js';

export { regionKind };

/**
 * What a region is: the kernel's own areas and file mappings as smaps names
 * them (kernel/vma.ts RegionKind), and in a Node process the kinds its
 * layout tells apart (LayoutKind: `wasm-memory`, `v8-code-range`,
 * `thread-stack`, `malloc-arena`, `malloc-chunk`), each with its evidence.
 * Anything that cannot be told reliably stays `anonymous`.
 */
export type RegionKind = VmaKind | LayoutKind;

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
  /** What the kind was told from, with the figures (layout kinds and the heap); undefined where smaps alone says it. */
  kindEvidence: string | undefined;
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

export interface RegionsOptions extends RootOption {
  /**
   * Read the process's threads and memory to tell Node's kinds apart that
   * its layout alone cannot (`thread-stack` from each thread's stack
   * pointer, `malloc-chunk` from glibc's chunk headers). Default
   * true. false: smaps only, at the cost of the smaps read; those regions
   * then say `anonymous` (what the exporter does for every process).
   */
  layoutReads?: boolean;
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

export function toRegion(vma: SmapsSummary, labels: readonly LabelledRange[], classified?: Classified): Region {
  const { kind, anonName, evidence } = classified ?? { ...regionKind(vma), evidence: undefined };
  const inside = labels.length > 0 ? labelsWithin(labels, vma.start, vma.end) : [];
  return {
    start: vma.start,
    end: vma.end,
    size: sizeOf(vma),
    perms: vma.perms,
    offset: vma.offset,
    dev: vma.dev,
    inode: vma.inode,
    pathname: vma.pathname,
    kind,
    kindEvidence: evidence,
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
 * address order, each with its kind. Labels are this process's own, or
 * another's where it publishes them (publishLabels(), node-ksm/register).
 *
 * @throws KsmNoSuchProcessError when the process does not exist.
 * @throws SystemError EACCES for another user's process without root.
 */
export async function regions(pid?: number, options?: RegionsOptions): Promise<RegionsResult> {
  const opts = checkOptions<RegionsOptions>(options);
  const layoutReads = checkBoolean('options.layoutReads', opts.layoutReads) ?? true;
  const target = resolveTarget(pid, opts);
  const reading = readSmaps(target);
  reading.catch(() => {}); // awaited below; a throw meanwhile is not unhandled
  // The labels' small synchronous reads while the reader thread reads smaps.
  const labels = labelsOf(target);
  const { vmas, skippedLines } = await reading;
  const kinds = await classifiedInOrder(target, vmas, undefined, layoutReads);
  return { pid: target.pid, regions: vmas.map((vma, i) => toRegion(vma, labels, kinds[i])), skippedLines };
}
