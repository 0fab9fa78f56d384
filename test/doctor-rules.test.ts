/**
 * doctor() rule by rule family, on fixture trees changed file by file
 * (the conditions doctor.test.ts meets only on real processes, or not at
 * all), and the rules' own metadata against the README's table.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { doctor, setKnobs, type DoctorOptions, type Finding, type FindingCode } from '../lib/index.js';
import { RULES } from '../lib/doctor/rules/index.js';
import { evidence, findingOf } from './helpers/doctor.js';
import { FIXTURES, ROOT } from './helpers/ksm.js';

const TREES = path.join(FIXTURES, 'doctor');
const KSM = '/sys/kernel/mm/ksm';
const MiB = 1024 * 1024;

/** A copy of fixture tree `base` with `files` written over it (null: removed). */
function tree(base: string, files: Record<string, string | null>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-rules-'));
  fs.cpSync(path.join(TREES, base), dir, { recursive: true });
  for (const [file, text] of Object.entries(files)) {
    const target = path.join(dir, file);
    if (text === null) {
      fs.rmSync(target, { force: true });
      continue;
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, text);
  }
  return dir;
}

async function doctorOn(base: string, files: Record<string, string | null>, options: DoctorOptions = {}): Promise<Finding[]> {
  const root = tree(base, files);
  try {
    return await doctor({ ...options, root });
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

function codes(findings: Finding[]): FindingCode[] {
  return findings.map((entry) => entry.code);
}

/** One VMA as smaps prints it; figures in kB. */
function vma(range: string, perms: string, pathname: string, kb: { rss: number; anonymous: number }, flags: string): string {
  return [
    `${range} ${perms} 00000000 00:00 0                          ${pathname}`.trimEnd(),
    `Size:           ${kb.rss} kB`,
    'KernelPageSize:        4 kB',
    `Rss:            ${kb.rss} kB`,
    `Anonymous:      ${kb.anonymous} kB`,
    'AnonHugePages:        0 kB',
    `VmFlags: ${flags}`,
    '',
  ].join('\n');
}

const ksmStat = (lines: string[]): string => `${lines.join('\n')}\n`;
const MERGE_ANY_OFF = ['ksm_merge_any: no', 'ksm_mergeable: yes'];

describe('ksmd', () => {
  it('KSM_STOPPED at run=2 says ksmd is unmerging, and the ratio rules wait for it', async () => {
    const findings = await doctorOn('busy', { 'sys/kernel/mm/ksm/run': '2\n' });
    const entry = findingOf(findings, 'KSM_STOPPED');
    expect(entry.message).toMatch(/^ksmd is unmerging every page and scanning nothing \(run = 2\)/);
    expect(entry.evidence).toEqual([{ source: `${KSM}/run`, key: 'run', value: 2 }]);
    expect(entry.fix?.commands).toEqual([`echo 1 > ${KSM}/run`]);
    // busy reports HIGH_UNSHARED and VOLATILE_PAGES while ksmd runs (doctor.test.ts): frozen mid-scan, they are not judged.
    expect(codes(findings)).not.toContain('HIGH_UNSHARED');
    expect(codes(findings)).not.toContain('VOLATILE_PAGES');
  });
});

describe('scan', () => {
  const advisorOff = { 'sys/kernel/mm/ksm/advisor_mode': '[none] scan-time\n' };

  it('ADVISOR_AVAILABLE: the fix aims the advisor, then switches it on, in the order setKnobs() writes', async () => {
    const findings = await doctorOn('numa', advisorOff);
    const entry = findingOf(findings, 'ADVISOR_AVAILABLE');
    expect(entry.severity).toBe('info');
    expect(evidence(entry, 'advisor_mode')).toBe('none');
    expect(evidence(entry, 'advisor_target_scan_time')).toBe(120);
    expect(entry.fix?.knobs).toEqual({ advisorTargetScanTimeSec: 120, advisorMode: 'scan-time' });
    expect(entry.fix?.commands).toEqual([`echo 120 > ${KSM}/advisor_target_scan_time`, `echo scan-time > ${KSM}/advisor_mode`]);
    expect(entry.fix?.persist).toEqual([
      `/etc/tmpfiles.d/ksm.conf: w ${KSM}/advisor_target_scan_time - - - - 120`,
      `/etc/tmpfiles.d/ksm.conf: w ${KSM}/advisor_mode - - - - scan-time`,
    ]);
    // setKnobs() writes the same knobs in the same order: with advisor_mode unwritable, the target is already written.
    const scratch = tree('numa', { 'sys/kernel/mm/ksm/advisor_mode': null });
    try {
      fs.mkdirSync(path.join(scratch, 'sys/kernel/mm/ksm/advisor_mode'));
      expect(() => setKnobs(entry.fix!.knobs!, { root: scratch })).toThrow(
        expect.objectContaining({ code: 'EISDIR', written: ['advisorTargetScanTimeSec'] }),
      );
      expect(fs.readFileSync(path.join(scratch, 'sys/kernel/mm/ksm/advisor_target_scan_time'), 'utf8')).toBe('120');
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('SCAN_TOO_SLOW at a fixed rate: pages_to_scan for the target, the advisor as the other way, a CPU note past its max', async () => {
    // numa tracks 4500 + 9000 + 1240 + 0 pages; 100 pages per 20 ms is 5000 pages/s.
    const findings = await doctorOn(
      'numa',
      { ...advisorOff, 'sys/kernel/mm/ksm/pages_to_scan': '100\n', 'sys/kernel/mm/ksm/sleep_millisecs': '20\n', 'sys/kernel/mm/ksm/advisor_max_pages_to_scan': '200\n' },
      { targetScanTimeSec: 1, maxScanTimeSec: 2 },
    );
    const entry = findingOf(findings, 'SCAN_TOO_SLOW');
    expect(evidence(entry, 'candidate pages (the larger of the two)')).toBe(14740);
    expect(evidence(entry, 'full scan time')).toBe(2.9);
    // ceil(14740 x 20 / (1000 x 1))
    expect(entry.fix?.knobs).toEqual({ pagesToScan: 295 });
    expect(entry.message).toContain('more than advisor_max_pages_to_scan 200');
    expect(entry.alternatives.map((fix) => fix.knobs)).toEqual([{ advisorTargetScanTimeSec: 1, advisorMode: 'scan-time' }]);
  });
});

describe('prctl', () => {
  it('PRCTL_UNSUPPORTED is information for a process that has mergeable memory anyway', async () => {
    const smaps = fs.readFileSync(path.join(TREES, 'kernel-6.1/proc/self/smaps'), 'utf8').replace('VmFlags: rd wr mr mw me ac\n', 'VmFlags: rd wr mr mw me ac mg\n');
    const findings = await doctorOn('kernel-6.1', { 'proc/self/smaps': smaps });
    expect(findingOf(findings, 'PRCTL_UNSUPPORTED').severity).toBe('info');
    expect(codes(findings)).not.toContain('NOTHING_MERGEABLE');
  });
});

describe('mergeable', () => {
  it('NOT_MERGEABLE under merge-any: the shared anonymous memory of a real capture, listed with the reason', async () => {
    const smaps = fs.readFileSync(path.join(FIXTURES, 'smaps/linux-6.18-shared.smaps'), 'utf8');
    // The capture's shared mappings (rw-s), all over the 1 MiB floor.
    const shared = [...smaps.matchAll(/^([0-9a-f]+)-[0-9a-f]+ rw-s /gm)].map((match) => match[1]!);
    expect(shared).toHaveLength(4);
    const findings = await doctorOn('numa', { 'proc/self/smaps': smaps, 'proc/self/ksm_stat': ksmStat(['ksm_rmap_items 0', 'ksm_merge_any: yes', 'ksm_mergeable: yes']) });
    const entry = findingOf(findings, 'NOT_MERGEABLE');
    // Nothing of ours is labelled: merge-any's leftovers are information.
    expect(entry.severity).toBe('info');
    expect(entry.message).toMatch(/^4 mapping\(s\) with 4\.0 MiB resident/);
    expect(entry.message).toContain(`first: 0x${shared[0]}-`);
    expect(entry.message).toContain('shared mapping (only private anonymous memory merges)');
    const flagged = entry.evidence.filter((item) => item.key.endsWith('VmFlags')).map((item) => item.key.split('-')[0]);
    expect(flagged).toEqual(shared.map((start) => `0x${start}`));
  });

  const heap = vma('55d4c0000000-55d4c2800000', 'rw-p', '[heap]', { rss: 40960, anonymous: 40960 }, 'rd wr mr mw me ac mg');
  const empty = vma('7f1000000000-7f1002000000', 'rw-p', '', { rss: 0, anonymous: 0 }, 'rd wr mr mw me ac mg');

  it('UNTOUCHED_REGION: a warning when nothing mergeable is resident, information beside memory that is', async () => {
    const alone = findingOf(await doctorOn('numa', { 'proc/self/smaps': empty }), 'UNTOUCHED_REGION');
    expect(alone.severity).toBe('warn');
    expect(alone.message).toMatch(/^1 mergeable mapping\(s\), 32 MiB in all, have never been written/);
    expect(evidence(alone, '0x7f1000000000-0x7f1002000000 Size')).toBe(32 * MiB);
    expect(evidence(alone, '0x7f1000000000-0x7f1002000000 Anonymous')).toBe(0);
    expect(alone.fix?.call).toBe('buffer.set(data)');
    const beside = findingOf(await doctorOn('numa', { 'proc/self/smaps': heap + empty }), 'UNTOUCHED_REGION');
    expect(beside.severity).toBe('info');
  });

  it('UNTOUCHED_REGION names no unlabelled reservation under merge-any', async () => {
    const stat = ksmStat(['ksm_rmap_items 0', 'ksm_merge_any: yes', 'ksm_mergeable: yes']);
    const findings = await doctorOn('numa', { 'proc/self/smaps': heap + empty, 'proc/self/ksm_stat': stat });
    expect(codes(findings)).not.toContain('UNTOUCHED_REGION');
  });
});

describe('efficiency', () => {
  const tracked = (rmap: number, merging: number, profit: number | undefined): Record<string, string> => ({
    'proc/self/ksm_stat': ksmStat([
      `ksm_rmap_items ${rmap}`,
      'ksm_zero_pages 0',
      `ksm_merging_pages ${merging}`,
      ...(profit === undefined ? [] : [`ksm_process_profit ${profit}`]),
      ...MERGE_ANY_OFF,
    ]),
  });

  it('METADATA_EXCEEDS_SAVING costs rmap_items at the size ksm_stat solves for, and says so', async () => {
    // ksm_process_profit = 100 x 4096 - 100000 x 64
    const entry = findingOf(await doctorOn('numa', tracked(100_000, 100, 100 * 4096 - 100_000 * 64)), 'METADATA_EXCEEDS_SAVING');
    expect(evidence(entry, 'rmap_item size')).toBe(64);
    expect(evidence(entry, 'rmap_item size from')).toBe('ksm_stat');
    expect(evidence(entry, 'metadata (ksm_rmap_items x 64)')).toBe(6_400_000);
    expect(evidence(entry, 'saving ((merging + zero) x page)')).toBe(409_600);
    expect(entry.message).toContain('(6.1 MiB of rmap_items at 64 B) for 100 merged (0.4 MiB): over 64 rmap items per merging page');
    expect(entry.fix?.call).toBe('unmarkMergeable(view)');
  });

  it('METADATA_EXCEEDS_SAVING without ksm_process_profit: the size is assumed, and said to be', async () => {
    const entry = findingOf(await doctorOn('numa', tracked(100_000, 100, undefined)), 'METADATA_EXCEEDS_SAVING');
    expect(evidence(entry, 'rmap_item size from')).toBe('assumed');
    const size = Number(evidence(entry, 'rmap_item size'));
    expect([32, 64]).toContain(size);
    expect(evidence(entry, `metadata (ksm_rmap_items x ${size})`)).toBe(100_000 * size);
    expect(entry.message).toContain(`of rmap_items at ${size} B`);
  });

  it('a 32-byte rmap_item solved from ksm_stat halves the metadata: HIGH_UNSHARED, not METADATA_EXCEEDS_SAVING', async () => {
    // At 64 B, 10000 rmap_items (640000 B) would cost more than 100 merged pages save (409600 B); at 32 B they do not.
    const findings = await doctorOn('numa', { ...tracked(10_000, 100, 100 * 4096 - 10_000 * 32), 'sys/kernel/mm/ksm/smart_scan': '0\n' });
    expect(codes(findings)).not.toContain('METADATA_EXCEEDS_SAVING');
    const entry = findingOf(findings, 'HIGH_UNSHARED');
    expect(evidence(entry, 'unmerged tracked pages (rmap_items - merging - zero)')).toBe(9900);
    // smart_scan off: letting ksmd skip what keeps failing is the other way.
    expect(entry.alternatives.map((fix) => fix.commands)).toEqual([[`echo 1 > ${KSM}/smart_scan`]]);
  });

  it('VOLATILE_PAGES is information when most tracked pages are not this process’s', async () => {
    // 100000 volatile of 114740 tracked; the process holds 10240 of them.
    const entry = findingOf(await doctorOn('numa', { 'sys/kernel/mm/ksm/pages_volatile': '100000\n' }), 'VOLATILE_PAGES');
    expect(entry.severity).toBe('info');
    expect(entry.message).toContain('100000 of the 114740 pages');
    expect(entry.message).toContain("10240 of the tracked pages are this process's, so the churn may be elsewhere");
  });
});

describe('thp', () => {
  it('THP_IN_MERGEABLE under THP madvise: the fix is in the process, not the machine', async () => {
    const entry = findingOf(await doctorOn('busy', { 'sys/kernel/mm/transparent_hugepage/enabled': 'always [madvise] never\n' }), 'THP_IN_MERGEABLE');
    expect(evidence(entry, 'enabled')).toBe('madvise');
    expect(entry.message).toMatch(/^4096 MiB of mergeable memory sits in transparent huge pages \(THP madvise\)/);
    expect(entry.fix?.commands).toEqual([]);
    expect(entry.fix?.call).toBe('allocMergeable(size)');
  });
});

describe('inheritance', () => {
  const mergeAny = { 'proc/self/ksm_stat': ksmStat(['ksm_rmap_items 10240', 'ksm_merging_pages 9000', 'ksm_merge_any: yes', 'ksm_mergeable: yes']) };

  it("MERGE_ANY_INHERITED from outside: the parent's ksm_stat has merge-any too", async () => {
    const parent = { 'proc/1/ksm_stat': ksmStat(['ksm_rmap_items 0', 'ksm_merge_any: yes', 'ksm_mergeable: yes']) };
    const entry = findingOf(await doctorOn('numa', { ...mergeAny, ...parent }), 'MERGE_ANY_INHERITED');
    expect(entry.severity).toBe('info');
    expect(entry.evidence).toEqual([
      { source: '/proc/self/ksm_stat', key: 'ksm_merge_any', value: true },
      { source: '/proc/self/status', key: 'PPid', value: 1 },
      { source: '/proc/1/ksm_stat', key: 'ksm_merge_any', value: true },
    ]);
    expect(entry.fix?.call).toBe('disableMerge()');
    expect(entry.alternatives[0]?.call).toBe('enableMerge()');
  });

  it('a parent without merge-any: the process turned it on itself', async () => {
    const parent = { 'proc/1/ksm_stat': ksmStat(['ksm_rmap_items 0', 'ksm_merge_any: no', 'ksm_mergeable: no']) };
    expect(codes(await doctorOn('numa', { ...mergeAny, ...parent }))).not.toContain('MERGE_ANY_INHERITED');
  });
});

describe('security', () => {
  it('SIDE_CHANNEL_RISK for mergeable buffers in a process that handles secrets: unmark them', async () => {
    const entry = findingOf(await doctorOn('numa', {}, { handlesSecrets: true }), 'SIDE_CHANNEL_RISK');
    expect(entry.severity).toBe('warn');
    expect(evidence(entry, 'handlesSecrets')).toBe(true);
    expect(evidence(entry, 'VMAs with mg')).toBe(1);
    expect(evidence(entry, 'ksm_merging_pages')).toBe(9000);
    expect(entry.fix?.call).toBe('unmarkMergeable(view)');
    expect(codes(await doctorOn('numa', {}))).not.toContain('SIDE_CHANNEL_RISK');
  });

  it('nothing to say where nothing merges', async () => {
    expect(codes(await doctorOn('kernel-6.1', {}, { handlesSecrets: true }))).not.toContain('SIDE_CHANNEL_RISK');
  });
});

describe('environment', () => {
  const uid1000 = fs.readFileSync(path.join(TREES, 'numa/proc/self/status'), 'utf8').replace(/^Uid:.*$/m, 'Uid:\t1000\t1000\t1000\t1000');

  it('NOT_ROOT and SYSFS_READ_ONLY are information when no knob fix is pending', async () => {
    const mountinfo = '23 27 0:22 / /sys ro,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs ro\n';
    const findings = await doctorOn('numa', { 'proc/self/status': uid1000, 'proc/self/mountinfo': mountinfo });
    const root = findingOf(findings, 'NOT_ROOT');
    expect(root.severity).toBe('info');
    expect(root.message).toBe('doctor() runs as uid 1000: KSM knobs need root to change');
    expect(root.fix).toEqual({ summary: 'Run knob changes and machine-wide reports as root', commands: [] });
    const ro = findingOf(findings, 'SYSFS_READ_ONLY');
    expect(ro.severity).toBe('info');
    expect(ro.fix).toEqual({ summary: 'Knobs are set on the host; nothing needs changing now', commands: [] });
  });

  it("they repeat every pending knob fix, in the report's order", async () => {
    const findings = await doctorOn(
      'readonly-sys',
      { 'proc/self/status': uid1000.replace('PPid:\t1', 'PPid:\t0') },
      { targetScanTimeSec: 1, maxScanTimeSec: 2 },
    );
    expect(codes(findings).slice(0, 2)).toEqual(['KSM_STOPPED', 'SCAN_TOO_SLOW']);
    const pending = [...findingOf(findings, 'KSM_STOPPED').fix!.commands, ...findingOf(findings, 'SCAN_TOO_SLOW').fix!.commands];
    expect(pending).toHaveLength(2);
    expect(findingOf(findings, 'SYSFS_READ_ONLY').fix?.commands).toEqual(pending);
    expect(findingOf(findings, 'NOT_ROOT').fix?.commands).toEqual(pending.map((command) => `sudo sh -c '${command}'`));
    expect(findingOf(findings, 'NOT_ROOT').severity).toBe('warn');
  });
});

describe('the rules themselves', () => {
  /** The README's finding table: code -> severities. */
  function readmeTable(): Map<string, string[]> {
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    const rows = [...readme.matchAll(/^\| `([A-Z_]+)` \| ([a-z /]+) \|/gm)];
    return new Map(rows.map((row) => [row[1]!, row[2]!.split('/').map((word) => word.trim())]));
  }

  it('each code belongs to one rule, and the README documents exactly those codes with those severities', () => {
    const listed = RULES.flatMap((rule) => rule.meta.codes);
    expect(new Set(listed).size).toBe(listed.length);
    const table = readmeTable();
    expect([...table.keys()].sort()).toEqual([...listed].sort());
    for (const rule of RULES) {
      const documented = new Set(rule.meta.codes.flatMap((code) => table.get(code)!));
      expect([...documented].sort(), rule.meta.codes.join('/')).toEqual([...rule.meta.severities].sort());
      expect(rule.meta.description.length, rule.meta.codes.join('/')).toBeGreaterThan(10);
    }
  });
});
