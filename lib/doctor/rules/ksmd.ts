/** Whether ksmd exists and runs: without it nothing else matters. */
import { OSRELEASE_FILE } from '../../kernel/names.js';
import { KSM, ev, finding } from '../finding.js';
import { knobFix } from '../fixes.js';
import type { FactsRule, GateRule } from '../rule.js';

export const ksmNotBuilt: GateRule = {
  phase: 'gate',
  meta: {
    codes: ['KSM_NOT_BUILT'],
    severities: ['error'],
    description: 'no KSM sysfs directory: the kernel was built without CONFIG_KSM',
  },
  check(facts) {
    if (facts.ksm !== undefined) return [];
    const release = facts.kernelRelease;
    return [
      finding(
        'KSM_NOT_BUILT',
        'error',
        `${KSM} does not exist: this kernel${release ? ` (${release})` : ''} was built without CONFIG_KSM, so nothing can merge`,
        [ev(KSM, 'exists', false), ...(release ? [ev(OSRELEASE_FILE, 'osrelease', release)] : [])],
        {
          summary:
            'Boot a kernel built with CONFIG_KSM=y (the distribution kernels of Debian, Ubuntu, Fedora and RHEL have it); ' +
            'in a VM or a container, the host kernel decides. Check with the command below.',
          commands: ['grep CONFIG_KSM= /boot/config-$(uname -r)'],
        },
      ),
    ];
  },
};

export const ksmStopped: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['KSM_STOPPED'],
    severities: ['error'],
    description: 'run is not 1: ksmd scans nothing (0) or unmerges everything (2)',
  },
  check({ ksm }) {
    if (ksm.run === 1) return [];
    const what =
      ksm.run === 2
        ? 'ksmd is unmerging every page and scanning nothing (run = 2)'
        : `ksmd is not running (run = ${ksm.run ?? 'unreadable'})`;
    return [
      finding(
        'KSM_STOPPED',
        'error',
        `${what}: nothing is scanned and nothing merges, whatever the processes advise`,
        [ev(`${KSM}/run`, 'run', ksm.run ?? 'unreadable')],
        knobFix("Start ksmd (as root). systemd's MemoryKSM=yes only opts a service in; it does not start ksmd.", { run: 1 }),
      ),
    ];
  },
};
