/**
 * estimate()'s plan: which ranges of a target's VMAs the native estimator
 * reads, and why the others are left out; and what a refusal means.
 */
import type { SmapsSummary } from '../kernel/smaps.js';
import { readMaps, readSmaps } from '../kernel/smaps-reader.js';
import type { ProcessTarget } from '../kernel/target.js';
import { ksmCompatible, regionKind, whyNotMergeable, type RegionKind } from '../kernel/vma.js';
import { isSystemError, withHint } from '../errors.js';
import type { EstimateVmaStatus } from './estimate-types.js';

export const PTRACE_HINT =
  'reading another process\'s memory needs ptrace rights over it: run as root or with CAP_SYS_PTRACE, ' +
  'or as its uid (kernel.yama.ptrace_scope 0, or 1 from an ancestor); ' +
  'a process that changed its uid is undumpable and needs CAP_SYS_PTRACE';

/** A target's VMAs, read off the event loop: from smaps, or from maps (no figures or flags, a fraction of the cost). */
export async function readVmas(target: ProcessTarget, from: 'smaps' | 'maps' = 'smaps'): Promise<SmapsSummary[]> {
  try {
    return (await (from === 'smaps' ? readSmaps(target) : readMaps(target))).vmas;
  } catch (error) {
    if (isSystemError(error) && (error.code === 'EACCES' || error.code === 'EPERM')) {
      throw withHint(Object.assign(error, { pid: target.pid }), PTRACE_HINT);
    }
    throw error;
  }
}

export interface Plan {
  pid: number;
  vmas: SmapsSummary[];
  status: EstimateVmaStatus[];
  reason: Array<string | undefined>;
  /** Index into the native ranges, per VMA, or -1. */
  range: number[];
  ranges: BigUint64Array;
  readable: Uint8Array;
  expectedPages: number;
}

/** Why a VMA is not read: refused by the kernel, or left out by an option. */
type Refusal = { status: 'incompatible' | 'filtered'; why: string } | undefined;

/** @internal exported for tests */
export function plan(pid: number, vmas: SmapsSummary[], onlyMergeable: boolean, minRegionBytes: number, page: number): Plan {
  return planned(pid, vmas, minRegionBytes, page, (vma) => {
    if (!ksmCompatible(vma)) return { status: 'incompatible', why: whyNotMergeable(vma) };
    if (onlyMergeable && !vma.vmFlags.includes('mg')) return { status: 'filtered', why: 'not mergeable yet (onlyMergeable)' };
    return undefined;
  });
}

const NOT_FROM_MAPS: Refusal = { status: 'incompatible', why: 'shared or a special mapping (maps)' };

/**
 * @internal exported for tests
 * The plan a target's maps allows before its smaps is read, to start on: maps
 * has no VmFlags, so every shared mapping and every special one (the
 * kernel's [vdso], [vvar], [vsyscall]..., all VM_DONTEXPAND or no VMA at
 * all) is taken as refused and every other as compatible. Only its ranges
 * count: smaps' plan() decides, and samePlan() says whether what was read
 * by this one stands (a private hugetlb, PFN, I/O or droppable mapping, or
 * a layout that changed between the two reads, makes them differ).
 */
export function planFromMaps(pid: number, vmas: SmapsSummary[], minRegionBytes: number, page: number): Plan {
  return planned(pid, vmas, minRegionBytes, page, (vma) => (vma.perms.endsWith('s') || KERNEL_MAPPINGS.has(regionKind(vma).kind) ? NOT_FROM_MAPS : undefined));
}

/** The kernel's own mappings: special mappings (VM_DONTEXPAND), or no VMA at all ([vsyscall]). */
const KERNEL_MAPPINGS: ReadonlySet<RegionKind> = new Set<RegionKind>(['vdso', 'vvar', 'vsyscall', 'special']);

/** The two plans read the same ranges the same way: one's pages are the other's. */
export function samePlan(a: Plan, b: Plan): boolean {
  if (a.pid !== b.pid || a.ranges.length !== b.ranges.length) return false;
  for (let i = 0; i < a.ranges.length; i++) if (a.ranges[i] !== b.ranges[i]) return false;
  for (let i = 0; i < a.readable.length; i++) if (a.readable[i] !== b.readable[i]) return false;
  return true;
}

function planned(pid: number, vmas: SmapsSummary[], minRegionBytes: number, page: number, refusal: (vma: SmapsSummary) => Refusal): Plan {
  const status: EstimateVmaStatus[] = [];
  const reason: Array<string | undefined> = [];
  const range: number[] = [];
  const starts: bigint[] = [];
  const readable: number[] = [];
  let expectedPages = 0;
  // smaps is read in chunks, and the process may map and unmap in between:
  // the kernel resumes after the last address it printed, so a VMA that grew
  // or merged meanwhile comes out overlapping the one before it. Each range
  // starts where the previous one ended (its pages were read once already).
  let covered = 0n;
  for (const vma of vmas) {
    let s: EstimateVmaStatus = 'scanned';
    let why: string | undefined;
    const start = vma.start > covered ? vma.start : covered;
    const refused = start < vma.end ? refusal(vma) : undefined;
    if (start >= vma.end) {
      s = 'filtered';
      why = 'changed while smaps was read: covered by the VMA before it';
    } else if (refused !== undefined) {
      s = refused.status;
      why = refused.why;
    } else if (Number(vma.end - vma.start) < minRegionBytes) {
      s = 'filtered';
      why = `smaller than minRegionBytes (${minRegionBytes})`;
    } else if (!vma.perms.startsWith('r')) {
      s = 'unreadable';
      why = vma.perms.startsWith('---') ? 'PROT_NONE (guard or reservation)' : `not readable (${vma.perms})`;
    }
    status.push(s);
    reason.push(why);
    if (s === 'scanned' || s === 'unreadable') {
      range.push(starts.length / 2);
      starts.push(start, vma.end);
      covered = vma.end;
      readable.push(s === 'scanned' ? 1 : 0);
      if (s === 'scanned') expectedPages += Math.ceil((vma.anonymous ?? 0) / page);
    } else {
      range.push(-1);
    }
  }
  return {
    pid,
    vmas,
    status,
    reason,
    range,
    ranges: BigUint64Array.from(starts),
    readable: Uint8Array.from(readable),
    expectedPages,
  };
}

export function nativeError(error: unknown): unknown {
  if (isSystemError(error) && (error.code === 'EPERM' || error.code === 'EACCES')) {
    return withHint(error, PTRACE_HINT);
  }
  return error;
}
