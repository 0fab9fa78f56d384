/**
 * Every process KSM knows about, from each process's ksm_stat: what `status`,
 * `top` and the exporter list. Processes that exit while they are read are
 * left out, not reported as errors; a process whose files do not answer in
 * time (its mmap lock is held) is skipped and named, never waited on.
 */
import { mapLimit } from '../concurrency.js';
import { KsmNoSuchProcessError, KsmTimeoutError, isSystemError } from '../errors.js';
import { readKsmStat, type KsmStat } from '../kernel/ksm-stat.js';
import { listPidsAsync, processExists, readComm } from '../kernel/processes.js';
import { assertProcRoot, type ProcessTarget } from '../kernel/target.js';
import { checkBoolean, checkOptions, checkRoot, checkTimeout, type RootOption } from '../validate.js';
import { profitOfTarget } from './profit/index.js';
import type { ProfitMethod } from './profit/types.js';

export interface KsmProcess {
  pid: number;
  /** comm: the kernel's 15-character name of the process, raw (escape it before printing). */
  comm: string;
  stat: KsmStat;
  /** Some page of the process is merged (ksm_merging_pages or ksm_zero_pages > 0). */
  merging: boolean;
}

export interface KsmProcessesOptions extends RootOption {
  /**
   * Also list processes KSM scans but has merged nothing of yet (rmap items,
   * a mergeable VMA or merge-any). Default false: only processes that merge.
   */
  candidates?: boolean;
  /**
   * Per process: milliseconds to wait for its ksm_stat before skipping it
   * (default 2000). Reading ksm_mergeable waits for the process's mmap lock,
   * which any process can hold for seconds.
   */
  timeoutMs?: number;
}

export interface KsmProcessList {
  processes: KsmProcess[];
  /** Pids whose ksm_stat could not be read (EACCES without root), with the error code. */
  unreadable: Array<{ pid: number; code: string }>;
  /** Processes skipped because their ksm_stat did not answer within `timeoutMs`, with their comm (raw). */
  stalled: Array<{ pid: number; comm: string }>;
}

/** Default per-process deadline of every reader that lists the machine. */
export const PROCESS_DEADLINE_MS = 2000;
/** Processes read at once: stalls overlap instead of adding up. */
const CONCURRENCY = 16;

type Outcome =
  | { kind: 'listed'; process: KsmProcess }
  | { kind: 'skip' }
  | { kind: 'unreadable'; code: string }
  | { kind: 'stalled'; comm: string };

async function readOne(root: string, pid: number, candidates: boolean, deadlineMs: number): Promise<Outcome> {
  const target: ProcessTarget = { pid, dir: pid, root, self: root === '/' && pid === process.pid, thread: undefined };
  let stat: KsmStat;
  try {
    stat = await readKsmStat(target, deadlineMs);
  } catch (error) {
    if (error instanceof KsmNoSuchProcessError) return { kind: 'skip' };
    if (error instanceof KsmTimeoutError) return { kind: 'stalled', comm: readComm(root, pid) ?? '' };
    if (isSystemError(error)) return { kind: 'unreadable', code: error.code };
    throw error;
  }
  const merging = (stat.mergingPages ?? 0) > 0 || (stat.zeroPages ?? 0) > 0;
  const known = merging || (stat.rmapItems ?? 0) > 0 || stat.mergeAny === true || stat.mergeable === true;
  if (!(merging || (candidates && known))) return { kind: 'skip' };
  const comm = readComm(root, pid);
  if (comm === undefined && !processExists(root, pid)) return { kind: 'skip' }; // exited meanwhile
  return { kind: 'listed', process: { pid, comm: comm ?? '', stat, merging } };
}

/**
 * Scans /proc for processes with KSM accounting, in pid order, off the event
 * loop. Kernel threads (no mm) report zeros and are never listed.
 */
export async function ksmProcesses(options?: KsmProcessesOptions): Promise<KsmProcessList> {
  const opts = checkOptions<KsmProcessesOptions>(options);
  const root = checkRoot(opts);
  const candidates = checkBoolean('options.candidates', opts.candidates) ?? false;
  const deadlineMs = checkTimeout('options.timeoutMs', opts.timeoutMs) ?? PROCESS_DEADLINE_MS;
  assertProcRoot(root);

  const pids = await listPidsAsync(root);
  const outcomes = await mapLimit(pids, CONCURRENCY, (pid) => readOne(root, pid, candidates, deadlineMs));
  const list: KsmProcessList = { processes: [], unreadable: [], stalled: [] };
  outcomes.forEach((outcome, i) => {
    const pid = pids[i]!;
    if (outcome.kind === 'listed') list.processes.push(outcome.process);
    else if (outcome.kind === 'unreadable') list.unreadable.push({ pid, code: outcome.code });
    else if (outcome.kind === 'stalled') list.stalled.push({ pid, comm: outcome.comm });
  });
  return list;
}

/** What status, top and the metrics take from profit(): a process's fair share, in total and per label. */
export interface FairShare {
  pid: number;
  /** Bytes backed by KSM pages (smaps KSM:). */
  mergedBytes: number;
  /** The fair share of the saving: a page mapped k times gives each mapper (k-1)/k. */
  savedBytes: number;
  method: ProfitMethod;
  /** Summed per label of allocMergeable / markMergeable buffers (this process's own labels only). */
  labels: Array<{ label: string; mergedBytes: number; savedBytes: number }>;
}

/**
 * profit() of a listed process, reduced to the figures a process table and
 * the metrics show, within `deadlineMs` per file read.
 *
 * @throws KsmTimeoutError past the deadline; as profit() otherwise.
 */
export async function fairShare(
  pid: number | undefined,
  options: { exact?: boolean; root?: string; deadlineMs?: number } = {},
): Promise<FairShare> {
  const root = options.root ?? '/';
  const target: ProcessTarget = pid === undefined
    ? { pid: process.pid, dir: 'self', root, self: root === '/', thread: undefined }
    : { pid, dir: pid, root, self: root === '/' && pid === process.pid, thread: undefined };
  // Only the figures are wanted here: no reads of the process's threads or memory for kinds.
  const report = await profitOfTarget(target, options.exact, options.deadlineMs ?? PROCESS_DEADLINE_MS, false);
  const labels = new Map<string, { label: string; mergedBytes: number; savedBytes: number }>();
  for (const region of report.regions) {
    if (region.label === undefined) continue;
    const entry = labels.get(region.label) ?? { label: region.label, mergedBytes: 0, savedBytes: 0 };
    entry.mergedBytes += region.mergedBytes;
    entry.savedBytes += region.savedBytes;
    labels.set(region.label, entry);
  }
  return {
    pid: report.pid,
    mergedBytes: report.total.mergedBytes,
    savedBytes: report.total.savedBytes,
    method: report.method,
    labels: [...labels.values()],
  };
}
