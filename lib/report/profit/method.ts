/**
 * Exact or estimated, and why: exact page by page where this process may
 * read page frames (root, on this machine, with the addon), estimated from
 * smaps otherwise — unless the caller insisted on one.
 */
import { binding, bindingState, type PageAttribution } from '../../binding.js';
import { isSystemError } from '../../errors.js';
import { EXACT_HINT, attributePages, permissionError } from '../../kernel/pagemap.js';
import type { SmapsSummary } from '../../kernel/smaps.js';
import type { ProcessTarget } from '../../kernel/target.js';
import type { LabelledRange } from '../../merge/labels.js';
import { splitRows, wholeRow, type Row } from './rows.js';
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
 * @throws SystemError EPERM/EACCES with `wantExact: true` where exact is not possible.
 */
export async function chooseMethod(
  target: ProcessTarget,
  wantExact: boolean | undefined,
  reported: readonly SmapsSummary[],
  labels: readonly LabelledRange[],
  zeroPages: number,
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
  const split = reported.flatMap((vma) => splitRows(vma, labels));
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
    const exact = await attributePages(
      binding(),
      target,
      BigUint64Array.from(walked, (row) => row.start),
      BigUint64Array.from(walked, (row) => row.end),
    );
    const exactIndex = new Map<Row, number>();
    walked.forEach((row, index) => exactIndex.set(row, index));
    return { method: 'exact', estimateReason: undefined, rows: split, exact, exactIndex };
  } catch (error) {
    if (wantExact === true) throw error;
    if (!isSystemError(error) || (error.code !== 'EACCES' && error.code !== 'EPERM')) throw error;
    return estimated(`${EXACT_HINT} (${error.message})`);
  }
}
