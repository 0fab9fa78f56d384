/**
 * regions() and profit() of one process start reading its smaps (and
 * ksm_stat, smaps_rollup) under the pid given before its status is read
 * (lib/kernel/target.ts resolveTargetEarly()), and start again for the
 * resolved target where that is not what was read: a thread's id (reported
 * as its process), a kernel thread (no memory, no smaps_rollup).
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { profit, regions, type RegionsResult } from '../lib/index.js';
import { bindingState } from '../lib/binding.js';
import { resolveTarget, resolveTargetEarly, startedAsResolved } from '../lib/kernel/target.js';
import { startFixture, type Holder } from './helpers/ksm.js';

/** A kernel thread of this machine (Kthread: 1 in its status), read independently of the code under test. */
function aKernelThread(): number | undefined {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (/^Kthread:\s*1$/m.test(fs.readFileSync(`/proc/${name}/status`, 'utf8'))) return Number(name);
    } catch {
      // gone meanwhile
    }
  }
  return undefined;
}

/** The labelled regions, their starts, kinds and labels (a malloc arena's end moves as its worker allocates). */
const labelled = (result: RegionsResult): Array<[bigint, string, string]> =>
  result.regions.filter((r) => r.label !== undefined).map((r) => [r.start, r.kind, r.label!]);

/** The kind of the region holding `address` (the fixture's reply, hex). */
const kindAt = (result: RegionsResult, address: unknown): string | undefined =>
  result.regions.find((r) => r.start <= BigInt(address as string) && BigInt(address as string) < r.end)?.kind;

describe('resolveTargetEarly()', () => {
  it("checks as resolveTarget() does, and names the given pid's own directory until resolved", () => {
    expect(() => resolveTargetEarly(-1, undefined)).toThrow(RangeError);
    expect(() => resolveTargetEarly('1' as unknown as number, undefined)).toThrow(TypeError);
    expect(() => resolveTargetEarly(1, { root: '/nonexistent-node-ksm-root' })).toThrow(/ENOENT/);
    const self = resolveTargetEarly(undefined, undefined);
    expect(self.early).toBe(self.resolve());
    expect(self.early).toEqual(resolveTarget(undefined, undefined));
    const own = resolveTargetEarly(process.pid, undefined);
    expect(own.early).toMatchObject({ pid: process.pid, dir: process.pid, root: '/', self: true, thread: undefined });
    const resolved = own.resolve();
    expect(resolved).toEqual(resolveTarget(process.pid, undefined));
    expect(startedAsResolved(own.early, resolved)).toBe(true);
  });
});

describe.runIf(process.platform === 'linux' && bindingState().loaded)('regions() and profit() read before the target is resolved', () => {
  let child: Holder & { ready: Record<string, unknown> };
  let thread: number;
  beforeAll(async () => {
    // Labels published, a worker thread, a big Buffer malloc maps on its own, a WebAssembly memory.
    child = await startFixture('node-memory.cjs', [], {}, { sanitized: false });
    thread = Number(fs.readdirSync(`/proc/${child.pid}/task`).find((tid) => Number(tid) !== child.pid));
  });
  afterAll(async () => {
    await child?.kill();
  });

  it("a thread's id: its process's regions, labels and kinds, reported under the process's pid", async () => {
    expect(thread).toBeGreaterThan(0);
    const early = resolveTargetEarly(thread, undefined);
    expect(startedAsResolved(early.early, early.resolve())).toBe(false);
    const [byThread, byProcess] = [await regions(thread), await regions(child.pid)];
    expect(byThread.pid).toBe(child.pid);
    expect(labelled(byThread)).toEqual(labelled(byProcess));
    // Its labels (published by the process) and the kinds its memory's reads tell (a malloc header read through the thread's id).
    expect(labelled(byThread).map(([, , label]) => label).join(', ')).toContain('big buffer');
    const ready = child.ready as { big: { labelled: string }; wasm: { address: string } };
    expect(kindAt(byThread, ready.big.labelled)).toBe('malloc-chunk');
    expect(kindAt(byThread, ready.wasm.address)).toBe('wasm-memory');
    expect(byThread.regions.some((r) => r.kind === 'thread-stack')).toBe(true);
    const [profitByThread, profitByProcess] = [await profit(thread), await profit(child.pid)];
    expect(profitByThread.pid).toBe(child.pid);
    expect(profitByThread.regions.map((r) => [r.start, r.kind, r.label])).toEqual(profitByProcess.regions.map((r) => [r.start, r.kind, r.label]));
  });

  it('a kernel thread: no regions, and profit() with rollup reads no smaps_rollup it has not got', async () => {
    const kthread = aKernelThread();
    expect(kthread, 'a kernel thread in /proc').toBeDefined();
    const early = resolveTargetEarly(kthread, undefined);
    expect(startedAsResolved(early.early, early.resolve())).toBe(false);
    expect(await regions(kthread)).toMatchObject({ pid: kthread, regions: [] });
    // The early smaps_rollup read fails (ESRCH: no mm); the call starts again as a kernel thread's.
    const report = await profit(kthread, { rollup: true, exact: false });
    expect(report.pid).toBe(kthread);
    expect(report.regions).toEqual([]);
  });
});
