/**
 * estimate(): a dry run of KSM. Hashes every touched private anonymous page
 * of the given processes (native code, off the JS thread), confirms every
 * match byte for byte, and says per VMA what merging would save — before
 * KSM is switched on, or before a process calls enableMerge().
 */
import * as os from 'node:os';

import { mapLimit, yieldToLoop } from '../concurrency.js';
import { PAGE_STAT, PAGE_STAT_COUNT, PAGE_STAT_FIELDS, hashFor, pagemapScanEnabled, type NativeEstimateResult, type PageStatField } from '../binding.js';
import { abortError, isSystemError, withHint } from '../errors.js';
import { READ_CONCURRENCY, allTargets, countSkipped, topLists, type EstimateAll, type EstimateSkipped } from './estimate-all.js';
import { readKsmStat } from '../kernel/ksm-stat.js';
import type { SmapsSummary } from '../kernel/smaps.js';
import { readSmaps } from '../kernel/smaps-reader.js';
import { distinctTargets, type ProcessTarget } from '../kernel/target.js';
import { ksmCompatible, regionKind, whyNotMergeable, type Classified } from '../kernel/vma.js';
import { labelsOf } from '../merge/published.js';
import { kindsOf } from './kinds.js';
import type { RegionKind } from './regions.js';
import { requireKsm } from '../kernel/support.js';
import { systemStat } from '../kernel/sysfs.js';
import {
  checkBoolean,
  checkFunction,
  checkOptions,
  checkPid,
  checkSignal,
  invalidType,
  optionalNumber,
  outOfRange,
} from '../validate.js';

export interface EstimateProgress {
  /** pagemap: finding touched pages; sample / resample: hashing them; confirm: comparing twins. */
  phase: 'pagemap' | 'sample' | 'resample' | 'confirm';
  done: number;
  total: number;
}

export interface EstimateOptions {
  /** More processes to estimate, besides `targets`. */
  pids?: number[];
  /**
   * Hash twice, this many milliseconds apart, and leave out the pages that
   * changed (KSM merges a page only after its checksum held across two
   * visits). Default 0: one sample, nothing counted as volatile.
   */
  intervalMs?: number;
  /** Only VMAs that are already mergeable (`mg`): what merges with no code change. */
  onlyMergeable?: boolean;
  /** Leave out VMAs smaller than this many bytes (default 0). */
  minRegionBytes?: number;
  /** Zero pages merge with the kernel's zero page; default: the use_zero_pages knob. */
  useZeroPages?: boolean;
  /** Mappers per KSM page; default: the max_page_sharing knob (256). */
  maxPageSharing?: number;
  /**
   * Threads to hash and confirm on, at most 256. Default: every core on a
   * machine of one or two (defaultEstimateThreads()), all but one beyond, so
   * that the event loop and the rest of the machine keep a core. The work
   * runs on the addon's own threads, never the libuv pool.
   */
  threads?: number;
  /**
   * The whole machine: every process the caller may read (no targets then).
   * Kernel threads and the processes it may not read are left out and
   * listed (`all.skipped`); `all.topProcesses` / `all.topVmas` say where the
   * duplicates are.
   */
  all?: boolean;
  /** With `all`: entries in each top list (default 20). */
  top?: number;
  signal?: AbortSignal;
  /** Called from the event loop as the work goes on (at most every 50 ms per phase). */
  onProgress?: (progress: EstimateProgress) => void;
}

/** Page counts, for one VMA, one process or all of them. */
export interface EstimateCounts {
  /** Pages present in RAM (any kind). */
  presentPages: number;
  /** Pages swapped out: KSM does not scan them. */
  swappedPages: number;
  /** Page-cache pages of private file mappings (not yet copied on write): not candidates. */
  filePages: number;
  /** Pages mapping the shared zero page (read, never written): nothing to save. */
  zeroPageMapped: number;
  /** Touched private anonymous pages that were read and hashed: what KSM would scan. */
  candidatePages: number;
  /** Present anonymous pages that could not be read (PROT_NONE, unmapped meanwhile). */
  unreadablePages: number;
  /** Candidate pages whose every byte is zero (stable ones only). */
  zeroPages: number;
  /** Candidate pages that changed between the two samples: KSM will not merge them. */
  volatilePages: number;
  /** Stable non-zero candidate pages with at least one identical twin among the targets. */
  duplicatePages: number;
  /** ... of which have a twin in the same VMA. */
  twinInVma: number;
  /** ... of which have a twin in the same process (same VMA included). */
  twinInProcess: number;
  /** ... of which have a twin in another of the targets. */
  twinInOtherProcess: number;
  /**
   * Pages KSM would free, as it counts them: a class of k identical pages
   * keeps ceil(k / max_page_sharing) copies; zero pages per use_zero_pages.
   * Each page of a class carries an equal share, so a VMA's figure can be
   * fractional; the total over all targets is whole.
   */
  predictedSavedPages: number;
  predictedSavedBytes: number;
}

export type EstimateVmaStatus = 'scanned' | 'unreadable' | 'incompatible' | 'filtered';

export interface EstimateVma extends EstimateCounts {
  start: bigint;
  end: bigint;
  perms: string;
  pathname: string;
  /** What the VMA is, Node's kinds included (as regions() says it). */
  kind: RegionKind;
  /** What the kind was told from (Node's layout kinds, the heap). */
  kindEvidence: string | undefined;
  /** Labels this process gave (or published for) memory in the VMA, comma-separated. */
  label: string | undefined;
  vmFlags: string[];
  /** `mg`: KSM may merge this VMA now. */
  mergeable: boolean;
  /** The kernel would accept it as mergeable (private, not hugetlb/PFN/IO/...). */
  ksmCompatible: boolean;
  /** Compatible but not yet `mg`: a candidate only after enableMerge() or markMergeable(). */
  candidateAfterEnableMerge: boolean;
  /** scanned; unreadable (not readable: present pages counted, none read); incompatible; filtered (options). */
  status: EstimateVmaStatus;
  /** Why not scanned, when not. */
  reason: string | undefined;
  /** This VMA's part of the whole estimate's predictedSavedBytes (0..1). */
  share: number;
}

export interface EstimateProcess extends EstimateCounts {
  pid: number;
  /** The process exited during the estimate: it is reported without pages. */
  exited: boolean;
  /** ksm_merge_any: enableMerge() is already on for it. */
  mergeAny: boolean | undefined;
  /** Candidate pages in VMAs that are already `mg`. */
  candidatePagesMergeableNow: number;
  /** Candidate pages in VMAs that merge only after enableMerge(). */
  candidatePagesAfterEnableMerge: number;
  /** VMAs not scanned (incompatible or filtered out); `unreadable` ones are counted apart. */
  skippedVmas: number;
  unreadableVmas: number;
  vmas: EstimateVma[];
  share: number;
}

export interface EstimateResult extends EstimateCounts {
  processes: EstimateProcess[];
  pageSize: number;
  useZeroPages: boolean;
  maxPageSharing: number;
  intervalMs: number;
  /** KSM pages that would hold the merged content (pages_shared after merging). */
  predictedPagesShared: number;
  /** Page slots that would share them (pages_sharing after merging). */
  predictedPagesSharing: number;
  /** Pages that would merge with the kernel's zero page (ksm_zero_pages), with use_zero_pages. */
  predictedZeroPages: number;
  /** Distinct pages whose hashes matched but bytes did not (found and kept apart). */
  hashCollisions: number;
  /** Memory the estimator itself used at its peak, in bytes (about 16 per page). */
  memoryBytes: number;
  /** Pages read and hashed in the first sample. */
  pagesHashed: number;
  /** PFNs were visible in pagemap (CAP_SYS_ADMIN): zero-page mappings told apart exactly. */
  pfnVisible: boolean;
  /** Threads the pages were hashed and confirmed on. */
  threads: number;
  elapsedMs: number;
  timings: { pagemapMs: number; sampleMs: number; resampleMs: number; confirmMs: number };
  /** With `all: true` only: what was listed, what was left out and why, the top lists. */
  all?: EstimateAll;
}

/** The per-range counts that add up per VMA and process (savedPages is a fraction, summed apart). */
const COUNT_FIELDS = PAGE_STAT_FIELDS.filter((f): f is Exclude<PageStatField, 'savedPages'> => f !== 'savedPages');

/**
 * Pages per process_vm_readv call while sampling (256 KiB, hashed back from
 * L2). From 32 to 1024 pages a call no size was clearly faster on the
 * machine measured (the kernel's per-page pinning dominates), so the
 * smaller buffer wins.
 */
const BATCH_PAGES = 64;

const PTRACE_HINT =
  'reading another process\'s memory needs ptrace rights over it: run as root or with CAP_SYS_PTRACE, ' +
  'or as its uid (kernel.yama.ptrace_scope 0, or 1 from an ancestor); ' +
  'a process that changed its uid is undumpable and needs CAP_SYS_PTRACE';

function emptyCounts(): EstimateCounts {
  return {
    presentPages: 0,
    swappedPages: 0,
    filePages: 0,
    zeroPageMapped: 0,
    candidatePages: 0,
    unreadablePages: 0,
    zeroPages: 0,
    volatilePages: 0,
    duplicatePages: 0,
    twinInVma: 0,
    twinInProcess: 0,
    twinInOtherProcess: 0,
    predictedSavedPages: 0,
    predictedSavedBytes: 0,
  };
}

function addCounts(into: EstimateCounts, from: EstimateCounts): void {
  for (const field of COUNT_FIELDS) into[field] += from[field];
  into.predictedSavedPages += from.predictedSavedPages;
}

/** A pid inside a list: undefined is no pid, unlike an omitted optional one. */
function listedPid(value: unknown, name: string): number {
  if (value === undefined) throw invalidType(name, 'of type number', value);
  return checkPid(value, name)!;
}

function checkTargets(targets: unknown, pids: unknown): number[] {
  const list: number[] = [];
  if (targets === undefined || targets === 'self') {
    if (targets === 'self' || pids === undefined) list.push(process.pid);
  } else if (typeof targets === 'number') {
    list.push(checkPid(targets, 'targets')!);
  } else if (Array.isArray(targets)) {
    targets.forEach((pid, i) => list.push(listedPid(pid, `targets[${i}]`)));
  } else {
    throw invalidType('targets', "a pid, an array of pids or 'self'", targets);
  }
  if (pids !== undefined) {
    if (!Array.isArray(pids)) throw invalidType('options.pids', 'an array of pids', pids);
    pids.forEach((pid, i) => list.push(listedPid(pid, `options.pids[${i}]`)));
  }
  const unique = [...new Set(list)];
  if (unique.length === 0) throw outOfRange('targets', 'at least one pid', '[]');
  if (unique.length > 65536) throw outOfRange('targets', 'at most 65536 pids', unique.length);
  return unique;
}

/**
 * Threads estimate() runs on unless told: every core of a machine with one
 * or two, all but one on bigger ones (the cores this process may use).
 */
export function defaultEstimateThreads(): number {
  const cores = os.availableParallelism();
  return Math.min(256, cores <= 2 ? cores : cores - 1);
}

/** An object literal (not an array, view, signal...): estimate({ all: true }). */
function isPlainObject(value: unknown): value is EstimateOptions {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function checkNonNegative(name: string, value: unknown, max: number): number | undefined {
  return optionalNumber(name, value, { min: 0, max });
}

/** A target's VMAs, read off the event loop. */
async function readVmas(target: ProcessTarget): Promise<SmapsSummary[]> {
  try {
    return (await readSmaps(target)).vmas;
  } catch (error) {
    if (isSystemError(error) && (error.code === 'EACCES' || error.code === 'EPERM')) {
      throw withHint(Object.assign(error, { pid: target.pid }), PTRACE_HINT);
    }
    throw error;
  }
}

interface Plan {
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

function nativeError(error: unknown): unknown {
  if (isSystemError(error) && (error.code === 'EPERM' || error.code === 'EACCES')) {
    return withHint(error, PTRACE_HINT);
  }
  return error;
}

/**
 * What KSM would merge in the given processes (default: this one), per VMA,
 * per process and in total. Exact: every pair of pages found by hash is
 * compared byte for byte. Runs off the event loop; memory used is about 16
 * bytes per candidate page (reported as `memoryBytes`).
 *
 * Reads other processes with process_vm_readv, and itself the same way (so
 * memory freed meanwhile is skipped, never a crash). Pages never touched are
 * found through the process's pagemap and never read, so nothing is faulted in.
 * Twins are looked for among the targets only; KSM merges machine-wide.
 *
 * @throws TypeError / RangeError for bad arguments.
 * @throws KsmNoSuchProcessError when a target does not exist at the start
 *   (one that exits later is reported with `exited: true`).
 * @throws SystemError EACCES/EPERM (with a hint) without ptrace rights over a target.
 * @throws AbortError (code ABORT_ERR) when `signal` aborts.
 */
export async function estimate(options: EstimateOptions & { all: true }): Promise<EstimateResult & { all: EstimateAll }>;
export async function estimate(targets?: number | number[] | 'self', options?: EstimateOptions): Promise<EstimateResult>;
export async function estimate(
  targetsOrOptions?: number | number[] | 'self' | EstimateOptions,
  options?: EstimateOptions,
): Promise<EstimateResult> {
  // estimate({ all: true }): the options come first when there are no targets.
  const optionsFirst = isPlainObject(targetsOrOptions);
  if (optionsFirst && options !== undefined) throw invalidType('targets', "a pid, an array of pids or 'self'", targetsOrOptions);
  const targets = optionsFirst ? undefined : (targetsOrOptions as number | number[] | 'self' | undefined);
  const opts = checkOptions<EstimateOptions>(optionsFirst ? targetsOrOptions : options);
  const all = checkBoolean('options.all', opts.all) ?? false;
  if (all && (targets !== undefined || opts.pids !== undefined)) {
    throw invalidType('targets', 'absent with options.all (every process is a target)', targets ?? opts.pids);
  }
  const top = optionalNumber('options.top', opts.top, { integer: true, min: 0, max: 1e6 }) ?? 20;
  const pids = all ? [] : checkTargets(targets, opts.pids);
  const intervalMs = checkNonNegative('options.intervalMs', opts.intervalMs, 86_400_000) ?? 0;
  const onlyMergeable = checkBoolean('options.onlyMergeable', opts.onlyMergeable) ?? false;
  const minRegionBytes = checkNonNegative('options.minRegionBytes', opts.minRegionBytes, Number.MAX_SAFE_INTEGER) ?? 0;
  const useZeroOption = checkBoolean('options.useZeroPages', opts.useZeroPages);
  const maxSharingOption = optionalNumber('options.maxPageSharing', opts.maxPageSharing, { integer: true, min: 2, max: 1e9 });
  const threads = optionalNumber('options.threads', opts.threads, { integer: true, min: 1, max: 256 }) ?? defaultEstimateThreads();
  const signal = checkSignal(opts.signal);
  const onProgress = checkFunction('options.onProgress', opts.onProgress);
  const native = requireKsm();
  if (signal?.aborted) throw abortError(signal);

  const started = performance.now();
  const stat = useZeroOption === undefined || maxSharingOption === undefined ? systemStat() : undefined;
  const useZeroPages = useZeroOption ?? stat?.useZeroPages ?? false;
  const maxPageSharing = maxSharingOption ?? stat?.maxPageSharing ?? 256;
  const page = native.pageSize();

  // A thread id names its process: each process is estimated once.
  const plans: Plan[] = [];
  const names: VmaNames[] = [];
  let resolved: ProcessTarget[];
  let machine: Awaited<ReturnType<typeof allTargets>> | undefined;
  if (all) {
    machine = await allTargets('/');
    if (signal?.aborted) throw abortError(signal);
    resolved = machine.targets.map((t) => t.target);
    for (const t of machine.targets) {
      plans.push(plan(t.target.pid, t.vmas, onlyMergeable, minRegionBytes, page));
      // Every process of the machine: its kinds from the layout alone, no thread or memory reads.
      names.push({ kinds: await kindsOf(t.target, t.vmas, undefined, false), labels: labelsOf(t.target) });
    }
  } else {
    resolved = distinctTargets('/', pids);
    // Each smaps read is the kernel walking that process's page tables on one
    // thread: several targets are read side by side (on the reader threads).
    const read = await mapLimit(resolved, READ_CONCURRENCY, async (target) => {
      const vmas = await readVmas(target);
      return { vmas, kinds: await kindsOf(target, vmas) };
    });
    read.forEach(({ vmas, kinds }, i) => {
      const target = resolved[i]!;
      plans.push(plan(target.pid, vmas, onlyMergeable, minRegionBytes, page));
      names.push({ kinds, labels: labelsOf(target) });
    });
  }
  const mergeAny = await Promise.all(resolved.map((target) => readKsmStat(target).then((stat) => stat.mergeAny, () => undefined)));

  let progressError: unknown;
  const handle = native.estimatePages(
    plans.map((p) => ({ pid: p.pid, ranges: p.ranges, readable: p.readable, expectedPages: p.expectedPages })),
    {
      intervalMs,
      maxPageSharing,
      expectedPages: plans.reduce((sum, p) => sum + p.expectedPages, 0),
      batchPages: BATCH_PAGES,
      pagemapScan: pagemapScanEnabled(),
      hash: hashFor(),
      threads,
      skipRefused: all,
    },
    onProgress === undefined
      ? undefined
      : (phase, done, total) => {
          if (progressError !== undefined) return;
          try {
            onProgress({ phase: phase as EstimateProgress['phase'], done, total });
          } catch (error) {
            progressError = error;
            handle.cancel();
          }
        },
  );
  const onAbort = (): void => handle.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  let raw: NativeEstimateResult;
  try {
    raw = await handle.promise;
  } catch (error) {
    throw nativeError(error);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (progressError !== undefined) throw progressError;
  if (raw.cancelled) throw abortError(signal!);

  const result = await assemble(raw, plans, names, mergeAny, {
    page,
    useZeroPages,
    maxPageSharing,
    intervalMs,
    elapsedMs: performance.now() - started,
  });
  if (machine === undefined) return result;
  // Those that refused process_vm_readv (ptrace rights) join the skipped list.
  const skipped: EstimateSkipped[] = [...machine.skipped];
  const refused = new Set(raw.targets.filter((t) => t.refused).map((t) => t.pid));
  for (const pid of refused) {
    skipped.push({ pid, comm: machine.comms.get(pid), reason: 'not allowed', detail: `EPERM: process_vm_readv or pagemap refused (${PTRACE_HINT})` });
  }
  skipped.sort((a, b) => a.pid - b.pid);
  result.processes = result.processes.filter((p) => !refused.has(p.pid));
  result.all = {
    listed: machine.listed,
    estimated: result.processes.length,
    skippedCounts: countSkipped(skipped),
    skipped,
    ...topLists(result.processes, machine.comms, top),
  };
  return result;
}

/** What each VMA of a target is, and the labels inside it. */
interface VmaNames {
  kinds: Map<SmapsSummary, Classified>;
  labels: ReadonlyArray<{ start: bigint; end: bigint; label: string }>;
}

function labelIn(names: VmaNames | undefined, vma: SmapsSummary): string | undefined {
  const inside = names?.labels.filter((l) => l.start < vma.end && l.end > vma.start).map((l) => l.label) ?? [];
  return inside.length === 0 ? undefined : [...new Set(inside)].join(', ');
}

/** VMAs assembled between two turns of the event loop (a process may have tens of thousands). */
const VMAS_PER_SLICE = 2048;

async function assemble(
  raw: NativeEstimateResult,
  plans: Plan[],
  names: VmaNames[],
  mergeAny: Array<boolean | undefined>,
  config: { page: number; useZeroPages: boolean; maxPageSharing: number; intervalMs: number; elapsedMs: number },
): Promise<EstimateResult> {
  const { page, useZeroPages, maxPageSharing } = config;
  // Range r's figures are stats[r * PAGE_STAT_COUNT + PAGE_STAT.<name>].
  const at = (stats: Float64Array, range: number, field: number): number => stats[range * PAGE_STAT_COUNT + field] ?? 0;

  // Zero pages: with use_zero_pages each one maps the kernel's zero page and
  // frees its own; without, they are one class of identical pages like any.
  let zeroTotal = 0;
  raw.targets.forEach((target, t) => {
    plans[t]!.range.forEach((r) => {
      if (r >= 0) zeroTotal += at(target.stats, r, PAGE_STAT.zeroPages);
    });
  });
  // k identical pages keep ceil(k / max_page_sharing) copies; a last group
  // of one stays unmerged, so it is no KSM page.
  const zeroCopies = zeroTotal < 2 ? zeroTotal : Math.ceil(zeroTotal / maxPageSharing);
  const zeroKept = useZeroPages || zeroTotal < 2
    ? 0
    : Math.floor(zeroTotal / maxPageSharing) + (zeroTotal % maxPageSharing >= 2 ? 1 : 0);
  const zeroSaved = useZeroPages ? zeroTotal : zeroTotal - zeroCopies;
  const zeroShare = zeroTotal === 0 ? 0 : zeroSaved / zeroTotal;

  const processes: EstimateProcess[] = [];
  const total = emptyCounts();
  let assembled = 0;
  for (const [t, p] of plans.entries()) {
    const target = raw.targets[t]!;
    const proc: EstimateProcess = {
      ...emptyCounts(),
      pid: p.pid,
      exited: target.exited,
      mergeAny: mergeAny[t],
      candidatePagesMergeableNow: 0,
      candidatePagesAfterEnableMerge: 0,
      skippedVmas: 0,
      unreadableVmas: 0,
      vmas: [],
      share: 0,
    };
    for (let v = 0; v < p.vmas.length; v++) {
      if (++assembled % VMAS_PER_SLICE === 0) await yieldToLoop();
      const vma = p.vmas[v]!;
      const r = p.range[v]!;
      const counts = emptyCounts();
      if (r >= 0) {
        for (const field of COUNT_FIELDS) counts[field] = at(target.stats, r, PAGE_STAT[field]);
        counts.predictedSavedPages = at(target.stats, r, PAGE_STAT.savedPages) + counts.zeroPages * zeroShare;
      }
      const mergeable = vma.vmFlags.includes('mg');
      const compatible = ksmCompatible(vma);
      const status = p.status[v]!;
      if (status === 'incompatible' || status === 'filtered') proc.skippedVmas++;
      if (status === 'unreadable') proc.unreadableVmas++;
      if (mergeable) proc.candidatePagesMergeableNow += counts.candidatePages;
      else if (compatible) proc.candidatePagesAfterEnableMerge += counts.candidatePages;
      addCounts(proc, counts);
      const classified = names[t]?.kinds.get(vma);
      proc.vmas.push({
        start: vma.start,
        end: vma.end,
        perms: vma.perms,
        pathname: vma.pathname,
        kind: classified?.kind ?? regionKind(vma).kind,
        kindEvidence: classified?.evidence,
        label: labelIn(names[t], vma),
        vmFlags: vma.vmFlags,
        mergeable,
        ksmCompatible: compatible,
        candidateAfterEnableMerge: compatible && !mergeable,
        status,
        reason: p.reason[v],
        share: 0,
        ...counts,
      });
    }
    addCounts(total, proc);
    processes.push(proc);
  }

  // The total is whole by construction; the per-VMA shares are fractions of it.
  total.predictedSavedPages = Math.round(total.predictedSavedPages);
  const saved = total.predictedSavedPages;
  for (const proc of processes) {
    proc.predictedSavedBytes = proc.predictedSavedPages * page;
    proc.share = saved > 0 ? proc.predictedSavedPages / saved : 0;
    for (const vma of proc.vmas) {
      vma.predictedSavedBytes = vma.predictedSavedPages * page;
      vma.share = saved > 0 ? vma.predictedSavedPages / saved : 0;
    }
  }
  total.predictedSavedBytes = saved * page;

  return {
    ...total,
    processes,
    pageSize: page,
    useZeroPages,
    maxPageSharing,
    intervalMs: config.intervalMs,
    predictedPagesShared: raw.keptPages + zeroKept,
    predictedPagesSharing: raw.sharingPages + (useZeroPages ? 0 : zeroSaved),
    predictedZeroPages: useZeroPages ? zeroTotal : 0,
    hashCollisions: raw.hashCollisions,
    memoryBytes: raw.memoryBytes,
    pagesHashed: raw.pagesHashed,
    pfnVisible: raw.pfnVisible,
    threads: raw.threads,
    elapsedMs: config.elapsedMs,
    timings: {
      pagemapMs: raw.timings.pagemapNs / 1e6,
      sampleMs: raw.timings.sampleNs / 1e6,
      resampleMs: raw.timings.resampleNs / 1e6,
      confirmMs: raw.timings.confirmNs / 1e6,
    },
  };
}
