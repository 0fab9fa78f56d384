/**
 * Every process KSM knows about, from /proc/PID/ksm_stat: what `status`,
 * `top` and the exporter list. Processes that exit while they are read are
 * skipped, not reported as errors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { KsmNoSuchProcessError, isSystemError } from '../errors.js';
import { procPath } from '../kernel/paths.js';
import { assertProcRoot, ksmStat, type KsmStat } from '../kernel/ksm-stat.js';
import { profit, type ProfitMethod } from './profit.js';
import { checkBoolean, checkOptions, checkRoot, type RootOption } from '../validate.js';

export interface KsmProcess {
  pid: number;
  /** /proc/PID/comm: the kernel's 15-character name of the process. */
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
}

export interface KsmProcessList {
  processes: KsmProcess[];
  /** Pids whose ksm_stat could not be read (EACCES without root), with the error code. */
  unreadable: Array<{ pid: number; code: string }>;
}

function readComm(root: string, pid: number): string | undefined {
  try {
    return fs.readFileSync(procPath(root, pid, 'comm'), 'utf8').replace(/\n$/, '');
  } catch {
    return undefined;
  }
}

/**
 * Scans /proc/[0-9]* for processes with KSM accounting, in pid order.
 * Kernel threads (no mm) report zeros and are never listed.
 */
export function ksmProcesses(options?: KsmProcessesOptions): KsmProcessList {
  const opts = checkOptions<KsmProcessesOptions>(options);
  const root = checkRoot(opts);
  const candidates = checkBoolean('options.candidates', opts.candidates) ?? false;
  assertProcRoot(root);

  const pids = fs
    .readdirSync(path.join(root, 'proc'))
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .sort((a, b) => a - b);

  const processes: KsmProcess[] = [];
  const unreadable: KsmProcessList['unreadable'] = [];
  for (const pid of pids) {
    let stat: KsmStat;
    try {
      stat = ksmStat(pid, { root });
    } catch (error) {
      if (error instanceof KsmNoSuchProcessError) continue;
      if (isSystemError(error)) {
        // ESRCH/ENOENT: the process left between readdir and read.
        if (error.code === 'ESRCH' || error.code === 'ENOENT') continue;
        unreadable.push({ pid, code: error.code });
        continue;
      }
      throw error;
    }
    const merging = (stat.mergingPages ?? 0) > 0 || (stat.zeroPages ?? 0) > 0;
    const known = merging || (stat.rmapItems ?? 0) > 0 || stat.mergeAny === true || stat.mergeable === true;
    if (!(merging || (candidates && known))) continue;
    const comm = readComm(root, pid);
    if (comm === undefined && !fs.existsSync(procPath(root, pid))) continue; // exited meanwhile
    processes.push({ pid, comm: comm ?? '', stat, merging });
  }
  return { processes, unreadable };
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

/** profit(pid), reduced to the figures a process table and the metrics show. */
export async function fairShare(pid: number | undefined, options: { exact?: boolean; root?: string } = {}): Promise<FairShare> {
  const opts: { exact?: boolean; root?: string } = {};
  if (options.exact !== undefined) opts.exact = options.exact;
  if (options.root !== undefined) opts.root = options.root;
  const report = await profit(pid, opts);
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
