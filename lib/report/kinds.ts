/**
 * The kind of every VMA of a target, Node's kinds included: smaps says what
 * the kernel knows, the layout and a few reads beside it (stack pointers,
 * malloc chunk headers) say the rest where they can. For estimate();
 * regions() and profit() make the same reads (readLayoutFacts()) beside
 * their own work and apply what they tell (factKinds()) afterwards.
 */
import { pageSizeOf } from '../binding.js';
import type { SmapsSummary } from '../kernel/smaps.js';
import type { ProcessTarget } from '../kernel/target.js';
import { readLayoutFacts } from '../kernel/vma-evidence.js';
import { classifyVmas, type Classified } from '../kernel/vma.js';

/**
 * Each VMA's classification, by the VMA object. `reads` false: from the
 * layout alone (no stack pointers, no chunk headers), for callers that only
 * need the figures of many processes.
 */
export async function kindsOf(
  target: ProcessTarget,
  vmas: readonly SmapsSummary[],
  deadlineMs?: number,
  reads = true,
): Promise<Map<SmapsSummary, Classified>> {
  const facts = reads ? await readLayoutFacts(target, vmas, pageSizeOf(), deadlineMs) : {};
  const classified = classifyVmas(vmas, facts);
  return new Map(vmas.map((vma, i) => [vma, classified[i]!]));
}
