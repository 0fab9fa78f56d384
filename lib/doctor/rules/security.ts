/**
 * KSM as a side channel: a write to a merged page takes measurably longer
 * (copy on write), telling the writer that another process holds the same
 * bytes. Judged only for a process that declares it holds secrets.
 */
import { MAX_LISTED, ev, finding, hex, vmaName } from '../finding.js';
import type { FactsRule } from '../rule.js';
import type { Evidence, Fix } from '../types.js';

export const sideChannelRisk: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['SIDE_CHANNEL_RISK'],
    severities: ['error', 'warn'],
    description: 'the process handles secrets by its own declaration and merges (error: a sensitive range is mergeable)',
  },
  check(facts, derived, options) {
    const { sensitive, stat } = facts;
    if (!options.handlesSecrets && sensitive.length === 0) return [];
    const exposed = sensitive.flatMap((range) =>
      derived.mergeable.filter((vma) => vma.start < range.end && vma.end > range.start).map((vma) => ({ range, vma })),
    );
    const source = derived.source;
    const evidence: Evidence[] = [
      ...(options.handlesSecrets ? [ev('doctor options', 'handlesSecrets', true)] : []),
      ...(sensitive.length > 0 ? [ev('node-ksm', 'sensitive ranges', sensitive.length)] : []),
      ...(stat.mergeAny !== undefined ? [ev(source.ksmStat, 'ksm_merge_any', stat.mergeAny)] : []),
      ev(source.smaps, 'VMAs with mg', derived.mergeable.length),
      ...(stat.mergingPages !== undefined ? [ev(source.ksmStat, 'ksm_merging_pages', stat.mergingPages)] : []),
    ];
    const first = exposed[0];
    if (first !== undefined) {
      return [
        finding(
          'SIDE_CHANNEL_RISK',
          'error',
          `${exposed.length} sensitive range(s) lie in mergeable memory (first: ${hex(first.range.start)}-${hex(first.range.end)}` +
            `${first.range.label ? ` "${first.range.label}"` : ''} in ${vmaName(first.vma)}): the timing of a write to a merged page ` +
            'tells another process that it holds the same bytes',
          [...evidence, ...exposed.slice(0, MAX_LISTED).map(({ vma }) => ev(source.smaps, `${vmaName(vma)} VmFlags`, vma.vmFlags.join(' ')))],
          {
            summary: 'Make the sensitive memory unmergeable again: markSensitive(view) advises MADV_UNMERGEABLE on its pages and records it',
            commands: [],
            call: 'markSensitive(view)',
          },
        ),
      ];
    }
    if (!derived.mergingOn) return [];
    const fix: Fix = derived.mergeAny
      ? {
          summary: 'Keep merge-any off in a process that holds secrets; merge only public data, in allocMergeable() buffers',
          commands: [],
          call: 'disableMerge()',
        }
      : {
          summary: 'Keep secrets out of mergeable buffers: unmark any buffer that holds them (or mark it sensitive)',
          commands: [],
          call: 'unmarkMergeable(view)',
        };
    return [
      finding(
        'SIDE_CHANNEL_RISK',
        'warn',
        'This process handles secrets by its own declaration and has merging on: KSM is a timing side channel ' +
          '(a write to a merged page takes measurably longer, telling another process it holds the same bytes)',
        evidence,
        fix,
      ),
    ];
  },
};
