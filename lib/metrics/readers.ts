/**
 * What each reader of a scrape cost, the way node_exporter reports its
 * collectors (node_scrape_collector_duration_seconds / _success): per reader,
 * how long its last read took, whether it succeeded, and how much it found.
 *
 * Readers: `sysfs` (the KSM counters), `costs` (vmstat and ksmd's CPU time),
 * `processes` (listing /proc and each process's ksm_stat), `fair_share`
 * (each merging process's smaps_rollup / smaps, or pagemap + kpageflags with
 * exact), `cgroups` (each process's cgroup file and its group's memory files).
 */
import type * as PromClient from 'prom-client';

import type { Client } from './prom-client.js';

type Registry = PromClient.Registry;

export type ReaderName = 'sysfs' | 'costs' | 'processes' | 'fair_share' | 'cgroups';

interface ReaderRun {
  seconds: number;
  ok: boolean;
  items: number;
}

/** What a read found, and whether all of it could be read. */
export interface ReaderOutcome {
  items: number;
  ok: boolean;
}

export interface ReaderLog {
  /** Runs `read` as reader `name` and records its time and outcome (a throw: failed, nothing found). */
  time<T>(name: ReaderName, read: () => T, assess: (value: T) => ReaderOutcome): T;
  /** As time(), for a read that resolves later: the time runs until it settles. */
  timeAsync<T>(name: ReaderName, read: () => Promise<T>, assess: (value: T) => ReaderOutcome): Promise<T>;
  /** Records a reader that had nothing to read because the one before it failed. */
  skip(name: ReaderName): undefined;
  readonly runs: ReadonlyMap<ReaderName, ReaderRun>;
}

const logs = new WeakMap<Registry, Map<string, ReaderLog>>();

function newLog(): ReaderLog {
  const runs = new Map<ReaderName, ReaderRun>();
  const since = (t0: number): number => (performance.now() - t0) / 1000;
  return {
    runs,
    skip(name) {
      runs.set(name, { seconds: 0, ok: true, items: 0 });
      return undefined;
    },
    time(name, read, assess) {
      const t0 = performance.now();
      try {
        const value = read();
        runs.set(name, { seconds: since(t0), ...assess(value) });
        return value;
      } catch (error) {
        runs.set(name, { seconds: since(t0), ok: false, items: 0 });
        throw error;
      }
    },
    async timeAsync(name, read, assess) {
      const t0 = performance.now();
      try {
        const value = await read();
        runs.set(name, { seconds: since(t0), ...assess(value) });
        return value;
      } catch (error) {
        runs.set(name, { seconds: since(t0), ok: false, items: 0 });
        throw error;
      }
    },
  };
}

/** The one log of a registry and prefix: the system and machine readers write to it. */
export function readerLog(registry: Registry, prefix: string): ReaderLog {
  const byPrefix = logs.get(registry) ?? new Map<string, ReaderLog>();
  logs.set(registry, byPrefix);
  const found = byPrefix.get(prefix);
  if (found !== undefined) return found;
  const log = newLog();
  byPrefix.set(prefix, log);
  return log;
}

/**
 * Registers `ksm_scrape_reader_{duration_seconds,success,items}{reader}`.
 * Register them last: collect() first awaits `settled` (the readers of the
 * current scrape), so the series describe this scrape, not the one before.
 */
export function registerReaderMetrics(client: Client, registry: Registry, prefix: string, log: ReaderLog, settled: () => Promise<unknown>): void {
  const gauge = (name: string, help: string, value: (run: ReaderRun) => number): void => {
    new client.Gauge({
      name: prefix + name,
      help,
      labelNames: ['reader'],
      registers: [registry],
      async collect() {
        await settled().catch(() => undefined);
        this.reset();
        for (const [reader, run] of log.runs) this.set({ reader }, value(run));
      },
    });
  };
  gauge(
    'ksm_scrape_reader_duration_seconds',
    'Seconds each reader of the last scrape took (sysfs, costs, processes, fair_share, cgroups). Readers overlap: ' +
      'sysfs and costs run while the process readers wait on the thread pool, so the sum may exceed the scrape',
    (run) => run.seconds,
  );
  gauge('ksm_scrape_reader_success', 'Whether each reader of the last scrape succeeded: 1 yes, 0 it failed (what it feeds is empty in that scrape, which still answers)', (run) =>
    run.ok ? 1 : 0,
  );
  gauge(
    'ksm_scrape_reader_items',
    'What each reader of the last scrape found: counters (sysfs, costs), processes with KSM accounting (processes), ' +
      'merging processes whose share was read (fair_share), cgroups (cgroups); 0: nothing to read',
    (run) => run.items,
  );
}
