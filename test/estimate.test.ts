/**
 * estimate(): exact counts for known layouts, in this process and in
 * children; zero, volatile and unreadable pages; processes that exit, that
 * we may not read; abort. Figures are checked against the layouts the
 * fixtures built and against /proc read raw.
 */
import { execFile, execFileSync, fork, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';

import nodeGypBuild from 'node-gyp-build';

import { hashFor, type NativeBinding, type NativeEstimateResult } from '../lib/binding.js';

import {
  KsmNoSuchProcessError,
  allocMergeable,
  markMergeable,
  markSensitive,
  estimate,
  pageSize,
  type EstimateProgress,
  type EstimateResult,
  type EstimateVma,
} from '../lib/index.js';
import { plan } from '../lib/report/estimate.js';
import { planFromMaps, samePlan } from '../lib/report/estimate-plan.js';
import { parseSmaps } from '../lib/index.js';
import { hashPaths, useHashPath } from './helpers/hash.js';
import { FIXTURES, ROOT, firstLine, rawSmapsRange, requireKsm, startFixture, startSparse, unsanitizedEnv, unusedPid, type Holder } from './helpers/ksm.js';
import { packageForNobody } from './helpers/nobody.js';

let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

interface Segment {
  kind: 'unique' | 'seq' | 'same' | 'zero' | 'read' | 'untouched' | 'volatile';
  pages: number;
  seed?: number;
  everyMs?: number;
}

async function worker(segments: Segment[], mergeable = true): Promise<Holder & { start: bigint; end: bigint }> {
  const holder = await startFixture('estimate-worker.cjs', [JSON.stringify({ mergeable, segments })]);
  holders.push(holder);
  return Object.assign(holder, { start: holder.ready.start as bigint, end: holder.ready.end as bigint });
}

/** The one VMA of `pid` that holds [start, end). */
function vmaOf(result: EstimateResult, pid: number, start: bigint, end: bigint): EstimateVma {
  const proc = result.processes.find((p) => p.pid === pid);
  expect(proc).toBeDefined();
  const vmas = proc!.vmas.filter((v) => v.start < end && v.end > start);
  expect(vmas).toHaveLength(1);
  expect(vmas[0]!.start).toBe(start);
  expect(vmas[0]!.end).toBe(end);
  return vmas[0]!;
}

/** pagemap entries of [start, end) of a process, read raw. */
function rawPagemap(pid: number | 'self', start: bigint, end: bigint): bigint[] {
  const page = BigInt(pageSize());
  const count = Number((end - start) / page);
  const buf = Buffer.alloc(count * 8);
  const fd = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  try {
    fs.readSync(fd, buf, 0, buf.length, Number((start / page) * 8n));
  } finally {
    fs.closeSync(fd);
  }
  return Array.from({ length: count }, (_, i) => buf.readBigUInt64LE(i * 8));
}
const PRESENT = 1n << 63n;

function fillPattern(buffer: Buffer, seed: number, from: number, pages: number): void {
  const page = pageSize();
  const digest = createHash('sha256').update(`node-ksm estimate self ${seed}`).digest();
  buffer.fill(digest, from * page, (from + pages) * page);
}

describe('estimate() argument checks', () => {
  it('rejects bad targets and options before any work', async () => {
    await expect(estimate('me' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(estimate(0)).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(estimate([1.5])).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(estimate([])).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(estimate('self', { intervalMs: -1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(estimate('self', { intervalMs: '5' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(estimate('self', { minRegionBytes: Number.NaN })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(estimate('self', { onlyMergeable: 1 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(estimate('self', { maxPageSharing: 1 })).rejects.toMatchObject({ code: 'ERR_OUT_OF_RANGE' });
    await expect(estimate('self', { signal: {} as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(estimate('self', { onProgress: 'x' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(estimate('self', { pids: 5 as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('a pid that does not exist is KsmNoSuchProcessError', async (ctx) => {
    requireKsm(ctx);
    const pid = unusedPid();
    const error = await estimate(pid).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KsmNoSuchProcessError);
    expect((error as KsmNoSuchProcessError).pid).toBe(pid);
  });
});

describe('estimate() planning from a smaps that changed while it was read', () => {
  // The kernel prints smaps in chunks and resumes after the last address it
  // printed: a VMA that grew or merged in between comes out overlapping the
  // one before it (seen under test:asan, whose allocator maps all the time).
  const vma = (range: string, perms = 'rw-p'): string =>
    `${range} ${perms} 00000000 00:00 0 \nSize: 8 kB\nAnonymous: 8 kB\nVmFlags: rd wr mr mw me ac mg\n`;

  it('starts each range where the previous one ended, and reports a VMA covered entirely', () => {
    const { vmas } = parseSmaps(
      vma('7f0000000000-7f0000004000') + vma('7f0000002000-7f0000008000') + vma('7f0000003000-7f0000006000') + vma('7f0000009000-7f000000a000'),
    );
    const p = plan(1, vmas, false, 0, 4096);
    expect([...p.ranges]).toEqual([0x7f0000000000n, 0x7f0000004000n, 0x7f0000004000n, 0x7f0000008000n, 0x7f0000009000n, 0x7f000000a000n]);
    expect(p.status).toEqual(['scanned', 'scanned', 'filtered', 'scanned']);
    expect(p.reason[2]).toMatch(/changed while smaps was read/);
    expect(p.range).toEqual([0, 1, -1, 2]);
  });

  it("maps' plan (no VmFlags) takes every private mapping but the kernel's own; samePlan() tells it from smaps'", () => {
    const line = (range: string, perms: string, name = ''): string => `${range} ${perms} 00000000 00:00 0 ${name}\n`;
    const maps = parseSmaps(
      line('7f0000000000-7f0000004000', 'rw-p') +
        line('7f0000004000-7f0000006000', 'rw-s', '/dev/zero (deleted)') +
        line('7f0000006000-7f0000008000', '---p') +
        line('7f0000008000-7f000000a000', 'r--p', '[vvar]') +
        line('7f000000a000-7f000000c000', 'r-xp', '[vdso]') +
        line('ffffffffff600000-ffffffffff601000', '--xp', '[vsyscall]'),
    ).vmas;
    const guess = planFromMaps(1, maps, 0, 4096);
    expect([...guess.ranges]).toEqual([0x7f0000000000n, 0x7f0000004000n, 0x7f0000006000n, 0x7f0000008000n]);
    expect([...guess.readable]).toEqual([1, 0]);
    // smaps' plan of the same layout, its flags told: the same ranges.
    const flags = ['rd wr mr mw me ac', 'rd wr sh mr mw me ms', 'mr mw me', 'rd mr pf io de dd', 'rd ex mr mw me de', 'ex'];
    const smaps = parseSmaps(maps.map((v, i) => line(`${v.start.toString(16)}-${v.end.toString(16)}`, v.perms, v.pathname) + `VmFlags: ${flags[i]}\n`).join('')).vmas;
    expect(samePlan(plan(1, smaps, false, 0, 4096), guess)).toBe(true);
    // A flag maps does not show (droppable), a VMA that grew, another pid: not the same.
    const droppable = smaps.map((v, i) => (i === 0 ? { ...v, vmFlags: [...v.vmFlags, 'dp'] } : v));
    expect(samePlan(plan(1, droppable, false, 0, 4096), guess)).toBe(false);
    const grown = smaps.map((v, i) => (i === 0 ? { ...v, end: v.end + 0x1000n } : v));
    expect(samePlan(plan(1, grown, false, 0, 4096), guess)).toBe(false);
    expect(samePlan(plan(2, smaps, false, 0, 4096), guess)).toBe(false);
  });

  it('leaves a consistent smaps as it is', () => {
    const { vmas } = parseSmaps(vma('7f0000000000-7f0000004000') + vma('7f0000004000-7f0000008000', '---p'));
    const p = plan(1, vmas, false, 0, 4096);
    expect([...p.ranges]).toEqual([0x7f0000000000n, 0x7f0000004000n, 0x7f0000004000n, 0x7f0000008000n]);
    expect(p.status).toEqual(['scanned', 'unreadable']);
  });
});

// The figures are exact whichever page hash sorts the pages: each describe
// that checks them runs once per hash path (test/helpers/hash.ts).
describe.for(hashPaths())('estimate() of this process ($name)', (hashPath) => {
  useHashPath(hashPath);

  it('counts a known layout exactly, per VMA, across two VMAs', async (ctx) => {
    requireKsm(ctx);
    const page = pageSize();
    // A: mergeable (mg). B: plain, advised NOHUGEPAGE. Each is the middle of
    // a mapping whose first and last pages are advised the other way, so
    // neither can share a VMA with whatever mmap placed next to it (another
    // test's buffer, a thread stack: same flags, one VMA).
    const aMapping = allocMergeable(66 * page);
    markSensitive(aMapping.subarray(0, page));
    markSensitive(aMapping.subarray(65 * page));
    const a = aMapping.subarray(page, 65 * page);
    const addon = nodeGypBuild(ROOT) as {
      alloc(size: number, advices: number[]): Buffer;
      viewRange(view: Buffer): { address: bigint; length: number };
      constants: { MADV_NOHUGEPAGE: number };
    };
    const bMapping = addon.alloc(34 * page, [addon.constants.MADV_NOHUGEPAGE]);
    markMergeable(bMapping.subarray(0, page));
    markMergeable(bMapping.subarray(33 * page));
    const b = bMapping.subarray(page, 33 * page);
    const seed = Math.floor(Math.random() * 1e9);
    // A: 0-7 unique, 8-15 one pattern, 16-19 zero, 20-23 read only,
    //    24-27 a second pattern that B also holds, 28-63 untouched.
    for (let i = 0; i < 8; i++) fillPattern(a, seed + 100 + i, i, 1);
    fillPattern(a, seed + 1, 8, 8);
    for (let i = 16; i < 20; i++) a[i * page] = 0;
    let sink = 0;
    for (let i = 20; i < 24; i++) sink += a[i * page]!;
    fillPattern(a, seed + 2, 24, 4);
    // B: 0-3 the second pattern, 4-5 zero, 6-31 untouched.
    fillPattern(b, seed + 2, 0, 4);
    b[4 * page] = 0;
    b[5 * page] = 0;
    expect(sink).toBe(0);

    const aStart = addon.viewRange(a).address;
    const bStart = addon.viewRange(b).address;
    const result = await estimate('self', { useZeroPages: true });
    const va = vmaOf(result, process.pid, aStart, aStart + BigInt(64 * page));
    const vb = vmaOf(result, process.pid, bStart, bStart + BigInt(32 * page));

    expect(va).toMatchObject({
      status: 'scanned',
      mergeable: true,
      candidateAfterEnableMerge: false,
      presentPages: 28,
      zeroPageMapped: 4,
      candidatePages: 24,
      unreadablePages: 0,
      zeroPages: 4,
      volatilePages: 0,
      duplicatePages: 12,
      twinInVma: 12,
      twinInProcess: 12,
      twinInOtherProcess: 0,
    });
    // 8 copies of pattern 1 save 7; 8 copies of pattern 2 (4 here, 4 in B)
    // save 7, half of it here; with use_zero_pages each zero page saves one.
    expect(va.predictedSavedPages).toBeCloseTo(7 + 3.5 + 4, 9);
    expect(va.predictedSavedBytes).toBeCloseTo((7 + 3.5 + 4) * page, 6);

    expect(vb).toMatchObject({
      status: 'scanned',
      mergeable: false,
      ksmCompatible: true,
      candidateAfterEnableMerge: true,
      presentPages: 6,
      candidatePages: 6,
      zeroPages: 2,
      duplicatePages: 4,
      twinInVma: 4,
      twinInProcess: 4,
      twinInOtherProcess: 0,
    });
    expect(vb.predictedSavedPages).toBeCloseTo(3.5 + 2, 9);

    // Totals are sums of the VMAs; the whole saving is a whole number of pages.
    const proc = result.processes[0]!;
    expect(proc.candidatePages).toBe(proc.vmas.reduce((s, v) => s + v.candidatePages, 0));
    expect(Number.isInteger(result.predictedSavedPages)).toBe(true);
    expect(result.predictedSavedBytes).toBe(result.predictedSavedPages * page);
    expect(result.memoryBytes).toBeGreaterThan(0);
    // About 16 bytes per page hashed, plus fixed buffers of well under 2 MiB.
    expect(result.memoryBytes).toBeLessThan(result.pagesHashed * 16 * 2.5 + 2 * 1024 * 1024);

    // Untouched pages were never faulted in by the estimate.
    const entries = rawPagemap('self', aStart + BigInt(28 * page), aStart + BigInt(64 * page));
    expect(entries.every((e) => (e & PRESENT) === 0n)).toBe(true);

    // Without use_zero_pages all zero pages of the targets are one class.
    const plain = await estimate('self', { useZeroPages: false, maxPageSharing: 256 });
    const pa = vmaOf(plain, process.pid, aStart, aStart + BigInt(64 * page));
    const z = plain.zeroPages;
    expect(z).toBeGreaterThanOrEqual(6);
    expect(pa.predictedSavedPages).toBeCloseTo(7 + 3.5 + (4 * (z - Math.ceil(z / 256))) / z, 6);

    // onlyMergeable leaves B (and every other non-mg VMA) out.
    const only = await estimate('self', { onlyMergeable: true, useZeroPages: true });
    const oa = vmaOf(only, process.pid, aStart, aStart + BigInt(64 * page));
    const ob = vmaOf(only, process.pid, bStart, bStart + BigInt(32 * page));
    expect(ob.status).toBe('filtered');
    expect(ob.candidatePages).toBe(0);
    // Pattern 2 now has only A's four copies: they save 3.
    expect(oa.predictedSavedPages).toBeCloseTo(7 + 3 + 4, 9);
    expect(a.length + b.length).toBe(96 * page);
  });

  it('counts PROT_NONE regions (V8 reservations, guard pages) as unreadable, never reads them', async (ctx) => {
    requireKsm(ctx);
    const result = await estimate('self');
    const proc = result.processes[0]!;
    const protNone = proc.vmas.filter((v) => v.perms.startsWith('---'));
    // Node/V8 reserves address space PROT_NONE in every process.
    expect(protNone.length).toBeGreaterThan(0);
    for (const vma of protNone) {
      if (vma.status === 'unreadable') expect(vma.reason).toMatch(/PROT_NONE/);
      else expect(['incompatible', 'filtered']).toContain(vma.status);
      expect(vma.candidatePages).toBe(0);
    }
    expect(proc.unreadableVmas).toBe(proc.vmas.filter((v) => v.status === 'unreadable').length);
    expect(proc.unreadableVmas).toBeGreaterThan(0);
    // Shared and special mappings are reported as incompatible, with why.
    for (const vma of proc.vmas.filter((v) => v.status === 'incompatible')) {
      expect(vma.reason).toBeTruthy();
      expect(vma.presentPages).toBe(0);
    }
  });

  it('survives its own memory being unmapped under the scan (read through process_vm_readv)', async (ctx) => {
    requireKsm(ctx);
    // A child collects 32 buffers (their finalizers munmap them) between the
    // two samples: the second sample finds them gone, counts them as changed,
    // and the process does not crash.
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['--expose-gc', path.join(FIXTURES, 'estimate-unmap.cjs')], (error, stdout, stderr) => {
        if (error) reject(new Error(`${error.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const reply = JSON.parse(out.trim()) as Record<string, unknown>;
    expect(reply).toMatchObject({ ok: true, dropped: true, exitedSelf: false, candidateInGone: 32 * 64 });
    expect(reply.volatileInGone).toBe(32 * 64);
    expect(reply.hash, 'the hash the child ran').toEqual([hashPath.expected]);
  });

  it('minRegionBytes leaves small VMAs out', async (ctx) => {
    requireKsm(ctx);
    const result = await estimate('self', { minRegionBytes: 1024 * 1024 });
    for (const vma of result.processes[0]!.vmas) {
      if (vma.end - vma.start < 1024n * 1024n) {
        expect(['filtered', 'incompatible']).toContain(vma.status);
        expect(vma.candidatePages).toBe(0);
      }
    }
  });

  it('keeps the event loop running while it works', async (ctx) => {
    requireKsm(ctx);
    const big = allocMergeable(64 * 1024 * 1024);
    big.fill(1);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const progress: EstimateProgress[] = [];
    try {
      await estimate('self', { intervalMs: 50, onProgress: (p) => progress.push(p) });
    } finally {
      clearInterval(timer);
    }
    expect(ticks).toBeGreaterThan(5);
    expect(progress.map((p) => p.phase)).toContain('sample');
    expect(progress.map((p) => p.phase)).toContain('resample');
    for (const p of progress) expect(p.done).toBeLessThanOrEqual(p.total);
    expect(big.length).toBe(64 * 1024 * 1024);
  });
});

describe.for(hashPaths())('estimate() across processes ($name)', (hashPath) => {
  useHashPath(hashPath);

  const layout: Segment[] = [
    { kind: 'seq', pages: 8, seed: 5 },
    { kind: 'same', pages: 4, seed: 6 },
    { kind: 'unique', pages: 4 },
    { kind: 'zero', pages: 4 },
    { kind: 'untouched', pages: 28 },
  ];

  it('counts twins within and across three children exactly', async (ctx) => {
    requireKsm(ctx);
    const seed = Math.floor(Math.random() * 1e9);
    const spec = layout.map((s) => (s.seed === undefined ? s : { ...s, seed: s.seed + seed }));
    const workers = await Promise.all([worker(spec), worker(spec), worker(spec)]);
    const result = await estimate(workers.map((w) => w.pid), { useZeroPages: true });
    expect(result.processes.map((p) => p.pid)).toEqual(workers.map((w) => w.pid));
    for (const w of workers) {
      const vma = vmaOf(result, w.pid, w.start, w.end);
      expect(vma).toMatchObject({
        mergeable: true,
        presentPages: 20,
        candidatePages: 20,
        zeroPages: 4,
        duplicatePages: 12,
        twinInVma: 4,
        twinInProcess: 4,
        twinInOtherProcess: 12,
        volatilePages: 0,
      });
      // seq: 3 copies save 2 (2/3 each); same: 12 copies save 11 (11/12 each).
      expect(vma.predictedSavedPages).toBeCloseTo((8 * 2) / 3 + (4 * 11) / 12 + 4, 9);
      const untouched = rawPagemap(w.pid, w.start + BigInt(20 * pageSize()), w.end);
      expect(untouched.every((e) => (e & PRESENT) === 0n)).toBe(true);
    }

    // max_page_sharing caps the mappers of one KSM page: with 2, a class of
    // k keeps ceil(k / 2) copies.
    const capped = await estimate(workers.map((w) => w.pid), { useZeroPages: true, maxPageSharing: 2 });
    const vma = vmaOf(capped, workers[0]!.pid, workers[0]!.start, workers[0]!.end);
    expect(vma.predictedSavedPages).toBeCloseTo((8 * 1) / 3 + (4 * 6) / 12 + 4, 9);

    // One child alone: the seq pages have no twin left.
    const alone = await estimate(workers[0]!.pid, { useZeroPages: true });
    const solo = vmaOf(alone, workers[0]!.pid, workers[0]!.start, workers[0]!.end);
    expect(solo).toMatchObject({ duplicatePages: 4, twinInOtherProcess: 0 });
    expect(solo.predictedSavedPages).toBeCloseTo(3 + 4, 9);
  });

  it('confirms a class larger than one read batch (150 identical pages)', async (ctx) => {
    requireKsm(ctx);
    const seed = Math.floor(Math.random() * 1e9);
    const w = await worker([
      { kind: 'same', pages: 150, seed },
      { kind: 'seq', pages: 10, seed: seed + 1 },
    ]);
    const vma = vmaOf(await estimate(w.pid), w.pid, w.start, w.end);
    expect(vma).toMatchObject({ candidatePages: 160, duplicatePages: 150, twinInVma: 150 });
    expect(vma.predictedSavedPages).toBeCloseTo(149, 9);
    const capped = await estimate(w.pid, { maxPageSharing: 64 });
    expect(vmaOf(capped, w.pid, w.start, w.end).predictedSavedPages).toBeCloseTo(150 - 3, 9);
    // pages_shared / pages_sharing as KSM would report them for these pages:
    // 64 + 64 + 22 mappers on three KSM pages.
    expect(capped.predictedPagesShared).toBeGreaterThanOrEqual(3);
  });

  it('reports a VMA that is not mergeable yet as a candidate after enableMerge()', async (ctx) => {
    requireKsm(ctx);
    const w = await worker([{ kind: 'seq', pages: 4, seed: 1 }, { kind: 'same', pages: 4, seed: 2 }], false);
    const before = vmaOf(await estimate(w.pid), w.pid, w.start, w.end);
    expect(before).toMatchObject({ mergeable: false, candidateAfterEnableMerge: true, candidatePages: 8, duplicatePages: 4 });
    expect((await estimate(w.pid)).processes[0]!.candidatePagesAfterEnableMerge).toBeGreaterThanOrEqual(8);
    await w.send({ cmd: 'enableMerge' });
    const result = await estimate(w.pid);
    const after = vmaOf(result, w.pid, w.start, w.end);
    expect(after).toMatchObject({ mergeable: true, candidateAfterEnableMerge: false, candidatePages: 8 });
    expect(result.processes[0]!.mergeAny).toBe(true);
    expect(result.processes[0]!.candidatePagesAfterEnableMerge).toBe(0);
  });

  it('finds the pages a child rewrites between two samples (volatile)', async (ctx) => {
    requireKsm(ctx);
    const w = await worker([
      { kind: 'seq', pages: 16, seed: 9 },
      { kind: 'volatile', pages: 8, everyMs: 2 },
      { kind: 'untouched', pages: 8 },
    ]);
    const once = vmaOf(await estimate(w.pid), w.pid, w.start, w.end);
    expect(once).toMatchObject({ candidatePages: 24, volatilePages: 0 });
    const twice = await estimate(w.pid, { intervalMs: 300 });
    expect(twice.intervalMs).toBe(300);
    expect(vmaOf(twice, w.pid, w.start, w.end)).toMatchObject({ candidatePages: 24, volatilePages: 8, duplicatePages: 0 });
  });

  it('reports a process that exits mid-estimate as exited, and the others in full', async (ctx) => {
    requireKsm(ctx);
    const spec: Segment[] = [{ kind: 'seq', pages: 2048, seed: 3 }];
    const [doomed, survivor] = await Promise.all([worker(spec), worker(spec)]);
    let killed = false;
    const result = await estimate([doomed.pid, survivor.pid], {
      // Time enough for the killed child to be gone before the second sample, on a loaded machine too.
      intervalMs: 2000,
      onProgress: (p) => {
        // Between the two samples: the first read it, the second cannot.
        if (p.phase === 'sample' && p.done === p.total && !killed) {
          killed = true;
          doomed.child.kill('SIGKILL');
        }
      },
    });
    expect(killed).toBe(true);
    const gone = result.processes.find((p) => p.pid === doomed.pid)!;
    expect(gone.exited).toBe(true);
    expect(gone.candidatePages).toBe(0);
    const alive = vmaOf(result, survivor.pid, survivor.start, survivor.end);
    expect(alive).toMatchObject({ candidatePages: 2048, duplicatePages: 0 });
    expect(result.processes.find((p) => p.pid === survivor.pid)!.exited).toBe(false);
  });

  it('without root (PFNs hidden) counts the same layout the same way', async (ctx) => {
    requireKsm(ctx);
    const pkg = packageForNobody(ctx);
    // Not mergeable: ksmd, running for the other tests, would otherwise merge
    // the written zero pages into the zero page whenever use_zero_pages is on
    // (another run may switch it on), and the layout would not be this one.
    const spec = {
      mergeable: false,
      segments: [
        { kind: 'seq', pages: 4, seed: 1 },
        { kind: 'same', pages: 4, seed: 2 },
        { kind: 'zero', pages: 3 },
        { kind: 'read', pages: 5 },
        { kind: 'untouched', pages: 16 },
      ],
    };
    const child = fork(path.join(pkg.fixtures, 'estimate-worker.cjs'), [JSON.stringify(spec)], {
      ...pkg.as,
      env: pkg.env,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    try {
      const next = (): Promise<Record<string, unknown>> =>
        new Promise((resolve, reject) => {
          child.once('message', (m) => resolve(m as Record<string, unknown>));
          child.once('exit', (code) => reject(new Error(`child exited (${code})`)));
        });
      await next();
      const reply = next();
      child.send({ cmd: 'estimateSelf', options: { useZeroPages: true } });
      const { pfnVisible, vma, error, hash } = (await reply) as { pfnVisible: boolean; vma: EstimateVma; error?: string; hash: string[] };
      expect(error).toBeUndefined();
      expect(hash, 'the hash the child ran').toEqual([hashPath.expected]);
      expect(pfnVisible).toBe(false);
      expect(vma).toMatchObject({
        presentPages: 16,
        zeroPageMapped: 5,
        candidatePages: 11,
        zeroPages: 3,
        duplicatePages: 4,
        twinInVma: 4,
      });
      expect(vma.predictedSavedPages).toBeCloseTo(3 + 3, 9);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses a process it may not read, with an error that says how to fix it', async (ctx) => {
    requireKsm(ctx);
    const pkg = packageForNobody(ctx);
    // A process running as nobody may not read this (root) process's memory.
    const script = `
      const ksm = require(${JSON.stringify(pkg.dist)});
      ksm.estimate(${process.pid}).then(
        () => console.log(JSON.stringify({ ok: true })),
        (e) => console.log(JSON.stringify({ code: e.code, syscall: e.syscall, hint: e.hint, message: e.message })),
      );`;
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, ['-e', script], { ...pkg.as, env: pkg.env }, (error, stdout, stderr) => {
        if (error) reject(new Error(`${error.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
    const reply = JSON.parse(out.trim()) as { ok?: boolean; code?: string; hint?: string; message?: string };
    expect(reply.ok).toBeUndefined();
    expect(['EACCES', 'EPERM']).toContain(reply.code);
    expect(reply.hint).toMatch(/ptrace/);
    expect(reply.hint).toMatch(/CAP_SYS_PTRACE/);
  });
});

describe('estimate() without ptrace rights over the target', () => {
  it('turns process_vm_readv EPERM into an error with the fix', async (ctx) => {
    requireKsm(ctx);
    const pkg = packageForNobody(ctx);
    // Target: a process running as nobody. Caller: real uid root, effective
    // uid nobody. /proc/PID/smaps and pagemap check the effective (fs) uid and
    // let it in; process_vm_readv checks the real uid and, without
    // CAP_SYS_PTRACE in the effective set, refuses with EPERM.
    const spec = { mergeable: true, segments: [{ kind: 'seq', pages: 8, seed: 1 }] };
    const target = fork(path.join(pkg.fixtures, 'estimate-worker.cjs'), [JSON.stringify(spec)], {
      ...pkg.as,
      env: pkg.env,
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    try {
      await new Promise((resolve, reject) => {
        target.once('message', resolve);
        target.once('exit', (code) => reject(new Error(`target exited (${code})`)));
      });
      // The addon loads on first use, by then as euid 65534: from where that user can read it.
      const script = `
        const ksm = require(${JSON.stringify(pkg.dist)});
        process.setegid(${pkg.as.gid});
        process.seteuid(${pkg.as.uid});
        ksm.estimate(${target.pid!}).then(
          () => console.log(JSON.stringify({ ok: true })),
          (e) => console.log(JSON.stringify({ code: e.code, syscall: e.syscall, hint: e.hint, pid: e.pid })),
        );`;
      const out = await new Promise<string>((resolve, reject) => {
        // Under test:asan: LeakSanitizer cannot stop the threads of a process
        // that dropped its euid (not dumpable) and fails it at exit.
        const env = process.env.ASAN_OPTIONS === undefined ? process.env : { ...process.env, ASAN_OPTIONS: `${process.env.ASAN_OPTIONS}:detect_leaks=0` };
        execFile(process.execPath, ['-e', script], { cwd: '/', env }, (error, stdout, stderr) => {
          if (error) reject(new Error(`${error.message}\n${stderr}`));
          else resolve(stdout);
        });
      });
      const reply = JSON.parse(out.trim()) as Record<string, unknown>;
      expect(reply).toMatchObject({ code: 'EPERM', syscall: 'process_vm_readv', pid: target.pid });
      expect(reply.hint).toMatch(/CAP_SYS_PTRACE/);
    } finally {
      target.kill('SIGKILL');
    }
  });
});

describe('estimate() abort', () => {
  it('rejects at once with an aborted signal, and mid-way when aborted', async (ctx) => {
    requireKsm(ctx);
    const controller = new AbortController();
    controller.abort();
    await expect(estimate('self', { signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });

    const w = await worker([{ kind: 'seq', pages: 1024, seed: 4 }]);
    const mid = new AbortController();
    const started = performance.now();
    const pending = estimate(w.pid, { intervalMs: 60_000, signal: mid.signal });
    setTimeout(() => mid.abort(new Error('enough')), 100);
    const error = await pending.catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect((error as Error).cause).toMatchObject({ message: 'enough' });
    // It stopped inside the 60 s interval, not after it.
    expect(performance.now() - started).toBeLessThan(30_000);
  });

  it('an onProgress callback that throws stops the estimate with its error', async (ctx) => {
    requireKsm(ctx);
    const error = await estimate('self', {
      onProgress: () => {
        throw new Error('from progress');
      },
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ message: 'from progress' });
  });
});

/** Runs fn with NODE_KSM_PAGEMAP_SCAN set as given (undefined: unset), then restores it. */
async function withPagemapScan<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = process.env.NODE_KSM_PAGEMAP_SCAN;
  if (value === undefined) delete process.env.NODE_KSM_PAGEMAP_SCAN;
  else process.env.NODE_KSM_PAGEMAP_SCAN = value;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.NODE_KSM_PAGEMAP_SCAN;
    else process.env.NODE_KSM_PAGEMAP_SCAN = saved;
  }
}

/**
 * The addon's estimatePages over raw ranges, every one readable: it tells
 * what the public API does not, which pagemap path ran and how many entries
 * it read. The hash as estimate() would ask for it (NODE_KSM_HASH).
 */
function estimateRanges(pid: number, ranges: BigUint64Array, pagemapScan: boolean): Promise<NativeEstimateResult> {
  return nativeAddon().estimatePages([{ pid, ranges, readable: new Uint8Array(ranges.length / 2).fill(1) }], {
    intervalMs: 0,
    maxPageSharing: 256,
    expectedPages: 0,
    batchPages: 64,
    pagemapScan,
    hash: hashFor(),
  }).promise;
}

function nativeAddon(): NativeBinding {
  return nodeGypBuild(ROOT) as NativeBinding;
}

/**
 * Whether this kernel has the PAGEMAP_SCAN ioctl (Linux 6.7+, or a
 * backport), asked of the kernel itself by python3, not by version number:
 * with a NULL argument it fails EFAULT where it exists, ENOTTY where not.
 */
function kernelHasPagemapScan(): boolean {
  // PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg), a 96-byte struct.
  const probe =
    'import errno, fcntl, os\nfd = os.open("/proc/self/pagemap", os.O_RDONLY)\n' +
    'try:\n    fcntl.ioctl(fd, 0xC0606610, 0)\nexcept OSError as e:\n    print(errno.errorcode[e.errno])';
  const answer = execFileSync('python3', ['-c', probe], { encoding: 'utf8', env: unsanitizedEnv() }).trim();
  if (answer !== 'EFAULT' && answer !== 'ENOTTY') throw new Error(`PAGEMAP_SCAN probe: ${answer}`);
  return answer === 'EFAULT';
}

// A 64 GiB reservation is 16 Mi pagemap entries, ASan's shadow 4 Gi: read
// one by one, estimate() took minutes. PAGEMAP_SCAN visits only the runs of
// pages that are there; NODE_KSM_PAGEMAP_SCAN=0 forces the linear read that
// older kernels get, and both must count the same.
describe.for(hashPaths())('estimate() of a sparse 64 GiB mapping ($name)', (hashPath) => {
  useHashPath(hashPath);
  const SPARSE_MS = 120_000;

  it('counts the few MiB touched in it exactly, with PAGEMAP_SCAN and with the linear read', async (ctx) => {
    requireKsm(ctx);
    const sparse = await startSparse(ctx);
    holders.push(sparse);
    const { twins, zero, unique, read } = sparse.layout;
    const page = pageSize();
    // The kernel's own count of what is resident (the zero page is not in Rss).
    expect(rawSmapsRange(sparse.pid, sparse.start, sparse.end).rssBytes).toBe((twins + zero + unique) * page);

    const counts: Record<string, number>[] = [];
    const calls = vi.spyOn(nativeAddon(), 'estimatePages');
    for (const knob of [undefined, '0']) {
      const result = await withPagemapScan(knob, () => estimate(sparse.pid, { useZeroPages: true }));
      const vma = vmaOf(result, sparse.pid, sparse.start, sparse.end);
      expect(vma).toMatchObject({
        presentPages: twins + zero + unique + read,
        swappedPages: 0,
        filePages: 0,
        unreadablePages: 0,
        zeroPages: zero,
        volatilePages: 0,
        duplicatePages: twins,
        twinInVma: twins,
        twinInProcess: twins,
        twinInOtherProcess: 0,
      });
      if (result.pfnVisible) {
        // The read-only pages map the shared zero page: nothing to read.
        expect(vma).toMatchObject({ zeroPageMapped: read, candidatePages: twins + zero + unique });
        // twins keep one copy; zero pages all go with use_zero_pages.
        expect(vma.predictedSavedPages).toBeCloseTo(twins - 1 + zero, 9);
      }
      counts.push(Object.fromEntries(Object.entries(vma).filter(([key]) => key.endsWith('Pages') || key.startsWith('twin'))) as Record<string, number>);
    }
    expect(counts[1]).toEqual(counts[0]);
    // The knob reached the addon: the scan, then the linear read.
    expect(calls.mock.calls.map(([, options]) => options.pagemapScan)).toEqual([true, false]);
    calls.mockRestore();
  }, SPARSE_MS);

  it('reads pagemap entries only for the pages that are there, and the same figures as reading all of them', async (ctx) => {
    requireKsm(ctx);
    const sparse = await startSparse(ctx);
    holders.push(sparse);
    const { twins, zero, unique, read } = sparse.layout;
    const present = twins + zero + unique + read;
    const pages = Number((sparse.end - sparse.start) / BigInt(pageSize()));
    const ranges = BigUint64Array.of(sparse.start, sparse.end);
    const linear = await estimateRanges(sparse.pid, ranges, false);
    expect(linear).toMatchObject({ pagemapScan: false, pagemapScans: 0, pagemapEntries: pages });
    const scanned = await estimateRanges(sparse.pid, ranges, true);
    expect(scanned.pagemapScan).toBe(kernelHasPagemapScan());
    if (scanned.pagemapScan) {
      // Runs of present pages only, a few ioctls for 16 Mi pages: the range
      // is read in at most 16 pieces per thread, each one ioctl or a few.
      expect(scanned.pagemapEntries).toBe(present);
      expect(scanned.pagemapScans).toBeGreaterThan(0);
      expect(scanned.pagemapScans).toBeLessThan(16 * scanned.threads + 10);
    }
    expect(scanned.targets[0]!.exited).toBe(false);
    expect(Array.from(scanned.targets[0]!.stats)).toEqual(Array.from(linear.targets[0]!.stats));

    const starts = BigUint64Array.of(sparse.start);
    const ends = BigUint64Array.of(sparse.end);
    const exactLinear = await nativeAddon().pageAttribution(sparse.pid, starts, ends, false);
    const exactScanned = await nativeAddon().pageAttribution(sparse.pid, starts, ends, true);
    expect(exactLinear.pagemapScan).toBe(false);
    expect(exactScanned.pagemapScan).toBe(kernelHasPagemapScan());
    expect(exactScanned).toMatchObject({ presentPages: [present], ksmPages: [0], pfnHidden: exactLinear.pfnHidden });
    expect(exactScanned.zeroPages).toEqual(exactLinear.zeroPages);
    expect(exactLinear.presentPages).toEqual([present]);
    if (!exactScanned.pfnHidden) expect(exactScanned.zeroPages).toEqual([read]);
  }, SPARSE_MS);

  it('reports a process without an mm (a zombie) as exited on both paths', async (ctx) => {
    requireKsm(ctx);
    // The parent never waits: its child stays a zombie, /proc/PID/pagemap
    // opens but has no mm behind it.
    const parent = spawn('python3', ['-c', 'import os, sys\npid = os.fork()\nif pid == 0: os._exit(0)\nprint(pid, flush=True)\nsys.stdin.read()'], {
      stdio: ['pipe', 'pipe', 'inherit'],
      env: unsanitizedEnv(),
    });
    try {
      const zombie = Number(await firstLine(parent, 'the python3 parent'));
      const stateOf = () => /\) (\S)/.exec(fs.readFileSync(`/proc/${zombie}/stat`, 'utf8'))?.[1];
      while (stateOf() !== 'Z') await new Promise((resolve) => setTimeout(resolve, 10));
      const page = BigInt(pageSize());
      const ranges = BigUint64Array.of(0x10000n * page, 0x10010n * page);
      for (const pagemapScan of [true, false]) {
        const result = await estimateRanges(zombie, ranges, pagemapScan);
        expect(result.targets[0]!.exited).toBe(true);
        expect(result.pagemapScans).toBe(0);
        // 6.18 refuses to open it (ESRCH); older kernels open it, and it reads empty.
        const exact = await nativeAddon().pageAttribution(zombie, ranges.subarray(0, 1), ranges.subarray(1, 2), pagemapScan).then(
          (r) => r.presentPages,
          (error: NodeJS.ErrnoException) => error.code,
        );
        expect([JSON.stringify([0]), JSON.stringify('ESRCH')]).toContain(JSON.stringify(exact));
      }
    } finally {
      parent.kill('SIGKILL');
    }
  });
});
