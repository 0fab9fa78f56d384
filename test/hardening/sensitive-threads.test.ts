/**
 * markSensitive() holds for the whole process: a mark made in any thread
 * survives enableMerge() in any other, and a transfer of the buffer, and the
 * collection of the detached original; doctor in any thread sees it. Each
 * scenario runs in real worker_threads in a process of its own, read back raw
 * from /proc/self/smaps.
 */
import { describe, expect, it } from 'vitest';

import { requireKsm } from '../helpers/ksm.js';
import { mergeAnyEnv, runFixture } from './helpers.js';

interface Range {
  start: string;
  end: string;
  label?: string;
}
interface SideChannel {
  severity: string;
  message: string;
}

async function scenario(name: string, env: NodeJS.ProcessEnv = mergeAnyEnv()): Promise<Record<string, unknown>> {
  const run = await runFixture('sensitive-threads.cjs', [name], ['--expose-gc'], env);
  expect({ code: run.code, stderr: run.stderr, ok: run.result?.ok }).toEqual({ code: 0, stderr: '', ok: true });
  return run.result!;
}

/** Every VMA over the range read back, and none of them mg. */
function noneMergeable(flags: unknown): void {
  expect(Array.isArray(flags) && flags.length > 0).toBe(true);
  expect(flags).toEqual((flags as boolean[]).map(() => false));
}

describe('markSensitive across threads', () => {
  it('a secret marked in a worker stays unmergeable when the main thread enables merging, and the main thread\'s doctor reports it', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('worker-marks');
    const marked = r.marked as Range;
    expect(r.mgBefore).toEqual([false]);
    noneMergeable(r.mgAfterEnable);
    expect(r.listed).toContainEqual({ start: marked.start, end: marked.end, label: 'worker-key' });
    // Declared and merging on, nothing exposed: a warning, no error.
    expect((r.doctorQuiet as SideChannel[]).map((f) => f.severity)).toEqual(['warn']);
    // Re-marked mergeable behind the package's back, in the worker: the main thread's doctor names it.
    const exposed = r.doctorExposed as SideChannel[];
    expect(exposed.map((f) => f.severity)).toEqual(['error']);
    expect(exposed[0]!.message).toContain('"worker-key"');
    expect(r.intact).toBe(true);
  });

  it('a secret marked in the main thread stays unmergeable when a worker enables merging', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('worker-enables');
    expect(r.enabled).toBe(true);
    noneMergeable(r.mgAfterWorkerEnable);
    expect(r.intact).toBe(true);
  });
});

describe('markSensitive across transfers', () => {
  it('the mark follows the memory: transferred, the original collected, enableMerge() leaves it unmergeable and doctor still lists it', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('transfer');
    const marked = r.marked as Range;
    // The premise: a transfer moves the memory, not the bytes.
    expect({ sameMemory: r.sameMemory, detached: r.detached }).toEqual({ sameMemory: true, detached: true });
    expect(r.listedAfterCollect).toContainEqual({ start: marked.start, end: marked.end, label: 'moved' });
    noneMergeable(r.mgAfterEnable);
    expect((r.doctorQuiet as SideChannel[]).map((f) => f.severity)).toEqual(['warn']);
    const exposed = r.doctorExposed as SideChannel[];
    expect(exposed.map((f) => f.severity)).toEqual(['error']);
    expect(exposed[0]!.message).toContain('"moved"');
    expect(r.intact).toBe(true);
  });

  it('transferred to a worker that enables merging, the secret stays unmergeable there, and after the worker is gone', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('transfer-to-worker');
    const marked = r.marked as Range;
    expect(r.received).toBe(r.sent);
    expect(r.listedInWorker).toContainEqual({ start: marked.start, end: marked.end, label: 'sent' });
    noneMergeable(r.mgInWorker);
    // The worker freed the buffer, but the heap pages stay mapped: the mark
    // stays on them (savings lost, never a secret).
    noneMergeable(r.mgAfterWorkerExit);
    expect(r.intact).toBe(true);
  });
});

describe('the record of sensitive ranges', () => {
  it('one thread marks 200 secrets while another switches merge-any on and off 20 times: none ends up mg', async (ctx) => {
    requireKsm(ctx);
    const r = await scenario('race');
    expect(r).toMatchObject({ enabled: true, marks: 200, mergeable: 0, intact: true });
  });

  it('stays small: overlapping marks become one range, marks on memory that was unmapped go', async (ctx) => {
    requireKsm(ctx);
    // No merge-any here: under test:asan this runs the sanitized addon.
    const r = await scenario('bounded', process.env);
    // 130 marks over one 64-page buffer: one range.
    expect(r.bigMarks).toBe(1);
    expect(r.listedBefore as number).toBeGreaterThanOrEqual(52);
    // 50 allocMergeable() mappings and a 1 MiB malloc chunk were unmapped: their marks went.
    expect(r.listedAfter as number).toBeLessThan(5);
    expect(r.unmappedListed).toBe(0);
    expect(r.chunkGone).not.toBe(false);
    // A fresh allocMergeable() mapping where a marked one was holds no mark and merges.
    expect({ listed: r.againListed, mergeable: r.againMergeable }).toEqual({ listed: 0, mergeable: true });
    expect(r.bigStillMarked).toBe(true);
  });
});
