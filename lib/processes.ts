/**
 * Every process KSM knows about, from /proc/PID/ksm_stat: what `status`,
 * `top` and the exporter list. Processes that exit while they are read are
 * skipped, not reported as errors.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { KsmNoSuchProcessError, isSystemError } from './errors.js';
import { procPath } from './paths.js';
import { assertProcRoot, ksmStat, type KsmStat } from './procfs.js';
import { checkBoolean, checkOptions, checkRoot, type RootOption } from './validate.js';

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
