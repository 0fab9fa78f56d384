/**
 * doctor() against conditions that need a global knob changed: KSM stopped,
 * pages_to_scan at the kernel's default, THP that gives madvised memory huge
 * pages, and the whole diagnose-fix-merge path end to end. Each test changes
 * the knobs for seconds and restores them whatever happens (other runs on
 * this machine need run=1).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { doctor, pageSize, waitForMerge } from '../lib/index.js';
import { evidence, findingOf, problems } from './helpers/doctor.js';
import { needs, rawKsmStat, rawSmapsRange, requireKsm, startFixture, sysfsNumber, type Holder } from './helpers/ksm.js';
import { thpForMadvise } from './helpers/thp.js';

const KSM = '/sys/kernel/mm/ksm';
const MiB = 1024 * 1024;
/** A machine as booted: ksmd stopped, the kernel's default scan rate. */
const FRESH = { pages_to_scan: '100', sleep_millisecs: '20', run: '0' };

let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

/** Sets knobs raw, runs `fn`, and puts every knob back whatever happens. */
async function withKnobs<T>(knobs: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const saved: Array<[string, string]> = [];
  try {
    // run last, like the kernel's own tests: the scan rate is in place before ksmd (re)starts.
    for (const name of Object.keys(knobs).sort((a, b) => Number(a === 'run') - Number(b === 'run'))) {
      saved.unshift([name, fs.readFileSync(`${KSM}/${name}`, 'utf8').trim()]);
      fs.writeFileSync(`${KSM}/${name}`, knobs[name]!);
    }
    return await fn();
  } finally {
    // Restore run last too.
    for (const [name, value] of saved.sort((a, b) => Number(a[0] === 'run') - Number(b[0] === 'run'))) {
      fs.writeFileSync(`${KSM}/${name}`, value);
    }
  }
}

describe('doctor() with global knobs changed (serial)', () => {
  it('KSM_STOPPED: run=0 is an error whose fix is the write that starts ksmd', async (ctx) => {
    requireKsm(ctx);
    const findings = await withKnobs({ run: '0' }, async () => {
      expect(sysfsNumber('run')).toBe(0);
      return doctor();
    });
    const entry = findingOf(findings, 'KSM_STOPPED');
    expect(entry.severity).toBe('error');
    expect(entry.evidence).toContainEqual({ source: `${KSM}/run`, key: 'run', value: 0 });
    expect(entry.fix?.commands).toEqual([`echo 1 > ${KSM}/run`]);
    expect(entry.fix?.knobs).toEqual({ run: 1 });
    expect(entry.fix?.persist).toEqual([`/etc/tmpfiles.d/ksm.conf: w ${KSM}/run - - - - 1`]);
    expect(findings[0]).toBe(entry);
  });

  it('SCAN_TOO_SLOW: pages_to_scan=100 against a large candidate set, computed from the kernel figures', async (ctx) => {
    requireKsm(ctx);
    // Test memory stays modest, so the target is scaled down with it: 64 MiB
    // (16384 pages) at 100 pages per 20 ms is 3.3 s against a 1 s target.
    const holder = await startFixture('doctor/service.cjs', [JSON.stringify({ size: 64 * MiB, fill: 'random' })]);
    holders.push(holder);
    const { start, end } = holder.ready.range as { start: bigint; end: bigint };
    expect(rawSmapsRange(holder.pid, start, end).flags.every((flags) => flags.includes('mg'))).toBe(true);

    const findings = await withKnobs({ pages_to_scan: '100', sleep_millisecs: '20' }, () =>
      doctor({ pid: holder.pid, targetScanTimeSec: 0.5, maxScanTimeSec: 1 }),
    );
    const entry = findingOf(findings, 'SCAN_TOO_SLOW');
    expect(entry.severity).toBe('warn');
    expect(evidence(entry, 'pages_to_scan')).toBe(100);
    expect(evidence(entry, 'sleep_millisecs')).toBe(20);
    const own = Number(evidence(entry, 'candidate pages of this process (Anonymous in mg VMAs)'));
    expect(own).toBe((64 * MiB) / pageSize());
    const candidates = Number(evidence(entry, 'candidate pages (the larger of the two)'));
    expect(candidates).toBeGreaterThanOrEqual(own);
    // full scan = candidates / (pages_to_scan x 1000 / sleep_millisecs)
    expect(evidence(entry, 'full scan time')).toBeCloseTo(candidates / 5000, 1);
    const needed = Math.ceil((candidates * 20) / (1000 * 0.5));
    expect(entry.fix?.knobs).toEqual({ pagesToScan: needed });
    expect(entry.fix?.commands).toEqual([`echo ${needed} > ${KSM}/pages_to_scan`]);
    // Where the kernel has the scan-time advisor (6.8+) it is offered as the other way; never where it has not.
    const advisor = entry.alternatives.filter((alternative) => alternative.knobs?.advisorMode !== undefined);
    if (fs.existsSync(`${KSM}/advisor_mode`)) expect(advisor[0]?.knobs).toEqual({ advisorTargetScanTimeSec: 1, advisorMode: 'scan-time' });
    else expect(advisor).toEqual([]);
  });

  it('THP_IN_MERGEABLE: a mergeable mapping that also asked for huge pages', async (ctx) => {
    requireKsm(ctx);
    // THP set so madvised memory gets huge pages, for this test only: the knobs are machine-wide.
    const { enabled, pmdBytes } = thpForMadvise(ctx);
    needs(ctx, pmdBytes <= 32 * MiB, `a PMD huge page of at most 32 MiB (this kernel's: ${pmdBytes / MiB} MiB)`);
    // Four PMD sizes hold at least three aligned huge pages; random bytes so ksmd splits nothing.
    const holder = await startFixture('doctor/service.cjs', [JSON.stringify({ size: 4 * pmdBytes, memory: 'huge', fill: 'random' })]);
    holders.push(holder);
    const { start, end } = holder.ready.range as { start: bigint; end: bigint };
    const smaps = fs.readFileSync(`/proc/${holder.pid}/smaps`, 'utf8');
    const huge = [...smaps.matchAll(/^([0-9a-f]+)-([0-9a-f]+) [^\n]*\n(?:[^\n]*\n)*?AnonHugePages:\s+(\d+) kB/gm)]
      .filter((match) => BigInt(`0x${match[1]}`) < end && BigInt(`0x${match[2]}`) > start)
      .reduce((sum, match) => sum + Number(match[3]) * 1024, 0);
    needs(ctx, huge > 0, 'a huge page for a MADV_HUGEPAGE mapping (the kernel assembled none, even compacting)');
    const entry = findingOf(await doctor({ pid: holder.pid }), 'THP_IN_MERGEABLE');
    expect(entry.severity).toBe('warn');
    expect(evidence(entry, 'enabled')).toBe(enabled);
    const listed = entry.evidence.filter((item) => item.key.endsWith('AnonHugePages')).reduce((sum, item) => sum + Number(item.value), 0);
    expect(listed).toBeGreaterThanOrEqual(huge);
  });

  it('done when: a fresh machine names both reasons; after running the printed commands the service is healthy and merging', async (ctx) => {
    requireKsm(ctx);
    await withKnobs(FRESH, async () => {
      // A fresh machine: ksmd has never seen the service. It called
      // enableMerge() and holds the same 32 MiB as its twin.
      const services = await Promise.all(
        [1, 2].map(() => startFixture('holder.cjs', [JSON.stringify({ mode: 'plain', size: 32 * MiB, seed: 29, enableMerge: true })])),
      );
      holders.push(...services);
      const pid = services[0]!.pid;
      expect(rawKsmStat(pid).ksm_merge_any).toBe('yes');
      // Scaled to test memory as above: two services hold at least 16384
      // pages, 3.3 s at 100 pages per 20 ms; aim at 0.5 s, slow past 2 s
      // (headroom for other processes' mergeable memory coming and going).
      const options = { pid, targetScanTimeSec: 0.5, maxScanTimeSec: 2 };

      // Another run's global setup may have switched ksmd on meanwhile: stop it again.
      for (const [name, value] of Object.entries(FRESH)) fs.writeFileSync(`${KSM}/${name}`, value);
      const before = await doctor(options);
      const errorsAndWarnings = before.filter((entry) => entry.severity !== 'info').map((entry) => entry.code);
      expect(errorsAndWarnings).toEqual(['KSM_STOPPED', 'SCAN_TOO_SLOW']);
      // Run exactly what doctor printed, as a person would.
      for (const entry of before.filter((item) => item.severity !== 'info')) {
        for (const command of entry.fix!.commands) execFileSync('sh', ['-c', command]);
      }
      const scan = findingOf(before, 'SCAN_TOO_SLOW');
      expect(sysfsNumber('run')).toBe(1);
      expect(sysfsNumber('pages_to_scan')).toBe(scan.fix!.knobs!.pagesToScan);

      // Two full scans merge the twins; another run on this machine may unmerge
      // everything meanwhile (run=2), so wait in rounds until the kernel says so.
      const pages = (32 * MiB) / pageSize();
      for (let round = 0; round < 5 && Number(rawKsmStat(pid).ksm_merging_pages) < pages; round++) {
        await waitForMerge({ timeoutMs: 90_000 });
      }
      const after = await doctor(options);
      expect(problems(after)).toEqual([]);
      const merging = findingOf(after, 'MERGING');
      // The twin buffers' pages map KSM pages, read back from the kernel raw.
      const raw = Number(rawKsmStat(pid).ksm_merging_pages);
      expect(raw).toBeGreaterThanOrEqual(pages);
      expect(evidence(merging, 'ksm_merging_pages')).toBeGreaterThanOrEqual(pages);
    });
  });
});
