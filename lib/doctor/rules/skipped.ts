/**
 * Processes the machine-wide pass skipped because their memory map stayed
 * locked past the deadline (a long mmap, munmap or merge-state change, or a
 * process holding it on purpose): named, so the report says what it left out.
 */
import { EVERY_SMAPS } from '../../kernel/names.js';
import { ev, finding } from '../finding.js';
import type { FactsRule } from '../rule.js';

const LISTED = 10;

export const processesSkipped: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['PROCESSES_SKIPPED'],
    severities: ['info'],
    description: 'processes whose smaps or ksm_stat did not answer in time (mmap_lock held): skipped, never waited on',
  },
  check({ candidates }) {
    if (candidates.slow.length === 0) return [];
    const names = candidates.slow.slice(0, LISTED).map((p) => `${p.pid} (${p.comm})`);
    const more = candidates.slow.length > LISTED ? ` and ${candidates.slow.length - LISTED} more` : '';
    return [
      finding(
        'PROCESSES_SKIPPED',
        'info',
        `${candidates.slow.length} process(es) did not answer within 2 s, their memory map locked ` +
          `(mapping, unmapping or changing their merge state), and were skipped: ${names.join(', ')}${more}. ` +
          'Their pages are left out of the scan-time estimate',
        candidates.slow.slice(0, LISTED).map((p) => ev(EVERY_SMAPS, `process ${p.pid} (${p.comm})`, 'skipped: mmap_lock held')),
        undefined,
      ),
    ];
  },
};
