/** Merge-any that came from the parent: PR_SET_MEMORY_MERGE survives fork and exec. */
import { procFile } from '../../kernel/names.js';
import { ev, finding } from '../finding.js';
import type { FactsRule } from '../rule.js';
import type { Evidence } from '../types.js';

export const mergeAnyInherited: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['MERGE_ANY_INHERITED'],
    severities: ['info'],
    description: 'merge-any on, but this process never called enableMerge() (or its parent has it)',
  },
  check(facts, derived) {
    if (facts.stat.mergeAny !== true) return [];
    // This process knows whether it called enableMerge(); another is judged by its parent's flag.
    const inherited = facts.enableMergeCalled !== undefined ? !facts.enableMergeCalled : facts.parentMergeAny === true;
    if (!inherited) return [];
    const { ppid } = facts.status;
    const evidence: Evidence[] = [ev(derived.source.ksmStat, 'ksm_merge_any', true)];
    if (facts.enableMergeCalled !== undefined) evidence.push(ev('node-ksm', 'enableMerge() called in this process', false));
    if (ppid !== undefined) evidence.push(ev(derived.source.status, 'PPid', ppid));
    if (facts.parentMergeAny !== undefined && ppid !== undefined) {
      evidence.push(ev(procFile(ppid, 'ksm_stat'), 'ksm_merge_any', facts.parentMergeAny));
    }
    return [
      finding(
        'MERGE_ANY_INHERITED',
        'info',
        'Merge-any is on for this process but it did not turn it on: the flag came from its parent (it survives fork and exec), ' +
          'so all of its anonymous memory is a KSM candidate without its own say',
        evidence,
        {
          summary:
            'If this process should not merge (it runs code or data from another trust domain), turn the flag off first thing at start-up, ' +
            'before it allocates; if it should, call enableMerge() itself so the choice is its own',
          commands: [],
          call: 'disableMerge()',
        },
        [{ summary: 'Own the choice: opt in explicitly at start-up', commands: [], call: 'enableMerge()' }],
      ),
    ];
  },
};
