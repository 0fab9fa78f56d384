/**
 * regions(): every VMA of a process from its smaps, with what KSM needs
 * to know about it: its kind, whether it is mergeable (`mg`), how much of it
 * is backed by KSM pages, and the label our own buffers were given.
 *
 * Async on purpose: smaps of a large process is megabytes that the kernel
 * builds while walking every page table (tens of milliseconds for 10,000
 * VMAs); a service asking for its own report must not stall its event loop
 * for that. The read and its scan run on the addon's reader threads
 * (lib/kernel/smaps-reader.ts, native/procread.cc); the caller's thread only
 * builds a row per VMA from the scan's columns and tells their kinds.
 */
import { pageSizeOf, type NativeSmapsScan } from '../binding.js';
import { scan, sizeOf, type SmapsSummary } from '../kernel/smaps.js';
import { HIGH, LOW, NATIVE_COLUMN, NATIVE_COLUMNS, nativeStrings, scanInOrder, smallInteger } from '../kernel/smaps-native.js';
import { readSmapsInto } from '../kernel/smaps-reader.js';
import { resolveTargetEarly, startedAsResolved, type ProcessTarget } from '../kernel/target.js';
import type { LabelledRange } from '../merge/labels.js';
import { labelsOf } from '../merge/published.js';
import { classifyVmas, factKinds, regionKind, type Classified, type LayoutKind, type RegionKind as VmaKind } from '../kernel/vma.js';
import { checkBoolean, checkOptions, type RootOption } from '../validate.js';
import { layoutScanReads, readLayoutFacts, readMallocChunksEarly, readStackPointersEarly, stackPointersOfScan, type EarlyChunks } from '../kernel/vma-evidence.js';

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

const C = NATIVE_COLUMN;
/** An addon figure column's value, undefined where the kernel printed no such line (-1). */
const figure = (figures: Float64Array, at: number): number | undefined => {
  const x = figures[at]!;
  return x >= 0 ? smallInteger(x) : undefined;
};

/**
 * Regions straight from the addon's scan of smaps, as toRegion() makes them
 * of the VMAs fromNativeScan() would: one object per VMA rather than two (at
 * 10,000 VMAs the second was most of the garbage a report made). The kind
 * is set after, from the layout of them all (classifyVmas); no labels yet.
 */
export function regionsOfNativeScan(native: NativeSmapsScan): { vmas: Region[]; skippedLines: number; inOrder: boolean } {
  const { addresses, figures } = native;
  const strings = nativeStrings(native);
  // Each address's 32-bit halves: sizes and zero offsets with no BigInt read or made (the order: scanInOrder()).
  const halves = new Uint32Array(addresses.buffer, addresses.byteOffset, 2 * addresses.length);
  const mergeable: boolean[] = [];
  const count = addresses.length / 3;
  const out = new Array<Region>(count);
  for (let v = 0, f = 0; v < count; v++, f += NATIVE_COLUMNS) {
    const start = addresses[3 * v]!;
    const end = addresses[3 * v + 1]!;
    const flags = figures[f + C.vmFlags]!;
    const startHigh = halves[6 * v + HIGH]!;
    const startLow = halves[6 * v + LOW]!;
    const endHigh = halves[6 * v + 2 + HIGH]!;
    const endLow = halves[6 * v + 2 + LOW]!;
    // end - start, exact below 2^53 bytes; sizeOf() where the high halves go back or differ by more.
    const spanHigh = endHigh - startHigh;
    out[v] = {
      start,
      end,
      size: spanHigh >= 0 && spanHigh < 2 ** 21 ? smallInteger(spanHigh * 2 ** 32 + (endLow - startLow)) : smallInteger(sizeOf({ start, end })),
      perms: strings.latin1(figures[f + C.perms]!),
      offset: halves[6 * v + 4] === 0 && halves[6 * v + 5] === 0 ? 0n : addresses[3 * v + 2]!,
      dev: strings.latin1(figures[f + C.dev]!),
      inode: smallInteger(figures[f + C.inode]!),
      pathname: strings.path(figures[f + C.pathname]!),
      kind: 'anonymous',
      kindEvidence: undefined,
      anonName: undefined,
      rss: figure(figures, f + C.rss),
      pss: figure(figures, f + C.pss),
      anonymous: figure(figures, f + C.anonymous),
      anonHugePages: figure(figures, f + C.anonHugePages),
      ksm: figure(figures, f + C.ksm),
      swap: figure(figures, f + C.swap),
      sharedClean: figure(figures, f + C.sharedClean),
      sharedDirty: figure(figures, f + C.sharedDirty),
      privateClean: figure(figures, f + C.privateClean),
      privateDirty: figure(figures, f + C.privateDirty),
      vmFlags: flags >= 0 ? strings.flags(flags).slice() : [],
      mergeable: flags >= 0 && (mergeable[flags] ??= strings.flags(flags).includes('mg')),
      label: undefined,
      labels: [],
    };
  }
  return { vmas: out, skippedLines: 0, inOrder: scanInOrder(native) };
}

/** Regions of what the reader delivered: the addon's scan, or the bytes scanned here. */
function regionsOfRead(read: Buffer | NativeSmapsScan): { vmas: Region[]; skippedLines: number; inOrder?: boolean } {
  if (!Buffer.isBuffer(read)) return regionsOfNativeScan(read);
  const { vmas, skippedLines } = scan(read, false);
  return { vmas: vmas.map((vma) => toRegion(vma, [])), skippedLines };
}

function setKind(region: Region, classified: Classified): void {
  if (classified.kind === region.kind && classified.evidence === region.kindEvidence && classified.anonName === region.anonName) return;
  region.kind = classified.kind;
  region.kindEvidence = classified.evidence;
  region.anonName = classified.anonName;
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
  const { early: started, resolve } = resolveTargetEarly(pid, opts);
  return regionsOf(started, layoutReads, resolve);
}

/**
 * regions() of `started`; with `resolve`, `started` is resolveTargetEarly()'s
 * early target: the smaps read starts before the target is resolved, and
 * starts again for the resolved one where it is not what was read.
 */
async function regionsOf(started: ProcessTarget, layoutReads: boolean, resolve?: () => ProcessTarget): Promise<RegionsResult> {
  let target = started;
  // Set where the reads are started again for the resolved target: the first ones' results are let go.
  let superseded = false;
  let early: EarlyChunks | undefined;
  let scanned: Map<number, bigint> | undefined;
  // The candidates' chunk headers and the threads' stack pointers are read beside the scan, on the reader threads.
  const reads = layoutReads ? layoutScanReads(started, 'candidates') : undefined;
  const reading = readSmapsInto(started, (read) => {
    const made = regionsOfRead(read);
    // Not for a read started again for the resolved target (its own callback does that).
    if (reads !== undefined && !Buffer.isBuffer(read) && !superseded) {
      early = readMallocChunksEarly(target, read, made.vmas, pageSizeOf());
      scanned = stackPointersOfScan(read);
    }
    return made;
  }, undefined, reads);
  reading.catch(() => {}); // awaited below; a throw meanwhile is not unhandled
  if (resolve !== undefined) {
    // Status read while the reader thread reads smaps; the scan's callback above runs after.
    target = resolve();
    if (!startedAsResolved(started, target)) {
      superseded = true;
      return regionsOf(target, layoutReads);
    }
  }
  // The labels' small synchronous reads (and the stack pointers' where the scan does not bring them) while the reader thread reads smaps.
  const labels = labelsOf(target);
  const stackPointers = layoutReads ? readStackPointersEarly(target, reads) : undefined;
  const { vmas: out, skippedLines } = await reading;
  // The layout's reads (chunk headers, on the reader thread since the scan
  // came) go on while the kinds the layout alone tells are set; the ones
  // they tell come after.
  const facts = layoutReads ? readLayoutFacts(target, out, pageSizeOf(), undefined, scanned ?? stackPointers, early) : undefined;
  facts?.catch(() => {}); // awaited below
  const plain = classifyVmas(out);
  for (let i = 0; i < out.length; i++) {
    const region = out[i]!;
    setKind(region, plain[i]!);
    if (labels.length === 0) continue;
    const inside = labelsWithin(labels, region.start, region.end);
    if (inside.length === 0) continue;
    region.labels = inside;
    region.label = [...new Set(inside.map((l) => l.label))].join(', ');
  }
  if (facts !== undefined) for (const [i, classified] of factKinds(out, plain, await facts)) setKind(out[i]!, classified);
  return { pid: target.pid, regions: out, skippedLines };
}
