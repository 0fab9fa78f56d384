/**
 * Prometheus metrics on a prom-client registry: the machine's KSM counters,
 * this process's ksm_stat and fair-share saving, per-label saving of
 * labelled buffers (collectDefaultKsmMetrics), and every merging process of
 * the machine for an exporter (collectMachineKsmMetrics).
 *
 * Metrics are made with the prom-client copy that owns the registry (the
 * application's; see prom-client.ts). Figures are read when Prometheus
 * scrapes (collect callbacks), never on a timer.
 */
import { KsmUnsupportedError } from '../errors.js';
import { fairShare, type FairShare } from '../report/processes.js';
import { ksmStat } from '../kernel/ksm-stat.js';
import { checkBoolean, checkOptions, optionalNumber } from '../validate.js';
import { registerSystem, resolve, type CommonMetricsOptions, type PromRegistry, type Registry } from './system.js';

export { collectMachineKsmMetrics, type MachineMetricsOptions } from './machine.js';
export type { PromRegistry };

export interface KsmMetricsOptions extends CommonMetricsOptions {
  /**
   * Distinct buffer labels exported as their own series (default 20);
   * labels past the first `maxLabels` seen are summed into label="other", so a
   * service that labels buffers per request cannot blow up cardinality.
   */
  maxLabels?: number;
  /** Fair share page by page (root; see profit()); default: profit()'s own default. */
  exact?: boolean;
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

