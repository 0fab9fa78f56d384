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

/** Per range, what pagemap/kpageflags/kpagecount say (native/pagemap.cc). */
export interface PageAttribution {
  presentPages: number[];
  ksmPages: number[];
  zeroPages: number[];
  /** Per range: [mapcount, pages, mapcount, pages, ...] of its KSM pages. */
  sharing: Float64Array[];
  /** The kernel hid frame numbers (no CAP_SYS_ADMIN): nothing was attributed. */
  pfnHidden: boolean;
}

export interface NativeBinding {
  supported: true;
  /** mmap(size rounded to pages), each advice applied, Buffer of `size` bytes. */
  alloc(size: number, advices: number[]): Buffer;
  /** Advise the whole pages inside `view`; returns what was covered. */
  madvise(view: View, advice: number): NativeRange;
  viewRange(view: View): NativeRange;
  pageSize(): number;
  setMemoryMerge(enabled: boolean): void;
  getMemoryMerge(): boolean;
  /** Exact KSM attribution of page-aligned [starts[i], ends[i]) of a process, on the libuv pool. */
  pageAttribution(pid: number, starts: BigUint64Array, ends: BigUint64Array): Promise<PageAttribution>;
  /** A whole file read in one libuv task (seq_files hand out a page per read). */
  readProcFile(path: string): Promise<Buffer>;
  constants: AdviceConstants;
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
