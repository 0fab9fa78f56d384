/**
 * The kind of every VMA of a target, Node's kinds included: smaps says what
 * the kernel knows, the layout and a few reads beside it (stack pointers,
 * malloc chunk headers) say the rest where they can. One place for
 * regions(), profit() and estimate().
 */
import { pageSizeOf } from '../binding.js';
import type { SmapsSummary } from '../kernel/smaps.js';
import type { ProcessTarget } from '../kernel/target.js';
import { readLayoutFacts } from '../kernel/vma-evidence.js';
import { classifyVmas, type Classified } from '../kernel/vma.js';

/**
 * Each VMA's classification, in the order of `vmas`. `reads` false: from the
 * layout alone (no stack pointers, no chunk headers), for callers that only
 * need the figures of many processes.
 */
export async function classifiedInOrder(
  target: ProcessTarget,
  vmas: readonly SmapsSummary[],
  deadlineMs?: number,
  reads = true,
): Promise<Classified[]> {
  const facts = reads ? await readLayoutFacts(target, vmas, pageSizeOf(), deadlineMs) : {};
  return classifyVmas(vmas, facts);
}

/** The same, by the VMA object. */
export async function kindsOf(
  target: ProcessTarget,
  vmas: readonly SmapsSummary[],
  deadlineMs?: number,
  reads = true,
): Promise<Map<SmapsSummary, Classified>> {
  const classified = await classifiedInOrder(target, vmas, deadlineMs, reads);
  return new Map(vmas.map((vma, i) => [vma, classified[i]!]));
}
