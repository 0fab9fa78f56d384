/**
 * The whole machine for an exporter: the system counters, ksmd's CPU time,
 * and what every merging process saves summed per cgroup, labelled by what
 * the cgroup's name says (systemd unit, pod uid, container id). Per-process
 * series (pid, comm) only when asked for: pids churn and would grow a
 * Prometheus server's series without bound.
 */

import { KsmUnsupportedError } from '../errors.js';
import { cgroupMounts, type CgroupMounts } from '../kernel/cgroup.js';
import type { KsmStat } from '../kernel/ksm-stat.js';
import { ksmProcesses, type KsmProcessList } from '../report/processes.js';
import { groupShares, sharesOf, type GroupProfit, type ShareRow } from '../report/groups.js';
import { readerLog, registerReaderMetrics, type ReaderLog } from './readers.js';
import { checkBoolean, checkOptions, optionalNumber } from '../validate.js';
import { registerSystem, resolve, type CommonMetricsOptions, type Resolved } from './system.js';

export interface MachineMetricsOptions extends CommonMetricsOptions {
  /** Per-process fair-share saving through profit() (default true); without it only ksm_stat figures. */
  fairShare?: boolean;
  exact?: boolean;
  /** Also export every merging process as `ksm_process_*{pid,comm}` (default false). */
  perProcess?: boolean;
  /**
   * Distinct cgroups exported as their own series (default 500); cgroups past
   * the first `maxGroups` seen are summed into cgroup="other".
   */
  maxGroups?: number;
}

interface Reading {
  rows: ShareRow[];
  /** Processes KSM may scan: merge-any on or a mergeable VMA (ksm_stat). */
  mergeable: number;
  unreadable: number;
  /** Processes skipped: their files stayed locked past the per-process deadline. */
  stalled: number;
  groups: GroupProfit[];
}

const GROUP_LABELS = ['cgroup', 'unit', 'pod_uid', 'container_id'] as const;
type GroupLabels = Record<(typeof GROUP_LABELS)[number], string>;

function checkMaxGroups(value: unknown): number {
  return optionalNumber('options.maxGroups', value, { integer: true, min: 0, max: 100_000 }) ?? 500;
}

const EMPTY: Omit<Reading, 'groups'> = { rows: [], mergeable: 0, unreadable: 0, stalled: 0 };
const mergeableOf = (stats: Array<{ stat: KsmStat }>): number => stats.filter((p) => p.stat.mergeAny === true || p.stat.mergeable === true).length;

/** The readers of a scrape, each timed into `log`: processes, then fair_share, then cgroups. */
async function readMachine(root: string, withShare: boolean, exact: boolean | undefined, log: ReaderLog, mounts: () => Promise<CgroupMounts>): Promise<Reading> {
  let list: KsmProcessList | undefined;
  try {
    list = await log.timeAsync(
      'processes',
      () => ksmProcesses({ root, candidates: true }).catch((error: unknown) => {
        if (error instanceof KsmUnsupportedError) return undefined; // no KSM accounting: nothing to read
        throw error;
      }),
      (l) => ({ items: l?.processes.length ?? 0, ok: true }),
    );
  } catch {
    list = undefined; // the failure is in ksm_scrape_reader_success; the readers after it had nothing to read
  }
  let reading: Omit<Reading, 'groups'> = EMPTY;
  if (list !== undefined && !withShare) {
    const rows = list.processes.filter((p) => p.merging).map((p) => ({ pid: p.pid, comm: p.comm, stat: p.stat, share: undefined }));
    reading = { rows, mergeable: mergeableOf(list.processes), unreadable: list.unreadable.length, stalled: list.stalled.length };
  } else if (withShare) {
    const listed = list;
    const collected =
      listed === undefined
        ? log.skip('fair_share')
        : await log.timeAsync('fair_share', () => sharesOf(listed, exact === undefined ? { root } : { root, exact }), (c) => ({
            items: c.rows.filter((row) => row.share !== undefined).length,
            ok: true,
          }));
    if (collected !== undefined) {
      const { rows, candidates, unreadable, stalled } = collected;
      reading = { rows, mergeable: mergeableOf([...rows, ...candidates]), unreadable: unreadable.length, stalled: stalled.length };
    }
  }
  let groups: GroupProfit[] = [];
  try {
    groups = await log.timeAsync('cgroups', async () => groupShares(reading.rows, 'cgroup', root, await mounts()), (g) => ({ items: g.length, ok: true }));
  } catch {
    groups = []; // reported as a failed cgroups reader: no cgroup series this scrape
  }
  return { ...reading, groups };
}

/** One reading per scrape: the collect callbacks of a scrape run back to back. */
function machineReader(root: string, withShare: boolean, exact: boolean | undefined, log: ReaderLog): () => Promise<Reading> {
  let last: { at: number; reading: Promise<Reading> } | undefined;
  let mounts: Promise<CgroupMounts> | undefined;
  // Read once; a failed read is tried again at the next scrape, not kept.
  const mountsOnce = (): Promise<CgroupMounts> =>
    (mounts ??= cgroupMounts(root).catch((error: unknown) => {
      mounts = undefined;
      throw error;
    }));
  return () => {
    const now = Date.now();
    if (last === undefined || now - last.at >= 500) last = { at: now, reading: readMachine(root, withShare, exact, log, mountsOnce) };
    return last.reading;
  };
}

/** Labels of a cgroup, or of "other" past the first maxGroups seen (admitted for good). */
function groupLabeller(maxGroups: number): (group: GroupProfit) => GroupLabels {
  const admitted = new Set<string>();
  return (group) => {
    if (!admitted.has(group.key) && admitted.size < maxGroups && group.key !== 'other') admitted.add(group.key);
    if (!admitted.has(group.key)) return { cgroup: 'other', unit: '', pod_uid: '', container_id: '' };
    return { cgroup: group.key, unit: group.unit ?? '', pod_uid: group.podUid ?? '', container_id: group.containerId ?? '' };
  };
}

function registerGroups(r: Resolved, read: () => Promise<Reading>, withShare: boolean, maxGroups: number): void {
  const { client, registry, prefix } = r;
  const labelsOf = groupLabeller(maxGroups);
  const gauge = (name: string, help: string, value: (group: GroupProfit) => number | undefined): void => {
    new client.Gauge({
      name: prefix + name,
      help,
      labelNames: GROUP_LABELS,
      registers: [registry],
      async collect() {
        this.reset();
        const sums = new Map<string, { labels: GroupLabels; value: number }>();
        for (const group of (await read()).groups) {
          const v = value(group);
          if (v === undefined) continue;
          const labels = labelsOf(group);
          const entry = sums.get(labels.cgroup) ?? { labels, value: 0 };
          entry.value += v;
          sums.set(labels.cgroup, entry);
        }
        for (const { labels, value: v } of sums.values()) this.set(labels, v);
      },
    });
  };
  const by = 'summed over the merging processes of the cgroup';
  gauge('ksm_cgroup_processes', `Processes with merged pages, per cgroup`, (g) => g.pids.length);
  gauge('ksm_cgroup_merging_pages', `Pages backed by a KSM page (ksm_merging_pages), ${by}`, (g) => g.mergingPages);
  gauge('ksm_cgroup_metadata_bytes', `KSM's rmap_item metadata (ksm_rmap_items x its size), ${by}`, (g) => g.metadataBytes);
  if (withShare) {
    gauge('ksm_cgroup_merged_bytes', `Bytes backed by KSM pages (smaps KSM), ${by}`, (g) => g.mergedBytes);
    gauge(
      'ksm_cgroup_saved_bytes',
      `Fair share of the machine's saving, ${by}: a page mapped k times gives each mapper (k-1)/k; sums to pages_sharing x page size`,
      (g) => g.savedBytes,
    );
  }
  gauge('ksm_cgroup_memory_bytes', 'Memory charged to the cgroup (memory.current, v1 memory.usage_in_bytes), where readable', (g) => g.memory?.currentBytes);
  gauge('ksm_cgroup_anon_bytes', 'Anonymous memory of the cgroup (memory.stat anon, v1 total_rss), where readable', (g) => g.memory?.anonBytes);
}

function registerProcesses(r: Resolved, read: () => Promise<Reading>, withShare: boolean): void {
  const { client, registry, prefix } = r;
  const gauge = (name: string, help: string, value: (row: ShareRow) => number | undefined): void => {
    new client.Gauge({
      name: prefix + name,
      help,
      labelNames: ['pid', 'comm'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const row of (await read()).rows) {
          const v = value(row);
          if (v !== undefined) this.set({ pid: String(row.pid), comm: row.comm }, v);
        }
      },
    });
  };
  gauge('ksm_process_merging_pages', 'Pages of the process backed by a KSM page (ksm_merging_pages)', (row) => row.stat.mergingPages);
  gauge('ksm_process_zero_pages', 'Pages of the process merged with the zero page (ksm_zero_pages)', (row) => row.stat.zeroPages);
  gauge('ksm_process_rmap_items', 'rmap items KSM keeps for the process (ksm_rmap_items)', (row) => row.stat.rmapItems);
  gauge(
    'ksm_process_profit_bytes',
    "The kernel's ksm_process_profit: counts the one copy that had to stay; do not sum (use ksm_process_saved_bytes)",
    (row) => row.stat.processProfit,
  );
  if (withShare) {
    gauge(
      'ksm_process_saved_bytes',
      'Fair share of the saving: a page mapped k times gives each mapper (k-1)/k; sums to pages_sharing x page size',
      (row) => row.share?.savedBytes,
    );
  }
}

/**
 * Registers the machine's KSM metrics (as collectDefaultKsmMetrics), ksmd's
 * CPU time, counts of merging, mergeable and unreadable processes, and per
 * cgroup `ksm_cgroup_{processes,merging_pages,metadata_bytes,merged_bytes,
 * saved_bytes,memory_bytes,anon_bytes}{cgroup,unit,pod_uid,container_id}`;
 * with `perProcess`, `ksm_process_*{pid,comm}`; and what each reader of the
 * scrape cost, `ksm_scrape_reader_{duration_seconds,success,items}{reader}`
 * (a reader that fails is reported there and leaves its figures out; the
 * scrape still answers). What `node-ksm exporter` serves; reading other
 * processes needs root.
 */
export function collectMachineKsmMetrics(options?: MachineMetricsOptions): void {
  const r = resolve(options);
  const opts = checkOptions<MachineMetricsOptions>(options);
  const withShare = checkBoolean('options.fairShare', opts.fairShare) ?? true;
  const exact = checkBoolean('options.exact', opts.exact);
  const perProcess = checkBoolean('options.perProcess', opts.perProcess) ?? false;
  const maxGroups = checkMaxGroups(opts.maxGroups);
  registerSystem(r);
  const { client, registry, prefix, root } = r;
  const log = readerLog(registry, prefix);
  const read = machineReader(root, withShare, exact, log);

  const count = (name: string, help: string, value: (reading: Reading) => number): void => {
    new client.Gauge({
      name: prefix + name,
      help,
      registers: [registry],
      async collect() {
        this.set(value(await read()));
      },
    });
  };
  count('ksm_processes_merging', 'Processes with at least one page merged', (reading) => reading.rows.length);
  count('ksm_processes_mergeable', 'Processes KSM may scan: merge-any on or a mergeable mapping (ksm_stat)', (reading) => reading.mergeable);
  count('ksm_processes_unreadable', "Processes whose ksm_stat or smaps could not be read (not root?): left out of the figures", (reading) => reading.unreadable);
  count(
    'ksm_processes_stalled',
    'Processes skipped in this scrape: their memory map stayed locked past the per-process deadline (they are not waited for)',
    (reading) => reading.stalled,
  );
  registerGroups(r, read, withShare, maxGroups);
  if (perProcess) registerProcesses(r, read, withShare);
  registerReaderMetrics(client, registry, prefix, log, read);
}
