/**
 * estimate()'s result from the native estimator's per-range figures: per
 * VMA, per process and in total, with KSM's own accounting of zero pages
 * and max_page_sharing.
 */
import { yieldToLoop } from '../concurrency.js';
import { PAGE_STAT, PAGE_STAT_COUNT, PAGE_STAT_FIELDS, type NativeEstimateResult, type PageStatField } from '../binding.js';
import type { SmapsSummary } from '../kernel/smaps.js';
import { ksmCompatible, regionKind, type Classified } from '../kernel/vma.js';
import type { Plan } from './estimate-plan.js';
import type { EstimateCounts, EstimateProcess, EstimateResult } from './estimate-types.js';

/** The per-range counts that add up per VMA and process (savedPages is a fraction, summed apart). */
const COUNT_FIELDS = PAGE_STAT_FIELDS.filter((f): f is Exclude<PageStatField, 'savedPages'> => f !== 'savedPages');

function emptyCounts(): EstimateCounts {
  return {
    presentPages: 0,
    swappedPages: 0,
    filePages: 0,
    zeroPageMapped: 0,
    candidatePages: 0,
    unreadablePages: 0,
    zeroPages: 0,
    volatilePages: 0,
    duplicatePages: 0,
    twinInVma: 0,
    twinInProcess: 0,
    twinInOtherProcess: 0,
    predictedSavedPages: 0,
    predictedSavedBytes: 0,
  };
}

function addCounts(into: EstimateCounts, from: EstimateCounts): void {
  for (const field of COUNT_FIELDS) into[field] += from[field];
  into.predictedSavedPages += from.predictedSavedPages;
}

/** What each VMA of a target is, and the labels inside it. */
export interface VmaNames {
  kinds: Map<SmapsSummary, Classified>;
  labels: ReadonlyArray<{ start: bigint; end: bigint; label: string }>;
}

function labelIn(names: VmaNames | undefined, vma: SmapsSummary): string | undefined {
  const inside = names?.labels.filter((l) => l.start < vma.end && l.end > vma.start).map((l) => l.label) ?? [];
  return inside.length === 0 ? undefined : [...new Set(inside)].join(', ');
}

/** VMAs assembled between two turns of the event loop (a process may have tens of thousands). */
const VMAS_PER_SLICE = 2048;

export async function assemble(
  raw: NativeEstimateResult,
  plans: Plan[],
  names: VmaNames[],
  mergeAny: Array<boolean | undefined>,
  config: { page: number; useZeroPages: boolean; maxPageSharing: number; intervalMs: number; elapsedMs: number; plannedFrom: EstimateResult['plannedFrom'] },
): Promise<EstimateResult> {
  const { page, useZeroPages, maxPageSharing } = config;
  // Range r's figures are stats[r * PAGE_STAT_COUNT + PAGE_STAT.<name>].
  const at = (stats: Float64Array, range: number, field: number): number => stats[range * PAGE_STAT_COUNT + field] ?? 0;

  // Zero pages: with use_zero_pages each one maps the kernel's zero page and
  // frees its own; without, they are one class of identical pages like any.
  let zeroTotal = 0;
  raw.targets.forEach((target, t) => {
    plans[t]!.range.forEach((r) => {
      if (r >= 0) zeroTotal += at(target.stats, r, PAGE_STAT.zeroPages);
    });
  });
  // k identical pages keep ceil(k / max_page_sharing) copies; a last group
  // of one stays unmerged, so it is no KSM page.
  const zeroCopies = zeroTotal < 2 ? zeroTotal : Math.ceil(zeroTotal / maxPageSharing);
  const zeroKept = useZeroPages || zeroTotal < 2
    ? 0
    : Math.floor(zeroTotal / maxPageSharing) + (zeroTotal % maxPageSharing >= 2 ? 1 : 0);
  const zeroSaved = useZeroPages ? zeroTotal : zeroTotal - zeroCopies;
  const zeroShare = zeroTotal === 0 ? 0 : zeroSaved / zeroTotal;

  const processes: EstimateProcess[] = [];
  const total = emptyCounts();
  let assembled = 0;
  for (const [t, p] of plans.entries()) {
    const target = raw.targets[t]!;
    const proc: EstimateProcess = {
      ...emptyCounts(),
      pid: p.pid,
      exited: target.exited,
      mergeAny: mergeAny[t],
      candidatePagesMergeableNow: 0,
      candidatePagesAfterEnableMerge: 0,
      skippedVmas: 0,
      unreadableVmas: 0,
      vmas: [],
      share: 0,
    };
    for (let v = 0; v < p.vmas.length; v++) {
      if (++assembled % VMAS_PER_SLICE === 0) await yieldToLoop();
      const vma = p.vmas[v]!;
      const r = p.range[v]!;
      const counts = emptyCounts();
      if (r >= 0) {
        for (const field of COUNT_FIELDS) counts[field] = at(target.stats, r, PAGE_STAT[field]);
        counts.predictedSavedPages = at(target.stats, r, PAGE_STAT.savedPages) + counts.zeroPages * zeroShare;
      }
      const mergeable = vma.vmFlags.includes('mg');
      const compatible = ksmCompatible(vma);
      const status = p.status[v]!;
      if (status === 'incompatible' || status === 'filtered') proc.skippedVmas++;
      if (status === 'unreadable') proc.unreadableVmas++;
      if (mergeable) proc.candidatePagesMergeableNow += counts.candidatePages;
      else if (compatible) proc.candidatePagesAfterEnableMerge += counts.candidatePages;
      addCounts(proc, counts);
      const classified = names[t]?.kinds.get(vma);
      proc.vmas.push({
        start: vma.start,
        end: vma.end,
        perms: vma.perms,
        pathname: vma.pathname,
        kind: classified?.kind ?? regionKind(vma).kind,
        kindEvidence: classified?.evidence,
        label: labelIn(names[t], vma),
        vmFlags: vma.vmFlags,
        mergeable,
        ksmCompatible: compatible,
        candidateAfterEnableMerge: compatible && !mergeable,
        status,
        reason: p.reason[v],
        share: 0,
        ...counts,
      });
    }
    addCounts(total, proc);
    processes.push(proc);
  }

  // The total is whole by construction; the per-VMA shares are fractions of it.
  total.predictedSavedPages = Math.round(total.predictedSavedPages);
  const saved = total.predictedSavedPages;
  for (const proc of processes) {
    proc.predictedSavedBytes = proc.predictedSavedPages * page;
    proc.share = saved > 0 ? proc.predictedSavedPages / saved : 0;
    for (const vma of proc.vmas) {
      vma.predictedSavedBytes = vma.predictedSavedPages * page;
      vma.share = saved > 0 ? vma.predictedSavedPages / saved : 0;
    }
  }
  total.predictedSavedBytes = saved * page;

  return {
    ...total,
    processes,
    pageSize: page,
    useZeroPages,
    maxPageSharing,
    intervalMs: config.intervalMs,
    predictedPagesShared: raw.keptPages + zeroKept,
    predictedPagesSharing: raw.sharingPages + (useZeroPages ? 0 : zeroSaved),
    predictedZeroPages: useZeroPages ? zeroTotal : 0,
    hashCollisions: raw.hashCollisions,
    memoryBytes: raw.memoryBytes,
    pagesHashed: raw.pagesHashed,
    pfnVisible: raw.pfnVisible,
    threads: raw.threads,
    elapsedMs: config.elapsedMs,
    timings: {
      pagemapMs: raw.timings.pagemapNs / 1e6,
      sampleMs: raw.timings.sampleNs / 1e6,
      resampleMs: raw.timings.resampleNs / 1e6,
      confirmMs: raw.timings.confirmNs / 1e6,
    },
    plannedFrom: config.plannedFrom,
  };
}
