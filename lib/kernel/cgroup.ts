/**
 * The cgroups of a process and the memory files of a cgroup.
 *
 * /proc/PID/cgroup has one line per hierarchy: `0::/path` for cgroup v2,
 * `N:controllers:/path` for each v1 hierarchy (a hybrid machine has both).
 * Where the hierarchies are mounted comes from /proc/self/mountinfo. Memory
 * is read from the same path in a hierarchy with the memory controller:
 * v2 memory.current / memory.stat `anon` / memory.max, or v1
 * memory.usage_in_bytes / memory.stat `total_rss` / memory.limit_in_bytes.
 * None of these files takes another process's mmap lock; reads are async
 * because a scrape makes hundreds of them.
 */
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';

import { isSystemError } from '../errors.js';
import { procPath } from './paths.js';

export interface CgroupV1Line {
  /** The hierarchy id (first field). */
  id: number;
  /** Controllers of the hierarchy (`memory`, `cpu,cpuacct` split), or `name=systemd`. */
  controllers: string[];
  path: string;
}

export interface ProcCgroup {
  /** The cgroup v2 path (the `0::` line); undefined where the kernel prints none (v1 only). */
  v2: string | undefined;
  v1: CgroupV1Line[];
}

/** The cgroup that names a process: what attribution groups it by. */
export interface PrimaryCgroup {
  path: string;
  /** `v2`, or the v1 hierarchy the path was taken from (`name=systemd`, `memory`, ...). */
  hierarchy: string;
}

/**
 * Parses /proc/PID/cgroup text. A path may hold ':' (only the first two
 * separate fields); a removed cgroup's " (deleted)" suffix is dropped.
 * Lines that are not `id:controllers:path` are ignored.
 */
export function parseProcCgroup(text: string): ProcCgroup {
  const result: ProcCgroup = { v2: undefined, v1: [] };
  for (const line of text.split('\n')) {
    const first = line.indexOf(':');
    const second = first < 0 ? -1 : line.indexOf(':', first + 1);
    if (second < 0) continue;
    const id = line.slice(0, first);
    if (!/^\d+$/.test(id)) continue;
    const where = line.slice(second + 1).replace(/ \(deleted\)$/, '');
    if (!where.startsWith('/')) continue;
    const controllers = line.slice(first + 1, second);
    if (id === '0' && controllers === '') result.v2 = where;
    else result.v1.push({ id: Number(id), controllers: controllers.split(',').filter(Boolean), path: where });
  }
  return result;
}

/**
 * The path that names the process: the v2 path, unless it is the root and
 * a v1 hierarchy says more (a hybrid machine whose v2 tree is unused);
 * among v1 hierarchies systemd's own, then memory, then any.
 */
export function primaryCgroup(cgroup: ProcCgroup): PrimaryCgroup {
  if (cgroup.v2 !== undefined && cgroup.v2 !== '/') return { path: cgroup.v2, hierarchy: 'v2' };
  const named = (controller: string): CgroupV1Line | undefined =>
    cgroup.v1.find((line) => line.controllers.includes(controller) && line.path !== '/');
  const v1 = named('name=systemd') ?? named('memory') ?? cgroup.v1.find((line) => line.path !== '/');
  if (v1 !== undefined) return { path: v1.path, hierarchy: v1.controllers.join(',') };
  return { path: '/', hierarchy: cgroup.v2 !== undefined ? 'v2' : 'v1' };
}

/** /proc/PID/cgroup, read and parsed; undefined when the process is gone. */
export async function readProcCgroup(pid: number, root: string): Promise<ProcCgroup | undefined> {
  try {
    return parseProcCgroup(await fsp.readFile(procPath(root, pid, 'cgroup'), 'utf8'));
  } catch (error) {
    if (isSystemError(error) && (error.code === 'ENOENT' || error.code === 'ESRCH')) return undefined;
    throw error;
  }
}

export interface CgroupMount {
  /** Where it is mounted, under the root given. */
  dir: string;
  /** The cgroup path at the mount point (`/` unless a namespace or bind mount moved it). */
  base: string;
}

export interface CgroupMounts {
  v2: CgroupMount | undefined;
  /** The v1 hierarchy holding the memory controller. */
  v1Memory: CgroupMount | undefined;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** The cgroup2 and v1 memory mounts of /proc/self/mountinfo text; the first of each wins. */
export function parseCgroupMounts(text: string, root: string): CgroupMounts {
  const mounts: CgroupMounts = { v2: undefined, v1Memory: undefined };
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (left === undefined || right === undefined) continue;
    const fields = left.split(' ');
    const [fstype, , superOptions] = right.split(' ');
    if (fields.length < 5) continue;
    const mount = { dir: path.join(root, unescapeMount(fields[4]!)), base: unescapeMount(fields[3]!) };
    if (fstype === 'cgroup2' && mounts.v2 === undefined) mounts.v2 = mount;
    if (fstype === 'cgroup' && mounts.v1Memory === undefined && (superOptions ?? '').split(',').includes('memory')) mounts.v1Memory = mount;
  }
  return mounts;
}

async function exists(file: string): Promise<boolean> {
  try {
    await fsp.access(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Where the hierarchies are: from /proc/self/mountinfo, else the usual
 * places (/sys/fs/cgroup as v2, /sys/fs/cgroup/unified, /sys/fs/cgroup/memory).
 */
export async function cgroupMounts(root: string): Promise<CgroupMounts> {
  try {
    const parsed = parseCgroupMounts(await fsp.readFile(procPath(root, 'self', 'mountinfo'), 'utf8'), root);
    if (parsed.v2 !== undefined || parsed.v1Memory !== undefined) return parsed;
  } catch {
    // No mountinfo (a fixture tree): guess below.
  }
  const base = path.join(root, 'sys', 'fs', 'cgroup');
  const v2 = (await exists(path.join(base, 'cgroup.controllers')))
    ? base
    : (await exists(path.join(base, 'unified', 'cgroup.controllers')))
      ? path.join(base, 'unified')
      : undefined;
  const v1 = (await exists(path.join(base, 'memory', 'memory.usage_in_bytes'))) ? path.join(base, 'memory') : undefined;
  return {
    v2: v2 === undefined ? undefined : { dir: v2, base: '/' },
    v1Memory: v1 === undefined ? undefined : { dir: v1, base: '/' },
  };
}

export interface CgroupMemory {
  /** memory.current (v2) or memory.usage_in_bytes (v1): everything the cgroup is charged. */
  currentBytes: number;
  /** Anonymous memory, what KSM can merge: memory.stat `anon` (v2) or `total_rss` (v1). */
  anonBytes: number | undefined;
  /** memory.max / memory.limit_in_bytes; undefined when unlimited. */
  maxBytes: number | undefined;
  source: 'v2' | 'v1';
  /** The directory read. */
  dir: string;
}

/** A cgroup path inside a mount, or undefined when the mount does not reach it. */
function dirOf(mount: CgroupMount, cgroupPath: string): string | undefined {
  const base = mount.base === '/' ? '' : mount.base;
  if (base !== '' && cgroupPath !== base && !cgroupPath.startsWith(`${base}/`)) return undefined;
  const rest = cgroupPath.slice(base.length);
  // A path relative to another cgroup namespace (`/../x`) is not under this mount.
  if (rest.split('/').includes('..')) return undefined;
  return path.join(mount.dir, rest);
}

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await fsp.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

function statField(text: string | undefined, key: string): number | undefined {
  const match = text === undefined ? null : new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return match === null ? undefined : Number(match[1]);
}

/** v1 prints "no limit" as the largest page-aligned long. */
const V1_UNLIMITED = 2 ** 62;

/**
 * The memory of one cgroup: from v2 where the memory controller is on for it,
 * else from the v1 memory hierarchy when `v1MemoryPath` (the process's own
 * v1 memory cgroup) is the same path. Undefined where neither has it.
 */
export async function readCgroupMemory(
  cgroupPath: string,
  mounts: CgroupMounts,
  v1MemoryPath: string | undefined,
): Promise<CgroupMemory | undefined> {
  const v2 = mounts.v2 === undefined ? undefined : dirOf(mounts.v2, cgroupPath);
  if (v2 !== undefined) {
    const current = await readOptional(path.join(v2, 'memory.current'));
    if (current !== undefined && /^\d+\s*$/.test(current)) {
      const max = (await readOptional(path.join(v2, 'memory.max')))?.trim();
      return {
        currentBytes: Number(current),
        anonBytes: statField(await readOptional(path.join(v2, 'memory.stat')), 'anon'),
        maxBytes: max === undefined || max === 'max' || !/^\d+$/.test(max) ? undefined : Number(max),
        source: 'v2',
        dir: v2,
      };
    }
  }
  if (mounts.v1Memory === undefined || v1MemoryPath === undefined) return undefined;
  if (v1MemoryPath !== cgroupPath && !v1MemoryPath.startsWith(`${cgroupPath}/`)) return undefined;
  const v1 = dirOf(mounts.v1Memory, cgroupPath);
  if (v1 === undefined) return undefined;
  const usage = await readOptional(path.join(v1, 'memory.usage_in_bytes'));
  if (usage === undefined || !/^\d+\s*$/.test(usage)) return undefined;
  const limit = Number((await readOptional(path.join(v1, 'memory.limit_in_bytes')))?.trim() ?? NaN);
  return {
    currentBytes: Number(usage),
    anonBytes: statField(await readOptional(path.join(v1, 'memory.stat')), 'total_rss'),
    maxBytes: Number.isFinite(limit) && limit < V1_UNLIMITED ? limit : undefined,
    source: 'v1',
    dir: v1,
  };
}
