/** Merge-any that came from the parent: PR_SET_MEMORY_MERGE survives fork and exec. */
import { OSRELEASE_FILE, procFile } from '../../kernel/names.js';
import { UNMERGED_ENV } from '../../merge/security.js';
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

/**
 * Merge-any lost on the way: the parent has it, this process does not, and
 * it did not turn it off itself. The flag is inherited across fork and exec,
 * but before "ksm: fix exec/fork inheritance" (6.19, backported to 6.12.y
 * and 6.6.y in January 2026) ksmd could clear it while exec ran. Children of
 * spawnUnmerged() carry NODE_KSM_REGISTER=off in their environment and a
 * process that called disableMerge() knows it did: neither is a finding.
 */
export const mergeAnyLost: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['MERGE_ANY_LOST'],
    severities: ['warn', 'info'],
    description: "the parent merges-any, this process does not, and it did not opt out (the flag was lost across exec)",
  },
  check(facts, derived) {
    if (facts.stat.mergeAny !== false || facts.parentMergeAny !== true || facts.optedOut.value) return [];
    const { ppid } = facts.status;
    const evidence: Evidence[] = [ev(derived.source.ksmStat, 'ksm_merge_any', false)];
    if (ppid !== undefined) {
      evidence.push(ev(derived.source.status, 'PPid', ppid));
      evidence.push(ev(procFile(ppid, 'ksm_stat'), 'ksm_merge_any', true));
    }
    evidence.push(
      facts.optedOut.known
        ? ev(procFile(facts.procName, 'environ'), `${UNMERGED_ENV} (set to off by spawnUnmerged())`, 'not set')
        : ev(procFile(facts.procName, 'environ'), 'readable', false),
    );
    if (facts.kernelRelease !== undefined) evidence.push(ev(OSRELEASE_FILE, 'osrelease', facts.kernelRelease));
    const unsure = facts.optedOut.known ? '' : ' (its environment could not be read, so a spawnUnmerged() child cannot be ruled out)';
    return [
      finding(
        'MERGE_ANY_LOST',
        facts.optedOut.known ? 'warn' : 'info',
        `Merge-any is on for the parent (pid ${ppid ?? '?'}) but off here, and this process did not turn it off${unsure}: ` +
          'the flag did not survive its start. Kernels before "ksm: fix exec/fork inheritance" (6.19; 6.12.y and 6.6.y since January 2026) ' +
          'can clear it while exec runs, so none of its memory merges',
        evidence,
        {
          summary: 'Set the flag in the process itself rather than trusting inheritance: start it with node-ksm/register (every cluster/pm2 worker sets it again)',
          commands: ['NODE_OPTIONS="--require node-ksm/register" node app.js'],
          call: 'enableMerge()',
        },
        [{ summary: 'Run a kernel with the fix: 6.19 or later, or a 6.12.y / 6.6.y release from January 2026 on', commands: [] }],
      ),
    ];
  },
};
