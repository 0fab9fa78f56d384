/**
 * estimate()'s plan: which ranges of a target's VMAs the native estimator
 * reads, and why the others are left out; and what a refusal means.
 */
import type { SmapsSummary } from '../kernel/smaps.js';
import { readSmaps } from '../kernel/smaps-reader.js';
import type { ProcessTarget } from '../kernel/target.js';
import { ksmCompatible, whyNotMergeable } from '../kernel/vma.js';
import { isSystemError, withHint } from '../errors.js';
import type { EstimateVmaStatus } from './estimate-types.js';

export const PTRACE_HINT =
  'reading another process\'s memory needs ptrace rights over it: run as root or with CAP_SYS_PTRACE, ' +
  'or as its uid (kernel.yama.ptrace_scope 0, or 1 from an ancestor); ' +
  'a process that changed its uid is undumpable and needs CAP_SYS_PTRACE';

/** A target's VMAs, read off the event loop. */
export async function readVmas(target: ProcessTarget): Promise<SmapsSummary[]> {
  try {
    return (await readSmaps(target)).vmas;
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

/** @internal exported for tests */
export function plan(pid: number, vmas: SmapsSummary[], onlyMergeable: boolean, minRegionBytes: number, page: number): Plan {
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
    if (start >= vma.end) {
      s = 'filtered';
      why = 'changed while smaps was read: covered by the VMA before it';
    } else if (!ksmCompatible(vma)) {
      s = 'incompatible';
      why = whyNotMergeable(vma);
    } else if (onlyMergeable && !vma.vmFlags.includes('mg')) {
      s = 'filtered';
      why = 'not mergeable yet (onlyMergeable)';
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
