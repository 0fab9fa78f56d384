/** Whether PR_SET_MEMORY_MERGE (6.4+) can opt the whole process in: enableMerge() and systemd's MemoryKSM= need it. */
import { OSRELEASE_FILE } from '../../kernel/names.js';
import { ev, finding } from '../finding.js';
import { allocFix } from '../fixes.js';
import type { FactsRule } from '../rule.js';
import type { Evidence, Severity } from '../types.js';

export const prctl: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['PRCTL_BLOCKED', 'PRCTL_UNSUPPORTED'],
    severities: ['warn', 'info'],
    description: 'prctl(PR_SET_MEMORY_MERGE) is missing (before 6.4) or refused (seccomp, LSM); warn when nothing else is mergeable',
  },
  check(facts, derived) {
    const { prctl, status } = facts;
    if (!derived.prctlRefused || (prctl.state !== 'unsupported' && prctl.state !== 'blocked')) return [];
    const blocked = prctl.state === 'blocked';
    const evidence: Evidence[] = [
      ev(prctl.source === 'probe' ? 'prctl(PR_GET_MEMORY_MERGE)' : OSRELEASE_FILE, 'result', prctl.detail),
    ];
    if (facts.kernelRelease) evidence.push(ev(OSRELEASE_FILE, 'osrelease', facts.kernelRelease));
    if (blocked) {
      if (status.seccomp !== undefined) evidence.push(ev(derived.source.status, 'Seccomp', status.seccomp));
      if (status.seccompFilters !== undefined) evidence.push(ev(derived.source.status, 'Seccomp_filters', status.seccompFilters));
      if (status.noNewPrivs !== undefined) evidence.push(ev(derived.source.status, 'NoNewPrivs', status.noNewPrivs));
    }
    // Only a problem for a process that has nothing else mergeable.
    const severity: Severity = derived.mergeable.length > 0 ? 'info' : 'warn';
    if (!blocked) {
      return [
        finding(
          'PRCTL_UNSUPPORTED',
          severity,
          `This kernel has no PR_SET_MEMORY_MERGE (Linux 6.4+): enableMerge() and systemd MemoryKSM= cannot opt a whole process in`,
          evidence,
          allocFix(),
        ),
      ];
    }
    return [
      finding(
        'PRCTL_BLOCKED',
        severity,
        'prctl(PR_SET_MEMORY_MERGE) is refused with EPERM (a seccomp filter or LSM policy): enableMerge() and systemd MemoryKSM= cannot work here',
        evidence,
        {
          summary:
            'Use allocMergeable() for the data that repeats (madvise is not refused), or allow prctl options 67 and 68 ' +
            '(PR_SET_MEMORY_MERGE, PR_GET_MEMORY_MERGE) in the seccomp profile the container or unit runs with',
          commands: [],
          call: 'allocMergeable(size)',
        },
      ),
    ];
  },
};
