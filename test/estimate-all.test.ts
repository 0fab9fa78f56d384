/**
 * estimate({ all: true }) and `node-ksm estimate --all`: the whole machine.
 * Three children holding the same data show up as targets, with their twins
 * across processes, and in the top lists; kernel threads and the processes
 * the caller may not read are left out and named; the --json shape.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { estimate, pageSize, type EstimateResult } from '../lib/index.js';
import type { EstimateJson } from '../lib/cli/json.js';
import { BIN, runCli } from './helpers/cli.js';
import { requireKsm, startFixture, type Holder } from './helpers/ksm.js';

let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

const PAGES = 8192; // 32 MiB each: two thirds of it saved, more than most of a machine's mappings

type Child = Holder & { start: bigint; end: bigint };

async function children(): Promise<Child[]> {
  const seed = Math.floor(Math.random() * 1e9);
  const spec = JSON.stringify({ mergeable: false, segments: [{ kind: 'seq', pages: PAGES, seed }] });
  const started = await Promise.all([0, 1, 2].map(() => startFixture('estimate-worker.cjs', [spec])));
  holders.push(...started);
  return started.map((h) => Object.assign(h, { start: h.ready.start as bigint, end: h.ready.end as bigint }));
}

function checkChildren(result: EstimateResult, kids: Child[]): void {
  const all = result.all!;
  for (const kid of kids) {
    const proc = result.processes.find((p) => p.pid === kid.pid);
    expect(proc).toBeDefined();
    const vma = proc!.vmas.find((v) => v.start === kid.start && v.end === kid.end);
    expect(vma).toMatchObject({ candidatePages: PAGES, twinInOtherProcess: PAGES });
    expect(vma!.predictedSavedPages).toBeCloseTo((PAGES * 2) / 3, 6);
    expect(all.topVmas.some((v) => v.pid === kid.pid && v.start === kid.start && v.end === kid.end)).toBe(true);
    expect(all.topProcesses.some((p) => p.pid === kid.pid)).toBe(true);
  }
}

describe('estimate({ all: true })', () => {
  it('estimates every process it may read, names the ones left out, and says where the duplicates are', async (ctx) => {
    requireKsm(ctx);
    const kids = await children();
    const result = await estimate({ all: true, minRegionBytes: 1 << 20 });
    const all = result.all;
    expect(all).toBeDefined();
    // Every process listed is either estimated or left out with a reason.
    expect(all!.estimated).toBe(result.processes.length);
    expect(all!.estimated + all!.skipped.length).toBe(all!.listed);
    expect(Object.values(all!.skippedCounts).reduce((a, b) => a + b, 0)).toBe(all!.skipped.length);
    expect(result.processes.some((p) => p.pid === process.pid)).toBe(true);
    checkChildren(result, kids);

    // Largest first; each entry's share of the whole prediction.
    const savings = all!.topVmas.map((v) => v.predictedSavedBytes);
    expect(savings).toEqual([...savings].sort((a, b) => b - a));
    expect(all!.topVmas.length).toBeLessThanOrEqual(20);
    for (const v of all!.topVmas) expect(v.share).toBeCloseTo(v.predictedSavedBytes / result.predictedSavedBytes, 9);

    // Kernel threads are left out, by name (kthreadd is pid 2 on Linux).
    const kernel = all!.skipped.filter((s) => s.reason === 'kernel thread');
    expect(kernel.length).toBeGreaterThan(0);
    if (fs.readFileSync('/proc/2/comm', 'utf8').trim() === 'kthreadd') {
      expect(kernel.some((s) => s.pid === 2 && s.comm === 'kthreadd')).toBe(true);
    }
    expect(result.processes.some((p) => kernel.some((s) => s.pid === p.pid))).toBe(false);
    expect(pageSize()).toBe(result.pageSize);
  });

  it('takes no targets with all, and checks top', async () => {
    await expect(estimate(process.pid, { all: true })).rejects.toThrow(TypeError);
    await expect(estimate({ all: true, pids: [process.pid] })).rejects.toThrow(TypeError);
    await expect(estimate({ all: true, top: -1 })).rejects.toThrow(RangeError);
    await expect(estimate({ all: 'yes' as unknown as true })).rejects.toThrow(TypeError);
  });
});

describe('node-ksm estimate --all', () => {
  it('prints the top lists, the left-out processes, and plain progress lines when stderr is no terminal', async (ctx) => {
    requireKsm(ctx);
    const kids = await children();
    const text = await runCli(['estimate', '--all', '--min-region', '1MiB', '--top', '50'], {}, 120_000);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/whole machine: \d+ processes listed, \d+ estimated, \d+ left out \(\d+ kernel thread/);
    expect(text.stdout).toContain('top processes by predicted saving');
    expect(text.stdout).toContain('top mappings by predicted saving');
    for (const kid of kids) expect(text.stdout).toContain(`${kid.start.toString(16)}-${kid.end.toString(16)}`);
    expect(text.stderr).toMatch(/^estimate --all: finding pages \(\d+/m);
    expect(text.stderr).toMatch(/^estimate --all: hashing \([\d,]+\)$/m);

    const json = await runCli(['estimate', '--all', '--json', '--min-region', '1MiB', '--no-progress'], {}, 120_000);
    expect(json.code).toBe(0);
    expect(json.stderr).toBe('');
    const doc = JSON.parse(json.stdout) as EstimateJson;
    expect(doc).toMatchObject({ kind: 'node-ksm/estimate', version: 1 });
    expect(doc.pids).toEqual(doc.report.processes.map((p) => p.pid));
    const all = doc.report.all!;
    expect(Object.keys(all).sort()).toEqual(['estimated', 'listed', 'skipped', 'skippedCounts', 'topProcesses', 'topVmas']);
    expect(Object.keys(all.skipped[0]!).sort()).toEqual(['comm', 'detail', 'pid', 'reason']);
    // Addresses as '0x...' strings, like every address in the JSON.
    const top = all.topVmas.find((v) => v.pid === kids[0]!.pid);
    expect(top).toMatchObject({ start: `0x${kids[0]!.start.toString(16)}`, end: `0x${kids[0]!.end.toString(16)}`, pathname: '' });
  });

  it('as nobody: root\'s processes are left out as not allowed and named; its own are estimated', async (ctx) => {
    requireKsm(ctx);
    if (process.getuid?.() !== 0) ctx.skip('needs root to start a child as nobody');
    const kids = await children();
    const out = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      execFile(process.execPath, [BIN, 'estimate', '--all', '--json', '--no-progress'], { uid: 65534, gid: 65534, cwd: '/', maxBuffer: 64 << 20, timeout: 120_000 }, (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      });
    });
    expect(out.code, out.stderr).toBe(0);
    const doc = JSON.parse(out.stdout) as EstimateJson;
    const all = doc.report.all!;
    for (const pid of [process.pid, ...kids.map((k) => k.pid)]) {
      expect(all.skipped.find((s) => s.pid === pid)).toMatchObject({ reason: 'not allowed' });
      expect(doc.pids).not.toContain(pid);
    }
    expect(all.skippedCounts['not allowed']).toBeGreaterThanOrEqual(4);
    expect(doc.pids.length).toBeGreaterThanOrEqual(1); // at least itself
  });
});
