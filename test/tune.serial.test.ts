/**
 * `node-ksm tune` on the real kernel: changes machine-wide knobs, so it is
 * serial, keeps each change short, and restores every knob in `finally`.
 */
import { once } from 'node:events';
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import type { TuneJson } from '../lib/index.js';
import { runCli, spawnCli } from './helpers/cli.js';
import { needs, requireKsm, startFixture, sysfsNumber, type Holder } from './helpers/ksm.js';

const KSM = '/sys/kernel/mm/ksm';
const KNOBS = ['advisor_mode', 'advisor_target_scan_time', 'advisor_max_cpu', 'pages_to_scan', 'sleep_millisecs'];

function raw(name: string): string {
  const text = fs.readFileSync(`${KSM}/${name}`, 'utf8').trim();
  return /\[([^\]]+)\]/.exec(text)?.[1] ?? text;
}

/** Saves the knobs; the returned function puts them back (advisor off first, so pages_to_scan is writable). */
function saveKnobs(): () => void {
  const saved = new Map(KNOBS.filter((name) => fs.existsSync(`${KSM}/${name}`)).map((name) => [name, raw(name)]));
  return () => {
    if (saved.has('advisor_mode')) fs.writeFileSync(`${KSM}/advisor_mode`, 'none');
    for (const [name, value] of saved) if (name !== 'advisor_mode') fs.writeFileSync(`${KSM}/${name}`, value);
    if (saved.has('advisor_mode')) fs.writeFileSync(`${KSM}/advisor_mode`, saved.get('advisor_mode')!);
  };
}

let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

describe('node-ksm tune (real kernel)', () => {
  it('sets knobs and prints before and after as the kernel reads them', async (ctx) => {
    requireKsm(ctx);
    const restore = saveKnobs();
    try {
      const before = sysfsNumber('pages_to_scan');
      const target = before === 1234 ? 1235 : 1234;
      const result = await runCli(['tune', '--pages-to-scan', String(target), '--json']);
      expect(result.code).toBe(0);
      const tune = JSON.parse(result.stdout) as TuneJson;
      expect(tune.changes).toEqual([{ knob: 'pagesToScan', file: 'pages_to_scan', before, after: target }]);
      expect(sysfsNumber('pages_to_scan')).toBe(target);
    } finally {
      restore();
    }
  });

  it('a value the kernel refuses: error with hint, non-zero exit', async (ctx) => {
    requireKsm(ctx);
    needs(ctx, fs.existsSync(`${KSM}/advisor_mode`), `the scan-time advisor (${KSM}/advisor_mode, Linux 6.8+), whose mode makes pages_to_scan writes fail`);
    const restore = saveKnobs();
    try {
      // Under the scan-time advisor the kernel refuses pages_to_scan writes (EINVAL).
      fs.writeFileSync(`${KSM}/advisor_mode`, 'scan-time');
      const result = await runCli(['tune', '--pages-to-scan', '1000']);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(/EINVAL.*advisor/);
    } finally {
      restore();
    }
  });

  it('--target-scan-time 120s switches on the kernel scan-time advisor (6.8+)', async (ctx) => {
    requireKsm(ctx);
    needs(ctx, fs.existsSync(`${KSM}/advisor_mode`), `the scan-time advisor (${KSM}/advisor_mode, Linux 6.8+)`);
    const restore = saveKnobs();
    try {
      const result = await runCli(['tune', '--target-scan-time', '120s', '--max-cpu', '40', '--json']);
      expect(result.code).toBe(0);
      const tune = JSON.parse(result.stdout) as TuneJson;
      expect(tune.mode).toBe('advisor');
      expect(tune.changes).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ file: 'advisor_mode', after: 'scan-time' }),
          expect.objectContaining({ file: 'advisor_target_scan_time', after: 120 }),
          expect.objectContaining({ file: 'advisor_max_cpu', after: 40 }),
        ]),
      );
      expect(raw('advisor_mode')).toBe('scan-time');
      expect(raw('advisor_target_scan_time')).toBe('120');
    } finally {
      restore();
    }
    expect(raw('advisor_mode')).not.toBe('scan-time');
  });

  it('the userspace controller adjusts pages_to_scan from what ksmd does, and restores it at the end', async (ctx) => {
    requireKsm(ctx);
    const spec = JSON.stringify({ mode: 'alloc', size: 16 * 1024 * 1024, seed: 5 });
    holders = await Promise.all([startFixture('holder.cjs', [spec]), startFixture('holder.cjs', [spec])]);
    const restore = saveKnobs();
    try {
      const before = sysfsNumber('pages_to_scan');
      // About ten steps: three or more even when a step runs long on a loaded machine.
      const result = await runCli(['tune', '--target-scan-time', '30s', '--userspace', '--interval', '300ms', '--duration', '3s', '--json']);
      expect(result.code, result.stderr).toBe(0);
      const tune = JSON.parse(result.stdout) as TuneJson;
      expect(tune.mode).toBe('userspace');
      expect(tune.steps!.length).toBeGreaterThanOrEqual(3);
      const acted = tune.steps!.filter((step) => step.decidedBy !== 'hold');
      expect(acted.length).toBeGreaterThan(0);
      for (const step of acted) {
        // ksmd was running over the holders' 8,192 pages: it visited pages and used CPU.
        expect(step.observedPagesPerSecond).toBeGreaterThan(0);
        expect(step.candidatePages).toBeGreaterThan(0);
        expect(step.ksmdCpuPercent).not.toBeNull();
        // A 30 s target at ~500k pages/s scans: far too fast, so it slows down, within bounds.
        expect(step.pagesToScanAfter).toBeLessThanOrEqual(step.pagesToScanBefore);
        expect(step.pagesToScanAfter).toBeGreaterThanOrEqual(500);
      }
      expect(tune.restored).toEqual([expect.objectContaining({ file: 'pages_to_scan', after: before })]);
      expect(sysfsNumber('pages_to_scan')).toBe(before);
    } finally {
      restore();
    }
  });

  it('SIGTERM stops the controller cleanly and restores pages_to_scan', async (ctx) => {
    requireKsm(ctx);
    const restore = saveKnobs();
    try {
      const before = sysfsNumber('pages_to_scan');
      const child = spawnCli(['tune', '--target-scan-time', '1h', '--userspace', '--interval', '200ms']);
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const deadline = Date.now() + 20_000;
      while (!/pages_to_scan \S+ -> /.test(out)) {
        if (Date.now() > deadline) throw new Error(`no step printed: ${out}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      expect(out).toContain(`restored: pages_to_scan=${before}`);
      expect(sysfsNumber('pages_to_scan')).toBe(before);
    } finally {
      restore();
    }
  });
});
