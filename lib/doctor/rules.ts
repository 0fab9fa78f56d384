/**
 * The rules: plain functions from what was read (Facts) to findings. Every
 * threshold is named here, with why.
 */
import { whyNotMergeable, type SmapsVma } from '../kernel/smaps.js';
import { KNOB_FILES, type KsmKnobs } from '../kernel/sysfs.js';
import type { Facts } from './collect.js';
import type { Evidence, Finding, FindingCode, Fix, Severity } from './types.js';

const KSM = '/sys/kernel/mm/ksm';
/** The kernel's rmap_item on 64-bit: what each tracked page costs. */
export const RMAP_ITEM_BYTES = 64;
/** Process-level thresholds below which a pattern is noise, not a finding. */
const MIN_TRACKED_PAGES = 256;
/** HIGH_UNSHARED: tracked-but-unmerged pages per merging page. */
const UNSHARED_RATIO = 10;
/** VOLATILE_PAGES: machine-wide volatile share of tracked pages, and a floor (100 MiB of 4 KiB pages). */
const VOLATILE_SHARE = 0.5;
const VOLATILE_MIN_PAGES = 25_600;
/** VOLATILE_PAGES is this process's warning when it holds at least this share of the pages KSM tracks. */
const VOLATILE_OWN_SHARE = 0.5;
/** Mappings smaller than this are not worth a NOT_MERGEABLE line (merge-any case). */
const NOT_MERGEABLE_MIN_BYTES = 1024 * 1024;
/** At most this many mappings are listed as evidence per finding. */
const MAX_LISTED = 5;

export interface RuleOptions {
  handlesSecrets: boolean;
  targetScanTimeSec: number;
  maxScanTimeSec: number;
}

const ORDER: FindingCode[] = [
  'KSM_NOT_BUILT',
  'KSM_STOPPED',
  'SIDE_CHANNEL_RISK',
  'PRCTL_BLOCKED',
  'PRCTL_UNSUPPORTED',
  'NOTHING_MERGEABLE',
  'NOT_MERGEABLE',
  'UNTOUCHED_REGION',
  'SCAN_TOO_SLOW',
  'METADATA_EXCEEDS_SAVING',
  'HIGH_UNSHARED',
  'VOLATILE_PAGES',
  'THP_IN_MERGEABLE',
  'MERGE_ANY_INHERITED',
  'NUMA_CROSS_NODE',
  'SYSFS_READ_ONLY',
  'NOT_ROOT',
  'ADVISOR_AVAILABLE',
  'MERGING',
];
const RANK: Record<Severity, number> = { error: 0, warn: 1, info: 2 };

function finding(
  code: FindingCode,
  severity: Severity,
  message: string,
  evidence: Evidence[],
  fix: Fix | undefined,
  alternatives: Fix[] = [],
): Finding {
  return { code, severity, message, evidence, fix, alternatives };
}

function ev(source: string, key: string, value: number | string | boolean, unit?: Evidence['unit']): Evidence {
  return unit === undefined ? { source, key, value } : { source, key, value, unit };
}

/** `echo V > /sys/kernel/mm/ksm/F` lines for knobs, in the order setKnobs() writes them. */
export function knobCommands(knobs: KsmKnobs): string[] {
  const entries = Object.entries(knobs).filter(([, value]) => value !== undefined) as Array<[keyof KsmKnobs, unknown]>;
  const rank = (name: keyof KsmKnobs, value: unknown): number =>
    name === 'advisorMode' ? (value === 'none' ? 0 : 2) : name === 'run' ? 3 : 1;
  entries.sort((a, b) => rank(a[0], a[1]) - rank(b[0], b[1]));
  return entries.map(([name, value]) => {
    const text = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
    return `echo ${text} > ${KSM}/${KNOB_FILES[name]}`;
  });
}

/** tmpfiles.d lines that replay the same writes at boot. */
function tmpfilesLines(knobs: KsmKnobs): string[] {
  return knobCommands(knobs).map((command) => {
    const [, value, file] = /^echo (\S+) > (\S+)$/.exec(command)!;
    return `/etc/tmpfiles.d/ksm.conf: w ${file} - - - - ${value}`;
  });
}

function knobFix(summary: string, knobs: KsmKnobs): Fix {
  return { summary, commands: knobCommands(knobs), knobs, persist: tmpfilesLines(knobs) };
}

/** The kernel's scan-time advisor (6.8+), aimed at `targetSec` (it takes whole seconds, at least 1). */
function advisorFix(targetSec: number): Fix {
  const seconds = Math.max(1, Math.round(targetSec));
  return knobFix(
    `Let the kernel's scan-time advisor (6.8+) size pages_to_scan for a ${seconds} s full scan, within advisor_max_cpu`,
    { advisorTargetScanTimeSec: seconds, advisorMode: 'scan-time' },
  );
}

function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(bytes >= 10 * 1048576 ? 0 : 1)} MiB`;
}

function seconds(value: number): string {
  if (value >= 3600) return `${(value / 3600).toFixed(1)} h`;
  if (value >= 120) return `${(value / 60).toFixed(1)} min`;
  return `${value.toFixed(value >= 10 ? 0 : 1)} s`;
}

function hex(value: bigint): string {
  return `0x${value.toString(16)}`;
}

function vmaName(vma: SmapsVma): string {
  return `${hex(vma.start)}-${hex(vma.end)}${vma.pathname ? ` ${vma.pathname}` : ''}`;
}

/** Memory that can only be anonymous data: no file behind it, or a shared-memory object. */
function anonymousLike(vma: SmapsVma): boolean {
  if (vma.pathname.startsWith('[') && vma.pathname !== '[heap]' && !vma.pathname.startsWith('[anon')) return false;
  return (
    vma.inode === 0 ||
    vma.pathname.startsWith('/memfd:') ||
    vma.pathname.startsWith('/dev/zero') ||
    vma.pathname.startsWith('/SYSV') ||
    vma.pathname.startsWith('/dev/shm/') ||
    vma.vmFlags.includes('ht')
  );
}

export function diagnose(facts: Facts, options: RuleOptions): Finding[] {
  const out: Finding[] = [];
  const pidLabel = facts.procName;
  const proc = (file: string): string => `/proc/${pidLabel}/${file}`;
  const { ksm, stat, vmas } = facts;

  if (ksm === undefined) {
    out.push(
      finding(
        'KSM_NOT_BUILT',
        'error',
        `${KSM} does not exist: this kernel${facts.kernelRelease ? ` (${facts.kernelRelease})` : ''} was built without CONFIG_KSM, so nothing can merge`,
        [
          ev(KSM, 'exists', false),
          ...(facts.kernelRelease ? [ev('/proc/sys/kernel/osrelease', 'osrelease', facts.kernelRelease)] : []),
        ],
        {
          summary:
            'Boot a kernel built with CONFIG_KSM=y (the distribution kernels of Debian, Ubuntu, Fedora and RHEL have it); ' +
            'in a VM or a container, the host kernel decides. Check with the command below.',
          commands: ['grep CONFIG_KSM= /boot/config-$(uname -r)'],
        },
      ),
    );
    return sort(out);
  }

  const mergeable = vmas.filter((vma) => vma.vmFlags.includes('mg'));
  const mergeAny = stat.mergeAny ?? facts.enableMergeCalled ?? false;
  const mergingOn = mergeAny || mergeable.length > 0;
  const anonymousBytes = vmas.reduce((sum, vma) => sum + (vma.fields.Anonymous ?? 0), 0);
  const mergeableResident = mergeable.reduce((sum, vma) => sum + (vma.fields.Anonymous ?? vma.fields.Rss ?? 0), 0);

  // KSM_STOPPED
  if (ksm.run !== 1) {
    const what =
      ksm.run === 2
        ? 'ksmd is unmerging every page and scanning nothing (run = 2)'
        : `ksmd is not running (run = ${ksm.run ?? 'unreadable'})`;
    out.push(
      finding(
        'KSM_STOPPED',
        'error',
        `${what}: nothing is scanned and nothing merges, whatever the processes advise`,
        [ev(`${KSM}/run`, 'run', ksm.run ?? 'unreadable')],
        knobFix("Start ksmd (as root). systemd's MemoryKSM=yes only opts a service in; it does not start ksmd.", { run: 1 }),
      ),
    );
  }

  // SCAN_TOO_SLOW, ADVISOR_AVAILABLE
  const advisorPresent = ksm.advisorModes?.includes('scan-time') ?? false;
  const advisorOn = ksm.advisorMode === 'scan-time';
  const scan = scanEstimate(facts, options);
  if (scan !== undefined) out.push(scan);
  if (advisorPresent && !advisorOn) {
    out.push(
      finding(
        'ADVISOR_AVAILABLE',
        'info',
        'This kernel has the scan-time advisor: it sets pages_to_scan itself so that a full scan takes advisor_target_scan_time, ' +
          'and follows the candidate set as it grows or shrinks',
        [
          ev(`${KSM}/advisor_mode`, 'advisor_mode', ksm.advisorMode ?? 'unknown'),
          ...(ksm.advisorTargetScanTimeSec !== undefined
            ? [ev(`${KSM}/advisor_target_scan_time`, 'advisor_target_scan_time', ksm.advisorTargetScanTimeSec, 's')]
            : []),
        ],
        advisorFix(options.targetScanTimeSec),
      ),
    );
  }

  // PRCTL_UNSUPPORTED / PRCTL_BLOCKED
  const allocFix: Fix = {
    summary: 'Put the data that repeats in allocMergeable() buffers (or markMergeable() an existing view): madvise works on every KSM kernel',
    commands: [],
    call: 'allocMergeable(size)',
  };
  // The probe runs in this process: its seccomp filter says nothing about another pid's.
  if (facts.prctl.state === 'unsupported' || (facts.prctl.state === 'blocked' && facts.self)) {
    const blocked = facts.prctl.state === 'blocked';
    const evidence: Evidence[] = [
      ev(facts.prctl.source === 'probe' ? 'prctl(PR_GET_MEMORY_MERGE)' : '/proc/sys/kernel/osrelease', 'result', facts.prctl.detail),
    ];
    if (facts.kernelRelease) evidence.push(ev('/proc/sys/kernel/osrelease', 'osrelease', facts.kernelRelease));
    if (blocked) {
      if (facts.status.seccomp !== undefined) evidence.push(ev(proc('status'), 'Seccomp', facts.status.seccomp));
      if (facts.status.seccompFilters !== undefined) evidence.push(ev(proc('status'), 'Seccomp_filters', facts.status.seccompFilters));
      if (facts.status.noNewPrivs !== undefined) evidence.push(ev(proc('status'), 'NoNewPrivs', facts.status.noNewPrivs));
    }
    // Only a problem for a process that has nothing else mergeable.
    const severity: Severity = mergeable.length > 0 ? 'info' : 'warn';
    out.push(
      blocked
        ? finding(
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
          )
        : finding(
            'PRCTL_UNSUPPORTED',
            severity,
            `This kernel has no PR_SET_MEMORY_MERGE (Linux 6.4+): enableMerge() and systemd MemoryKSM= cannot opt a whole process in`,
            evidence,
            allocFix,
          ),
    );
  }

  // NOTHING_MERGEABLE
  if (!mergingOn && stat.mergeable !== true) {
    const evidence: Evidence[] = [];
    if (stat.mergeAny !== undefined) evidence.push(ev(proc('ksm_stat'), 'ksm_merge_any', stat.mergeAny));
    if (stat.mergeable !== undefined) evidence.push(ev(proc('ksm_stat'), 'ksm_mergeable', stat.mergeable));
    evidence.push(ev(proc('smaps'), 'VMAs with mg', 0));
    evidence.push(ev(proc('smaps'), 'Anonymous (sum)', anonymousBytes, 'bytes'));
    // The biggest anonymous mappings: V8 spaces, malloc or jemalloc arenas.
    const largest = vmas
      .filter((vma) => (vma.fields.Anonymous ?? 0) > 0)
      .sort((a, b) => (b.fields.Anonymous ?? 0) - (a.fields.Anonymous ?? 0))
      .slice(0, 3);
    for (const vma of largest) evidence.push(ev(proc('smaps'), `${vmaName(vma)} Anonymous`, vma.fields.Anonymous ?? 0, 'bytes'));
    const prctlOk = facts.prctl.state !== 'unsupported' && !(facts.prctl.state === 'blocked' && facts.self);
    const enableFix: Fix = {
      summary:
        'Opt the whole process in at start-up: V8 heap, malloc and jemalloc arenas become candidates (for a systemd service, ' +
        'MemoryKSM=yes under [Service] does the same from outside, systemd 254+)',
      commands: [],
      call: 'enableMerge()',
      persist: ['[Service] MemoryKSM=yes'],
    };
    out.push(
      finding(
        'NOTHING_MERGEABLE',
        'warn',
        `No mapping of the process is mergeable and merge-any is off: its ${mib(anonymousBytes)} of anonymous memory ` +
          '(V8 heap, malloc or jemalloc arenas) is never scanned',
        evidence,
        prctlOk ? enableFix : allocFix,
        prctlOk ? [allocFix] : [],
      ),
    );
  }

  // NOT_MERGEABLE: advice given, mg absent (not where markSensitive() took it back on purpose).
  const notMergeable: Array<{ vma: SmapsVma; label: string | undefined }> = [];
  const sensitive = (vma: SmapsVma): boolean => facts.sensitive.some((r) => r.start <= vma.start && r.end >= vma.end);
  for (const label of facts.labels) {
    for (const vma of vmas) {
      if (vma.start < label.end && vma.end > label.start && !vma.vmFlags.includes('mg') && !sensitive(vma)) {
        notMergeable.push({ vma, label: label.label });
      }
    }
  }
  if (mergeAny) {
    for (const vma of vmas) {
      if (vma.vmFlags.includes('mg') || !anonymousLike(vma)) continue;
      if ((vma.fields.Rss ?? 0) < NOT_MERGEABLE_MIN_BYTES) continue;
      if (notMergeable.some((entry) => entry.vma === vma)) continue;
      notMergeable.push({ vma, label: undefined });
    }
  }
  if (notMergeable.length > 0) {
    const explicit = notMergeable.some((entry) => entry.label !== undefined);
    const bytes = notMergeable.reduce((sum, entry) => sum + (entry.vma.fields.Rss ?? 0), 0);
    const first = notMergeable[0]!;
    out.push(
      finding(
        'NOT_MERGEABLE',
        explicit ? 'warn' : 'info',
        `${notMergeable.length} mapping(s) with ${mib(bytes)} resident were advised mergeable but the kernel left VM_MERGEABLE unset ` +
          `(first: ${vmaName(first.vma)}${first.label ? ` "${first.label}"` : ''}: ${whyNotMergeable(first.vma)})`,
        notMergeable.slice(0, MAX_LISTED).flatMap(({ vma, label }) => [
          ev(proc('smaps'), `${vmaName(vma)}${label ? ` "${label}"` : ''} VmFlags`, vma.vmFlags.join(' ')),
          ev(proc('smaps'), `${vmaName(vma)} Rss`, vma.fields.Rss ?? 0, 'bytes'),
        ]),
        {
          summary:
            'Only private anonymous memory merges (not shared, hugetlb, DAX or PFN mappings): copy the data into an allocMergeable() buffer',
          commands: [],
          call: 'allocMergeable(size)',
        },
      ),
    );
  }

  // UNTOUCHED_REGION
  const labelled = (vma: SmapsVma): string | undefined =>
    facts.labels.find((label) => vma.start < label.end && vma.end > label.start)?.label;
  const untouched = mergeable.filter(
    (vma) => (vma.fields.Anonymous ?? vma.fields.Rss ?? 0) === 0 && (!mergeAny || labelled(vma) !== undefined),
  );
  if (untouched.length > 0) {
    const bytes = untouched.reduce((sum, vma) => sum + Number(vma.end - vma.start), 0);
    // Nothing resident in any mergeable mapping: nothing at all will merge.
    const severity: Severity = mergeableResident === 0 ? 'warn' : 'info';
    out.push(
      finding(
        'UNTOUCHED_REGION',
        severity,
        `${untouched.length} mergeable mapping(s), ${mib(bytes)} in all, have never been written: ` +
          'ksmd skips memory with no pages (no anon_vma), so they merge nothing until data is written into them',
        untouched.slice(0, MAX_LISTED).flatMap((vma) => {
          const label = labelled(vma);
          const name = `${vmaName(vma)}${label ? ` "${label}"` : ''}`;
          return [
            ev(proc('smaps'), `${name} Size`, Number(vma.end - vma.start), 'bytes'),
            ev(proc('smaps'), `${name} Anonymous`, vma.fields.Anonymous ?? vma.fields.Rss ?? 0, 'bytes'),
          ];
        }),
        {
          summary: 'Write the data into the buffer (pages that are only read map the zero page and never merge), or drop the buffer',
          commands: [],
          call: 'buffer.set(data)',
        },
      ),
    );
  }

  // METADATA_EXCEEDS_SAVING / HIGH_UNSHARED (per process, from ksm_stat)
  const rmap = stat.rmapItems;
  const merging = stat.mergingPages;
  // While ksmd is stopped the ratios are frozen mid-scan; KSM_STOPPED is the finding then.
  if (ksm.run === 1 && rmap !== undefined && merging !== undefined && rmap >= MIN_TRACKED_PAGES) {
    const zero = stat.zeroPages ?? 0;
    const unmerged = Math.max(0, rmap - merging - zero);
    const evidence: Evidence[] = [
      ev(proc('ksm_stat'), 'ksm_rmap_items', rmap),
      ev(proc('ksm_stat'), 'ksm_merging_pages', merging),
      ...(stat.zeroPages !== undefined ? [ev(proc('ksm_stat'), 'ksm_zero_pages', stat.zeroPages)] : []),
      ...(stat.processProfit !== undefined ? [ev(proc('ksm_stat'), 'ksm_process_profit', stat.processProfit, 'bytes')] : []),
      // A page merges on its second visit: judge after two full scans past the last write.
      ...(ksm.fullScans !== undefined ? [ev(`${KSM}/full_scans`, 'full_scans', ksm.fullScans)] : []),
    ];
    const narrowFix: Fix = mergeAny
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
    // metadata > saving  <=>  rmap x 64 B > merged x page: over 64 rmap items per merging 4 KiB page.
    const perPage = facts.pageSize / RMAP_ITEM_BYTES;
    if (rmap > perPage * (merging + zero)) {
      const metadata = rmap * RMAP_ITEM_BYTES;
      const saving = (merging + zero) * facts.pageSize;
      out.push(
        finding(
          'METADATA_EXCEEDS_SAVING',
          'warn',
          `KSM tracks ${rmap} pages of this process (${mib(metadata)} of rmap_items at ${RMAP_ITEM_BYTES} B) for ${merging + zero} merged ` +
            `(${mib(saving)}): over ${perPage} rmap items per merging page, the metadata costs more than merging saves`,
          [
            ...evidence,
            ev('computed', 'rmap_items per merging page', merging + zero === 0 ? 'infinite' : Math.round(rmap / (merging + zero))),
            ev('computed', 'metadata (ksm_rmap_items x 64)', metadata, 'bytes'),
            ev('computed', 'saving ((merging + zero) x page)', saving, 'bytes'),
          ],
          narrowFix,
        ),
      );
    } else if (unmerged > UNSHARED_RATIO * Math.max(merging + zero, 1)) {
      const smartScanFix: Fix[] =
        ksm.smartScan === false ? [knobFix('Let ksmd skip pages that keep failing to merge (smart_scan, 6.7+)', { smartScan: true })] : [];
      out.push(
        finding(
          'HIGH_UNSHARED',
          'warn',
          `${unmerged} of the ${rmap} pages KSM tracks for this process have not merged (over ${UNSHARED_RATIO} per merging page): ` +
            'ksmd spends most of its scan on memory that never merges',
          [
            ...evidence,
            ev('computed', 'unmerged tracked pages (rmap_items - merging - zero)', unmerged, 'pages'),
            ...(ksm.pagesUnshared !== undefined ? [ev(`${KSM}/pages_unshared`, 'pages_unshared', ksm.pagesUnshared)] : []),
            ...(ksm.pagesSharing !== undefined ? [ev(`${KSM}/pages_sharing`, 'pages_sharing', ksm.pagesSharing)] : []),
          ],
          narrowFix,
          smartScanFix,
        ),
      );
    }
  }

  // VOLATILE_PAGES: machine-wide, the kernel does not count them per process.
  // The figure is this process's own only when its pages are most of what
  // KSM tracks; otherwise the churn may be anywhere (info).
  if (
    ksm.run === 1 &&
    ksm.pagesVolatile !== undefined &&
    ksm.pagesShared !== undefined &&
    ksm.pagesSharing !== undefined &&
    ksm.pagesUnshared !== undefined
  ) {
    const tracked = ksm.pagesVolatile + ksm.pagesShared + ksm.pagesSharing + ksm.pagesUnshared;
    if (ksm.pagesVolatile >= VOLATILE_MIN_PAGES && ksm.pagesVolatile > VOLATILE_SHARE * tracked) {
      const here = rmap !== undefined && rmap >= VOLATILE_OWN_SHARE * tracked;
      out.push(
        finding(
          'VOLATILE_PAGES',
          here ? 'warn' : 'info',
          `${ksm.pagesVolatile} of the ${tracked} pages KSM tracks machine-wide changed between two scans (volatile): ` +
            'data that keeps changing never merges, and merged pages that are written are copied back' +
            (here
              ? `; ${rmap} of the tracked pages are this process's, so the churn is mostly its own`
              : `; ${rmap ?? 'an unknown number'} of the tracked pages are this process's, so the churn may be elsewhere`),
          [
            ev(`${KSM}/pages_volatile`, 'pages_volatile', ksm.pagesVolatile),
            ev(`${KSM}/pages_shared`, 'pages_shared', ksm.pagesShared),
            ev(`${KSM}/pages_sharing`, 'pages_sharing', ksm.pagesSharing),
            ev(`${KSM}/pages_unshared`, 'pages_unshared', ksm.pagesUnshared),
            ...(rmap !== undefined ? [ev(proc('ksm_stat'), 'ksm_rmap_items', rmap)] : []),
          ],
          {
            summary:
              'Mark only data that stays unchanged for several scans (decoded tables, model weights, parsed datasets), ' +
              'not a heap that is rewritten all the time',
            commands: [],
            call: mergeAny ? 'disableMerge(); allocMergeable(size)' : 'allocMergeable(size)',
          },
        ),
      );
    }
  }

  // THP_IN_MERGEABLE
  const huge = mergeable.filter((vma) => (vma.fields.AnonHugePages ?? 0) > 0);
  if (huge.length > 0) {
    const bytes = huge.reduce((sum, vma) => sum + (vma.fields.AnonHugePages ?? 0), 0);
    const always = facts.thpEnabled === 'always';
    out.push(
      finding(
        'THP_IN_MERGEABLE',
        'warn',
        `${mib(bytes)} of mergeable memory sits in transparent huge pages (THP ${facts.thpEnabled ?? 'mode unknown'}): ` +
          'a huge page must be split before its 4 KiB pages can merge, and khugepaged may collapse them again',
        [
          ...(facts.thpEnabled !== undefined
            ? [ev('/sys/kernel/mm/transparent_hugepage/enabled', 'enabled', facts.thpEnabled)]
            : []),
          ...huge.slice(0, MAX_LISTED).map((vma) => ev(proc('smaps'), `${vmaName(vma)} AnonHugePages`, vma.fields.AnonHugePages ?? 0, 'bytes')),
        ],
        always
          ? {
              summary: 'Give huge pages only to memory that asks for them (THP madvise), so mergeable buffers stay in 4 KiB pages',
              commands: ['echo madvise > /sys/kernel/mm/transparent_hugepage/enabled'],
              persist: ['kernel command line: transparent_hugepage=madvise'],
            }
          : {
              summary: 'Do not madvise(MADV_HUGEPAGE) memory that is meant to merge; allocMergeable() buffers get 4 KiB pages under THP madvise',
              commands: [],
              call: 'allocMergeable(size)',
            },
      ),
    );
  }

  // MERGE_ANY_INHERITED
  if (stat.mergeAny === true) {
    const inherited = facts.enableMergeCalled !== undefined ? !facts.enableMergeCalled : facts.parentMergeAny === true;
    if (inherited) {
      const evidence: Evidence[] = [ev(proc('ksm_stat'), 'ksm_merge_any', true)];
      if (facts.enableMergeCalled !== undefined) evidence.push(ev('node-ksm', 'enableMerge() called in this process', false));
      if (facts.status.ppid !== undefined) evidence.push(ev(proc('status'), 'PPid', facts.status.ppid));
      if (facts.parentMergeAny !== undefined && facts.status.ppid !== undefined) {
        evidence.push(ev(`/proc/${facts.status.ppid}/ksm_stat`, 'ksm_merge_any', facts.parentMergeAny));
      }
      out.push(
        finding(
          'MERGE_ANY_INHERITED',
          'info',
          'Merge-any is on for this process but it did not turn it on: the flag came from its parent (it survives fork and exec), ' +
            'so all of its anonymous memory is a KSM candidate without its own say',
          evidence,
          {
            summary:
              'If this process should not merge (it runs code or data from another trust domain), turn the flag off first thing at start-up, ' +
              'before it allocates; if it should, call enableMerge() itself so the choice is its own',
            commands: [],
            call: 'disableMerge()',
          },
          [{ summary: 'Own the choice: opt in explicitly at start-up', commands: [], call: 'enableMerge()' }],
        ),
      );
    }
  }

  // NUMA_CROSS_NODE
  if ((facts.numaNodes ?? 0) > 1 && ksm.mergeAcrossNodes === true) {
    out.push(
      finding(
        'NUMA_CROSS_NODE',
        'info',
        `merge_across_nodes is 1 on a machine with ${facts.numaNodes} NUMA nodes: one copy of a merged page serves every node, ` +
          'so processes on the other nodes read it remotely (more saving, higher latency)',
        [
          ev(`${KSM}/merge_across_nodes`, 'merge_across_nodes', 1),
          ev('/sys/devices/system/node', 'nodes', facts.numaNodes!),
          ...(facts.numaDistances ? [ev('/sys/devices/system/node/node0/distance', 'distance', facts.numaDistances.join(' '))] : []),
        ],
        {
          summary:
            'Where latency matters more than memory, merge per node: merge_across_nodes changes only while nothing is merged, ' +
            'so unmerge (run=2, memory rises by what was saved), switch, and restart',
          commands: [`echo 2 > ${KSM}/run`, `echo 0 > ${KSM}/merge_across_nodes`, `echo 1 > ${KSM}/run`],
          persist: [`/etc/tmpfiles.d/ksm.conf: w ${KSM}/merge_across_nodes - - - - 0`],
        },
      ),
    );
  }

  // SIDE_CHANNEL_RISK
  const declared = options.handlesSecrets || facts.sensitive.length > 0;
  if (declared) {
    const exposed = facts.sensitive.flatMap((range) =>
      mergeable
        .filter((vma) => vma.start < range.end && vma.end > range.start)
        .map((vma) => ({ range, vma })),
    );
    const evidence: Evidence[] = [
      ...(options.handlesSecrets ? [ev('doctor options', 'handlesSecrets', true)] : []),
      ...(facts.sensitive.length > 0 ? [ev('node-ksm', 'sensitive ranges', facts.sensitive.length)] : []),
      ...(stat.mergeAny !== undefined ? [ev(proc('ksm_stat'), 'ksm_merge_any', stat.mergeAny)] : []),
      ev(proc('smaps'), 'VMAs with mg', mergeable.length),
      ...(merging !== undefined ? [ev(proc('ksm_stat'), 'ksm_merging_pages', merging)] : []),
    ];
    if (exposed.length > 0) {
      const first = exposed[0]!;
      out.push(
        finding(
          'SIDE_CHANNEL_RISK',
          'error',
          `${exposed.length} sensitive range(s) lie in mergeable memory (first: ${hex(first.range.start)}-${hex(first.range.end)}` +
            `${first.range.label ? ` "${first.range.label}"` : ''} in ${vmaName(first.vma)}): the timing of a write to a merged page ` +
            'tells another process that it holds the same bytes',
          [...evidence, ...exposed.slice(0, MAX_LISTED).map(({ vma }) => ev(proc('smaps'), `${vmaName(vma)} VmFlags`, vma.vmFlags.join(' ')))],
          {
            summary: 'Make the sensitive memory unmergeable again: markSensitive(view) advises MADV_UNMERGEABLE on its pages and records it',
            commands: [],
            call: 'markSensitive(view)',
          },
        ),
      );
    } else if (mergingOn) {
      out.push(
        finding(
          'SIDE_CHANNEL_RISK',
          'warn',
          'This process handles secrets by its own declaration and has merging on: KSM is a timing side channel ' +
            '(a write to a merged page takes measurably longer, telling another process it holds the same bytes)',
          evidence,
          mergeAny
            ? {
                summary: 'Keep merge-any off in a process that holds secrets; merge only public data, in allocMergeable() buffers',
                commands: [],
                call: 'disableMerge()',
              }
            : {
                summary: 'Keep secrets out of mergeable buffers: unmark any buffer that holds them (or mark it sensitive)',
                commands: [],
                call: 'unmarkMergeable(view)',
              },
        ),
      );
    }
  }

  // MERGING (the good news)
  if (merging !== undefined && merging > 0) {
    out.push(
      finding(
        'MERGING',
        'info',
        `${merging} pages of this process (${mib(merging * facts.pageSize)}) map KSM pages` +
          (stat.processProfit !== undefined ? `; ksm_process_profit ${mib(stat.processProfit)} (counts the copy that stays)` : ''),
        [
          ev(proc('ksm_stat'), 'ksm_merging_pages', merging),
          ...(stat.rmapItems !== undefined ? [ev(proc('ksm_stat'), 'ksm_rmap_items', stat.rmapItems)] : []),
          ...(stat.processProfit !== undefined ? [ev(proc('ksm_stat'), 'ksm_process_profit', stat.processProfit, 'bytes')] : []),
          ...(ksm.generalProfit !== undefined ? [ev(`${KSM}/general_profit`, 'general_profit', ksm.generalProfit, 'bytes')] : []),
        ],
        undefined,
      ),
    );
  }

  // Environment: what keeps the knob fixes above from being applied here.
  const knobFixes = out.filter((entry) => entry.severity !== 'info' && entry.fix?.knobs !== undefined);
  const pending = knobFixes.flatMap((entry) => entry.fix!.commands);
  const mountReadOnly = facts.mount?.readOnly === true;
  if (mountReadOnly || facts.ksmWriteError === 'EROFS') {
    out.push(
      finding(
        'SYSFS_READ_ONLY',
        knobFixes.length > 0 ? 'warn' : 'info',
        `/sys is read-only here (a container?): KSM knobs cannot be changed from inside, only on the host`,
        [
          ...(facts.mount
            ? [
                ev('/proc/self/mountinfo', `${facts.mount.mountPoint} mount options`, facts.mount.mountOptions),
                ev('/proc/self/mountinfo', `${facts.mount.mountPoint} super options`, facts.mount.superOptions),
              ]
            : []),
          ...(facts.ksmWriteError !== undefined ? [ev(`${KSM}/run`, 'access(W_OK)', facts.ksmWriteError)] : []),
        ],
        {
          summary:
            pending.length > 0
              ? 'Run these on the host (or in a privileged DaemonSet / init container with /sys mounted read-write)'
              : 'Knobs are set on the host; nothing needs changing now',
          commands: pending,
        },
      ),
    );
  }
  if (facts.euid !== undefined && facts.euid !== 0) {
    out.push(
      finding(
        'NOT_ROOT',
        knobFixes.length > 0 ? 'warn' : 'info',
        `doctor() runs as uid ${facts.euid}: KSM knobs need root to change` +
          (facts.candidates.processesUnreadable > 0
            ? `, and ${facts.candidates.processesUnreadable} other process(es) could not be read (any mergeable pages of theirs are left out of the scan estimate)`
            : ''),
        [
          ev('/proc/self/status', 'Uid (effective)', facts.euid),
          ...(facts.ksmWriteError !== undefined ? [ev(`${KSM}/run`, 'access(W_OK)', facts.ksmWriteError)] : []),
          ev('/proc/*/smaps', 'processes unreadable', facts.candidates.processesUnreadable),
        ],
        {
          summary: pending.length > 0 ? 'Run the knob writes as root' : 'Run knob changes and machine-wide reports as root',
          commands: pending.map((command) => `sudo sh -c '${command}'`),
        },
      ),
    );
  }

  return sort(out);
}

/** SCAN_TOO_SLOW: one full scan = candidate pages / (pages_to_scan x 1000 / sleep_millisecs). */
function scanEstimate(facts: Facts, options: RuleOptions): Finding | undefined {
  const { ksm, candidates } = facts;
  if (ksm === undefined) return undefined;
  const pagesToScan = ksm.pagesToScan;
  const sleep = ksm.sleepMillisecs;
  // sleep_millisecs 0: ksmd never sleeps, the rate is bounded by CPU only.
  if (pagesToScan === undefined || sleep === undefined || sleep === 0 || candidates.pages === 0) return undefined;
  const rate = (pagesToScan * 1000) / sleep;
  const fullScanSec = candidates.pages / rate;
  const target = options.targetScanTimeSec;
  const needed = Math.ceil((candidates.pages * sleep) / (1000 * target));
  const advisorPresent = ksm.advisorModes?.includes('scan-time') ?? false;
  const advisorOn = ksm.advisorMode === 'scan-time';

  const evidence: Evidence[] = [
    ev(`${KSM}/pages_to_scan`, 'pages_to_scan', pagesToScan),
    ev(`${KSM}/sleep_millisecs`, 'sleep_millisecs', sleep, 'ms'),
    ev(`/proc/${facts.procName}/smaps`, 'candidate pages of this process (Anonymous in mg VMAs)', candidates.processPages, 'pages'),
    ev(
      '/proc/*/smaps',
      `candidate pages of ${candidates.processesRead} readable process(es)`,
      candidates.readablePages,
      'pages',
    ),
  ];
  if (candidates.processesSlow > 0) {
    evidence.push(ev('/proc/*/smaps', 'processes skipped (smaps did not answer in 2 s: mmap_lock held)', candidates.processesSlow));
  }
  if (candidates.kernelTracked !== undefined) {
    evidence.push(ev(`${KSM}/pages_{shared,sharing,unshared,volatile}`, 'pages tracked by ksmd', candidates.kernelTracked, 'pages'));
  }
  evidence.push(ev('computed', 'candidate pages (the larger of the two)', candidates.pages, 'pages'));
  evidence.push(ev('computed', 'pages per second (pages_to_scan x 1000 / sleep_millisecs)', Math.round(rate)));
  evidence.push(ev('computed', 'full scan time', Number(fullScanSec.toFixed(1)), 's'));
  if (ksm.smartScan === true) evidence.push(ev(`${KSM}/smart_scan`, 'smart_scan', true));

  if (!advisorOn) {
    if (fullScanSec <= options.maxScanTimeSec) return undefined;
    const cpuNote =
      ksm.advisorMaxPagesToScan !== undefined && needed > ksm.advisorMaxPagesToScan
        ? ` (more than advisor_max_pages_to_scan ${ksm.advisorMaxPagesToScan}: ksmd will use noticeably more CPU)`
        : '';
    return finding(
      'SCAN_TOO_SLOW',
      'warn',
      `One full scan of ${candidates.pages} candidate pages at pages_to_scan ${pagesToScan} every ${sleep} ms takes about ` +
        `${seconds(fullScanSec)} (target ${seconds(target)}); a page merges only after two visits, so merging lags by about ` +
        `${seconds(2 * fullScanSec)}. pages_to_scan ${needed} brings a full scan to ${seconds(target)}${cpuNote}`,
      [...evidence, ev('computed', `pages_to_scan for a ${target} s full scan`, needed)],
      knobFix(`Scan ${needed} pages per batch, for a full scan in about ${seconds(target)}`, { pagesToScan: needed }),
      advisorPresent ? [advisorFix(target)] : [],
    );
  }

  // The advisor sets pages_to_scan between its min and max to meet its target.
  const min = ksm.advisorMinPagesToScan;
  const max = ksm.advisorMaxPagesToScan;
  const advisorTarget = ksm.advisorTargetScanTimeSec;
  if (min === undefined || max === undefined || advisorTarget === undefined) return undefined;
  const fastest = candidates.pages / ((max * 1000) / sleep);
  const slowest = candidates.pages / ((min * 1000) / sleep);
  const expected = Math.min(Math.max(advisorTarget, fastest), slowest);
  evidence.push(
    ev(`${KSM}/advisor_mode`, 'advisor_mode', 'scan-time'),
    ev(`${KSM}/advisor_target_scan_time`, 'advisor_target_scan_time', advisorTarget, 's'),
    ev(`${KSM}/advisor_max_pages_to_scan`, 'advisor_max_pages_to_scan', max),
    ev('computed', 'full scan time under the advisor', Number(expected.toFixed(1)), 's'),
  );
  if (expected <= options.maxScanTimeSec) return undefined;
  if (fastest > options.maxScanTimeSec || fastest > target) {
    return finding(
      'SCAN_TOO_SLOW',
      'warn',
      `Even at advisor_max_pages_to_scan ${max}, one full scan of ${candidates.pages} candidate pages takes ${seconds(fastest)}: ` +
        `the advisor cannot reach ${seconds(target)}; advisor_max_pages_to_scan ${needed} can`,
      [...evidence, ev('computed', `pages_to_scan for a ${target} s full scan`, needed)],
      knobFix(`Let the advisor go up to ${needed} pages per batch`, {
        advisorMaxPagesToScan: needed,
        ...(advisorTarget > target ? { advisorTargetScanTimeSec: Math.max(1, Math.round(target)) } : {}),
      }),
    );
  }
  return finding(
    'SCAN_TOO_SLOW',
    'warn',
    `The scan-time advisor aims at advisor_target_scan_time ${advisorTarget} s, so one full scan takes about ${seconds(expected)}; ` +
      `aim at ${seconds(target)} instead`,
    evidence,
    knobFix(`Aim the advisor at a ${Math.max(1, Math.round(target))} s full scan`, {
      advisorTargetScanTimeSec: Math.max(1, Math.round(target)),
    }),
  );
}

function sort(findings: Finding[]): Finding[] {
  return findings.sort(
    (a, b) => RANK[a.severity] - RANK[b.severity] || ORDER.indexOf(a.code) - ORDER.indexOf(b.code),
  );
}
