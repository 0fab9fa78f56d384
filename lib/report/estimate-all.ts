/**
 * estimate({ all: true }): the whole-machine dry run. Every process the
 * caller may read is a target; kernel threads, processes whose smaps it may
 * not read, that time out (a held mmap lock) or exit before they are read
 * are left out and listed with why; processes that refuse process_vm_readv
 * (ptrace rights) are left out by the native pass and listed the same way.
 * The result also says where the duplicates are: the processes and the
 * mappings that hold most of the predicted saving.
 */
import { KsmNoSuchProcessError, KsmTimeoutError, isSystemError } from '../errors.js';
import { listPidsAsync, readComm } from '../kernel/processes.js';
import { readSmaps } from '../kernel/smaps-reader.js';
import type { SmapsSummary } from '../kernel/smaps.js';
import { targetOf, type ProcessTarget } from '../kernel/target.js';
import { mapLimit } from '../concurrency.js';

/** Why a process is not in an `all` estimate. */
export type EstimateSkipReason = 'kernel thread' | 'not allowed' | 'timed out' | 'exited' | 'failed';

export interface EstimateSkipped {
  pid: number;
  /** The kernel's name of the process (comm) when it could be read. */
  comm: string | undefined;
  reason: EstimateSkipReason;
  /** The error's code and message, for 'not allowed', 'timed out' and 'failed'. */
  detail: string | undefined;
}

/** One entry of the top lists: where the predicted saving is. */
export interface EstimateTopProcess {
  pid: number;
  comm: string | undefined;
  predictedSavedBytes: number;
  /** Of the whole predicted saving. */
  share: number;
  candidatePages: number;
  twinInOtherProcess: number;
}

export interface EstimateTopVma extends EstimateTopProcess {
  start: bigint;
  end: bigint;
  pathname: string;
  mergeable: boolean;
}

/** What `all: true` adds to an estimate. */
export interface EstimateAll {
  /** Processes listed in /proc when it began. */
  listed: number;
  /** Processes estimated (EstimateResult.processes). */
  estimated: number;
  /** Left out, by reason, and one by one. */
  skippedCounts: Record<EstimateSkipReason, number>;
  skipped: EstimateSkipped[];
  /** The processes and mappings with the largest predicted saving, largest first (at most `top` each). */
  topProcesses: EstimateTopProcess[];
  topVmas: EstimateTopVma[];
}

/** Per process, how long its smaps may take (a process whose mmap lock is held is left out). */
export const ALL_DEADLINE_MS = 5_000;
export const READ_CONCURRENCY = 8;

function detailOf(error: unknown): string {
  if (isSystemError(error)) return `${error.code ?? ''}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

export interface AllTargets {
  listed: number;
  targets: Array<{ target: ProcessTarget; vmas: SmapsSummary[] }>;
  skipped: EstimateSkipped[];
  comms: Map<number, string | undefined>;
}

/** Every process of the machine with its VMAs, and the ones left out with why. */
export async function allTargets(root: string, deadlineMs = ALL_DEADLINE_MS): Promise<AllTargets> {
  const pids = await listPidsAsync(root);
  const skipped: EstimateSkipped[] = [];
  const comms = new Map<number, string | undefined>();
  const candidates: ProcessTarget[] = [];
  for (const pid of pids) {
    const comm = readComm(root, pid);
    comms.set(pid, comm);
    const target = targetOf(root, pid);
    if (target.kernelThread === true) skipped.push({ pid, comm, reason: 'kernel thread', detail: undefined });
    else candidates.push(target);
  }
  const read = await mapLimit(candidates, READ_CONCURRENCY, async (target) => {
    try {
      return { target, vmas: (await readSmaps(target, deadlineMs)).vmas };
    } catch (error) {
      const comm = comms.get(target.pid);
      if (error instanceof KsmNoSuchProcessError) skipped.push({ pid: target.pid, comm, reason: 'exited', detail: undefined });
      else if (error instanceof KsmTimeoutError) skipped.push({ pid: target.pid, comm, reason: 'timed out', detail: detailOf(error) });
      else if (isSystemError(error) && (error.code === 'EACCES' || error.code === 'EPERM')) {
        skipped.push({ pid: target.pid, comm, reason: 'not allowed', detail: detailOf(error) });
      } else if (isSystemError(error) && (error.code === 'ENOENT' || error.code === 'ESRCH')) {
        skipped.push({ pid: target.pid, comm, reason: 'exited', detail: undefined });
      } else skipped.push({ pid: target.pid, comm, reason: 'failed', detail: detailOf(error) });
      return undefined;
    }
  });
  const targets = read.filter((r): r is { target: ProcessTarget; vmas: SmapsSummary[] } => r !== undefined);
  return { listed: pids.length, targets, skipped, comms };
}

export function countSkipped(skipped: readonly EstimateSkipped[]): Record<EstimateSkipReason, number> {
  const counts: Record<EstimateSkipReason, number> = { 'kernel thread': 0, 'not allowed': 0, 'timed out': 0, exited: 0, failed: 0 };
  for (const s of skipped) counts[s.reason]++;
  return counts;
}

interface TopSource {
  pid: number;
  predictedSavedBytes: number;
  share: number;
  candidatePages: number;
  twinInOtherProcess: number;
  vmas: Array<{ start: bigint; end: bigint; pathname: string; mergeable: boolean; predictedSavedBytes: number; share: number; candidatePages: number; twinInOtherProcess: number }>;
}

/** The `count` processes and VMAs with the largest predicted saving (none that saves nothing). */
export function topLists(
  processes: readonly TopSource[],
  comms: ReadonlyMap<number, string | undefined>,
  count: number,
): { topProcesses: EstimateTopProcess[]; topVmas: EstimateTopVma[] } {
  const bySaving = (a: { predictedSavedBytes: number }, b: { predictedSavedBytes: number }): number => b.predictedSavedBytes - a.predictedSavedBytes;
  const topProcesses = processes
    .filter((p) => p.predictedSavedBytes > 0)
    .map((p) => ({
      pid: p.pid,
      comm: comms.get(p.pid),
      predictedSavedBytes: p.predictedSavedBytes,
      share: p.share,
      candidatePages: p.candidatePages,
      twinInOtherProcess: p.twinInOtherProcess,
    }))
    .sort(bySaving)
    .slice(0, count);
  const topVmas = processes
    .flatMap((p) =>
      p.vmas
        .filter((v) => v.predictedSavedBytes > 0)
        .map((v) => ({
          pid: p.pid,
          comm: comms.get(p.pid),
          start: v.start,
          end: v.end,
          pathname: v.pathname,
          mergeable: v.mergeable,
          predictedSavedBytes: v.predictedSavedBytes,
          share: v.share,
          candidatePages: v.candidatePages,
          twinInOtherProcess: v.twinInOtherProcess,
        })),
    )
    .sort(bySaving)
    .slice(0, count);
  return { topProcesses, topVmas };
}
