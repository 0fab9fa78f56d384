/**
 * KSM_CHURN on a real churn: a process whose merged pages are written again
 * right after they merge (cow_ksm rises, read raw). With ksmd slowed to one
 * batch every 200 ms, every merged page is broken within each full scan:
 * the ratio of breaks per full scan to pages_sharing is about 1, over the
 * 0.5 threshold. Below the threshold: test/doctor-lost.test.ts, on facts.
 */
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { doctor } from '../lib/index.js';
import { evidence } from './helpers/doctor.js';
import { rawKsmStat, requireKsm, startFixture, untilKsm, type Holder } from './helpers/ksm.js';

const KSM = '/sys/kernel/mm/ksm';
const PAGES = 4096;

let holder: Holder | undefined;
afterEach(async () => {
  await holder?.kill();
  holder = undefined;
});

function cowKsm(): number {
  const line = fs.readFileSync('/proc/vmstat', 'utf8').split('\n').find((l) => l.startsWith('cow_ksm '));
  return Number(line!.split(' ')[1]);
}

async function withSleep<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const saved = fs.readFileSync(`${KSM}/sleep_millisecs`, 'utf8').trim();
  fs.writeFileSync(`${KSM}/sleep_millisecs`, String(ms));
  try {
    return await fn();
  } finally {
    fs.writeFileSync(`${KSM}/sleep_millisecs`, saved);
  }
}

describe('KSM_CHURN', () => {
  it('fires while merged pages are written as fast as they merge, with the measure as evidence', async (ctx) => {
    requireKsm(ctx);
    holder = await startFixture('churn-writer.cjs', [String(PAGES)]);
    const pid = holder.pid;
    await untilKsm(() => Number(rawKsmStat(pid).ksm_merging_pages) >= PAGES * 0.9, 'the identical pages merged');

    await withSleep(200, async () => {
      await holder!.send({ cmd: 'churn' });
      const before = cowKsm();
      const findings = await doctor({ churnWindowMs: 2000 });
      const breaks = cowKsm() - before;
      await holder!.send({ cmd: 'stop' });
      expect(breaks, 'the writer broke merged pages (raw cow_ksm)').toBeGreaterThan(PAGES);
      const churn = findings.find((f) => f.code === 'KSM_CHURN');
      expect(churn, JSON.stringify(findings.map((f) => f.code))).toBeDefined();
      expect(churn!.severity).toBe('warn');
      const ratio = evidence(churn!, 'breaks per full scan / pages_sharing (threshold 0.5: a merged page lasting under two scans, the two visits mm/ksm.c needs to merge it)');
      expect(typeof ratio === 'string' || (ratio as number) >= 0.5).toBe(true);
      expect(churn!.fix?.call).toContain('markMergeable');
    });
  });
});
