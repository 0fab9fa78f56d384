/**
 * Kernel refusals of knob writes, provoked for real. Serial: each changes a
 * machine-wide knob for a moment and puts it back in `finally`.
 */
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { setKnobs } from '../../lib/index.js';
import { PAGE, needs, rawKsmStat, requireKsm, startFixture, sysfsNumber, type Holder } from '../helpers/ksm.js';

const KSM = '/sys/kernel/mm/ksm';
const raw = (name: string): string => fs.readFileSync(`${KSM}/${name}`, 'utf8').trim();
let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

describe('knob writes the kernel refuses', () => {
  it('EBUSY on merge_across_nodes while pages are shared: hint, nothing changed, merged data intact', async (ctx) => {
    requireKsm(ctx);
    needs(ctx, fs.existsSync(`${KSM}/merge_across_nodes`), `${KSM}/merge_across_nodes (a kernel built with CONFIG_NUMA)`);
    const before = raw('merge_across_nodes');
    // Two processes with the same 8 MiB: shared pages exist for sure.
    holders = await Promise.all([0, 1].map(() => startFixture('holder.cjs', [JSON.stringify({ mode: 'alloc', size: 8 << 20, seed: 91 })])));
    // Per-process, and tolerant of another run switching KSM off for a moment.
    const pages = (8 << 20) / PAGE;
    const deadline = Date.now() + 90_000;
    while (holders.some((holder) => Number(rawKsmStat(holder.pid).ksm_merging_pages ?? 0) < pages)) {
      if (Date.now() > deadline) throw new Error('the holders did not merge in 90 s');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(sysfsNumber('pages_shared')).toBeGreaterThan(0);
    let error: (Error & { code?: string; hint?: string; written?: string[] }) | undefined;
    try {
      setKnobs({ mergeAcrossNodes: before !== '1' });
    } catch (caught) {
      error = caught as typeof error;
    } finally {
      // Had the kernel taken it, NUMA merging would have changed for everyone.
      if (raw('merge_across_nodes') !== before) fs.writeFileSync(`${KSM}/merge_across_nodes`, before);
    }
    expect(error).toMatchObject({
      code: 'EBUSY',
      syscall: 'write',
      hint: 'merge_across_nodes can only change while no pages are merged: write 2 to run first',
      written: [],
    });
    expect(error!.message).toBe('EBUSY: resource busy or locked, write (merge_across_nodes can only change while no pages are merged: write 2 to run first)');
    expect(raw('merge_across_nodes')).toBe(before);
    for (const holder of holders) expect(await holder.send<{ ok: boolean }>({ cmd: 'verify' })).toEqual({ ok: true });
  });

  it('EINVAL on pages_to_scan while the scan-time advisor is on: hint, pages_to_scan unchanged', async (ctx) => {
    requireKsm(ctx);
    needs(ctx, fs.existsSync(`${KSM}/advisor_mode`), `the scan-time advisor (${KSM}/advisor_mode, Linux 6.8+)`);
    const pagesBefore = raw('pages_to_scan');
    const modeBefore = /\[([^\]]+)\]/.exec(raw('advisor_mode'))![1]!;
    let error: (Error & { code?: string; hint?: string; written?: string[] }) | undefined;
    try {
      fs.writeFileSync(`${KSM}/advisor_mode`, 'scan-time');
      try {
        setKnobs({ pagesToScan: 1234 });
      } catch (caught) {
        error = caught as typeof error;
      }
    } finally {
      fs.writeFileSync(`${KSM}/advisor_mode`, modeBefore);
      if (raw('pages_to_scan') !== pagesBefore) fs.writeFileSync(`${KSM}/pages_to_scan`, pagesBefore);
    }
    expect(error).toMatchObject({
      code: 'EINVAL',
      syscall: 'write',
      hint: 'the scan-time advisor sets pages_to_scan itself: set advisor_mode to none first',
      written: [],
    });
    expect(error!.message).toBe('EINVAL: invalid argument, write (the scan-time advisor sets pages_to_scan itself: set advisor_mode to none first)');
    expect(raw('pages_to_scan')).toBe(pagesBefore);
  });
});
