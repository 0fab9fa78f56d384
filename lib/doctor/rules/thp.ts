/** Transparent huge pages inside mergeable memory: a huge page must be split before its 4 KiB pages can merge. */
import { THP_ENABLED_FILE } from '../../kernel/names.js';
import { MAX_LISTED, ev, finding, mib, vmaName } from '../finding.js';
import type { FactsRule } from '../rule.js';

export const thpInMergeable: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['THP_IN_MERGEABLE'],
    severities: ['warn'],
    description: 'AnonHugePages inside mergeable mappings',
  },
  check(facts, derived) {
    const huge = derived.mergeable.filter((vma) => (vma.anonHugePages ?? 0) > 0);
    if (huge.length === 0) return [];
    const bytes = huge.reduce((sum, vma) => sum + (vma.anonHugePages ?? 0), 0);
    const mode = facts.thpEnabled;
    return [
      finding(
        'THP_IN_MERGEABLE',
        'warn',
        `${mib(bytes)} of mergeable memory sits in transparent huge pages (THP ${mode ?? 'mode unknown'}): ` +
          'a huge page must be split before its 4 KiB pages can merge, and khugepaged may collapse them again',
        [
          ...(mode !== undefined ? [ev(THP_ENABLED_FILE, 'enabled', mode)] : []),
          ...huge
            .slice(0, MAX_LISTED)
            .map((vma) => ev(derived.source.smaps, `${vmaName(vma)} AnonHugePages`, vma.anonHugePages ?? 0, 'bytes')),
        ],
        mode === 'always'
          ? {
              summary: 'Give huge pages only to memory that asks for them (THP madvise), so mergeable buffers stay in 4 KiB pages',
              commands: [`echo madvise > ${THP_ENABLED_FILE}`],
              persist: ['kernel command line: transparent_hugepage=madvise'],
            }
          : {
              summary: 'Do not madvise(MADV_HUGEPAGE) memory that is meant to merge; allocMergeable() buffers get 4 KiB pages under THP madvise',
              commands: [],
              call: 'allocMergeable(size)',
            },
      ),
    ];
  },
};
