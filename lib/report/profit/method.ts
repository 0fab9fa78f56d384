/**
 * Exact or estimated, and why: exact page by page where this process may
 * read page frames (root, on this machine, with the addon), estimated from
 * smaps otherwise — unless the caller insisted on one.
 */
import { binding, bindingState, pagemapScanEnabled, type NativeSmapsScan, type NativeScanAttribution, type PageAttribution } from '../../binding.js';
import { isSystemError } from '../../errors.js';
import { EXACT_HINT, attributePages, permissionError } from '../../kernel/pagemap.js';
import type { SmapsSummary } from '../../kernel/smaps.js';
import type { ProcessTarget } from '../../kernel/target.js';
import type { LabelledRange } from '../../merge/labels.js';
import { splitRowsOf, wholeRow, type Row } from './rows.js';
import type { ProfitMethod } from './types.js';

export interface Method {
  method: ProfitMethod;
  /** Why not exact, when it was not ruled out by the caller. */
  estimateReason: string | undefined;
  /** The rows reported: exact ones cut at our buffers, estimated ones whole VMAs. */
  rows: Row[];
  /** Exact mode: the attribution, and each attributed row's range index in it. */
  exact: PageAttribution | undefined;
  exactIndex: Map<Row, number>;
}

/** Why this machine cannot attribute exactly, or undefined when it can try. */
function exactRefusal(target: ProcessTarget, wantExact: boolean | undefined): string | undefined {
  const state = bindingState();
  if (target.root !== '/') return 'a fixture root has no page frames to read';
  if (!state.loaded) return state.reason;
  if (typeof state.binding.pageAttribution !== 'function') return 'the loaded addon predates pageAttribution: rebuild it';
  const euid = typeof process.geteuid === 'function' ? process.geteuid() : -1;
  if (euid !== 0 && wantExact !== true) return `${EXACT_HINT}; this process runs as uid ${euid}`;
  return undefined;
}

/**
 * Whether a read of the target's smaps is to attribute its VMAs with KSM
 * pages beside the scan (files.ts ScanReads' `attribute`): where exact mode
 * will be tried. The pagemap and kpage* reads then go on on the other core
 * while the kernel prints the rest of smaps, instead of after it.
 */
export function attributeBesideScan(target: ProcessTarget, wantExact: boolean | undefined): 'scan' | 'linear' | undefined {
  if (wantExact === false || exactRefusal(target, wantExact) !== undefined) return undefined;
  return pagemapScanEnabled() ? 'scan' : 'linear';
}

/** The attribution a smaps scan came with, by the VMA objects made of that scan (one per VMA, in its order). */
export interface ScanAttribution {
  at: Map<SmapsSummary, number>;
  attribution: NativeScanAttribution;
}

/** `scan`'s attribution as ScanAttribution; undefined where there is none to use (none asked, a read failed, frames hidden). */
export function scanAttribution(scan: NativeSmapsScan, vmas: readonly SmapsSummary[]): ScanAttribution | undefined {
  const attribution = scan.attribution;
  if (attribution === undefined || attribution.pfnHidden) return undefined;
  const at = new Map<SmapsSummary, number>();
  for (let i = 0; i < attribution.vmas.length; i++) {
    const vma = vmas[attribution.vmas[i]!];
    if (vma === undefined) return undefined;
    at.set(vma, i);
  }
  return { at, attribution };
}

/**
 * pageAttribution() of the walked rows: from the scan's attribution for a
 * row that is its whole VMA, read now for the others (rows cut at our
 * labels, mergeable VMAs walked for zero pages, or all of them without one).
 */
async function attributeRows(target: ProcessTarget, walked: readonly Row[], early: ScanAttribution | undefined): Promise<PageAttribution> {
  const at = walked.map((row) => (row.start === row.vma.start && row.end === row.vma.end ? early?.at.get(row.vma) ?? -1 : -1));
  const rest = walked.filter((_, r) => at[r]! < 0);
  const read = rest.length === 0
    ? undefined
    : await attributePages(binding(), target, BigUint64Array.from(rest, (row) => row.start), BigUint64Array.from(rest, (row) => row.end));
  if (read !== undefined && rest.length === walked.length) return read;
  const scanned = early!.attribution;
  const out: PageAttribution = {
    presentPages: [],
    ksmPages: [],
    zeroPages: [],
    sharing: [],
    pfnHidden: false,
    pagemapScan: scanned.pagemapScan && (read?.pagemapScan ?? true),
  };
  let next = 0;
  for (const i of at) {
    if (i >= 0) {
      out.presentPages.push(scanned.presentPages[i]!);
      out.ksmPages.push(scanned.ksmPages[i]!);
      out.zeroPages.push(scanned.zeroPages[i]!);
      out.sharing.push(scanned.sharing[i]!);
    } else {
      out.presentPages.push(read!.presentPages[next]!);
      out.ksmPages.push(read!.ksmPages[next]!);
      out.zeroPages.push(read!.zeroPages[next]!);
      out.sharing.push(read!.sharing[next]!);
      next++;
    }
  }
  return out;
}

/**
 * `early`: the attribution made beside the smaps scan the VMAs come from
 * (attributeBesideScan()), used for the rows it covers.
 *
 * @throws SystemError EPERM/EACCES with `wantExact: true` where exact is not possible.
 */
export async function chooseMethod(
  target: ProcessTarget,
  wantExact: boolean | undefined,
  reported: readonly SmapsSummary[],
  labels: readonly LabelledRange[],
  zeroPages: number,
  early?: ScanAttribution,
): Promise<Method> {
  const estimated = (estimateReason: string | undefined): Method => ({
    method: 'estimated',
    estimateReason,
    rows: reported.map((vma) => wholeRow(vma, labels)),
    exact: undefined,
    exactIndex: new Map(),
  });
  if (wantExact === false) return estimated('options.exact is false');
  const refusal = exactRefusal(target, wantExact);
  if (refusal !== undefined) {
    if (wantExact === true) throw permissionError(`exact attribution of process ${target.pid}`, refusal);
    return estimated(refusal);
  }
  const split = splitRowsOf(reported, labels);
  // Only rows that can hold KSM pages are walked: smaps says which (zero pages can be anywhere mergeable).
  const walked = split.filter(
    (row) => (row.vma.ksm ?? 0) > 0 || (zeroPages > 0 && row.vma.vmFlags.includes('mg')) || row.vma.ksm === undefined,
  );
  // Nothing that can hold KSM pages (a kernel thread has no memory at all): nothing to walk.
  if (walked.length === 0) {
    const none: PageAttribution = { presentPages: [], ksmPages: [], zeroPages: [], sharing: [], pfnHidden: false, pagemapScan: false };
    return { method: 'exact', estimateReason: undefined, rows: split, exact: none, exactIndex: new Map() };
  }
  try {
    const exact = await attributeRows(target, walked, early);
    const exactIndex = new Map<Row, number>();
    walked.forEach((row, index) => exactIndex.set(row, index));
    return { method: 'exact', estimateReason: undefined, rows: split, exact, exactIndex };
  } catch (error) {
    if (wantExact === true) throw error;
    if (!isSystemError(error) || (error.code !== 'EACCES' && error.code !== 'EPERM')) throw error;
    return estimated(`${EXACT_HINT} (${error.message})`);
  }
}
