/**
 * What KSM saves per cgroup, container, pod and systemd unit: every merging
 * process's fair share (profit()), summed over the processes of each group.
 * No per-cgroup KSM counter exists in the kernel, so this is the only such
 * figure; like the per-process shares it sums to pages_sharing x page size.
 */
import { mapLimit } from '../concurrency.js';
import { KsmNoSuchProcessError, KsmTimeoutError, isSystemError } from '../errors.js';
import { cgroupMounts, primaryCgroup, readCgroupMemory, readProcCgroup, type CgroupMemory, type CgroupMounts } from '../kernel/cgroup.js';
import type { KsmStat } from '../kernel/ksm-stat.js';
import { processExists } from '../kernel/processes.js';
import { rmapItemSize } from '../kernel/rmap.js';
import { systemStat } from '../kernel/sysfs.js';
import { pageSize } from '../merge/buffers.js';
import { checkBoolean, checkOptions, checkRoot, invalidType, outOfRange, type RootOption } from '../validate.js';
import { parseCgroupName, type CgroupName, type ContainerRuntime, type PodQosClass } from './cgroup-names.js';
import { fairShare, ksmProcesses, type FairShare, type KsmProcessList } from './processes.js';
import type { ProfitMethod } from './profit/types.js';

export type GroupBy = 'cgroup' | 'unit' | 'pod' | 'container';
export const GROUP_BY: readonly GroupBy[] = ['cgroup', 'unit', 'pod', 'container'];

export interface ProfitByGroupOptions extends RootOption {
  /** What to group by (default 'cgroup'). */
  by?: GroupBy;
  /** Fair shares page by page (root); default: profit()'s own default. */
  exact?: boolean;
}

export interface GroupMember {
  pid: number;
  comm: string;
  cgroup: string;
  mergedBytes: number;
  savedBytes: number;
}

export interface GroupProfit {
  /**
   * What this group is: the `by` asked for, or 'cgroup' for processes whose
   * cgroup name has none (not in a pod, a unit, a container): they keep the raw path.
   */
  kind: GroupBy;
  /** The pod uid, container id, unit name or cgroup path. */
  key: string;
  /** The cgroup the group stands for (the pod's, the unit's, the container's own), whose memory is read. */
  cgroup: string;
  /** The cgroups the members are in. */
  cgroups: string[];
  unit: string | undefined;
  slice: string | undefined;
  podUid: string | undefined;
  qosClass: PodQosClass | undefined;
  containerId: string | undefined;
  runtime: ContainerRuntime | undefined;
  /** Merging processes, by pid. */
  pids: number[];
  members: GroupMember[];
  /** ksm_merging_pages, summed (ksm_stat: read without smaps). */
  mergingPages: number;
  /** Bytes backed by KSM pages (smaps KSM), summed. */
  mergedBytes: number;
  /** Fair shares summed: a page mapped k times gives each mapper (k-1)/k. */
  savedBytes: number;
  /** ksm_zero_pages x page size, summed: empty pages merged into the zero page. */
  zeroPageBytes: number;
  /** ksm_rmap_items x rmap_item size, summed: what tracking the group's pages costs. */
  metadataBytes: number;
  /** savedBytes + zeroPageBytes - metadataBytes. */
  netBytes: number;
  /** The group cgroup's memory where its memory files are readable, else undefined. */
  memory: CgroupMemory | undefined;
}

export interface GroupProfitReport {
  by: GroupBy;
  /** 'exact' when every share was page-exact, else 'estimated'. */
  method: ProfitMethod;
  pageSize: number;
  /** Largest saving first. */
  groups: GroupProfit[];
  total: { processes: number; mergedBytes: number; savedBytes: number };
  /** The machine's pages_sharing x page size, read after the shares: what the groups add up to. */
  systemSavedBytes: number | undefined;
  /** Processes whose ksm_stat or smaps could not be read, with the error code. */
  unreadable: Array<{ pid: number; code: string }>;
}

/** One merging process with its share, as status, the metrics and profitByGroup() collect it. */
export interface ShareRow {
  pid: number;
  comm: string;
  stat: KsmStat;
  /** Undefined where the fair share was not asked for (the exporter's --no-fair-share): bytes count 0. */
  share: FairShare | undefined;
}

export interface ShareCollection {
  rows: ShareRow[];
  /** Listed by ksm_stat but not merging (the `candidates` asked for). */
  candidates: Array<{ pid: number; comm: string; stat: KsmStat }>;
  unreadable: Array<{ pid: number; code: string }>;
  /** Skipped: their files stayed locked past the per-process deadline (comm raw). */
  stalled: Array<{ pid: number; comm: string }>;
}

function errorCode(error: unknown): string {
  return typeof (error as { code?: unknown }).code === 'string' ? (error as { code: string }).code : 'ERR';
}

/**
 * Every merging process with its fair share. A process whose smaps cannot be
 * read is kept without one (share undefined) and listed as unreadable; one
 * that left meanwhile is dropped.
 */
export async function collectShares(options: { root: string; exact?: boolean; candidates?: boolean }): Promise<ShareCollection> {
  return sharesOf(await ksmProcesses({ root: options.root, candidates: options.candidates === true }), options);
}

/** collectShares() for a listing already made (the exporter times the two apart). */
export async function sharesOf(list: KsmProcessList, options: { root: string; exact?: boolean }): Promise<ShareCollection> {
  const rows: ShareRow[] = [];
  const candidates: ShareCollection['candidates'] = [];
  const unreadable = [...list.unreadable];
  const stalled = [...list.stalled];
  const merging = list.processes.filter((p) => p.merging);
  for (const p of list.processes) if (!p.merging) candidates.push({ pid: p.pid, comm: p.comm, stat: p.stat });
  const opts: { exact?: boolean; root?: string } = { root: options.root };
  if (options.exact !== undefined) opts.exact = options.exact;
  // A few at a time: a process whose smaps is locked costs its deadline once, not once per process after it.
  const shares = await mapLimit(merging, 8, async (p): Promise<FairShare | Error> => {
    try {
      return await fairShare(p.pid, opts);
    } catch (error) {
      return error instanceof Error ? error : new Error(String(error));
    }
  });
  merging.forEach((p, i) => {
    const share = shares[i]!;
    if (!(share instanceof Error)) {
      rows.push({ pid: p.pid, comm: p.comm, stat: p.stat, share });
      return;
    }
    const gone = share instanceof KsmNoSuchProcessError || (isSystemError(share) && (share.code === 'ESRCH' || share.code === 'ENOENT'));
    if (gone && !processExists(options.root, p.pid)) return; // left between the listing and its smaps
    // Its ksm_stat figures stand; its bytes are unknown, and it is named as unreadable (or stalled).
    rows.push({ pid: p.pid, comm: p.comm, stat: p.stat, share: undefined });
    if (share instanceof KsmTimeoutError) stalled.push({ pid: p.pid, comm: p.comm });
    else unreadable.push({ pid: p.pid, code: errorCode(share) });
  });
  return { rows, candidates, unreadable, stalled };
}

function checkBy(value: unknown): GroupBy {
  if (value === undefined) return 'cgroup';
  if (typeof value !== 'string') throw invalidType('options.by', 'of type string', value);
  if (!(GROUP_BY as readonly string[]).includes(value)) throw outOfRange('options.by', "'cgroup', 'unit', 'pod' or 'container'", value);
  return value as GroupBy;
}

/** The group a process falls in, and the cgroup that stands for it. */
function groupOf(name: CgroupName, by: GroupBy): { kind: GroupBy; key: string; cgroup: string } {
  if (by === 'pod' && name.podUid !== undefined) return { kind: 'pod', key: name.podUid, cgroup: name.podPath ?? name.path };
  if (by === 'container' && name.containerId !== undefined) return { kind: 'container', key: name.containerId, cgroup: name.containerPath ?? name.path };
  if (by === 'unit' && name.unit !== undefined) return { kind: 'unit', key: name.unit, cgroup: name.unitPath ?? name.path };
  return { kind: 'cgroup', key: name.path, cgroup: name.path };
}

/** A field every member agrees on, else undefined. */
function common<T>(values: Array<T | undefined>): T | undefined {
  const first = values[0];
  return values.every((value) => value === first) ? first : undefined;
}

interface Placed {
  row: ShareRow;
  name: CgroupName;
  v1Memory: string | undefined;
}

async function place(rows: ShareRow[], root: string): Promise<Placed[]> {
  const read = await Promise.all(rows.map(async (row) => ({ row, cgroup: await readProcCgroup(row.pid, root) })));
  const placed: Placed[] = [];
  for (const { row, cgroup } of read) {
    if (cgroup === undefined) continue; // left meanwhile
    const primary = primaryCgroup(cgroup);
    placed.push({ row, name: parseCgroupName(primary.path), v1Memory: cgroup.v1.find((line) => line.controllers.includes('memory'))?.path });
  }
  return placed;
}

function sumGroup(members: Placed[], group: { kind: GroupBy; key: string; cgroup: string }, page: number): Omit<GroupProfit, 'memory'> {
  const names = members.map((m) => m.name);
  let mergingPages = 0;
  let mergedBytes = 0;
  let savedBytes = 0;
  let zeroPageBytes = 0;
  let metadataBytes = 0;
  for (const { row } of members) {
    mergingPages += row.stat.mergingPages ?? 0;
    mergedBytes += row.share?.mergedBytes ?? 0;
    savedBytes += row.share?.savedBytes ?? 0;
    zeroPageBytes += (row.stat.zeroPages ?? 0) * page;
    metadataBytes += (row.stat.rmapItems ?? 0) * rmapItemSize(row.stat, page).size;
  }
  return {
    ...group,
    cgroups: [...new Set(names.map((n) => n.path))].sort(),
    unit: common(names.map((n) => n.unit)),
    slice: common(names.map((n) => n.slice)),
    podUid: common(names.map((n) => n.podUid)),
    qosClass: common(names.map((n) => n.qosClass)),
    containerId: common(names.map((n) => n.containerId)),
    runtime: common(names.map((n) => n.runtime)),
    pids: members.map((m) => m.row.pid).sort((a, b) => a - b),
    members: members
      .map((m) => ({ pid: m.row.pid, comm: m.row.comm, cgroup: m.name.path, mergedBytes: m.row.share?.mergedBytes ?? 0, savedBytes: m.row.share?.savedBytes ?? 0 }))
      .sort((a, b) => a.pid - b.pid),
    mergingPages,
    mergedBytes,
    savedBytes,
    zeroPageBytes,
    metadataBytes,
    netBytes: savedBytes + zeroPageBytes - metadataBytes,
  };
}

/**
 * Groups collected shares by cgroup name: reads each process's
 * cgroup file and, once per group, the group cgroup's memory files.
 */
export async function groupShares(rows: ShareRow[], by: GroupBy, root: string, mounts?: CgroupMounts): Promise<GroupProfit[]> {
  const page = pageSize();
  const where = mounts ?? (await cgroupMounts(root));
  const byKey = new Map<string, { group: { kind: GroupBy; key: string; cgroup: string }; members: Placed[] }>();
  for (const placed of await place(rows, root)) {
    const group = groupOf(placed.name, by);
    const id = `${group.kind}\0${group.key}`;
    const entry = byKey.get(id) ?? { group, members: [] };
    entry.members.push(placed);
    byKey.set(id, entry);
  }
  const groups: GroupProfit[] = [];
  for (const { group, members } of byKey.values()) {
    const sums = sumGroup(members, group, page);
    const v1Memory = common(members.map((m) => m.v1Memory));
    groups.push({ ...sums, memory: await readCgroupMemory(group.cgroup, where, v1Memory) });
  }
  return groups.sort((a, b) => b.savedBytes - a.savedBytes || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/**
 * What KSM saves per group of processes: `by` 'cgroup' (each process's own
 * cgroup), 'unit' (systemd unit), 'pod' (Kubernetes pod uid) or 'container'
 * (container id). Processes outside any such group keep their cgroup path
 * (kind 'cgroup'). Reads the ksm_stat, smaps and cgroup of every merging
 * process (root for all of them; pagemap too with `exact`).
 */
export async function profitByGroup(options?: ProfitByGroupOptions): Promise<GroupProfitReport> {
  const opts = checkOptions<ProfitByGroupOptions>(options);
  const root = checkRoot(opts);
  const by = checkBy(opts.by);
  const exact = checkBoolean('options.exact', opts.exact);
  const collectOptions: { root: string; exact?: boolean } = { root };
  if (exact !== undefined) collectOptions.exact = exact;
  const collected = await collectShares(collectOptions);
  const groups = await groupShares(collected.rows, by, root);
  const page = pageSize();
  let system: number | undefined;
  try {
    const sharing = systemStat({ root }).pagesSharing;
    system = sharing === undefined ? undefined : sharing * page;
  } catch {
    system = undefined;
  }
  return {
    by,
    method: collected.rows.every((row) => row.share?.method === 'exact') ? 'exact' : 'estimated',
    pageSize: page,
    groups,
    total: {
      processes: groups.reduce((sum, group) => sum + group.pids.length, 0),
      mergedBytes: groups.reduce((sum, group) => sum + group.mergedBytes, 0),
      savedBytes: groups.reduce((sum, group) => sum + group.savedBytes, 0),
    },
    systemSavedBytes: system,
    unreadable: collected.unreadable,
  };
}
