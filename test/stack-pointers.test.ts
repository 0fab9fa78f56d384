/**
 * The threads' stack pointers a smaps read reads beside its scan
 * (native/stack-pointers.h, readProcFile's `stackPointers`): the same as
 * lib/kernel/vma-evidence.ts readStackPointers() reads of each
 * /proc/PID/task/TID/syscall, for every thread blocked in the kernel, each
 * inside one of the process's VMAs (the main thread's in [stack]); and the
 * thread stacks regions() tells with them are those its JavaScript read
 * tells.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { bindingState, type NativeBinding, type NativeSmapsScan } from '../lib/binding.js';
import { startSmapsRead, type ScanReads } from '../lib/kernel/files.js';
import { NATIVE_SMAPS_FIELDS, fromNativeScan } from '../lib/kernel/smaps-native.js';
import { resolveTarget } from '../lib/kernel/target.js';
import { layoutScanReads, readStackPointers, stackPointersOfScan } from '../lib/kernel/vma-evidence.js';
import { classifyVmas, factKinds } from '../lib/kernel/vma.js';
import { startFixture, type Holder } from './helpers/ksm.js';

const state = bindingState();
const native = state.loaded ? state.binding : (undefined as unknown as NativeBinding);

async function scanOf(pid: number, reads: ScanReads): Promise<NativeSmapsScan> {
  const scan = await startSmapsRead(`/proc/${pid}/smaps`, NATIVE_SMAPS_FIELDS, reads).promise;
  if (Buffer.isBuffer(scan)) throw new Error('smaps was not scanned by the addon');
  return scan;
}

/** Each thread's syscall file, raw: the ones blocked in the kernel (not "running"). */
function blockedRaw(pid: number): number[] {
  const out: number[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      if (!fs.readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').startsWith('running')) out.push(Number(tid));
    } catch {
      // exited meanwhile
    }
  }
  return out.sort((a, b) => a - b);
}

describe.runIf(state.loaded)('stack pointers read beside the smaps scan', () => {
  let child: Holder & { ready: Record<string, unknown> };
  beforeAll(async () => {
    // A Node process with a worker thread: its threads wait in the kernel.
    child = await startFixture('node-memory.cjs', [], {}, { sanitized: false });
  });
  afterAll(async () => {
    await child?.kill();
  });

  it("are readStackPointers()'s, for the threads blocked in the kernel, each inside a VMA of the scan", async () => {
    // A thread that wakes between the reads moves its stack pointer (or is
    // running): the three reads are made again until they agree, a while at most.
    const key = (m: Map<number, bigint>): string => JSON.stringify([...m].map(([t, sp]) => [t, `${sp}`]).sort());
    let scan: NativeSmapsScan | undefined;
    let byScan: Map<number, bigint> | undefined;
    let byJs: Map<number, bigint> | undefined;
    let raw: number[] = [];
    for (let attempt = 0; attempt < 20; attempt++) {
      scan = await scanOf(child.pid, { stackPointers: true });
      byScan = stackPointersOfScan(scan);
      byJs = readStackPointers(resolveTarget(child.pid, undefined));
      raw = blockedRaw(child.pid);
      if (key(byScan!) === key(byJs) && JSON.stringify([...byJs.keys()].sort((a, b) => a - b)) === JSON.stringify(raw)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(byScan).toEqual(byJs);
    expect(scan!.threadStackPointers!.length).toBe(2 * byScan!.size);
    // Node's main thread, libuv's and V8's, the worker's: most of them waiting.
    expect(byScan!.size).toBeGreaterThanOrEqual(4);
    expect([...byScan!.keys()].sort((a, b) => a - b)).toEqual(raw);
    const { vmas } = fromNativeScan(scan!);
    for (const [tid, sp] of byScan!) {
      const holding = vmas.find((v) => v.start <= sp && sp < v.end);
      expect(holding, `thread ${tid}`).toBeDefined();
      if (tid === child.pid) expect(holding!.pathname).toBe('[stack]');
    }
    // Told as thread stacks as the JavaScript read's pointers tell them.
    const plain = classifyVmas(vmas);
    const told = factKinds(vmas, plain, { stackPointers: byScan! }).filter(([, c]) => c.kind === 'thread-stack');
    expect(told.length).toBeGreaterThan(0);
    expect(told).toEqual(factKinds(vmas, plain, { stackPointers: byJs! }).filter(([, c]) => c.kind === 'thread-stack'));
  });

  it('come only when asked for, and layoutScanReads() asks for them where the addon scans', async () => {
    expect((await scanOf(child.pid, {})).threadStackPointers).toBeUndefined();
    expect(layoutScanReads(resolveTarget(child.pid, undefined), 'candidates')).toEqual({
      chunks: { rule: 'candidates', limit: 4096 },
      stackPointers: true,
    });
  });

  it('are refused unless a boolean, for the scan of a process smaps', () => {
    const deliver = (): void => {};
    const smaps = `/proc/${child.pid}/smaps`;
    expect(() => native.readProcFile(smaps, 'smaps', deliver, undefined, undefined, undefined, 1 as unknown as boolean)).toThrow(TypeError);
    expect(() => native.readProcFile(`/proc/${child.pid}/maps`, 'smaps', deliver, undefined, undefined, undefined, true)).toThrow(TypeError);
    expect(() => native.readProcFile(smaps, undefined, deliver, undefined, undefined, undefined, true)).toThrow(TypeError);
  });
});
