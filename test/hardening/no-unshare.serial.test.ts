/**
 * Reading a process never undoes what it shares. process_vm_readv pins the
 * pages it reads, and the kernel unshares a pinned anonymous page that is
 * not mapped exclusively: a KSM page read that way is replaced by a private
 * copy, and so is a page a process shares with its parent since fork().
 * estimate(), regions() and profit() read such pages without pinning them;
 * here the kernel's own counts (smaps_rollup KSM, read raw) say the pages
 * stayed merged, and the fork-shared pages stayed shared.
 * Serial: it holds ksmd (run=0) while it reads, so that nothing merges
 * the copies back before they are counted; run is restored in finally.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';

import { estimate, pageSize, profit, regions } from '../../lib/index.js';
import { firstLine, requireKsm, startFixture, unsanitizedEnv, type Holder } from '../helpers/ksm.js';

let holders: Holder[] = [];
afterEach(async () => {
  await Promise.all(holders.map((holder) => holder.kill()));
  holders = [];
});

const RUN = '/sys/kernel/mm/ksm/run';

/** A smaps_rollup field of pid, in bytes, read raw. */
function rollup(pid: number, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return match === null ? 0 : Number(match[1]) * 1024;
}

/** Shared_Dirty of the VMA of pid holding `address`, in bytes, read raw from smaps. */
function sharedDirtyAt(pid: number, address: bigint): number {
  let inside = false;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (header) inside = BigInt(`0x${header[1]}`) <= address && address < BigInt(`0x${header[2]}`);
    const field = /^Shared_Dirty:\s+(\d+) kB/.exec(line);
    if (inside && field) return Number(field[1]) * 1024;
  }
  return -1;
}

describe('reading a process never unshares its pages', () => {
  it('estimate(), regions() and profit() leave every merged page merged', async (ctx) => {
    requireKsm(ctx);
    const nonce = randomUUID();
    const pages = 256;
    const spec = JSON.stringify({ nonce, buffers: [{ label: 'merged', pages, group: 'same' }] });
    holders = await Promise.all([0, 1].map(() => startFixture('profit-child.cjs', [spec])));
    const expected = pages * pageSize();
    const deadline = Date.now() + 240_000;
    while (Date.now() < deadline && !holders.every((h) => rollup(h.pid, 'KSM') >= expected)) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const before = holders.map((h) => rollup(h.pid, 'KSM'));
    expect(before.every((bytes) => bytes >= expected)).toBe(true);
    const run = fs.readFileSync(RUN, 'utf8').trim();
    fs.writeFileSync(RUN, '0'); // merged pages stay merged; nothing merges anew
    try {
      const [first, second] = holders as [Holder, Holder];
      const result = await estimate(first.pid, { threads: 2 });
      expect(result.pagesHashed).toBeGreaterThanOrEqual(pages);
      // Both processes: every page of each class is read again to confirm it.
      await estimate([first.pid, second.pid]);
      await regions(second.pid);
      await profit(second.pid, { exact: false });
      expect(holders.map((h) => rollup(h.pid, 'KSM'))).toEqual(before);
    } finally {
      fs.writeFileSync(RUN, run);
    }
  });

  it('estimate() of a forked child leaves the pages it shares with its parent shared', async () => {
    // A parent writes 4 MiB, forks, and both sleep: the child's pages are
    // its parent's, mapped twice (Shared_Dirty), until one of them writes.
    const script = [
      'import ctypes, mmap, os, sys, time',
      'm = mmap.mmap(-1, 1024 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)',
      'for i in range(1024): m[i * 4096:i * 4096 + 8] = (i + 1).to_bytes(8, "little")',
      'pid = os.fork()',
      'if pid == 0:',
      '    time.sleep(120); os._exit(0)',
      'print(pid, ctypes.addressof(ctypes.c_char.from_buffer(m)), flush=True)',
      'sys.stdin.read()',
      'os.kill(pid, 9)',
    ].join('\n');
    const parent = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'], env: unsanitizedEnv() });
    let childPid: number | undefined;
    try {
      const line = await firstLine(parent, 'the python3 parent');
      const printed = /^(\d+) (\d+)$/.exec(line.trim());
      if (printed === null) throw new Error(`the python3 parent printed ${JSON.stringify(line)}, not "PID ADDRESS"`);
      const [child, address] = [Number(printed[1]), BigInt(printed[2]!)];
      childPid = child;
      // The buffer's own VMA: the interpreter's other pages may be written meanwhile.
      const shared = sharedDirtyAt(child, address);
      expect(shared).toBe(1024 * 4096);
      const result = await estimate(child);
      expect(result.pagesHashed).toBeGreaterThanOrEqual(1024);
      await regions(child);
      expect(sharedDirtyAt(child, address)).toBe(shared);
      expect(sharedDirtyAt(parent.pid!, address)).toBe(shared);
    } finally {
      if (childPid !== undefined) process.kill(childPid, 'SIGKILL');
      parent.stdin.end();
      parent.kill('SIGKILL');
    }
  });
});
