/** merge_across_nodes on a NUMA machine: one copy serves every node, read remotely from the others. */
import { NUMA_NODE_DIR } from '../../kernel/names.js';
import { KSM, ev, finding } from '../finding.js';
import type { FactsRule } from '../rule.js';

export const numaCrossNode: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['NUMA_CROSS_NODE'],
    severities: ['info'],
    description: 'merge_across_nodes=1 on a machine with several NUMA nodes',
  },
  check(facts) {
    const nodes = facts.numaNodes ?? 0;
    if (nodes <= 1 || facts.ksm.mergeAcrossNodes !== true) return [];
    return [
      finding(
        'NUMA_CROSS_NODE',
        'info',
        `merge_across_nodes is 1 on a machine with ${nodes} NUMA nodes: one copy of a merged page serves every node, ` +
          'so processes on the other nodes read it remotely (more saving, higher latency)',
        [
          ev(`${KSM}/merge_across_nodes`, 'merge_across_nodes', 1),
          ev(NUMA_NODE_DIR, 'nodes', nodes),
          ...(facts.numaDistances ? [ev(`${NUMA_NODE_DIR}/node0/distance`, 'distance', facts.numaDistances.join(' '))] : []),
        ],
        {
          summary:
            'Where latency matters more than memory, merge per node: merge_across_nodes changes only while nothing is merged, ' +
            'so unmerge (run=2, memory rises by what was saved), switch, and restart',
          // Not setKnobs' order: the point is the unmerge before the switch and the restart after it.
          commands: [`echo 2 > ${KSM}/run`, `echo 0 > ${KSM}/merge_across_nodes`, `echo 1 > ${KSM}/run`],
          persist: [`/etc/tmpfiles.d/ksm.conf: w ${KSM}/merge_across_nodes - - - - 0`],
        },
      ),
    ];
  },
};
