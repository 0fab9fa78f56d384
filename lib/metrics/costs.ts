/**
 * What merging costs, as counters on scrape: `ksm_cow_total` (cow_ksm in
 * vmstat: write faults that copied a KSM page), `ksm_swpin_copy_total`
 * (ksm_swpin_copy) and `ksm_ksmd_cpu_seconds_total` (ksmd's CPU time).
 * rate() of them beside the saving says what the saving costs.
 */
import type * as PromClient from 'prom-client';

import { VMSTAT_FILE } from '../kernel/names.js';
import { readKsmCosts, type KsmCosts } from '../report/costs.js';
import { kernelCounter } from './prom-client.js';
import type { ReaderLog, ReaderOutcome } from './readers.js';

type Registry = PromClient.Registry;

/** One reading per scrape: the three collect callbacks run back to back. */
function costsReader(root: string, log: ReaderLog): () => KsmCosts {
  let last: KsmCosts | undefined;
  // Counters found; a kernel without them is a reader with nothing to read, not a failure.
  const outcome = (c: KsmCosts): ReaderOutcome => ({ items: [c.cowKsm, c.ksmSwpinCopy, c.ksmdCpuSeconds].filter((v) => v !== undefined).length, ok: true });
  return () => {
    if (last === undefined || performance.now() - last.atMs > 500) last = log.time('costs', () => readKsmCosts(root), outcome);
    return last;
  };
}

/** Registers the cost counters this kernel has (a counter it lacks is left out, never shown as 0). */
export function registerCostMetrics(client: typeof PromClient, registry: Registry, prefix: string, root: string, log: ReaderLog): void {
  const read = costsReader(root, log);
  const first = read();
  const counter = (name: string, help: string, value: (costs: KsmCosts) => number | undefined): void => {
    if (value(first) !== undefined) kernelCounter(client, registry, prefix + name, help, () => value(read()));
  };
  counter('ksm_cow_total', `Write faults that copied a KSM page: merged pages broken again (cow_ksm in ${VMSTAT_FILE})`, (c) => c.cowKsm);
  counter('ksm_swpin_copy_total', `Swap-ins that had to copy a KSM page (ksm_swpin_copy in ${VMSTAT_FILE})`, (c) => c.ksmSwpinCopy);
  counter('ksm_ksmd_cpu_seconds_total', "CPU time of ksmd, the kernel thread that scans and merges (its schedstat)", (c) => c.ksmdCpuSeconds);
}
