/**
 * The processes of a machine: /proc's numeric directories (one per thread
 * group; threads are reachable as /proc/TID but not listed), and the few
 * per-process files every listing needs.
 */
import * as path from 'node:path';

import { exists, listDirectory, listDirectoryAsync, readTextOrUndefined } from './files.js';
import { procPath } from './paths.js';

const PID_NAME = /^\d+$/;

function pidsOf(names: string[]): number[] {
  return names.filter((name) => PID_NAME.test(name)).map(Number).sort((a, b) => a - b);
}

/** Every process under `root`, in pid order; throws when /proc itself cannot be listed. */
export function listPids(root: string): number[] {
  return pidsOf(listDirectory(path.join(root, 'proc')));
}

/** The same, off the event loop. */
export async function listPidsAsync(root: string): Promise<number[]> {
  return pidsOf(await listDirectoryAsync(path.join(root, 'proc')));
}

/** /proc/PID/comm: the kernel's name of the process (15 bytes at most), raw; undefined when unreadable. */
export function readComm(root: string, pid: number): string | undefined {
  return readTextOrUndefined(procPath(root, pid, 'comm'))?.replace(/\n$/, '');
}

/** The process's /proc directory is still there (it has not been reaped). */
export function processExists(root: string, pid: number | 'self'): boolean {
  return exists(procPath(root, pid));
}

/** The first process whose comm is `name` (kernel threads such as ksmd included). */
export function findByComm(root: string, name: string): number | undefined {
  let pids: number[];
  try {
    pids = listPids(root);
  } catch {
    return undefined;
  }
  return pids.find((pid) => readComm(root, pid) === name);
}
