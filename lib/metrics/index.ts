/**
 * Prometheus metrics on a prom-client registry: the machine's KSM counters,
 * this process's ksm_stat and fair-share saving, per-label saving of
 * labelled buffers (collectDefaultKsmMetrics), and every merging process of
 * the machine for an exporter (collectMachineKsmMetrics).
 *
 * prom-client is an optional peer dependency, loaded on first use. Figures
 * are read when Prometheus scrapes (collect callbacks), never on a timer.
 */
import { registerCostMetrics } from './costs.js';
import type * as PromClient from 'prom-client';

import { KsmMissingDependencyError, KsmNoSuchProcessError, KsmTimeoutError, KsmUnsupportedError } from '../errors.js';
import { mapLimit } from '../concurrency.js';
import { KSM_DIR } from '../kernel/names.js';
import { processExists } from '../kernel/processes.js';
import { pageSize } from '../merge/buffers.js';
import { fairShare, ksmProcesses, type FairShare } from '../report/processes.js';
import { ksmStat } from '../kernel/ksm-stat.js';
import { systemStat, type SystemStat } from '../kernel/sysfs.js';
import { scanTime } from '../tune/tuner.js';
import { checkBoolean, checkOptions, checkRoot, invalidType, optionalNumber, outOfRange, type RootOption } from '../validate.js';

/**
 * A prom-client Registry, described by what we use of it so that the
 * package's types do not require prom-client (an optional peer) to be
 * installed. Pass `new Registry()` or prom-client's `register`.
 */
export interface PromRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
  getSingleMetric(name: string): unknown;
}

type Registry = PromClient.Registry;

let promClient: typeof PromClient | undefined;

function loadPromClient(): typeof PromClient {
  if (promClient !== undefined) return promClient;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    promClient = require('prom-client') as typeof PromClient;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') {
      throw new KsmMissingDependencyError('prom-client', 'npm install prom-client', { cause: error });
    }
    throw error;
  }
  return promClient;
}

export interface KsmMetricsOptions extends RootOption {
  /** Registry to register in (default: prom-client's global `register`). */
  register?: PromRegistry;
  /** Prepended to every metric name, e.g. 'myapp_' (default ''). */
  prefix?: string;
  /**
   * Distinct buffer labels exported as their own series (default 20);
   * labels past the first `maxLabels` seen are summed into label="other", so a
   * service that labels buffers per request cannot blow up cardinality.
   */
  maxLabels?: number;
  /** Fair share page by page (root; see profit()); default: profit()'s own default. */
  exact?: boolean;
}

export interface MachineMetricsOptions extends RootOption {
  /** Registry to register in (default: prom-client's global `register`). */
  register?: PromRegistry;
  prefix?: string;
  /** Per-process fair-share saving through profit() (default true). */
  fairShare?: boolean;
  exact?: boolean;
}

interface Resolved {
  client: typeof PromClient;
  registry: Registry;
  prefix: string;
  root: string;
}

function resolve(options: KsmMetricsOptions | MachineMetricsOptions | undefined): Resolved {
  const opts = checkOptions<KsmMetricsOptions>(options);
  const root = checkRoot(opts);
  const prefix = opts.prefix === undefined ? '' : opts.prefix;
  if (typeof prefix !== 'string') throw invalidType('options.prefix', 'of type string', prefix);
  if (prefix !== '' && !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw outOfRange('options.prefix', 'a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)', prefix);
  }
  const client = loadPromClient();
  const registry = (opts.register ?? client.register) as Registry;
  if (!(registry instanceof client.Registry)) throw invalidType('options.register', 'a prom-client Registry', registry);
  return { client, registry, prefix, root };
}

/**
 * One reading of the KSM sysfs counters per scrape: the collect callbacks of a
 * scrape run back to back, so a reading younger than 500 ms is reused.
 */
function sysfsReader(root: string): () => SystemStat | undefined {
  let last: { at: number; stat: SystemStat | undefined } | undefined;
  return () => {
    const now = Date.now();
    if (last !== undefined && now - last.at < 500) return last.stat;
    let stat: SystemStat | undefined;
    try {
      stat = systemStat({ root });
    } catch (error) {
      if (!(error instanceof KsmUnsupportedError)) throw error;
      stat = undefined; // no CONFIG_KSM: the metrics are absent, the scrape still works
    }
    last = { at: now, stat };
    return stat;
  };
}

function pageBytes(): number | undefined {
  try {
    return pageSize();
  } catch {
    return undefined;
  }
}

/** Registries already holding our system metrics: registering twice would throw in prom-client. */
const systemRegistered = new WeakMap<Registry, Set<string>>();

function registerSystem(r: Resolved): void {
  const done = systemRegistered.get(r.registry) ?? new Set<string>();
  if (done.has(r.prefix)) return;
  done.add(r.prefix);
  systemRegistered.set(r.registry, done);

  const { client, registry, prefix } = r;
  const read = sysfsReader(r.root);
  // prom-client prints an unlabelled metric even when never set (as 0), so
  // only what this kernel has is registered: a machine does not gain
  // CONFIG_KSM or a sysfs file at runtime. A failed read keeps the last value.
  const first = read();
  if (first === undefined) return;
  type Value = (stat: SystemStat) => number | undefined;
  const now = (value: Value): number | undefined => {
    const stat = read();
    return stat === undefined ? undefined : value(stat);
  };
  const gauge = (name: string, help: string, value: Value): void => {
    if (value(first) === undefined) return;
    new client.Gauge({
      name: prefix + name,
      help,
      registers: [registry],
      collect() {
        const v = now(value);
        if (v !== undefined) this.set(v);
      },
    });
  };
  const counter = (name: string, help: string, value: Value): void => {
    if (value(first) === undefined) return;
    new client.Counter({
      name: prefix + name,
      help,
      registers: [registry],
      collect() {
        // The kernel keeps the count; the counter mirrors it.
        const v = now(value);
        if (v !== undefined) {
          this.reset();
          this.inc(v);
        }
      },
    });
  };
  const page = (stat: SystemStat, pages: number | undefined): number | undefined => {
    const size = pageBytes();
    return pages === undefined || size === undefined ? undefined : pages * size;
  };

  gauge('ksm_run', `KSM run state: 0 stopped, 1 running, 2 unmerging (${KSM_DIR}/run)`, (s) => s.run);
  gauge('ksm_pages_to_scan', 'Pages ksmd scans per batch (pages_to_scan)', (s) => s.pagesToScan);
  gauge('ksm_sleep_seconds', 'ksmd sleep between batches (sleep_millisecs / 1000)', (s) =>
    s.sleepMillisecs === undefined ? undefined : s.sleepMillisecs / 1000,
  );
  gauge('ksm_pages_shared', 'KSM pages in use: one kept copy per merged content (pages_shared)', (s) => s.pagesShared);
  gauge('ksm_pages_sharing', 'Extra mappings of KSM pages, i.e. pages saved (pages_sharing)', (s) => s.pagesSharing);
  gauge('ksm_pages_unshared', 'Pages unique but repeatedly checked for merging (pages_unshared)', (s) => s.pagesUnshared);
  gauge('ksm_pages_volatile', 'Pages changing too fast to be placed in a tree (pages_volatile)', (s) => s.pagesVolatile);
  gauge('ksm_zero_pages', 'Pages merged with the zero page under use_zero_pages (ksm_zero_pages)', (s) => s.ksmZeroPages);
  gauge('ksm_stable_node_chains', 'KSM pages that hit the max_page_sharing limit (stable_node_chains)', (s) => s.stableNodeChains);
  gauge('ksm_stable_node_dups', 'Duplicated KSM pages (stable_node_dups)', (s) => s.stableNodeDups);
  gauge('ksm_max_page_sharing', 'Most mappings one KSM page may have (max_page_sharing)', (s) => s.maxPageSharing);
  gauge('ksm_use_zero_pages', 'Empty pages merge with the zero page: 1 on, 0 off (use_zero_pages)', (s) =>
    s.useZeroPages === undefined ? undefined : Number(s.useZeroPages),
  );
  gauge('ksm_general_profit_bytes', "The kernel's net saving: saved pages minus rmap_item metadata (general_profit)", (s) => s.generalProfit);
  gauge('ksm_saved_bytes', 'Memory KSM saved before metadata: (pages_sharing + ksm_zero_pages) x page size', (s) =>
    s.pagesSharing === undefined ? undefined : page(s, s.pagesSharing + (s.ksmZeroPages ?? 0)),
  );
  gauge('ksm_candidate_pages', 'Pages KSM tracks: pages_shared + pages_sharing + pages_unshared + pages_volatile (= rmap items)', (s) =>
    scanTime(s).candidatePages,
  );
  gauge('ksm_full_scan_seconds', 'Time one full scan takes at the current knobs: candidate pages / (pages_to_scan x 1000 / sleep_millisecs)', (s) =>
    scanTime(s).fullScanSeconds,
  );
  counter('ksm_full_scans_total', 'Full scans of all mergeable memory (full_scans)', (s) => s.fullScans);
  counter('ksm_pages_scanned_total', 'Pages ksmd scanned (pages_scanned)', (s) => s.pagesScanned);
  counter('ksm_pages_skipped_total', 'Pages smart_scan skipped (pages_skipped)', (s) => s.pagesSkipped);
  registerCostMetrics(client, registry, prefix, r.root);
}

const processRegistered = new WeakMap<Registry, Set<string>>();

/**
 * Registers the KSM metrics of the machine and of this process:
 *
 * - system: `ksm_run`, `ksm_pages_to_scan`, `ksm_sleep_seconds`,
 *   `ksm_pages_shared`, `ksm_pages_sharing`, `ksm_pages_unshared`,
 *   `ksm_pages_volatile`, `ksm_zero_pages`, `ksm_general_profit_bytes`,
 *   `ksm_saved_bytes`, `ksm_candidate_pages`, `ksm_full_scan_seconds`,
 *   `ksm_full_scans_total`, `ksm_pages_scanned_total`, ... (README lists all);
 * - this process: `nodejs_ksm_process_merging_pages`, `..._zero_pages`,
 *   `..._rmap_items`, `..._profit_bytes` (the kernel's ksm_process_profit,
 *   which counts the kept copy), `..._merge_any`, and the fair-share
 *   `nodejs_ksm_process_saved_bytes`;
 * - per labelled buffer: `nodejs_ksm_buffer_merged_bytes{label}`,
 *   `nodejs_ksm_buffer_saved_bytes{label}`.
 *
 * Calling it again for the same registry and prefix does nothing.
 *
 * @throws KsmMissingDependencyError (ERR_KSM_MISSING_DEPENDENCY) without prom-client.
 */
export function collectDefaultKsmMetrics(options?: KsmMetricsOptions): void {
  const r = resolve(options);
  const opts = checkOptions<KsmMetricsOptions>(options);
  const maxLabels = optionalNumber('options.maxLabels', opts.maxLabels, { integer: true, min: 0, max: 10_000 }) ?? 20;
  const exact = checkBoolean('options.exact', opts.exact);
  registerSystem(r);

  const done = processRegistered.get(r.registry) ?? new Set<string>();
  if (done.has(r.prefix)) return;
  done.add(r.prefix);
  processRegistered.set(r.registry, done);

  const { client, registry, prefix, root } = r;
  let last: { at: number; stat: ReturnType<typeof ksmStat> | undefined } | undefined;
  const read = (): ReturnType<typeof ksmStat> | undefined => {
    const now = Date.now();
    if (last !== undefined && now - last.at < 500) return last.stat;
    let stat: ReturnType<typeof ksmStat> | undefined;
    try {
      stat = ksmStat(undefined, { root });
    } catch (error) {
      if (!(error instanceof KsmUnsupportedError)) throw error;
    }
    last = { at: now, stat };
    return stat;
  };
  const firstStat = read();
  const gauge = (name: string, help: string, value: (stat: ReturnType<typeof ksmStat>) => number | undefined): void => {
    if (firstStat === undefined || value(firstStat) === undefined) return; // this kernel lacks the field
    new client.Gauge({
      name: prefix + name,
      help,
      registers: [registry],
      collect() {
        const stat = read();
        const v = stat === undefined ? undefined : value(stat);
        if (v !== undefined) this.set(v);
      },
    });
  };
  gauge('nodejs_ksm_process_merging_pages', 'Pages of this process backed by a KSM page (ksm_merging_pages)', (s) => s.mergingPages);
  gauge('nodejs_ksm_process_zero_pages', 'Pages of this process merged with the zero page (ksm_zero_pages)', (s) => s.zeroPages);
  gauge('nodejs_ksm_process_rmap_items', 'rmap items KSM keeps for this process (ksm_rmap_items)', (s) => s.rmapItems);
  gauge(
    'nodejs_ksm_process_profit_bytes',
    "The kernel's ksm_process_profit: counts the one copy that had to stay; do not sum across processes (use nodejs_ksm_process_saved_bytes)",
    (s) => s.processProfit,
  );
  gauge('nodejs_ksm_process_merge_any', 'PR_SET_MEMORY_MERGE is on for this process: 1 yes, 0 no (ksm_merge_any)', (s) =>
    s.mergeAny === undefined ? undefined : Number(s.mergeAny),
  );

  const profitOptions: { exact?: boolean; root?: string } = { root };
  if (exact !== undefined) profitOptions.exact = exact;
  let share: { at: number; value: Promise<FairShare | undefined> } | undefined;
  const readShare = (): Promise<FairShare | undefined> => {
    const now = Date.now();
    if (share === undefined || now - share.at >= 500) {
      // A failed read (the process cannot read its own smaps?) leaves the series as they were.
      share = { at: now, value: fairShare(undefined, profitOptions).catch(() => undefined) };
    }
    return share.value;
  };
  new client.Gauge({
    name: `${prefix}nodejs_ksm_process_saved_bytes`,
    help: "This process's fair share of the machine's KSM saving: a page mapped k times gives each mapper (k-1)/k; sums across processes to pages_sharing x page size",
    registers: [registry],
    async collect() {
      const result = await readShare();
      if (result !== undefined) this.set(result.savedBytes);
    },
  });
  const admitted = new Set<string>();
  const byLabel = async (): Promise<Map<string, { mergedBytes: number; savedBytes: number }>> => {
    const result = await readShare();
    const out = new Map<string, { mergedBytes: number; savedBytes: number }>();
    for (const entry of result?.labels ?? []) {
      // First come, first admitted, and admitted for good: a series never flips to "other".
      if (!admitted.has(entry.label) && admitted.size < maxLabels && entry.label !== 'other') admitted.add(entry.label);
      const key = admitted.has(entry.label) ? entry.label : 'other';
      const sum = out.get(key) ?? { mergedBytes: 0, savedBytes: 0 };
      sum.mergedBytes += entry.mergedBytes;
      sum.savedBytes += entry.savedBytes;
      out.set(key, sum);
    }
    return out;
  };
  new client.Gauge({
    name: `${prefix}nodejs_ksm_buffer_merged_bytes`,
    help: `Bytes of labelled mergeable buffers backed by KSM pages, by label (at most ${maxLabels} labels, then "other")`,
    labelNames: ['label'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [label, sum] of await byLabel()) this.set({ label }, sum.mergedBytes);
    },
  });
  new client.Gauge({
    name: `${prefix}nodejs_ksm_buffer_saved_bytes`,
    help: `Fair-share saving of labelled mergeable buffers, by label (at most ${maxLabels} labels, then "other")`,
    labelNames: ['label'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [label, sum] of await byLabel()) this.set({ label }, sum.savedBytes);
    },
  });
}

/**
 * Registers the machine's KSM metrics (as collectDefaultKsmMetrics) and, for
 * every process that merges, `ksm_process_*{pid,comm}`: merging_pages,
 * zero_pages, rmap_items, profit_bytes and the fair-share saved_bytes.
 * What `node-ksm exporter` serves; reading other processes needs root.
 */
export function collectMachineKsmMetrics(options?: MachineMetricsOptions): void {
  const r = resolve(options);
  const opts = checkOptions<MachineMetricsOptions>(options);
  const withShare = checkBoolean('options.fairShare', opts.fairShare) ?? true;
  const exact = checkBoolean('options.exact', opts.exact);
  registerSystem(r);
  const { client, registry, prefix, root } = r;

  interface Row {
    pid: string;
    comm: string;
    stat: ReturnType<typeof ksmStat>;
    saved: number | undefined;
  }
  interface Reading {
    rows: Row[];
    /** Processes skipped because their files stayed locked past the deadline. */
    stalled: number;
  }
  let last: { at: number; reading: Promise<Reading> } | undefined;
  const readAll = (): Promise<Reading> => {
    const now = Date.now();
    if (last !== undefined && now - last.at < 500) return last.reading;
    const reading = (async (): Promise<Reading> => {
      let list;
      try {
        list = await ksmProcesses({ root });
      } catch (error) {
        if (error instanceof KsmUnsupportedError) return { rows: [], stalled: 0 };
        throw error;
      }
      let stalled = list.stalled.length;
      const rows = await mapLimit(list.processes, 8, async (p): Promise<Row | undefined> => {
        let saved: number | undefined;
        if (withShare) {
          const profitOptions: { exact?: boolean; root?: string } = { root };
          if (exact !== undefined) profitOptions.exact = exact;
          try {
            saved = (await fairShare(p.pid, profitOptions)).savedBytes;
          } catch (error) {
            // Gone between the listing and its profit: drop it. Otherwise (smaps
            // unreadable or locked past the deadline) it is exported without a
            // saved_bytes series.
            if (error instanceof KsmNoSuchProcessError && !processExists(root, p.pid)) return undefined;
            if (error instanceof KsmTimeoutError) stalled++;
          }
        }
        return { pid: String(p.pid), comm: p.comm, stat: p.stat, saved };
      });
      return { rows: rows.filter((row): row is Row => row !== undefined), stalled };
    })();
    last = { at: now, reading };
    return reading;
  };
  const read = async (): Promise<Row[]> => (await readAll()).rows;
  const gauge = (name: string, help: string, value: (row: Row) => number | undefined): void => {
    new client.Gauge({
      name: prefix + name,
      help,
      labelNames: ['pid', 'comm'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const row of await read()) {
          const v = value(row);
          if (v !== undefined) this.set({ pid: row.pid, comm: row.comm }, v);
        }
      },
    });
  };
  new client.Gauge({
    name: `${prefix}ksm_processes_merging`,
    help: 'Processes with at least one page merged',
    registers: [registry],
    async collect() {
      this.set((await read()).length);
    },
  });
  new client.Gauge({
    name: `${prefix}ksm_processes_stalled`,
    help: 'Processes skipped in this scrape: their memory map stayed locked past the per-process deadline (they are not waited for)',
    registers: [registry],
    async collect() {
      this.set((await readAll()).stalled);
    },
  });
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
      (row) => row.saved,
    );
  }
}
