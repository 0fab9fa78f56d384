/**
 * scanTime() and the userspace ScanTimeTuner against a fixture sysfs/proc
 * tree that the test moves like ksmd would: pages visited, ksmd's CPU time,
 * and a clock the test owns.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

import { scanTime, ScanTimeTuner, systemStat } from '../lib/index.js';
import { makeKsmTree, sysfsFile, writeSysfs } from './helpers/cli.js';

const trees: string[] = [];
afterAll(() => {
  for (const root of trees) fs.rmSync(root, { recursive: true, force: true });
});

/** A tree with ksmd at pid 55 whose schedstat the test sets. */
function machine(sysfs: Record<string, string | undefined> = {}) {
  const root = makeKsmTree(sysfs, [{ pid: 55, comm: 'ksmd' }]);
  trees.push(root);
  let now = 0;
  let visited = 0;
  let cpuNs = 0;
  const set = (): void => {
    writeSysfs(root, 'pages_scanned', visited);
    writeSysfs(root, 'pages_skipped', 0);
    fs.writeFileSync(path.join(root, 'proc', '55', 'schedstat'), `${cpuNs} 0 0\n`);
  };
  set();
  return {
    root,
    now: () => now,
    /** ksmd ran for `seconds`, visiting `pagesPerSecond`, using `cpuPercent` of a CPU. */
    advance(seconds: number, pagesPerSecond: number, cpuPercent: number): void {
      now += seconds * 1000;
      visited += Math.round(pagesPerSecond * seconds);
      cpuNs += Math.round((cpuPercent / 100) * seconds * 1e9);
      set();
    },
  };
}

describe('scanTime()', () => {
  it('is candidate pages over the knobs\' rate', () => {
    const root = makeKsmTree({ pages_to_scan: '100', sleep_millisecs: '20' });
    trees.push(root);
    // 15,000 pages at 100 pages / 20 ms = 5,000 pages/s: 3 s.
    expect(scanTime(systemStat({ root }))).toEqual({ candidatePages: 15000, pagesPerSecond: 5000, fullScanSeconds: 3 });
  });
});

describe('ScanTimeTuner', () => {
  it('raises pages_to_scan when a scan takes longer than the target, damped, and restores on stop', () => {
    // 15,000 candidate pages (fixture), pages_to_scan 1000.
    const m = machine({ pages_to_scan: '1000' });
    const tuner = new ScanTimeTuner({ root: m.root, targetScanTimeSec: 10, now: m.now, maxCpuPercent: 90 });
    tuner.start({ timer: false });
    // 500 pages/s observed: a scan takes 30 s, 3x the target.
    m.advance(5, 500, 5);
    const step = tuner.step();
    expect(step.observedPagesPerSecond).toBe(500);
    expect(step.estimatedScanTimeSec).toBe(30);
    expect(step.ksmdCpuPercent).toBeCloseTo(5, 6);
    expect(step.decidedBy).toBe('target');
    expect(step.pagesToScanAfter).toBe(Math.round(1000 * 3 ** 0.7));
    expect(Number(sysfsFile(m.root, 'pages_to_scan'))).toBe(step.pagesToScanAfter);

    // Faster than the target now: it comes down.
    m.advance(5, 6000, 10);
    const down = tuner.step();
    expect(down.estimatedScanTimeSec).toBe(2.5);
    expect(down.pagesToScanAfter).toBeLessThan(down.pagesToScanBefore);
    expect(tuner.steps).toHaveLength(2);

    const restored = tuner.stop();
    expect(restored?.after).toEqual({ pagesToScan: 1000 });
    expect(sysfsFile(m.root, 'pages_to_scan')).toBe('1000');
    expect(tuner.stop()).toBeUndefined();
  });

  it('caps pages_to_scan by ksmd CPU', () => {
    const m = machine({ pages_to_scan: '1000' });
    const tuner = new ScanTimeTuner({ root: m.root, targetScanTimeSec: 1, now: m.now, maxCpuPercent: 20 });
    tuner.start({ timer: false });
    // Way too slow (30 s for a 1 s target) and ksmd already at 15%: at most 1000 x 20 / 15.
    m.advance(5, 500, 15);
    const step = tuner.step();
    expect(step.decidedBy).toBe('cpu');
    expect(step.pagesToScanAfter).toBe(Math.round((1000 * 20) / 15));
    tuner.stop();
  });

  it('stays within min and max pages_to_scan', () => {
    const m = machine({ pages_to_scan: '1000' });
    const tuner = new ScanTimeTuner({ root: m.root, targetScanTimeSec: 1000, now: m.now, minPagesToScan: 800, maxPagesToScan: 1200 });
    tuner.start({ timer: false });
    m.advance(5, 100000, 1); // 0.15 s scans for a 1000 s target: wants far fewer
    expect(tuner.step()).toMatchObject({ decidedBy: 'min', pagesToScanAfter: 800 });
    tuner.stop();

    const fast = new ScanTimeTuner({ root: m.root, targetScanTimeSec: 1, now: m.now, maxCpuPercent: 100, maxPagesToScan: 1200 });
    fast.start({ timer: false });
    m.advance(5, 100, 1);
    expect(fast.step()).toMatchObject({ decidedBy: 'max', pagesToScanAfter: 1200 });
    fast.stop();
  });

  it('holds when ksmd visited nothing (stopped) and when KSM is not running', () => {
    const m = machine({ pages_to_scan: '1000' });
    const tuner = new ScanTimeTuner({ root: m.root, targetScanTimeSec: 10, now: m.now });
    tuner.start({ timer: false });
    m.advance(5, 0, 0);
    expect(tuner.step()).toMatchObject({ decidedBy: 'hold', pagesToScanAfter: 1000, observedPagesPerSecond: undefined });
    writeSysfs(m.root, 'run', 0);
    m.advance(5, 500, 5);
    expect(tuner.step()).toMatchObject({ decidedBy: 'hold', pagesToScanAfter: 1000 });
    tuner.stop();
  });

  it('turns the kernel advisor off while it runs (the kernel refuses pages_to_scan writes under it) and back on at stop', () => {
    const m = machine({ advisor_mode: 'none [scan-time]', pages_to_scan: '2000' });
    const tuner = new ScanTimeTuner({ root: m.root, targetScanTimeSec: 10, now: m.now });
    tuner.start({ timer: false });
    expect(sysfsFile(m.root, 'advisor_mode')).toBe('none');
    tuner.stop();
    expect(sysfsFile(m.root, 'advisor_mode')).toBe('scan-time');
    expect(sysfsFile(m.root, 'pages_to_scan')).toBe('2000');
  });

  it('steps on its own timer and reports through events', async () => {
    const m = machine({ pages_to_scan: '1000' });
    const tuner = new ScanTimeTuner({ root: m.root, targetScanTimeSec: 10, intervalMs: 20 });
    const steps: unknown[] = [];
    tuner.on('step', (step) => steps.push(step));
    tuner.start();
    expect(tuner.running).toBe(true);
    // Two steps of its own, however late a loaded machine runs the timers.
    for (let waited = 0; steps.length < 2 && waited < 10_000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
    tuner.stop();
    expect(tuner.running).toBe(false);
    expect(steps.length).toBeGreaterThanOrEqual(2);
    const count = steps.length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(steps.length).toBe(count); // stopped means stopped
  });

  it('validates its options', () => {
    expect(() => new ScanTimeTuner(undefined as never)).toThrow(TypeError);
    expect(() => new ScanTimeTuner({} as never)).toThrow(/targetScanTimeSec/);
    expect(() => new ScanTimeTuner({ targetScanTimeSec: 0 })).toThrow(RangeError);
    expect(() => new ScanTimeTuner({ targetScanTimeSec: 10, maxCpuPercent: 101 })).toThrow(RangeError);
    expect(() => new ScanTimeTuner({ targetScanTimeSec: 10, minPagesToScan: 10, maxPagesToScan: 5 })).toThrow(RangeError);
    expect(() => new ScanTimeTuner({ targetScanTimeSec: 10 }).step()).toThrow(/before start/);
  });
});
