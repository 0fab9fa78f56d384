/**
 * Churn: merged pages broken again by writes (cow_ksm, in vmstat) so soon
 * that ksmd's scanning buys nothing that lasts.
 *
 * The measure: copy-on-write breaks per full scan, over pages_sharing. The
 * threshold comes from mm/ksm.c (its Overview, point 2): a page goes into
 * the unstable tree, and can merge, only when its checksum has not changed
 * since the previous full scan, so every merge costs ksmd at least two
 * visits a full scan apart. When half the merged pages or more break in one
 * full scan (ratio >= 0.5), the average merged page lasts less than two full
 * scans: less than the two visits it took to merge it, so the pages spend
 * more time being merged again than merged, and the work is redone every
 * scan. (Every merged page broken every scan gives a ratio of about 1.)
 * Documentation/admin-guide/mm/ksm.rst: "if cow_ksm increases too fast,
 * user may decrease the range of madvise(, , MADV_MERGEABLE)".
 */
import { VMSTAT_FILE } from '../../kernel/names.js';
import { KSM, ev, finding, seconds } from '../finding.js';
import type { FactsRule } from '../rule.js';

/** Breaks per full scan over pages_sharing at which the scanning is wasted. */
export const CHURN_RATIO = 0.5;
/** Fewer breaks than this in the window say nothing either way. */
export const CHURN_MIN_BREAKS = 16;

export const ksmChurn: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['KSM_CHURN'],
    severities: ['warn'],
    description: 'merged pages are broken by writes (cow_ksm) faster than a full scan merges them',
  },
  check(facts) {
    const sample = facts.churn;
    if (sample === undefined || sample.seconds <= 0) return [];
    const breaks = sample.cowKsmAfter - sample.cowKsmBefore;
    if (breaks < CHURN_MIN_BREAKS) return [];
    const perSecond = breaks / sample.seconds;
    // One full scan: measured where ksmd finished scans in the window, else from the knobs and what it tracks.
    const scans = sample.fullScansAfter !== undefined && sample.fullScansBefore !== undefined ? sample.fullScansAfter - sample.fullScansBefore : 0;
    const { pagesToScan, sleepMillisecs } = facts.ksm;
    const tracked = facts.candidates.kernelTracked;
    const fullScanSec =
      scans > 0
        ? sample.seconds / scans
        : pagesToScan !== undefined && sleepMillisecs !== undefined && sleepMillisecs > 0 && tracked !== undefined && tracked > 0
          ? tracked / ((pagesToScan * 1000) / sleepMillisecs)
          : undefined;
    if (fullScanSec === undefined) return [];
    const sharing = sample.pagesSharing ?? 0;
    const perScan = perSecond * fullScanSec;
    const ratio = sharing > 0 ? perScan / sharing : Infinity;
    if (ratio < CHURN_RATIO) return [];
    const lifetime = sharing > 0 ? sharing / perSecond : 0;
    const evidence = [
      ev(VMSTAT_FILE, 'cow_ksm at the start of the window', sample.cowKsmBefore),
      ev(VMSTAT_FILE, 'cow_ksm at the end of the window', sample.cowKsmAfter),
      ev('computed', 'window', Number(sample.seconds.toFixed(2)), 's'),
      ev('computed', 'copy-on-write breaks per second', Math.round(perSecond)),
      ev(`${KSM}/full_scans`, 'full scans in the window', scans),
      ev('computed', scans > 0 ? 'full scan time (measured)' : 'full scan time (tracked pages / pages per second)', Number(fullScanSec.toFixed(2)), 's'),
      ev(`${KSM}/pages_sharing`, 'pages_sharing', sharing, 'pages'),
      ev('computed', 'breaks per full scan / pages_sharing (threshold 0.5: a merged page lasting under two scans, the two visits mm/ksm.c needs to merge it)', Number.isFinite(ratio) ? Number(ratio.toFixed(2)) : 'no merged pages left'),
    ];
    return [
      finding(
        'KSM_CHURN',
        'warn',
        `Merged pages are written again soon after they merge: ${Math.round(perSecond)} copy-on-write breaks per second (cow_ksm), ` +
          `${Math.round(perScan)} per full scan of ${seconds(fullScanSec)}, against ${sharing} pages sharing` +
          `${sharing > 0 ? ` (a merged page lasts ${seconds(lifetime)} on average)` : ''}. ` +
          'A page merges only after its content held from one scan to the next, so ksmd redoes this work every scan, and every break is a copy-on-write fault in the writer',
        evidence,
        {
          summary:
            'Do not mark memory that is written (per-request buffers, caches that change, the whole heap under merge-any): ' +
            'mark only the stable part (tables loaded once, model weights) and leave the rest unmergeable',
          commands: [],
          call: 'markMergeable(stableBuffer) (or allocMergeable() for data loaded once) instead of enableMerge()',
        },
        [
          {
            summary: 'Where a process under merge-any writes the memory that breaks, turn merge-any off there and advise its stable buffers only',
            commands: [],
            call: 'disableMerge(); markMergeable(stableBuffer)',
          },
        ],
      ),
    ];
  },
};
