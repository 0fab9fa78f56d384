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
}

export interface NativeEstimateResult {
  cancelled: boolean;
  /** Per target: `stats` holds pageStatFields.length figures per range. */
  targets: Array<{ pid: number; exited: boolean; stats: Float64Array }>;
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
  pageSize(): number;
  /** malloc_trim(0): true when memory went back to the kernel; null without glibc. */
  trimMalloc(): boolean | null;
  setMemoryMerge(enabled: boolean): void;
  getMemoryMerge(): boolean;
  /** Exact KSM attribution of page-aligned [starts[i], ends[i]) of a process, on the libuv pool. */
  pageAttribution(pid: number, starts: BigUint64Array, ends: BigUint64Array, pagemapScan?: boolean): Promise<PageAttribution>;
  /** A whole file read in one libuv task (seq_files hand out a page per read). */
  readProcFile(path: string): Promise<Buffer>;
  constants: AdviceConstants;
  /** Hashes the targets' touched anonymous pages on the libuv pool (estimate). */
  estimatePages(
    targets: NativeEstimateTarget[],
    options: { intervalMs: number; maxPageSharing: number; expectedPages: number; batchPages: number; pagemapScan?: boolean },
    onProgress?: (phase: string, done: number, total: number) => void,
  ): { promise: Promise<NativeEstimateResult>; cancel(): void };
  /** Names of the per-range figures in NativeEstimateResult stats, in order. */
  pageStatFields: readonly string[];
  /** Benchmark: the page hash over a view of this process. */
  hashPages(view: View): { pages: number; zeroPages: number; nanoseconds: number; digest: bigint };
  /** Benchmark: a plain sequential read of a view, `passes` times. */
  readBandwidth(view: View, passes: number): { bytes: number; nanoseconds: number; checksum: bigint };
  /** Benchmark: a view copied out through process_vm_readv on this process. */
  vmReadBandwidth(view: View, batchPages: number): { bytes: number; nanoseconds: number };
}

/**
 * Whether the native readers of /proc/PID/pagemap may use the PAGEMAP_SCAN
 * ioctl (Linux 6.7+) to visit only populated page runs (native/pagewalk.h).
 * They fall back to reading every entry by themselves when the kernel lacks
 * it. Internal knob, not API: NODE_KSM_PAGEMAP_SCAN=0 forces the linear read
 * everywhere, to compare the two paths (the tests do) or to rule the ioctl
 * out when chasing a discrepancy. Read at each call.
 */
export function pagemapScanEnabled(): boolean {
  return process.env.NODE_KSM_PAGEMAP_SCAN !== '0';
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

/** The binding, or KsmUnsupportedError saying why there is none. */
export function binding(): NativeBinding {
  const current = bindingState();
  if (!current.loaded) throw new KsmUnsupportedError(current.reason);
  return current.binding;
}
