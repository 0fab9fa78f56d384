/** The good news: pages of this process map KSM pages. */
import { KSM, ev, finding, mib } from '../finding.js';
import type { FactsRule } from '../rule.js';

export const merging: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['MERGING'],
    severities: ['info'],
    description: "the process has pages merged, with its ksm_process_profit (which counts the copy that stays)",
  },
  check({ stat, ksm, pageSize }, derived) {
    const pages = stat.mergingPages;
    if (pages === undefined || pages <= 0) return [];
    const source = derived.source.ksmStat;
    return [
      finding(
        'MERGING',
        'info',
        `${pages} pages of this process (${mib(pages * pageSize)}) map KSM pages` +
          (stat.processProfit !== undefined ? `; ksm_process_profit ${mib(stat.processProfit)} (counts the copy that stays)` : ''),
        [
          ev(source, 'ksm_merging_pages', pages),
          ...(stat.rmapItems !== undefined ? [ev(source, 'ksm_rmap_items', stat.rmapItems)] : []),
          ...(stat.processProfit !== undefined ? [ev(source, 'ksm_process_profit', stat.processProfit, 'bytes')] : []),
          ...(ksm.generalProfit !== undefined ? [ev(`${KSM}/general_profit`, 'general_profit', ksm.generalProfit, 'bytes')] : []),
        ],
        undefined,
      ),
    ];
  },
};
