/**
 * Whether KSM's work pays: per process from ksm_stat (metadata against
 * saving, tracked pages that never merge), machine-wide for volatile pages
 * (the kernel does not count them per process). Judged only while ksmd
 * runs: stopped, the ratios are frozen mid-scan and KSM_STOPPED is the finding.
 */
import { KSM, ev, finding, mib } from '../finding.js';
import { knobFix } from '../fixes.js';
import type { Derived, ProcessTracking } from '../derive.js';
import type { FactsRule, KsmFacts } from '../rule.js';
import type { Evidence, Finding, Fix } from '../types.js';

/** Below this many tracked pages a process's ratios are noise, not a finding. */
const MIN_TRACKED_PAGES = 256;
/** HIGH_UNSHARED: tracked-but-unmerged pages per merging page. */
const UNSHARED_RATIO = 10;
/** VOLATILE_PAGES: machine-wide volatile share of tracked pages, and a floor (100 MiB of 4 KiB pages). */
const VOLATILE_SHARE = 0.5;
const VOLATILE_MIN_PAGES = 25_600;
/** VOLATILE_PAGES is this process's warning when it holds at least this share of the pages KSM tracks. */
const VOLATILE_OWN_SHARE = 0.5;

function narrowFix(mergeAny: boolean): Fix {
  return mergeAny
    ? {
        summary:
          'Most of this memory never repeats: turn merge-any off and mark only the data that repeats (allocMergeable() for shared tables)',
        commands: [],
        call: 'disableMerge()',
      }
    : {
        summary: 'Unmark the buffers whose pages never repeat; keep allocMergeable() for data other processes hold too',
        commands: [],
        call: 'unmarkMergeable(view)',
      };
}

function trackingEvidence(facts: KsmFacts, derived: Derived, t: ProcessTracking): Evidence[] {
  const { stat, ksm } = facts;
  const source = derived.source.ksmStat;
  return [
    ev(source, 'ksm_rmap_items', t.rmapItems),
    ev(source, 'ksm_merging_pages', t.mergingPages),
    ...(stat.zeroPages !== undefined ? [ev(source, 'ksm_zero_pages', stat.zeroPages)] : []),
    ...(stat.processProfit !== undefined ? [ev(source, 'ksm_process_profit', stat.processProfit, 'bytes')] : []),
    // A page merges on its second visit: judge after two full scans past the last write.
    ...(ksm.fullScans !== undefined ? [ev(`${KSM}/full_scans`, 'full_scans', ksm.fullScans)] : []),
  ];
}

/** metadata > saving  <=>  rmap_items x item size > merged x page: over page / item size rmap items per merging page. */
function metadataExceedsSaving(facts: KsmFacts, derived: Derived, t: ProcessTracking): Finding {
  const { size, source } = derived.rmapItem;
  const perPage = facts.pageSize / size;
  const perPageText = Number.isInteger(perPage) ? String(perPage) : perPage.toFixed(1);
  return finding(
    'METADATA_EXCEEDS_SAVING',
    'warn',
    `KSM tracks ${t.rmapItems} pages of this process (${mib(t.metadataBytes)} of rmap_items at ${size} B) for ${t.mergedPages} merged ` +
      `(${mib(t.savedBytes)}): over ${perPageText} rmap items per merging page, the metadata costs more than merging saves`,
    [
      ...trackingEvidence(facts, derived, t),
      ev('computed', 'rmap_items per merging page', t.mergedPages === 0 ? 'infinite' : Math.round(t.rmapItems / t.mergedPages)),
      ev('computed', `metadata (ksm_rmap_items x ${size})`, t.metadataBytes, 'bytes'),
      ev('computed', 'saving ((merging + zero) x page)', t.savedBytes, 'bytes'),
      // Solved from ksm_process_profit where ksm_stat gives enough, else the struct's size for this word size.
      ev('computed', 'rmap_item size', size, 'bytes'),
      ev('computed', 'rmap_item size from', source),
    ],
    narrowFix(derived.mergeAny),
  );
}

function highUnshared(facts: KsmFacts, derived: Derived, t: ProcessTracking): Finding {
  const { ksm } = facts;
  return finding(
    'HIGH_UNSHARED',
    'warn',
    `${t.unmergedPages} of the ${t.rmapItems} pages KSM tracks for this process have not merged (over ${UNSHARED_RATIO} per merging page): ` +
      'ksmd spends most of its scan on memory that never merges',
    [
      ...trackingEvidence(facts, derived, t),
      ev('computed', 'unmerged tracked pages (rmap_items - merging - zero)', t.unmergedPages, 'pages'),
      ...(ksm.pagesUnshared !== undefined ? [ev(`${KSM}/pages_unshared`, 'pages_unshared', ksm.pagesUnshared)] : []),
      ...(ksm.pagesSharing !== undefined ? [ev(`${KSM}/pages_sharing`, 'pages_sharing', ksm.pagesSharing)] : []),
    ],
    narrowFix(derived.mergeAny),
    ksm.smartScan === false ? [knobFix('Let ksmd skip pages that keep failing to merge (smart_scan, 6.7+)', { smartScan: true })] : [],
  );
}

export const trackedPages: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['METADATA_EXCEEDS_SAVING', 'HIGH_UNSHARED'],
    severities: ['warn'],
    description:
      "this process's rmap_items cost more than merging saves, or over 10 of its tracked pages stay unmerged per merging page",
  },
  check(facts, derived) {
    const t = derived.tracking;
    if (facts.ksm.run !== 1 || t === undefined || t.rmapItems < MIN_TRACKED_PAGES) return [];
    if (t.metadataBytes > t.savedBytes) return [metadataExceedsSaving(facts, derived, t)];
    if (t.unmergedPages > UNSHARED_RATIO * Math.max(t.mergedPages, 1)) return [highUnshared(facts, derived, t)];
    return [];
  },
};

export const volatilePages: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['VOLATILE_PAGES'],
    severities: ['warn', 'info'],
    description: 'most pages KSM tracks machine-wide keep changing; warn when this process holds most of the tracked pages',
  },
  check(facts, derived) {
    const m = derived.machine;
    if (facts.ksm.run !== 1 || m === undefined) return [];
    const { tracked, pagesVolatile: volatile } = m;
    if (volatile < VOLATILE_MIN_PAGES || volatile <= VOLATILE_SHARE * tracked) return [];
    // The figure is this process's own only when its pages are most of what
    // KSM tracks; otherwise the churn may be anywhere (info).
    const rmap = facts.stat.rmapItems;
    const here = rmap !== undefined && rmap >= VOLATILE_OWN_SHARE * tracked;
    return [
      finding(
        'VOLATILE_PAGES',
        here ? 'warn' : 'info',
        `${volatile} of the ${tracked} pages KSM tracks machine-wide changed between two scans (volatile): ` +
          'data that keeps changing never merges, and merged pages that are written are copied back' +
          (here
            ? `; ${rmap} of the tracked pages are this process's, so the churn is mostly its own`
            : `; ${rmap ?? 'an unknown number'} of the tracked pages are this process's, so the churn may be elsewhere`),
        [
          ev(`${KSM}/pages_volatile`, 'pages_volatile', volatile),
          ev(`${KSM}/pages_shared`, 'pages_shared', m.pagesShared),
          ev(`${KSM}/pages_sharing`, 'pages_sharing', m.pagesSharing),
          ev(`${KSM}/pages_unshared`, 'pages_unshared', m.pagesUnshared),
          ...(rmap !== undefined ? [ev(derived.source.ksmStat, 'ksm_rmap_items', rmap)] : []),
        ],
        {
          summary:
            'Mark only data that stays unchanged for several scans (decoded tables, model weights, parsed datasets), ' +
            'not a heap that is rewritten all the time',
          commands: [],
          call: derived.mergeAny ? 'disableMerge(); allocMergeable(size)' : 'allocMergeable(size)',
        },
      ),
    ];
  },
};
