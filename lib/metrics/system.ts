/**
 * The machine's KSM counters on a prom-client registry (what both the
 * in-app collector and the exporter register), and the option handling
 * they share: the registry, its prom-client copy, the prefix, the root.
 */
import type * as PromClient from 'prom-client';

import { KsmUnsupportedError } from '../errors.js';
import { pageSize } from '../merge/buffers.js';
import { systemStat, type SystemStat } from '../kernel/sysfs.js';
import { scanTime } from '../tune/tuner.js';
import { KSM_DIR } from '../kernel/names.js';
import { registerCostMetrics } from './costs.js';
import { checkOptions, checkRoot, invalidType, outOfRange, type RootOption } from '../validate.js';
import { applicationPromClient, clientOfRegistry, kernelCounter, type Client } from './prom-client.js';
import { readerLog, type ReaderLog, type ReaderOutcome } from './readers.js';

/**
 * A prom-client Registry, described by what we use of it so that the
 * package's types do not require prom-client to be installed. Pass
 * `new Registry()` or prom-client's `register`, from the application's own
 * copy of prom-client.
 */
export interface PromRegistry {
  metrics(): Promise<string>;
  readonly contentType: string;
  getSingleMetric(name: string): unknown;
}

export type Registry = PromClient.Registry;

export interface Resolved {
  client: Client;
  registry: Registry;
  prefix: string;
  root: string;
}

export interface CommonMetricsOptions extends RootOption {
  /** Registry to register in (default: the application's prom-client global `register`). */
  register?: PromRegistry;
  /** Prepended to every metric name, e.g. 'myapp_' (default ''). */
  prefix?: string;
}

export function resolve(options: CommonMetricsOptions | undefined): Resolved {
  const opts = checkOptions<CommonMetricsOptions>(options);
  const root = checkRoot(opts);
  const prefix = opts.prefix === undefined ? '' : opts.prefix;
  if (typeof prefix !== 'string') throw invalidType('options.prefix', 'of type string', prefix);
  if (prefix !== '' && !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw outOfRange('options.prefix', 'a Prometheus metric name prefix ([a-zA-Z_:][a-zA-Z0-9_:]*)', prefix);
  }
  if (opts.register === undefined) {
    const client = applicationPromClient();
    return { client, registry: client.register, prefix, root };
  }
  // The registry's own copy of prom-client makes its metrics: never a second copy.
  const client = clientOfRegistry(opts.register);
  if (client === undefined) throw invalidType('options.register', 'a prom-client Registry', opts.register);
  return { client, registry: opts.register as Registry, prefix, root };
}

/** The files of a reading that held a value (0: no KSM sysfs), and whether every one could be read. */
function sysfsOutcome(stat: SystemStat | undefined): ReaderOutcome {
  if (stat === undefined) return { items: 0, ok: true };
  const meta = new Set(['runState', 'advisorModes', 'missing', 'unknown', 'unreadable']);
  const items = Object.entries(stat).filter(([key, value]) => !meta.has(key) && value !== undefined).length;
  return { items, ok: Object.keys(stat.unreadable).length === 0 };
}

/**
 * One reading of the KSM sysfs counters per scrape: the collect callbacks of a
 * scrape run back to back, so a reading younger than 500 ms is reused.
 */
function sysfsReader(root: string, log: ReaderLog): () => SystemStat | undefined {
  let last: { at: number; stat: SystemStat | undefined } | undefined;
  const read = (): SystemStat | undefined => {
    try {
      return systemStat({ root });
    } catch (error) {
      if (!(error instanceof KsmUnsupportedError)) throw error;
      return undefined; // no CONFIG_KSM: the metrics are absent, the scrape still works
    }
  };
  return () => {
    const now = Date.now();
    if (last !== undefined && now - last.at < 500) return last.stat;
    let stat: SystemStat | undefined;
    try {
      stat = log.time('sysfs', read, sysfsOutcome);
    } catch (error) {
      // Logged as a failed reader; after the first reading the scrape keeps the last values and answers.
      if (last === undefined) throw error;
      stat = last.stat;
    }
    last = { at: now, stat };
    return last.stat;
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

export function registerSystem(r: Resolved): void {
  const done = systemRegistered.get(r.registry) ?? new Set<string>();
  if (done.has(r.prefix)) return;
  done.add(r.prefix);
  systemRegistered.set(r.registry, done);

  const { client, registry, prefix } = r;
  const log = readerLog(registry, prefix);
  const read = sysfsReader(r.root, log);
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
    if (value(first) !== undefined) kernelCounter(client, registry, prefix + name, help, () => now(value));
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
  registerCostMetrics(client, registry, prefix, r.root, log);
}

