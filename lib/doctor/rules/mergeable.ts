/**
 * Whether the process's memory is a KSM candidate at all: nothing advised,
 * advice the kernel ignored (VM_MERGEABLE left unset), or advised mappings
 * with no page in them yet (ksmd skips a VMA without an anon_vma).
 */
import type { SmapsSummary } from '../../kernel/smaps.js';
import { anonymousLike, whyNotMergeable } from '../../kernel/vma.js';
import { residentAnonymous } from '../derive.js';
import { MAX_LISTED, ev, finding, mib, vmaName } from '../finding.js';
import { allocFix } from '../fixes.js';
import type { FactsRule } from '../rule.js';
import type { Evidence, Fix, Severity } from '../types.js';

/** Mappings smaller than this are not worth a NOT_MERGEABLE line (merge-any case). */
const NOT_MERGEABLE_MIN_BYTES = 1024 * 1024;
/** The biggest anonymous mappings listed as evidence (V8 spaces, malloc or jemalloc arenas). */
const LARGEST_LISTED = 3;

export const nothingMergeable: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['NOTHING_MERGEABLE'],
    severities: ['warn'],
    description: 'no mergeable mapping and merge-any off: the V8 heap, malloc and jemalloc arenas are never scanned',
  },
  check(facts, derived) {
    const { stat, vmas } = facts;
    if (derived.mergingOn || stat.mergeable === true) return [];
    const source = derived.source;
    const evidence: Evidence[] = [];
    if (stat.mergeAny !== undefined) evidence.push(ev(source.ksmStat, 'ksm_merge_any', stat.mergeAny));
    if (stat.mergeable !== undefined) evidence.push(ev(source.ksmStat, 'ksm_mergeable', stat.mergeable));
    evidence.push(ev(source.smaps, 'VMAs with mg', 0));
    evidence.push(ev(source.smaps, 'Anonymous (sum)', derived.anonymousBytes, 'bytes'));
    const largest = vmas
      .filter((vma) => (vma.anonymous ?? 0) > 0)
      .sort((a, b) => (b.anonymous ?? 0) - (a.anonymous ?? 0))
      .slice(0, LARGEST_LISTED);
    for (const vma of largest) evidence.push(ev(source.smaps, `${vmaName(vma)} Anonymous`, vma.anonymous ?? 0, 'bytes'));
    const enableFix: Fix = {
      summary:
        'Opt the whole process in at start-up: V8 heap, malloc and jemalloc arenas become candidates (for a systemd service, ' +
        'MemoryKSM=yes under [Service] does the same from outside, systemd 254+)',
      commands: [],
      call: 'enableMerge()',
      persist: ['[Service] MemoryKSM=yes'],
    };
    return [
      finding(
        'NOTHING_MERGEABLE',
        'warn',
        `No mapping of the process is mergeable and merge-any is off: its ${mib(derived.anonymousBytes)} of anonymous memory ` +
          '(V8 heap, malloc or jemalloc arenas) is never scanned',
        evidence,
        derived.prctlRefused ? allocFix() : enableFix,
        derived.prctlRefused ? [] : [allocFix()],
      ),
    ];
  },
};

export const notMergeable: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['NOT_MERGEABLE'],
    severities: ['warn', 'info'],
    description:
      'advised memory without mg (shared, hugetlb, DAX, PFN maps): labelled buffers (warn), or large anonymous mappings under merge-any (info)',
  },
  check(facts, derived) {
    // Labelled buffers first, in label order, then what merge-any should have covered;
    // not where markSensitive() took the advice back on purpose.
    const sensitive = (vma: SmapsSummary): boolean => facts.sensitive.some((r) => r.start <= vma.start && r.end >= vma.end);
    const listed: Array<{ vma: SmapsSummary; label: string | undefined }> = derived.labelled.filter(
      ({ vma }) => !vma.vmFlags.includes('mg') && !sensitive(vma),
    );
    if (derived.mergeAny) {
      for (const vma of facts.vmas) {
        if (vma.vmFlags.includes('mg') || !anonymousLike(vma)) continue;
        if ((vma.rss ?? 0) < NOT_MERGEABLE_MIN_BYTES) continue;
        if (listed.some((entry) => entry.vma === vma)) continue;
        listed.push({ vma, label: undefined });
      }
    }
    if (listed.length === 0) return [];
    const explicit = listed.some((entry) => entry.label !== undefined);
    const bytes = listed.reduce((sum, entry) => sum + (entry.vma.rss ?? 0), 0);
    const first = listed[0]!;
    return [
      finding(
        'NOT_MERGEABLE',
        explicit ? 'warn' : 'info',
        `${listed.length} mapping(s) with ${mib(bytes)} resident were advised mergeable but the kernel left VM_MERGEABLE unset ` +
          `(first: ${vmaName(first.vma)}${first.label ? ` "${first.label}"` : ''}: ${whyNotMergeable(first.vma)})`,
        listed.slice(0, MAX_LISTED).flatMap(({ vma, label }) => [
          ev(derived.source.smaps, `${vmaName(vma)}${label ? ` "${label}"` : ''} VmFlags`, vma.vmFlags.join(' ')),
          ev(derived.source.smaps, `${vmaName(vma)} Rss`, vma.rss ?? 0, 'bytes'),
        ]),
        {
          summary:
            'Only private anonymous memory merges (not shared, hugetlb, DAX or PFN mappings): copy the data into an allocMergeable() buffer',
          commands: [],
          call: 'allocMergeable(size)',
        },
      ),
    ];
  },
};

export const untouchedRegion: FactsRule = {
  phase: 'facts',
  meta: {
    codes: ['UNTOUCHED_REGION'],
    severities: ['warn', 'info'],
    description: 'a mergeable mapping with no page: ksmd skips it (warn when nothing mergeable is resident)',
  },
  check(_facts, derived) {
    // Under merge-any every never-touched reservation is mergeable: only our own buffers are worth naming.
    const untouched = derived.mergeable.filter(
      (vma) => residentAnonymous(vma) === 0 && (!derived.mergeAny || derived.labelOf.has(vma)),
    );
    if (untouched.length === 0) return [];
    const bytes = untouched.reduce((sum, vma) => sum + Number(vma.end - vma.start), 0);
    // Nothing resident in any mergeable mapping: nothing at all will merge.
    const severity: Severity = derived.mergeableResident === 0 ? 'warn' : 'info';
    return [
      finding(
        'UNTOUCHED_REGION',
        severity,
        `${untouched.length} mergeable mapping(s), ${mib(bytes)} in all, have never been written: ` +
          'ksmd skips memory with no pages (no anon_vma), so they merge nothing until data is written into them',
        untouched.slice(0, MAX_LISTED).flatMap((vma) => {
          const label = derived.labelOf.get(vma);
          const name = `${vmaName(vma)}${label ? ` "${label}"` : ''}`;
          return [
            ev(derived.source.smaps, `${name} Size`, Number(vma.end - vma.start), 'bytes'),
            ev(derived.source.smaps, `${name} Anonymous`, residentAnonymous(vma), 'bytes'),
          ];
        }),
        {
          summary: 'Write the data into the buffer (pages that are only read map the zero page and never merge), or drop the buffer',
          commands: [],
          call: 'buffer.set(data)',
        },
      ),
    ];
  },
};
