/**
 * Machine-wide facts outside /sys/kernel/mm/ksm that explain what KSM does
 * here: the kernel release, how /sys is mounted, NUMA nodes, the THP mode.
 */
import * as path from 'node:path';

import { accessError, listDirectory, readTextOrUndefined } from './files.js';
import { ksmSysfsDir, thpSysfsDir } from './paths.js';

/** `uname -r` of the machine under `root` (/proc/sys/kernel/osrelease). */
export function kernelRelease(root: string): string | undefined {
  return readTextOrUndefined(path.join(root, 'proc', 'sys', 'kernel', 'osrelease'))?.trim();
}

/** 6.18.44-fc-v595 -> [6, 18]. */
export function parseRelease(release: string | undefined): [number, number] | undefined {
  const match = /^(\d+)\.(\d+)/.exec(release ?? '');
  return match ? [Number(match[1]), Number(match[2])] : undefined;
}

export interface MountFacts {
  /** The mount point that holds /sys/kernel/mm/ksm. */
  mountPoint: string;
  /** Per-mount options, e.g. `ro,nosuid,nodev,noexec,relatime`. */
  mountOptions: string;
  /** Superblock options after the ` - ` separator. */
  superOptions: string;
  readOnly: boolean;
}

/** The mount that holds `target` (default: the KSM sysfs directory), from a mountinfo text. */
export function parseMountinfo(text: string, target = '/sys/kernel/mm/ksm'): MountFacts | undefined {
  let best: MountFacts | undefined;
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const fields = left.trim().split(/\s+/);
    const mountPoint = fields[4];
    const mountOptions = fields[5];
    if (mountPoint === undefined || mountOptions === undefined) continue;
    const covers = mountPoint === '/' || target === mountPoint || target.startsWith(`${mountPoint}/`);
    // Later lines stack over earlier ones at the same point.
    if (!covers || (best && mountPoint.length < best.mountPoint.length)) continue;
    const superOptions = right.trim().split(/\s+/)[2] ?? '';
    const readOnly = mountOptions.split(',').includes('ro') || superOptions.split(',').includes('ro');
    best = { mountPoint, mountOptions, superOptions, readOnly };
  }
  return best;
}

/** How the KSM sysfs directory is mounted for this process (its mount namespace). */
export function ksmSysfsMount(root: string): MountFacts | undefined {
  const text = readTextOrUndefined(path.join(root, 'proc', 'self', 'mountinfo'));
  return text === undefined ? undefined : parseMountinfo(text);
}

/** The error code writing /sys/kernel/mm/ksm/run would give (access W_OK), undefined when writable. */
export function ksmRunWriteError(root: string): string | undefined {
  return accessError(path.join(ksmSysfsDir(root), 'run'), 'W_OK');
}

export interface NumaFacts {
  nodes: number | undefined;
  /** node0's distance row, e.g. [10, 21]. */
  distances: number[] | undefined;
}

export function numaNodes(root: string): NumaFacts {
  const dir = path.join(root, 'sys', 'devices', 'system', 'node');
  let nodes: number | undefined;
  try {
    nodes = listDirectory(dir).filter((name) => /^node\d+$/.test(name)).length;
  } catch {
    return { nodes: undefined, distances: undefined };
  }
  const distance = readTextOrUndefined(path.join(dir, 'node0', 'distance'));
  const distances = distance?.trim().split(/\s+/).map(Number).filter(Number.isFinite);
  return { nodes, distances: distances && distances.length > 0 ? distances : undefined };
}

/** The bracketed transparent-hugepage mode (`always`, `madvise`, `never`), where readable. */
export function thpMode(root: string): string | undefined {
  const text = readTextOrUndefined(path.join(thpSysfsDir(root), 'enabled'));
  return text === undefined ? undefined : /\[([^\]]+)\]/.exec(text)?.[1];
}
