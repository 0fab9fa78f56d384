/**
 * What doctor() reads: every file and probe it judges from, gathered once,
 * so the rules (rules/) are plain functions of these facts.
 */
import { bindingState } from '../binding.js';
import { mapLimit } from '../concurrency.js';
import { KsmNoSuchProcessError, KsmTimeoutError, KsmUnsupportedError, isSystemError } from '../errors.js';
import { readKsmStat, readKsmStatSync, type KsmStat } from '../kernel/ksm-stat.js';
import { listPidsAsync, processExists, readComm } from '../kernel/processes.js';
import type { SmapsSummary, SmapsVma } from '../kernel/smaps.js';
import { readSmaps, readSmapsAllFields } from '../kernel/smaps-reader.js';
import { readProcStatusIfReadable } from '../kernel/status.js';
import { systemStat, type SystemStat } from '../kernel/sysfs.js';
import {
  kernelRelease as readKernelRelease,
  ksmRunWriteError,
  ksmSysfsMount,
  numaNodes,
  parseRelease,
  thpMode,
  type MountFacts,
} from '../kernel/system.js';
import type { ProcessTarget } from '../kernel/target.js';
import { liveLabels, type LabelledRange } from '../merge/labels.js';
import { disableMergeCalled, enableMergeCalled } from '../merge/opt-in.js';
import { UNMERGED_ENV } from '../merge/security.js';
import { readEnvironValue } from '../kernel/environ.js';
import { readVmstatKsm } from '../kernel/vmstat.js';
import { residentAnonymous } from './derive.js';
import { sensitiveRanges } from './sensitive.js';
import type { SensitiveRange } from './types.js';

export { parseMountinfo, parseRelease, type MountFacts } from '../kernel/system.js';

export type PrctlState =
  /** PR_GET_MEMORY_MERGE answered. */
  | { state: 'available'; source: 'probe' }
  /** EINVAL from the probe, or a kernel release before 6.4 in a fixture tree. */
  | { state: 'unsupported'; source: 'probe' | 'osrelease'; detail: string }
  /** EPERM from the probe: seccomp or an LSM refuses it. */
  | { state: 'blocked'; source: 'probe'; detail: string }
  /** Not probed: another root than `/`, or no addon. */
  | { state: 'unknown'; source: 'none'; detail: string };

export interface CandidateFacts {
  /** Resident anonymous pages in the target's mergeable VMAs. */
  processPages: number;
  /** Sum over every process whose smaps could be read (the target included). */
  readablePages: number;
  processesRead: number;
  /** Processes that may hold mergeable memory but whose smaps could not be read (other users', without root). */
  processesUnreadable: number;
  /** Processes whose smaps did not answer in time (mmap_lock held): skipped, never waited on. */
  processesSlow: number;
  /** Those processes, by pid, with their comm (raw: escape before printing). */
  slow: Array<{ pid: number; comm: string }>;
  /** What the kernel tracks: pages_shared + pages_sharing + pages_unshared + pages_volatile. */
  kernelTracked: number | undefined;
  /** What the scan estimate uses: the larger of readablePages and kernelTracked. */
  pages: number;
}

export interface Facts {
  root: string;
  /** The directory name under /proc: a number, or 'self' in a fixture tree. */
  procName: string;
  /** The target is the process running doctor() (its flags and registries are known). */
  self: boolean;
  pageSize: number;
  kernelRelease: string | undefined;
  /** undefined: the KSM sysfs directory does not exist (no CONFIG_KSM). */
  ksm: SystemStat | undefined;
  /** Error code from access(run, W_OK), undefined when writable. */
  ksmWriteError: string | undefined;
  mount: MountFacts | undefined;
  /** Effective uid of the process running doctor(), from its status. */
  euid: number | undefined;
  numaNodes: number | undefined;
  /** node0's distance row, e.g. [10, 21]. */
  numaDistances: number[] | undefined;
  /** The bracketed THP mode, e.g. 'madvise'. */
  thpEnabled: string | undefined;
  prctl: PrctlState;
  stat: KsmStat;
  vmas: SmapsSummary[];
  /** Fields of the target's status that matter here. */
  status: { ppid: number | undefined; seccomp: number | undefined; seccompFilters: number | undefined; noNewPrivs: number | undefined };
  /** The parent's ksm_merge_any, where readable. */
  parentMergeAny: boolean | undefined;
  /** Whether this process called enableMerge(): only known for self. */
  enableMergeCalled: boolean | undefined;
  /** Labelled mergeable ranges of this process (self only). */
  labels: LabelledRange[];
  /** Ranges of this process declared sensitive (self only). */
  sensitive: SensitiveRange[];
  candidates: CandidateFacts;
  /**
   * Whether the target turned merge-any off on purpose: disableMerge() in
   * this process, or NODE_KSM_REGISTER=off in its starting environment
   * (spawnUnmerged() sets it for its children). `known` false: its
   * environment could not be read.
   */
  optedOut: { known: boolean; value: boolean; how: string | undefined };
  /** cow_ksm and full_scans read twice, a window apart (this machine only). */
  churn: ChurnSample | undefined;
}

export interface ChurnSample {
  seconds: number;
  cowKsmBefore: number;
  cowKsmAfter: number;
  fullScansBefore: number | undefined;
  fullScansAfter: number | undefined;
  /** pages_sharing at the end of the window. */
  pagesSharing: number | undefined;
}

/** Per-process deadline for the machine-wide pass; smaps waits for the process's mmap_lock. */
const SMAPS_DEADLINE_MS = 2000;
function probePrctl(root: string, kernelRelease: string | undefined, ksmPresent: boolean): PrctlState {
  if (root !== '/') {
    // A fixture tree stands for another machine: its release is all there is.
    const version = parseRelease(kernelRelease);
    if (version && (version[0] < 6 || (version[0] === 6 && version[1] < 4))) {
      return { state: 'unsupported', source: 'osrelease', detail: `kernel ${kernelRelease} is older than 6.4` };
    }
    return { state: 'unknown', source: 'none', detail: 'prctl is probed only on this machine (root /)' };
  }
  const state = bindingState();
  if (!state.loaded) return { state: 'unknown', source: 'none', detail: state.reason };
  if (!ksmPresent) return { state: 'unknown', source: 'none', detail: 'no CONFIG_KSM' };
  try {
    state.binding.getMemoryMerge();
    return { state: 'available', source: 'probe' };
  } catch (error) {
    if (isSystemError(error) && error.code === 'EINVAL') {
      return { state: 'unsupported', source: 'probe', detail: 'prctl(PR_GET_MEMORY_MERGE) failed with EINVAL' };
    }
    if (isSystemError(error) && (error.code === 'EPERM' || error.code === 'EACCES')) {
      return { state: 'blocked', source: 'probe', detail: `prctl(PR_GET_MEMORY_MERGE) failed with ${error.code}` };
    }
    return { state: 'unknown', source: 'none', detail: error instanceof Error ? error.message : String(error) };
  }
}

/** Resident anonymous pages in VMAs marked mergeable: what ksmd visits each full scan. */
export function candidateBytes(vmas: readonly SmapsSummary[]): number {
  let bytes = 0;
  for (const vma of vmas) if (vma.vmFlags.includes('mg')) bytes += residentAnonymous(vma);
  return bytes;
}

type Candidate = { kind: 'read'; pages: number } | { kind: 'skip' } | { kind: 'unreadable' } | { kind: 'slow'; comm: string };

/** One other process's candidate pages, or why not: its files may not answer in time. */
async function candidatePages(root: string, pid: number, pageSize: number): Promise<Candidate> {
  const target: ProcessTarget = { pid, dir: pid, root, self: false, thread: undefined };
  try {
    // ksm_stat says cheaply whether a process has any mergeable VMA.
    const stat = await readKsmStat(target, SMAPS_DEADLINE_MS);
    if (stat.mergeable === false) return { kind: 'skip' };
    if (stat.mergeable === undefined && stat.mergeAny === false && stat.rmapItems === 0) return { kind: 'skip' };
  } catch (error) {
    if (error instanceof KsmTimeoutError) return { kind: 'slow', comm: readComm(root, pid) ?? '' };
    // Unreadable ksm_stat (older kernel, another user): smaps decides.
    if (error instanceof KsmNoSuchProcessError) return { kind: 'skip' };
  }
  try {
    const { vmas } = await readSmaps(target, SMAPS_DEADLINE_MS);
    return { kind: 'read', pages: Math.floor(candidateBytes(vmas) / pageSize) };
  } catch (error) {
    if (error instanceof KsmTimeoutError) return { kind: 'slow', comm: readComm(root, pid) ?? '' };
    if (error instanceof KsmNoSuchProcessError || !processExists(root, pid)) return { kind: 'skip' };
    if (isSystemError(error)) return { kind: 'unreadable' }; // another user's process without root
    throw error;
  }
}

/**
 * The machine-wide part: every process's smaps, read off the event loop a
 * few at a time (the kernel walks page tables to produce each), so a
 * service calling doctor() keeps serving meanwhile. smaps waits for the
 * process's mmap_lock: a process inside a long madvise/prctl/munmap holds
 * it for as long as that takes, so each read has a deadline and a process
 * that misses it is counted as slow, not waited for.
 */
async function countCandidates(
  root: string,
  target: ProcessTarget,
  targetPages: number,
  pageSize: number,
  ksm: SystemStat | undefined,
): Promise<CandidateFacts> {
  let pids: number[] = [];
  try {
    pids = (await listPidsAsync(root)).filter((pid) => pid !== target.pid);
  } catch {
    pids = [];
  }
  const outcomes = await mapLimit(pids, 8, (pid) => candidatePages(root, pid, pageSize));
  let readablePages = targetPages;
  let processesRead = 1;
  let processesUnreadable = 0;
  let processesSlow = 0;
  const slow: CandidateFacts['slow'] = [];
  outcomes.forEach((outcome, i) => {
    if (outcome.kind === 'read') {
      processesRead++;
      readablePages += outcome.pages;
    } else if (outcome.kind === 'unreadable') {
      processesUnreadable++;
    } else if (outcome.kind === 'slow') {
      processesSlow++;
      slow.push({ pid: pids[i]!, comm: outcome.comm });
    }
  });
  const parts = [ksm?.pagesShared, ksm?.pagesSharing, ksm?.pagesUnshared, ksm?.pagesVolatile];
  const kernelTracked = parts.every((part) => part !== undefined)
    ? parts.reduce<number>((sum, part) => sum + part!, 0)
    : undefined;
  return {
    processPages: targetPages,
    readablePages,
    processesRead,
    processesUnreadable,
    processesSlow,
    slow,
    kernelTracked,
    pages: Math.max(readablePages, kernelTracked ?? 0),
  };
}

function ksmOrUndefined(root: string): SystemStat | undefined {
  try {
    return systemStat({ root });
  } catch (error) {
    if (!(error instanceof KsmUnsupportedError)) throw error;
    return undefined;
  }
}

/** The target's ksm_stat: its own synchronously, another process's within the deadline. */
function targetKsmStat(target: ProcessTarget): Promise<KsmStat> {
  return target.self ? Promise.resolve(readKsmStatSync(target)) : readKsmStat(target, SMAPS_DEADLINE_MS);
}

/** How the target came to be without merge-any, where it chose it. */
async function optedOut(target: ProcessTarget): Promise<Facts['optedOut']> {
  if (target.self && disableMergeCalled()) return { known: true, value: true, how: 'disableMerge() called in this process' };
  const value = target.self && target.root === '/' ? process.env[UNMERGED_ENV] : await readEnvironValue(target, UNMERGED_ENV, SMAPS_DEADLINE_MS);
  if (value === null) return { known: false, value: false, how: undefined };
  const off = value !== undefined && ['0', 'off', 'false', 'no'].includes(value.trim().toLowerCase());
  return { known: true, value: off, how: off ? `${UNMERGED_ENV}=${value} in its environment (spawnUnmerged() or the user's choice)` : undefined };
}

interface CostReading {
  at: number;
  cowKsm: number | undefined;
  fullScans: number | undefined;
}

function costReading(root: string, ksm: SystemStat | undefined): CostReading {
  return { at: performance.now(), cowKsm: readVmstatKsm(root).cowKsm, fullScans: ksm?.fullScans };
}

/** The second reading of the churn window, at least `windowMs` after the first. */
async function churnSample(root: string, first: CostReading | undefined, windowMs: number): Promise<ChurnSample | undefined> {
  if (first === undefined || first.cowKsm === undefined) return undefined;
  const wait = windowMs - (performance.now() - first.at);
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  const ksm = ksmOrUndefined(root);
  const last = costReading(root, ksm);
  if (last.cowKsm === undefined) return undefined;
  return {
    seconds: (last.at - first.at) / 1000,
    cowKsmBefore: first.cowKsm,
    cowKsmAfter: last.cowKsm,
    fullScansBefore: first.fullScans,
    fullScansAfter: last.fullScans,
    pagesSharing: ksm?.pagesSharing,
  };
}

export interface CollectOptions {
  /** The churn window: cow_ksm is read this far apart (this machine only; 0: not sampled). */
  churnWindowMs?: number;
}

export async function collect(target: ProcessTarget, options: CollectOptions = {}): Promise<Facts> {
  const { root, self } = target;
  const churnWindowMs = options.churnWindowMs ?? 0;
  const procName = target.dir === 'self' && root === '/' ? String(process.pid) : String(target.dir);
  if (!processExists(root, target.dir)) throw new KsmNoSuchProcessError(target.pid);

  const kernelRelease = readKernelRelease(root);
  const ksm = ksmOrUndefined(root);
  const firstCosts = root === '/' && churnWindowMs > 0 && ksm !== undefined ? costReading(root, ksm) : undefined;
  const stat = await targetKsmStat(target);
  const state = bindingState();
  // On this machine the addon scans smaps on its reader thread (the summary
  // fields are all the rules read); a fixture tree is parsed whole, its
  // KernelPageSize standing in for the page size.
  const live = root === '/' && state.loaded;
  const deadline = self ? undefined : SMAPS_DEADLINE_MS;
  const vmas: SmapsSummary[] = live ? (await readSmaps(target, deadline)).vmas : (await readSmapsAllFields(target, deadline)).vmas;
  const status = readProcStatusIfReadable(root, target.dir);
  const ppid = status?.ppid;
  let parentMergeAny: boolean | undefined;
  if (ppid !== undefined && ppid > 0) {
    try {
      parentMergeAny = (await readKsmStat({ pid: ppid, dir: ppid, root, self: false, thread: undefined }, SMAPS_DEADLINE_MS)).mergeAny;
    } catch {
      parentMergeAny = undefined; // gone, unreadable or locked: not known
    }
  }

  const pageSize = live
    ? state.binding.pageSize()
    : (vmas as SmapsVma[]).find((vma) => vma.fields.KernelPageSize !== undefined)?.fields.KernelPageSize ?? 4096;
  const numa = numaNodes(root);
  const processPages = Math.floor(candidateBytes(vmas) / pageSize);
  return {
    root,
    procName,
    self,
    pageSize,
    kernelRelease,
    ksm,
    ksmWriteError: ksm === undefined ? undefined : ksmRunWriteError(root),
    mount: ksmSysfsMount(root),
    euid: readProcStatusIfReadable(root, 'self')?.euid,
    numaNodes: numa.nodes,
    numaDistances: numa.distances,
    thpEnabled: thpMode(root),
    prctl: probePrctl(root, kernelRelease, ksm !== undefined),
    stat,
    vmas,
    status: {
      ppid,
      seccomp: status?.seccomp,
      seccompFilters: status?.seccompFilters,
      noNewPrivs: status?.noNewPrivs,
    },
    parentMergeAny,
    enableMergeCalled: self ? enableMergeCalled() : undefined,
    labels: self ? liveLabels() : [],
    sensitive: self ? sensitiveRanges() : [],
    candidates: await countCandidates(root, target, processPages, pageSize, ksm),
    optedOut: await optedOut(target),
    churn: await churnSample(root, firstCosts, churnWindowMs),
  };
}
