/**
 * The reconciliation: how this report's fair share relates to the kernel's
 * own figures (smaps_rollup, ksm_process_profit, ksm_merging_pages), in
 * numbers and in words.
 */
import { formatBytes } from '../../format.js';
import type { ProfitKsmStat } from './accounting.js';
import type { ProfitReconciliation, ProfitTotal } from './types.js';

export function reconcile(total: ProfitTotal, stat: ProfitKsmStat, rollupKsm: number | undefined, pageSize: number): ProfitReconciliation {
  const processProfit = stat.processProfit;
  const keptCopyBytes = processProfit === undefined || total.netBytes === undefined ? undefined : processProfit - total.netBytes;
  const merged = stat.mergingPages === undefined ? total.mergedBytes : stat.mergingPages * pageSize;
  if (stat.unreadable !== undefined) {
    return {
      rollupKsmBytes: rollupKsm,
      rollupDifferenceBytes: rollupKsm === undefined ? undefined : total.mergedBytes - rollupKsm,
      processProfitBytes: undefined,
      keptCopyBytes: undefined,
      explanation:
        `ksm_stat is unreadable (${stat.unreadable}): a process that dropped root with setuid() is not dumpable and its ` +
        '/proc files belong to root. Merged and saved bytes come from smaps; the rmap_item cost and ' +
        'ksm_process_profit are unknown. Each KSM page mapped k times is credited (k-1)/k per mapping: ' +
        `${formatBytes(total.savedBytes)} here.`,
    };
  }
  const parts = [
    `ksm_process_profit (${formatBytes(processProfit)}) credits this process a whole page for each of the ` +
      `${Math.round(merged / pageSize)} pages it maps to a KSM page (${formatBytes(merged)}). ` +
      'A KSM page mapped k times saved k-1 pages among all its mappers, so each mapping is credited (k-1)/k: ' +
      `${formatBytes(total.savedBytes)} here.`,
  ];
  if (keptCopyBytes !== undefined) {
    parts.push(
      `The difference, ${formatBytes(keptCopyBytes)}, is this process's share of the copies that stay in memory; ` +
        'adding ksm_process_profit over processes counts each kept copy once per mapper and overstates the saving. ' +
        'The fair shares (savedBytes) of all processes add up to pages_sharing x page size.',
    );
  }
  if (stat.mergingPages !== undefined && stat.mergingPages * pageSize !== total.mergedBytes) {
    parts.push(
      `ksm_merging_pages (${formatBytes(stat.mergingPages * pageSize)}) counts pages ksmd merged for this process; ` +
        `smaps KSM (${formatBytes(total.mergedBytes)}) counts pages mapped now, including KSM pages inherited ` +
        'through fork() that ksmd has not visited, and excluding pages unmapped since.',
    );
  }
  return {
    rollupKsmBytes: rollupKsm,
    rollupDifferenceBytes: rollupKsm === undefined ? undefined : total.mergedBytes - rollupKsm,
    processProfitBytes: processProfit,
    keptCopyBytes,
    explanation: parts.join(' '),
  };
}

