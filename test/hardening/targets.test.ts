/**
 * Every id the API takes names a process: a thread id is resolved to its
 * process (the kernel answers /proc/TID for the whole process under the
 * thread's id) and counted once; kernel threads exist but have no memory;
 * a fixture root without proc/ is an error about the root, not about a pid;
 * views from another realm (a `vm` context) are views like any other.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';

import { doctor, estimate, ksmStat, markMergeable, profit, regions, unmarkMergeable } from '../../lib/index.js';
import { runCli } from '../helpers/cli.js';
import { PAGE, rawVmas, requireKsm, startFixture, type Holder } from '../helpers/ksm.js';

let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

/** A thread of `pid` that is not its main thread, from /proc/PID/task read raw. */
function otherThread(pid: number): number {
  const tids = fs.readdirSync(`/proc/${pid}/task`).map(Number).filter((tid) => tid !== pid);
  expect(tids.length, `process ${pid} has threads besides its main one`).toBeGreaterThan(0);
  return tids[0]!;
}

describe('thread ids are resolved to their process', () => {
  it('estimate([pid, tid]) counts the process once', async (ctx) => {
    requireKsm(ctx);
    // 16 MiB of pages that differ from each other: nothing to merge within the process.
    const holder = await startFixture('holder.cjs', [JSON.stringify({ mode: 'alloc', size: 16 << 20, seed: 3 })]);
    holders.push(holder);
    const tid = otherThread(holder.pid);
    const alone = await estimate(holder.pid);
    const twice = await estimate([holder.pid, tid]);
    expect(twice.processes.map((p) => p.pid)).toEqual([holder.pid]);
    // The buffer's figures are the same both times; the rest of the process
    // (node's own heap) may change between the two estimates. The buffer's
    // VMA may have grown into a neighbour with the same flags.
    const buffer = (result: typeof alone): unknown => {
      const vma = result.processes[0]!.vmas.find((v) => v.start <= (holder.ready.start as bigint) && (holder.ready.start as bigint) < v.end);
      return vma && { candidatePages: vma.candidatePages, duplicatePages: vma.duplicatePages, predictedSavedPages: vma.predictedSavedPages };
    };
    const once = buffer(alone) as { candidatePages: number; duplicatePages: number };
    expect(once.candidatePages).toBeGreaterThanOrEqual((16 << 20) / PAGE);
    expect(once.duplicatePages).toBe(0);
    expect(buffer(twice)).toEqual(once);
    // Counted twice, the 4096 distinct pages would each have found a twin
    // (the rest of the process may differ a little between the two estimates).
    expect(twice.predictedSavedPages - alone.predictedSavedPages).toBeLessThan((16 << 20) / PAGE / 8);
  });

  it('profit(tid), regions(tid) and ksmStat(tid) report the process', async (ctx) => {
    requireKsm(ctx);
    const holder = await startFixture('holder.cjs', [JSON.stringify({ mode: 'alloc', size: 1 << 20, seed: 5 })]);
    holders.push(holder);
    const tid = otherThread(holder.pid);
    expect((await profit(tid)).pid).toBe(holder.pid);
    expect((await regions(tid)).pid).toBe(holder.pid);
    expect(ksmStat(tid).pid).toBe(holder.pid);
    const result = await runCli(['regions', String(tid), '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as { pid: number }).pid).toBe(holder.pid);
  });
});

describe('kernel threads', () => {
  it('profit(2) and regions(2) of kthreadd: no memory, no error (ksmStat(2) agrees)', async (ctx) => {
    requireKsm(ctx);
    expect(fs.readFileSync('/proc/2/comm', 'utf8').trim()).toBe('kthreadd');
    const report = await profit(2);
    expect(report).toMatchObject({ pid: 2, regions: [], total: { mergedBytes: 0, savedBytes: 0 } });
    expect((await regions(2)).regions).toEqual([]);
    expect(ksmStat(2).pid).toBe(2);
    const result = await runCli(['regions', '2', '--json']);
    expect(result.code, result.stderr).toBe(0);
  });
});

describe('a fixture root without proc/', () => {
  it('doctor, profit and the CLI say what is wrong with the root, not "no such process"', async () => {
    const root = path.join(os.tmpdir(), `node-ksm-no-root-${process.pid}`);
    for (const call of [() => doctor({ root }), () => profit(undefined, { root }), () => regions(undefined, { root })]) {
      await expect(call()).rejects.toMatchObject({ code: 'ENOENT', syscall: 'stat', path: path.join(root, 'proc') });
    }
    const result = await runCli(['--root', root, 'doctor']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`${root}/proc`);
    expect(result.stderr).not.toMatch(/no such process/);
  });
});

describe('views from another realm', () => {
  it('a vm context Uint8Array is marked and unmarked like any other', (ctx) => {
    requireKsm(ctx);
    const view = vm.runInNewContext('new Uint8Array(64 * 4096)') as Uint8Array;
    view.fill(7);
    const range = markMergeable(view);
    expect(range.length).toBeGreaterThan(0);
    const vma = rawVmas().find((v) => v.start <= range.address && v.end >= range.address + BigInt(range.length));
    expect(vma?.flags).toContain('mg');
    expect(unmarkMergeable(view).length).toBe(range.length);
  });
});
