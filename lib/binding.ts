/**
 * The only place that loads the native addon. The typed interface below is
 * private to the package: nothing here is re-exported from the root.
 */
import * as path from 'node:path';
import nodeGypBuild from 'node-gyp-build';

import { KsmUnsupportedError } from './errors.js';

export interface NativeRange {
  /** First byte covered. */
  address: bigint;
  /** Bytes covered. */
  length: number;
}

export type View = ArrayBuffer | ArrayBufferView;

export interface AdviceConstants {
  MADV_MERGEABLE: number;
  MADV_UNMERGEABLE: number;
  MADV_HUGEPAGE: number;
  MADV_NOHUGEPAGE: number;
}

/** One process for estimatePages: VMAs as [start, end) pairs, sorted. */
export interface NativeEstimateTarget {
  pid: number;
  ranges: BigUint64Array;
  /** Per range: 1 to read its pages, 0 to only count the present ones. */
  readable: Uint8Array;
  /** Pages its pagemap pass will likely find (to size its list once). */
  expectedPages?: number;
}

/**
 * The per-range figures of estimatePages, in the order of each range's slice
 * of `stats`. native/page-stats.h holds the same list; the addon exports its
 * copy as pageStatFields, and the binding refuses an addon whose list differs.
 */
export const PAGE_STAT_FIELDS = [
  'presentPages',
  'swappedPages',
  'filePages',
  'zeroPageMapped',
  'candidatePages',
  'unreadablePages',
  'zeroPages',
  'volatilePages',
  'duplicatePages',
  'twinInVma',
  'twinInProcess',
  'twinInOtherProcess',
  'savedPages',
] as const;

export type PageStatField = (typeof PAGE_STAT_FIELDS)[number];

/** Where each figure sits in a range's slice of `stats`. */
export const PAGE_STAT: { readonly [F in PageStatField]: number } = Object.freeze(
  Object.fromEntries(PAGE_STAT_FIELDS.map((name, i) => [name, i])) as Record<PageStatField, number>,
);

/** Figures per range in `stats`. */
export const PAGE_STAT_COUNT = PAGE_STAT_FIELDS.length;

/**
 * smaps as the addon's reader thread scanned it: per VMA start, end, offset
 * in `addresses`, smapsScanFields' columns in `figures` (-1 where the kernel
 * printed no such line); strings as indexes of [from, to) pairs in `spans`
 * over `text`.
 */
export interface NativeSmapsScan {
  addresses: BigUint64Array;
  figures: Float64Array;
  text: Buffer;
  spans: Uint32Array;
  /**
   * Asked for (readProcFile's `chunks`) and every read made: the VMAs
   * (indexes) whose first malloc chunk header was read beside the scan, in
   * order, and those headers, 16 bytes each (native/header-read.h).
   */
  chunkCandidates?: Uint32Array;
  chunkHeaders?: Buffer;
  /**
   * With chunkCandidates: per candidate, how many glibc mapped chunks tile
   * it exactly, walked on from the first header as
   * lib/kernel/malloc-chunks.ts walks them (0: they do not, or the walk was
   * not made to its end). Absent from an addon that does not walk.
   */
  chunkTiles?: Uint32Array;
  /**
   * Asked for (readProcFile's `stackPointers`): the stack pointer of each
   * thread blocked in the kernel, as (tid, sp) pairs, read from each
   * thread's syscall file beside the scan (native/stack-pointers.h).
   */
  threadStackPointers?: BigUint64Array;
  /**
   * Asked for (readProcFile's `attribute`) and every file opened and read:
   * pageAttribution() of the VMAs with KSM pages (a KSM: figure above 0, or
   * no KSM: line and `mg`), whole, made beside the scan
   * (native/attribution.h ScanAttribution).
   */
  attribution?: NativeScanAttribution;
}

/** pageAttribution()'s figures of the scan's VMAs `vmas` (indexes, in order), one per VMA. */
export interface NativeScanAttribution {
  vmas: Uint32Array;
  presentPages: Float64Array;
  ksmPages: Float64Array;
  zeroPages: Float64Array;
  sharing: Float64Array[];
  pfnHidden: boolean;
  pagemapScan: boolean;
}

/** @internal Why an addon's pageStatFields differ from PAGE_STAT_FIELDS, or undefined when they do not. */
export function pageStatMismatch(fields: readonly string[]): string | undefined {
  const at = PAGE_STAT_FIELDS.findIndex((name, i) => fields[i] !== name);
  if (at < 0 && fields.length === PAGE_STAT_COUNT) return undefined;
  if (at < 0) return `its estimate figures are ${fields.length}, not ${PAGE_STAT_COUNT}`;
  return `its estimate figure ${at} is ${JSON.stringify(fields[at])}, not ${JSON.stringify(PAGE_STAT_FIELDS[at])}`;
}

/** The page hash estimatePages ran: the AVX2 one, or the portable scalar one. */
export type HashImplementation = 'avx2' | 'scalar';

export interface NativeEstimateResult {
  cancelled: boolean;
  /** Per target: `stats` holds PAGE_STAT_COUNT figures per range (PAGE_STAT_FIELDS' order). */
  targets: Array<{ pid: number; exited: boolean; refused: boolean; stats: Float64Array }>;
  /** Which page hash ran (hashFor(): the best the CPU has, or scalar when forced). */
  hashImplementation: HashImplementation;
  /** Threads that hashed and confirmed (fewer than asked when the system had no more). */
  threads: number;
  pfnVisible: boolean;
  /** pagemap entries read (with PAGEMAP_SCAN: only inside populated runs). */
  pagemapEntries: number;
  /** PAGEMAP_SCAN ioctls made. */
  pagemapScans: number;
  /** Every range was walked with PAGEMAP_SCAN (false: read linearly, by choice or fallback). */
  pagemapScan: boolean;
  pagesHashed: number;
  bytesRead: number;
  memoryBytes: number;
  classes: number;
  keptPages: number;
  sharingPages: number;
  hashCollisions: number;
  timings: { pagemapNs: number; sampleNs: number; resampleNs: number; confirmNs: number };
}

/** Per range, what pagemap/kpageflags/kpagecount say (native/pagemap.cc). */
export interface PageAttribution {
  presentPages: number[];
  ksmPages: number[];
  zeroPages: number[];
  /** Per range: [mapcount, pages, mapcount, pages, ...] of its KSM pages. */
  sharing: Float64Array[];
  /** The kernel hid frame numbers (no CAP_SYS_ADMIN): nothing was attributed. */
  pfnHidden: boolean;
  /** The ranges were walked with PAGEMAP_SCAN (false: read linearly). */
  pagemapScan: boolean;
}

export interface NativeBinding {
  supported: true;
  /** mmap(size rounded to pages), each advice applied, Buffer of `size` bytes. */
  alloc(size: number, advices: number[]): Buffer;
  /**
   * Advise the whole pages inside `view`; returns what was covered.
   * `outward` (MADV_UNMERGEABLE only): every page the view touches instead.
   */
  madvise(view: View, advice: number, outward?: boolean): NativeRange;
  viewRange(view: View): NativeRange;
  // The process-wide record of the package's advice (native/advice.h).
  /** Records every page the view touches as sensitive, then advises them MADV_UNMERGEABLE. */
  markSensitive(view: View, label?: string): NativeRange;
  /** The marks still mapped, by start. */
  sensitiveRanges(): Array<{ start: bigint; end: bigint; label: string | undefined }>;
  /** MADV_MERGEABLE on the whole pages inside `view`, recorded under `id` (0: a new one). */
  adviseMergeable(view: View, id: number): NativeRange & { id: number };
  /** MADV_UNMERGEABLE on the whole pages inside `view`, and out of every record. */
  unadviseMergeable(view: View): NativeRange;
  /** `id`'s owner was collected: its advice ends, unless merge-any is on or another record keeps it. */
  releaseMergeable(id: number): void;
  /** After PR_SET_MEMORY_MERGE: every record mergeable again, then every mark unmergeable. */
  reapplyAdvice(): void;
  pageSize(): number;
  /** malloc_trim(0): true when memory went back to the kernel; null without glibc. */
  trimMalloc(): boolean | null;
  setMemoryMerge(enabled: boolean): void;
  getMemoryMerge(): boolean;
  /** Exact KSM attribution of page-aligned [starts[i], ends[i]) of a process, on the libuv pool. */
  pageAttribution(pid: number, starts: BigUint64Array, ends: BigUint64Array, pagemapScan?: boolean): Promise<PageAttribution>;
  /**
   * A whole file read on a thread of its own (seq_files hand out a page per
   * read; another process's files wait for its mmap lock); with 'smaps',
   * scanned on that thread where the bytes have the kernel's smaps layout
   * (native/smaps-scan.h). Returns the read's id; its result comes back as
   * deliver(id, error, result), the function of the environment's first call.
   * The read keeps the event loop alive until delivered or abandoned.
   * `chunks` (a process's smaps scanned): the first header of the first
   * `chunkLimit` VMAs lib/kernel/vma.ts mallocChunkCandidate() takes
   * (`reported`: of those profit() reports) are read as the scan goes on,
   * as readPresentHeaders() reads them (chunkCandidates, chunkHeaders).
   * `attribute` (a process's smaps scanned): the VMAs with KSM pages
   * attributed as pageAttribution() does, with PAGEMAP_SCAN tried ('scan')
   * or pagemap read whole ('linear'), as the scan goes on (attribution).
   * `stackPointers` (a process's smaps scanned): its threads' stack
   * pointers read beside the scan (threadStackPointers).
   */
  readProcFile(
    path: string,
    scan: 'smaps' | undefined,
    deliver: (id: number, error: Error | null, result: Buffer | NativeSmapsScan | undefined) => void,
    chunks?: 'candidates' | 'reported',
    chunkLimit?: number,
    attribute?: 'scan' | 'linear',
    stackPointers?: boolean,
  ): number;
  /**
   * 16 bytes at each address of the process whose proc directory is `dir`, through its
   * mem file, only where its pagemap shows the page present (zeros
   * elsewhere), on a reader thread; delivered like readProcFile (the same
   * function) as a Buffer of 16 bytes per address (native/header-read.h).
   */
  readPresentHeaders?(dir: string, addresses: BigUint64Array, deliver: (id: number, error: Error | null, result: Buffer | NativeSmapsScan | undefined) => void): number;
  /** The names of NativeSmapsScan.figures' columns (NATIVE_SMAPS_FIELDS, lib/kernel/smaps-native.ts). */
  smapsScanFields?: string[];
  /** Stop waiting for a read: it finishes in the kernel's time and is still delivered; it no longer holds the event loop. */
  abandonRead(id: number): void;
  constants: AdviceConstants;
  /**
   * Hashes the targets' touched anonymous pages on threads of its own
   * (estimate); cancel() or the environment's teardown stops it within a
   * batch, and ends the wait between the two samples.
   */
  estimatePages(
    targets: NativeEstimateTarget[],
    options: {
      intervalMs: number;
      maxPageSharing: number;
      expectedPages: number;
      batchPages: number;
      pagemapScan?: boolean;
      /** 'auto' (default): the fastest hash the CPU runs; 'scalar': the portable one. */
      hash?: 'auto' | 'scalar';
      /** Leave out a target that refuses pagemap / process_vm_readv (refused: true) instead of failing. */
      skipRefused?: boolean;
      /** Threads to hash and confirm on (1 .. 256, default 1). */
      threads?: number;
      /** Test hook: hold the confirm phase this long after its first wave. */
      confirmPauseMs?: number;
    },
    onProgress?: (phase: string, done: number, total: number) => void,
  ): { promise: Promise<NativeEstimateResult>; cancel(): void };
  /** The addon's own list of the per-range figures (PAGE_STAT_FIELDS must equal it). */
  pageStatFields: readonly string[];
}

/**
 * Whether the native readers of a process's pagemap may use the PAGEMAP_SCAN
 * ioctl (Linux 6.7+) to visit only populated page runs (native/pagewalk.h).
 * They fall back to reading every entry by themselves when the kernel lacks
 * it. Internal knob, not API: NODE_KSM_PAGEMAP_SCAN=0 forces the linear read
 * everywhere, to compare the two paths (the tests do) or to rule the ioctl
 * out when chasing a discrepancy. Read at each call.
 */
export function pagemapScanEnabled(): boolean {
  return process.env.NODE_KSM_PAGEMAP_SCAN !== '0';
}

/**
 * Which page hash estimatePages uses. Internal knob, not API:
 * NODE_KSM_HASH=scalar forces the portable scalar hash on a CPU that has a
 * faster one, so that both paths are tested on every machine (the estimate
 * tests run both) and a discrepancy can be pinned on one. Anything else: the
 * best the CPU has. Read at each call.
 */
export function hashFor(): 'auto' | 'scalar' {
  return process.env.NODE_KSM_HASH === 'scalar' ? 'scalar' : 'auto';
}

interface StubBinding {
  supported: false;
  reason: string;
}

export type BindingState =
  | { loaded: true; binding: NativeBinding }
  | { loaded: false; reason: string };

let state: BindingState | undefined;

function load(): BindingState {
  if (process.platform !== 'linux') {
    return { loaded: false, reason: `KSM is a Linux kernel feature; this is ${process.platform}` };
  }
  try {
    // lib/ (sources under test) and dist/ both sit one level below the root.
    const addon = nodeGypBuild(path.join(__dirname, '..')) as NativeBinding | StubBinding;
    if (!addon.supported) return { loaded: false, reason: addon.reason };
    const mismatch = pageStatMismatch(addon.pageStatFields);
    if (mismatch !== undefined) {
      // Its figures would be read under the wrong names.
      return {
        loaded: false,
        reason: `the native addon does not match this build of node-ksm (${mismatch}); rebuild it with \`npm rebuild node-ksm\``,
      };
    }
    return { loaded: true, binding: addon };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return {
      loaded: false,
      reason: `the native addon could not be loaded (${message}); ` +
        'rebuild it with `npm rebuild node-ksm` (needs python3, make and a C++ compiler)',
    };
  }
}

/**
 * The file the addon loads from (build/Release/ksm.node, a prebuild, or
 * NODE_KSM_PREBUILD's), where it loaded; helpers shipped with it sit next
 * to it.
 */
export function addonFile(): string | undefined {
  if (!bindingState().loaded) return undefined;
  try {
    return nodeGypBuild.path(path.join(__dirname, '..'));
  } catch {
    return undefined;
  }
}

export function bindingState(): BindingState {
  state ??= load();
  return state;
}

/** The page size, from the addon; 4096 without it (a fixture root, or no addon built). */
export function pageSizeOf(): number {
  const state = bindingState();
  return state.loaded ? state.binding.pageSize() : 4096;
}

/** The binding, or KsmUnsupportedError saying why there is none. */
export function binding(): NativeBinding {
  const current = bindingState();
  if (!current.loaded) throw new KsmUnsupportedError(current.reason);
  return current.binding;
}
