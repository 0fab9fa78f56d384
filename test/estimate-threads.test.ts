/**
 * estimate() on several threads: the same figures as on one, to the last
 * fraction of a page, on a layout large enough that every phase is split
 * (several sample chunks per target, several sort buckets and confirm
 * chunks, classes larger than a confirm wave); the hashing started on the
 * plan maps allows while smaps is read, kept or made again; and the threads
 * option checked.
 */
import { spawn } from 'node:child_process';
import * as path from 'node:path';

import { afterEach, describe, expect, it } from 'vitest';

import nodeGypBuild from 'node-gyp-build';

import { PAGE_STAT, PAGE_STAT_COUNT, PAGE_STAT_FIELDS, type NativeBinding, type NativeEstimateResult } from '../lib/binding.js';
import { estimate, type EstimateResult, type EstimateVma } from '../lib/index.js';
import { defaultEstimateThreads } from '../lib/report/estimate.js';
import { FIXTURES, ROOT, firstLine, rawVmaAt, requireKsm, startFixture, unsanitizedEnv, type Holder } from './helpers/ksm.js';

const native = nodeGypBuild(ROOT) as NativeBinding;

let holders: Array<Pick<Holder, 'kill'>> = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

type Worker = Holder & { start: bigint; end: bigint };

async function worker(segments: Array<Record<string, unknown>>): Promise<Worker> {
  // A plain node even in the sanitized run (the estimator under test is the
  // test's own, sanitized): a sanitized child's memory keeps changing between
  // the estimates that are compared.
  const holder = await startFixture('estimate-worker.cjs', [JSON.stringify({ mergeable: true, segments })], {}, { sanitized: false });
  holders.push(holder);
  return Object.assign(holder, { start: holder.ready.start as bigint, end: holder.ready.end as bigint });
}

/** Three children: shared seq pages, a pair-only seq, large same-page classes, unique and zero pages. */
async function layout(): Promise<Worker[]> {
  const seed = Math.floor(Math.random() * 1e9);
  const common = [
    { kind: 'seq', pages: 9000, seed },
    { kind: 'same', pages: 200, seed: seed + 1 },
    { kind: 'unique', pages: 1500 },
    { kind: 'zero', pages: 300 },
  ];
  return Promise.all([
    worker([...common, { kind: 'seq', pages: 700, seed: seed + 2 }]),
    worker([...common, { kind: 'seq', pages: 700, seed: seed + 2 }]),
    worker([...common, { kind: 'seq', pages: 700, seed: seed + 3 }]),
  ]);
}

function runNative(workers: Worker[], threads: number): Promise<NativeEstimateResult> {
  return native.estimatePages(
    workers.map((w) => ({ pid: w.pid, ranges: BigUint64Array.of(w.start, w.end), readable: Uint8Array.of(1) })),
    { intervalMs: 0, maxPageSharing: 256, expectedPages: 0, batchPages: 64, threads },
  ).promise;
}

/** Everything but how it ran (threads, time, memory). */
function figures(result: NativeEstimateResult): unknown {
  const { timings: _t, threads: _n, memoryBytes: _m, ...rest } = result as NativeEstimateResult & { memoryBytes?: number };
  return { ...rest, targets: result.targets.map((t) => ({ pid: t.pid, exited: t.exited, stats: Array.from(t.stats) })) };
}

type Range = { start: bigint; end: bigint };

/**
 * A python fixture (no runtime of its own that maps memory meanwhile),
 * unsanitized, killed after the test: its pid and its first line, parsed.
 */
async function startPython<T>(fixture: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ pid: number; ready: T }> {
  const child = spawn('python3', [path.join(FIXTURES, fixture), ...args], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...unsanitizedEnv(), ...env } });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  holders.push({
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  });
  return { pid: child.pid!, ready: JSON.parse(await firstLine(child, fixture)) as T };
}

/** droppable-twin.py: two mappings of the same 8 pages. */
async function startTwins(args: string[]): Promise<{ pid: number; a: Range; b: Range }> {
  const { pid, ready } = await startPython<Record<'a' | 'b', { start: number; end: number }>>('droppable-twin.py', args, { TWIN_SEED: String(Math.floor(Math.random() * 1e9)) });
  const range = (r: { start: number; end: number }): Range => ({ start: BigInt(r.start), end: BigInt(r.end) });
  return { pid, a: range(ready.a), b: range(ready.b) };
}

function rangeOf(result: EstimateResult, pid: number, range: Range): EstimateVma {
  const vma = result.processes.find((p) => p.pid === pid)?.vmas.find((v) => v.start === range.start && v.end === range.end);
  expect(vma).toBeDefined();
  return vma!;
}

function vmaOf(result: EstimateResult, w: Worker): EstimateVma {
  const vma = result.processes.find((p) => p.pid === w.pid)?.vmas.find((v) => v.start === w.start && v.end === w.end);
  expect(vma).toBeDefined();
  return vma!;
}

describe('estimate() on several threads', () => {
  it('gives the one-thread figures exactly, phase split or not', async (ctx) => {
    requireKsm(ctx);
    const workers = await layout();
    const one = await runNative(workers, 1);
    expect(one.threads).toBe(1);
    expect(one.targets.every((t) => !t.exited)).toBe(true);
    // The layout is what the test means: classes bigger than a wave, many pairs and triples.
    expect(one.classes).toBeGreaterThan(9000);
    for (const threads of [2, 3, 8]) {
      const many = await runNative(workers, threads);
      expect(many.threads).toBe(threads);
      expect(figures(many)).toEqual(figures(one));
    }

    // Through the public API: the option, the figures of each child's buffer.
    const serial = await estimate(workers.map((w) => w.pid), { threads: 1, useZeroPages: true, maxPageSharing: 256 });
    const parallel = await estimate(workers.map((w) => w.pid), { threads: 2, useZeroPages: true, maxPageSharing: 256 });
    expect([serial.threads, parallel.threads]).toEqual([1, 2]);
    for (const w of workers) expect(vmaOf(parallel, w)).toEqual(vmaOf(serial, w));
    // seq 3 copies (2/3 each), same 600 copies keep ceil(600 / 256) = 3 (597/600 each), zero 1 each, pair seq 1/2 (two of three).
    const first = vmaOf(parallel, workers[0]!);
    expect(first.predictedSavedPages).toBeCloseTo((9000 * 2) / 3 + (200 * 597) / 600 + 300 + 700 / 2, 6);
  });

  it('reads one large range on every thread: cut into pieces or given as many ranges, the same pages counted once', async (ctx) => {
    requireKsm(ctx);
    // 40,000 pages (156 MiB): more than two 64 MiB pagemap work items, so the
    // one range is cut into pieces read on different threads and joined.
    const seed = Math.floor(Math.random() * 1e9);
    const w = await worker([
      { kind: 'seq', pages: 20000, seed },
      { kind: 'same', pages: 5000, seed: seed + 1 },
      { kind: 'unique', pages: 10000 },
      { kind: 'zero', pages: 5000 },
    ]);
    const page = BigInt(native.pageSize());
    const one = (threads: number, ranges: BigUint64Array) => native.estimatePages(
      [{ pid: w.pid, ranges, readable: new Uint8Array(ranges.length / 2).fill(1) }],
      { intervalMs: 0, maxPageSharing: 256, expectedPages: 0, batchPages: 64, threads },
    ).promise;
    const whole = BigUint64Array.of(w.start, w.end);
    // The same pages as eleven ranges of uneven lengths: small ones share a work item.
    const cuts = [0n, 1n, 7n, 300n, 301n, 9000n, 16384n, 16385n, 25000n, 32768n, 39999n, 40000n];
    const several = BigUint64Array.from(cuts.slice(0, -1).flatMap((c, i) => [w.start + c * page, w.start + cuts[i + 1]! * page]));
    const serial = await one(1, whole);
    const stats = (r: NativeEstimateResult, range: number): number[] =>
      Array.from(r.targets[0]!.stats.subarray(range * PAGE_STAT_COUNT, (range + 1) * PAGE_STAT_COUNT));
    const total = stats(serial, 0);
    // Read back independently of how the pages were cut: the layout itself.
    expect(total[PAGE_STAT.presentPages]).toBe(40000);
    expect(total[PAGE_STAT.candidatePages]).toBe(40000);
    expect(total[PAGE_STAT.zeroPages]).toBe(5000);
    expect(total[PAGE_STAT.duplicatePages]).toBe(5000);
    for (const threads of [2, 3, 8]) {
      const parallel = await one(threads, whole);
      expect(parallel.threads).toBe(threads);
      expect(figures(parallel)).toEqual(figures(serial));
      const cut = await one(threads, several);
      const summed = new Array<number>(PAGE_STAT_COUNT).fill(0);
      for (let r = 0; r < cuts.length - 1; r++) stats(cut, r).forEach((x, f) => (summed[f]! += x));
      // Pages per range as cut: every range's present pages are its length.
      for (let r = 0; r < cuts.length - 1; r++) expect(stats(cut, r)[PAGE_STAT.presentPages]).toBe(Number(cuts[r + 1]! - cuts[r]!));
      for (const field of PAGE_STAT_FIELDS) {
        if (field === 'savedPages' || field === 'twinInVma') continue; // per range by definition
        expect([field, summed[PAGE_STAT[field]]]).toEqual([field, total[PAGE_STAT[field]]]);
      }
      expect(summed[PAGE_STAT.savedPages]).toBeCloseTo(total[PAGE_STAT.savedPages]!, 6);
    }
  });

  it('starts on the plan maps allows: kept when smaps plans the same, the same figures as one thread', async (ctx) => {
    requireKsm(ctx);
    const twins = await startTwins([]);
    const serial = await estimate(twins.pid, { threads: 1, useZeroPages: true });
    const parallel = await estimate(twins.pid, { threads: 2, useZeroPages: true });
    expect([serial.plannedFrom, parallel.plannedFrom]).toEqual(['smaps', 'maps']);
    for (const range of [twins.a, twins.b]) {
      const vma = rangeOf(parallel, twins.pid, range);
      expect(vma).toEqual(rangeOf(serial, twins.pid, range));
      // Each of a's 8 pages has its twin in b: a pair saves one page, half of it each.
      expect(vma).toMatchObject({ status: 'scanned', candidatePages: 8, duplicatePages: 8, twinInProcess: 8, predictedSavedPages: 4 });
    }
    // onlyMergeable needs VmFlags, which maps does not have: smaps first.
    expect((await estimate(twins.pid, { threads: 2, onlyMergeable: true })).plannedFrom).toBe('smaps');
  });

  it('reads again by smaps\' plan when maps could not tell: a droppable mapping, which KSM refuses', async (ctx) => {
    requireKsm(ctx);
    const twins = await startTwins(['droppable']);
    // What the kernel says of b, read here: VM_DROPPABLE, a flag maps does not print.
    expect(rawVmaAt(twins.b.start, twins.pid)?.flags).toContain('dp');
    const serial = await estimate(twins.pid, { threads: 1, useZeroPages: true });
    const parallel = await estimate(twins.pid, { threads: 2, useZeroPages: true });
    expect([serial.plannedFrom, parallel.plannedFrom]).toEqual(['smaps', 'restarted']);
    const b = rangeOf(parallel, twins.pid, twins.b);
    expect(b).toMatchObject({ status: 'incompatible', candidatePages: 0 });
    expect(b.reason).toMatch(/droppable/);
    // b's pages were not counted as a's twins: read by the plan maps allowed, they would have been.
    const a = rangeOf(parallel, twins.pid, twins.a);
    expect(a).toMatchObject({ status: 'scanned', candidatePages: 8, duplicatePages: 0, predictedSavedPages: 0 });
    expect(a).toEqual(rangeOf(serial, twins.pid, twins.a));
  });

  it('reads smaps first for a target whose maps changes between two reads of it', async (ctx) => {
    requireKsm(ctx);
    const { pid, ready } = await startPython<{ start: number }>('moving-mapping.py');
    const planned: string[] = [];
    for (let i = 0; i < 5; i++) {
      const result = await estimate(pid, { threads: 2 });
      planned.push(result.plannedFrom);
      // The moving VMAs are reported as smaps printed them: read-write first, the reservation after.
      expect(result.processes[0]!.vmas.some((v) => v.start === BigInt(ready.start))).toBe(true);
    }
    // It moves a page every few microseconds: two reads of its maps see it
    // moved (were it stopped for one whole estimate, 'maps' or 'restarted').
    expect(planned).toContain('smaps');
  });

  it('threads: an integer from 1 to 256, TypeError / RangeError otherwise; the default leaves a core on big machines', async () => {
    await expect(estimate('self', { threads: 0 })).rejects.toThrow(RangeError);
    await expect(estimate('self', { threads: 257 })).rejects.toThrow(RangeError);
    await expect(estimate('self', { threads: 1.5 })).rejects.toThrow(RangeError);
    await expect(estimate('self', { threads: '2' as unknown as number })).rejects.toThrow(TypeError);
    const threads = defaultEstimateThreads();
    expect(threads).toBeGreaterThanOrEqual(1);
    expect(threads).toBeLessThanOrEqual(256);
  });
});
