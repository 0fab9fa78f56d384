/**
 * MERGE_ANY_LOST on real processes: children of a merge-any parent, one that
 * lost the flag without saying so, one started by spawnUnmerged() and one
 * that kept it (ksm_merge_any read raw for each). And both new rules on
 * facts, at and around their thresholds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { doctor, type Finding } from '../lib/index.js';
import type { Derived } from '../lib/doctor/derive.js';
import type { KsmFacts, RuleOptions } from '../lib/doctor/rule.js';
import { ksmChurn } from '../lib/doctor/rules/churn.js';
import { mergeAnyLost } from '../lib/doctor/rules/inheritance.js';
import { evidence, findingOf } from './helpers/doctor.js';
import { rawKsmStat, requireKsm, startFixture, type Holder } from './helpers/ksm.js';

describe('MERGE_ANY_LOST on real children of a merge-any parent', () => {
  let parent: Holder & { ready: Record<string, unknown> };
  let pids: { lost: number; unmerged: number; kept: number };
  beforeAll(async () => {
    parent = await startFixture('lost-flag-parent.cjs');
    pids = parent.ready as typeof pids;
  });
  afterAll(async () => {
    for (const pid of Object.values(pids ?? {})) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await parent?.kill();
  });
  const codes = (findings: Finding[]): string[] => findings.map((f) => f.code);

  it('a child that lost the flag without opting out is a warning, with the parent and its environment as evidence', async (ctx) => {
    requireKsm(ctx);
    expect(rawKsmStat(parent.pid).ksm_merge_any).toBe('yes');
    expect(rawKsmStat(pids.lost).ksm_merge_any).toBe('no');
    const lost = findingOf(await doctor({ pid: pids.lost, churnWindowMs: 0 }), 'MERGE_ANY_LOST');
    expect(lost.severity).toBe('warn');
    expect(evidence(lost, 'PPid')).toBe(parent.pid);
    expect(lost.evidence.find((e) => e.source === `/proc/${parent.pid}/ksm_stat`)?.value).toBe(true);
    expect(lost.fix?.commands.join(' ')).toContain('node-ksm/register');
  });

  it("spawnUnmerged()'s child opted out: no finding", async (ctx) => {
    requireKsm(ctx);
    expect(rawKsmStat(pids.unmerged).ksm_merge_any).toBe('no');
    expect(codes(await doctor({ pid: pids.unmerged, churnWindowMs: 0 }))).not.toContain('MERGE_ANY_LOST');
  });

  it('a child that kept the flag: no finding', async (ctx) => {
    requireKsm(ctx);
    expect(rawKsmStat(pids.kept).ksm_merge_any).toBe('yes');
    expect(codes(await doctor({ pid: pids.kept, churnWindowMs: 0 }))).not.toContain('MERGE_ANY_LOST');
  });
});

describe('the rules on facts', () => {
  const options: RuleOptions = { handlesSecrets: false, targetScanTimeSec: 120, maxScanTimeSec: 180 };
  const derived = { source: { smaps: '/proc/9/smaps', ksmStat: '/proc/9/ksm_stat', status: '/proc/9/status' } } as Derived;
  const base = (over: Partial<KsmFacts>): KsmFacts =>
    ({
      procName: '9',
      kernelRelease: '6.12.1',
      stat: { mergeAny: false },
      status: { ppid: 1 },
      parentMergeAny: true,
      optedOut: { known: true, value: false, how: undefined },
      ksm: { pagesToScan: 100, sleepMillisecs: 20 },
      candidates: { kernelTracked: 10_000 },
      churn: undefined,
      ...over,
    }) as unknown as KsmFacts;

  it('MERGE_ANY_LOST: only when the parent has it, the process lacks it and did not opt out', () => {
    expect(mergeAnyLost.check(base({}), derived, options).map((f) => f.severity)).toEqual(['warn']);
    expect(mergeAnyLost.check(base({ parentMergeAny: false }), derived, options)).toEqual([]);
    expect(mergeAnyLost.check(base({ stat: { mergeAny: true } as KsmFacts['stat'] }), derived, options)).toEqual([]);
    expect(mergeAnyLost.check(base({ optedOut: { known: true, value: true, how: 'x' } }), derived, options)).toEqual([]);
    // Its environment unreadable: cannot rule out spawnUnmerged(), so information only.
    expect(mergeAnyLost.check(base({ optedOut: { known: false, value: false, how: undefined } }), derived, options).map((f) => f.severity)).toEqual(['info']);
  });

  it('KSM_CHURN: breaks per full scan against pages_sharing, at 0.5', () => {
    // 2 full scans in 2 s: a scan takes 1 s. 1,000 pages sharing.
    const churn = (breaks: number) => base({ churn: { seconds: 2, cowKsmBefore: 0, cowKsmAfter: breaks, fullScansBefore: 10, fullScansAfter: 12, pagesSharing: 1000 } });
    expect(ksmChurn.check(churn(999), derived, options)).toEqual([]); // 500 per scan: ratio 0.4995
    const found = ksmChurn.check(churn(1000), derived, options);
    expect(found.map((f) => f.code)).toEqual(['KSM_CHURN']);
    expect(evidence(found[0]!, 'full scan time (measured)')).toBe(1);
    expect(ksmChurn.check(churn(15), derived, options)).toEqual([]); // too few to say
    // No full scan in the window: the scan time from the knobs (10,000 tracked / 5,000 pages/s = 2 s).
    const slow = base({ churn: { seconds: 1, cowKsmBefore: 0, cowKsmAfter: 300, fullScansBefore: 5, fullScansAfter: 5, pagesSharing: 1000 } });
    expect(evidence(ksmChurn.check(slow, derived, options)[0]!, 'full scan time (tracked pages / pages per second)')).toBe(2);
  });
});
