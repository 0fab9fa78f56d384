/**
 * How much memory this process may still take: MemAvailable, and the
 * headroom of its memory cgroup at every level up to the root.
 */
import * as path from 'node:path';

import { readTextOrUndefined } from './files.js';

/** MemAvailable from /proc/meminfo, in bytes. */
export function memAvailable(root = '/'): number | undefined {
  const text = readTextOrUndefined(path.join(root, 'proc', 'meminfo'));
  const match = text === undefined ? null : /^MemAvailable:\s+(\d+) kB$/m.exec(text);
  if (!match) return undefined;
  const kib = Number(match[1]);
  return Number.isSafeInteger(kib * 1024) ? kib * 1024 : undefined;
}

function readBytes(file: string): number | 'max' | undefined {
  const text = readTextOrUndefined(file)?.trim();
  if (text === undefined) return undefined;
  if (text === 'max') return 'max';
  if (!/^\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * Headroom of the memory cgroup of this process: cgroup v2 (`0::/path`,
 * memory.max / memory.current) or v1 (`N:memory:/path`,
 * memory.limit_in_bytes / memory.usage_in_bytes), the least over the cgroup
 * and its ancestors, since any of their limits can trigger the OOM killer.
 */
export function cgroupHeadroom(root = '/'): { cgroup: string | undefined; headroom: number | undefined } {
  const text = readTextOrUndefined(path.join(root, 'proc', 'self', 'cgroup'));
  if (text === undefined) return { cgroup: undefined, headroom: undefined };
  let dir: string | undefined;
  let cgroup: string | undefined;
  let files: [string, string] | undefined;
  for (const line of text.split('\n')) {
    const [, , controllers, where] = /^(\d+):([^:]*):(.*)$/.exec(line) ?? [];
    if (where === undefined || controllers === undefined) continue;
    if (controllers.split(',').includes('memory')) {
      cgroup = where;
      dir = path.join(root, 'sys', 'fs', 'cgroup', 'memory');
      files = ['memory.limit_in_bytes', 'memory.usage_in_bytes'];
      break;
    }
    if (controllers === '' && line.startsWith('0::')) {
      cgroup = where;
      dir = path.join(root, 'sys', 'fs', 'cgroup');
      files = ['memory.max', 'memory.current'];
    }
  }
  if (dir === undefined || cgroup === undefined || files === undefined) return { cgroup: undefined, headroom: undefined };
  let headroom: number | undefined;
  // From the cgroup up to the root of the mount; the root has no limit files.
  const parts = cgroup.split('/').filter(Boolean);
  for (let depth = parts.length; depth >= 0; depth--) {
    const level = path.join(dir, ...parts.slice(0, depth));
    const max = readBytes(path.join(level, files[0]));
    const current = readBytes(path.join(level, files[1]));
    if (typeof max !== 'number' || typeof current !== 'number') continue;
    // v1 spells "no limit" as a huge page-aligned number.
    if (max >= 2 ** 62) continue;
    const free = Math.max(0, max - current);
    headroom = headroom === undefined ? free : Math.min(headroom, free);
  }
  return { cgroup, headroom };
}

