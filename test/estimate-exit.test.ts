/**
 * A target that exits while twins are being confirmed must not count in the
 * other targets' figures: every class of identical pages is counted over the
 * targets that were still there at the end, as if the one that left had never
 * been asked for. The binding's confirmPauseMs (a test hook) holds the
 * confirm phase after its first wave so that the exit falls inside it.
 */
import { describe, expect, it, afterEach } from 'vitest';

import nodeGypBuild from 'node-gyp-build';

import { PAGE_STAT, PAGE_STAT_COUNT, type NativeBinding, type NativeEstimateResult } from '../lib/binding.js';
import { ROOT, requireKsm, startFixture, type Holder } from './helpers/ksm.js';

const native = nodeGypBuild(ROOT) as NativeBinding;

let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

const PAGES = 600;

async function worker(seed: number): Promise<Holder & { start: bigint; end: bigint }> {
  // Not mergeable: ksmd, running for other tests, leaves the pages as they are.
  const holder = await startFixture('estimate-worker.cjs', [JSON.stringify({ mergeable: false, segments: [{ kind: 'seq', pages: PAGES, seed }] })]);
  holders.push(holder);
  return Object.assign(holder, { start: holder.ready.start as bigint, end: holder.ready.end as bigint });
}

function run(
  targets: Array<{ pid: number; start: bigint; end: bigint }>,
  options: { threads: number; confirmPauseMs?: number },
  onProgress?: (phase: string, done: number, total: number) => void,
): Promise<NativeEstimateResult> {
  const handle = native.estimatePages(
    targets.map((t) => ({ pid: t.pid, ranges: BigUint64Array.of(t.start, t.end), readable: Uint8Array.of(1) })),
    { intervalMs: 0, maxPageSharing: 256, expectedPages: PAGES * targets.length, batchPages: 64, ...options },
    onProgress,
  );
  return handle.promise;
}

describe.for([1, 2])('estimatePages() with a target that exits during the confirm phase (%i threads)', (threads) => {
  it('counts the others as if it had never been a target', async (ctx) => {
    requireKsm(ctx);
    const seed = Math.floor(Math.random() * 1e9);
    const [doomed, first, second] = await Promise.all([worker(seed), worker(seed), worker(seed)]);
    let killed: Promise<void> | undefined;
    const result = await run([doomed, first, second], { threads, confirmPauseMs: 500 }, (phase) => {
      if (phase === 'confirm' && killed === undefined) killed = doomed.kill();
    });
    expect(killed).toBeDefined();
    await killed;
    expect(result.targets.map((t) => t.exited)).toEqual([true, false, false]);
    expect(Array.from(result.targets[0]!.stats).every((v) => v === 0)).toBe(true);

    // The two that stayed, estimated alone: every page has one twin.
    const alone = await run([first, second], { threads });
    expect(alone.targets.map((t) => t.exited)).toEqual([false, false]);
    for (const [i, target] of alone.targets.entries()) {
      expect(target.stats[PAGE_STAT.candidatePages]).toBe(PAGES);
      expect(target.stats[PAGE_STAT.twinInOtherProcess]).toBe(PAGES);
      expect(target.stats[PAGE_STAT.savedPages]).toBeCloseTo(PAGES / 2, 9);
      expect(Array.from(result.targets[i + 1]!.stats)).toEqual(Array.from(target.stats));
      expect(target.stats.length).toBe(PAGE_STAT_COUNT);
    }
    expect({ classes: result.classes, keptPages: result.keptPages, sharingPages: result.sharingPages }).toEqual({
      classes: PAGES,
      keptPages: PAGES,
      sharingPages: PAGES,
    });
  });
});
