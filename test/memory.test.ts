/**
 * Mergeable memory through the public API, checked against what the kernel
 * prints in /proc/PID/smaps (VmFlags `mg`, `KSM:`) read raw. Scenarios after
 * tools/testing/selftests/mm/ksm_functional_tests.c (test_unmerge) plus
 * copy-on-write integrity, bad input, finalizers and churn.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';

import {
  allocMergeable,
  markMergeable,
  pageSize,
  unmarkMergeable,
  type MergeableRange,
} from '../lib/index.js';
import {
  FIXTURES,
  PAGE,
  addressOf,
  needs,
  rawKsmStat,
  rawSmapsRange,
  rawVmaAt,
  preloadWith,
  requireKsm,
  roundDown,
  roundUp,
  runNode,
  startFixture,
  untilKsm,
  withAsanOptions,
  type Holder,
} from './helpers/ksm.js';
import { buildNativeFixture, type NativeFixture } from './helpers/native.js';

const P = BigInt(PAGE);
const MiB = 1024 * 1024;

/** Every VMA over [start, end) carries `mg`, and together they cover the range. */
function expectMergeable(start: bigint, end: bigint): void {
  for (let page = start; page < end; ) {
    const vma = rawVmaAt(page);
    expect(vma, `nothing mapped at 0x${page.toString(16)}`).toBeDefined();
    expect(vma!.flags).toContain('mg');
    page = vma!.end;
  }
}

function expectNotMergeable(address: bigint): void {
  const vma = rawVmaAt(address);
  expect(vma, `nothing mapped at 0x${address.toString(16)}`).toBeDefined();
  expect(vma!.flags).not.toContain('mg');
}

/** The whole pages inside a view, computed here from its address. */
function wholePages(view: ArrayBuffer | ArrayBufferView): { start: bigint; end: bigint } {
  const address = addressOf(view);
  const length = BigInt(view.byteLength);
  const start = roundUp(address);
  const end = roundDown(address + length);
  return end > start ? { start, end } : { start, end: start };
}

function expectCode(fn: () => unknown, type: new (...args: never[]) => Error, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, 'expected a throw').toBeInstanceOf(type);
  expect((thrown as { code?: unknown }).code).toBe(code);
}

describe('pageSize()', () => {
  it('is the page size getconf reports', (ctx) => {
    requireKsm(ctx);
    expect(pageSize()).toBe(PAGE);
  });
});

describe('allocMergeable()', () => {
  beforeEach((ctx) => requireKsm(ctx));
  const sizes = [1, PAGE - 1, PAGE, PAGE + 1, 3 * PAGE + 5, MiB + 3];

  it.each(sizes)('size %i: exactly size bytes, zeroed, page-aligned, its whole mapping `mg`', (size) => {
    const buffer = allocMergeable(size);
    expect(Buffer.isBuffer(buffer)).toBe(true);
    expect(buffer.length).toBe(size);
    expect(buffer.byteLength).toBe(size);
    expect(buffer.every((byte) => byte === 0)).toBe(true);
    const address = addressOf(buffer);
    expect(address % P).toBe(0n);
    // The mapping is rounded up to whole pages, all of them mergeable.
    expectMergeable(address, address + roundUp(BigInt(size)));
    buffer.fill(0xa5);
    expect(buffer[size - 1]).toBe(0xa5);
  });

  it('advises MADV_NOHUGEPAGE unless hugePages: true (the THP bench chose the default)', () => {
    const plain = allocMergeable(4 * MiB);
    expect(rawVmaAt(addressOf(plain))!.flags).toEqual(expect.arrayContaining(['mg', 'nh']));
    const huge = allocMergeable(4 * MiB, { hugePages: true });
    expect(rawVmaAt(addressOf(huge))!.flags).toContain('mg');
    expect(rawVmaAt(addressOf(huge))!.flags).not.toContain('nh');
  });

  it('takes a label', () => {
    const buffer = allocMergeable(2 * PAGE, { label: 'lookup-table' });
    expect(buffer.length).toBe(2 * PAGE);
    expectMergeable(addressOf(buffer), addressOf(buffer) + 2n * P);
  });

  it('each call is its own mapping: buffers never overlap', () => {
    const a = allocMergeable(PAGE + 1);
    const b = allocMergeable(PAGE + 1);
    const [x, y] = [addressOf(a), addressOf(b)].sort((m, n) => (m < n ? -1 : 1)) as [bigint, bigint];
    expect(y - x).toBeGreaterThanOrEqual(2n * P);
    a.fill(1);
    b.fill(2);
    expect(a.every((byte) => byte === 1)).toBe(true);
  });
});

describe('markMergeable() / unmarkMergeable() on views the caller already has', () => {
  // 33 MiB is above glibc's largest mmap threshold: a fresh mapping of its
  // own that nothing else in this process has advised.
  let big: Buffer;
  beforeEach((ctx) => requireKsm(ctx));
  beforeAll(() => {
    big = Buffer.alloc(33 * MiB);
  });

  function checkView(view: ArrayBuffer | ArrayBufferView, range: MergeableRange): void {
    const { start, end } = wholePages(view);
    expect(range.address).toBe(start);
    expect(range.length).toBe(Number(end - start));
    expect(range.length % PAGE).toBe(0);
  }

  it.each([
    ['a Buffer slice', (b: Buffer) => b.subarray(1 * MiB + 100, 1 * MiB + 100 + 3 * PAGE + 200)],
    ['a Uint32Array', (b: Buffer) => new Uint32Array(b.buffer, b.byteOffset + 3 * MiB + 8, (5 * PAGE) / 4)],
    ['a Float64Array', (b: Buffer) => new Float64Array(b.buffer, b.byteOffset + 5 * MiB + 24, (4 * PAGE) / 8)],
    ['a DataView', (b: Buffer) => new DataView(b.buffer, b.byteOffset + 7 * MiB + 1, 6 * PAGE)],
  ])('%s: only the whole pages inside are advised, never the partial pages around them', (_name, make) => {
    const view = make(big);
    const { start, end } = wholePages(view);
    const first = addressOf(view);
    const last = first + BigInt(view.byteLength) - 1n;
    // The partial pages at both ends belong to the view only in part.
    expect(first).toBeLessThan(start);
    expect(last).toBeGreaterThanOrEqual(end);
    expectNotMergeable(first);
    expectNotMergeable(last);

    const range = markMergeable(view);
    checkView(view, range);
    expectMergeable(start, end);
    // The neighbours: the view's own partial pages and the bytes beyond it.
    expectNotMergeable(first);
    expectNotMergeable(start - 1n);
    expectNotMergeable(end);
    expectNotMergeable(last);
    expectNotMergeable(first - 1n);
    expectNotMergeable(last + 1n);

    expect(unmarkMergeable(view)).toEqual(range);
    expectNotMergeable(start);
    expectNotMergeable(end - 1n);
  });

  it('a whole ArrayBuffer, with a label and without verification', () => {
    const buffer = new ArrayBuffer(5 * PAGE + 7);
    const range = markMergeable(buffer, { label: 'arena', verify: false });
    checkView(buffer, range);
    expect(range.length).toBeGreaterThanOrEqual(4 * PAGE);
    expectMergeable(range.address, range.address + BigInt(range.length));
    unmarkMergeable(buffer);
  });

  it('an allocMergeable Buffer: its address, all its whole pages', () => {
    const buffer = allocMergeable(3 * PAGE + 10);
    const range = markMergeable(buffer);
    expect(range).toEqual({ address: addressOf(buffer), length: 3 * PAGE });
    expect(unmarkMergeable(buffer)).toEqual(range);
    expectNotMergeable(addressOf(buffer));
  });

  it.each([
    ['an empty Uint8Array', () => new Uint8Array(0)],
    ['an empty ArrayBuffer', () => new ArrayBuffer(0)],
    ['an empty Buffer', () => Buffer.alloc(0)],
    ['a small Buffer', () => Buffer.alloc(100)],
    ['a page minus one byte', () => big.subarray(9 * MiB + 1, 9 * MiB + PAGE)],
    ['a page-long view across a page boundary', () => big.subarray(10 * MiB + PAGE / 2 + 1, 10 * MiB + PAGE / 2 + 1 + PAGE)],
  ])('%s: no whole page, length 0, nothing advised', (_name, make) => {
    const view = make();
    if (view.byteLength > 0) expect(wholePages(view).end).toBe(wholePages(view).start);
    const marked = markMergeable(view);
    expect(marked.length).toBe(0);
    expect(typeof marked.address).toBe('bigint');
    expect(unmarkMergeable(view).length).toBe(0);
    if (view.byteLength > 0) {
      expectNotMergeable(addressOf(view));
      expectNotMergeable(addressOf(view) + BigInt(view.byteLength) - 1n);
    }
  });
});

describe('markMergeable() on memory the kernel refuses', () => {
  // No memory a Node process can view from JavaScript is incompatible with
  // KSM (SharedArrayBuffer is private anonymous memory too, and rejected
  // earlier with a TypeError). A test-only LD_PRELOAD interposer turns the
  // mmap of one allocMergeable() in a child into MAP_SHARED: real memory the
  // kernel refuses, seen through the real /proc/self/smaps.
  let shim: NativeFixture | undefined;
  let reason = '';

  beforeAll(() => {
    try {
      shim = buildNativeFixture(path.join(FIXTURES, 'shared-mmap.c'), { addon: false });
    } catch (error) {
      reason = (error as Error).message;
    }
  });
  afterAll(() => shim?.remove());

  it('throws KsmNotMergeableError naming the shared mapping', async (ctx) => {
    requireKsm(ctx);
    needs(ctx, shim !== undefined, `a C compiler (cc) to build the LD_PRELOAD shim (${reason})`);
    const length = 13 * PAGE;
    const script = `
      const fs = require('node:fs');
      const ksm = require('./dist/index.js');
      const buffer = ksm.allocMergeable(${length});
      buffer.fill(7);
      const out = {};
      try { out.range = ksm.markMergeable(buffer); } catch (e) {
        out.error = { name: e.name, code: e.code, isKsm: e instanceof ksm.KsmError,
          isNotMergeable: e instanceof ksm.KsmNotMergeableError, message: e.message,
          mappings: e.mappings.map((m) => ({ ...m, start: String(m.start), end: String(m.end) })) };
      }
      // The kernel's own word, read raw: the VMA that holds the buffer.
      const smaps = fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n');
      const address = require('node-gyp-build')('.').viewRange(buffer).address;
      let inside = false;
      for (const line of smaps) {
        const h = /^([0-9a-f]+)-([0-9a-f]+) (\\S+)/.exec(line);
        if (h) { inside = BigInt('0x' + h[1]) <= address && address < BigInt('0x' + h[2]); if (inside) out.perms = h[3]; continue; }
        if (inside && line.startsWith('VmFlags:')) out.vmFlags = line.slice(8).trim().split(/\\s+/);
      }
      out.address = String(address);
      process.stdout.write(JSON.stringify(out));`;
    const out = await runNode<{
      range?: unknown;
      error?: { name: string; code: string; isKsm: boolean; isNotMergeable: boolean; message: string; mappings: Array<{ start: string; end: string; vmFlags: string[]; why: string }> };
      perms: string;
      vmFlags: string[];
      address: string;
    }>(script, [], { LD_PRELOAD: preloadWith(shim!.file), NODE_KSM_TEST_SHARED_LENGTH: String(length) });

    // The shim did its part: the kernel holds a shared mapping without `mg`.
    expect(out.perms).toBe('rw-s');
    expect(out.vmFlags).toContain('sh');
    expect(out.vmFlags).not.toContain('mg');
    // And the SDK said so instead of returning a range.
    expect(out.range).toBeUndefined();
    expect(out.error).toMatchObject({ name: 'KsmNotMergeableError', code: 'ERR_KSM_NOT_MERGEABLE', isKsm: true, isNotMergeable: true });
    expect(out.error!.mappings).toHaveLength(1);
    const [mapping] = out.error!.mappings;
    expect(BigInt(mapping!.start)).toBeLessThanOrEqual(BigInt(out.address));
    expect(BigInt(mapping!.end)).toBeGreaterThanOrEqual(BigInt(out.address) + BigInt(length));
    expect(mapping!.vmFlags).toContain('sh');
    expect(mapping!.why).toMatch(/shared/);
  });
});

describe('across processes (test_unmerge, copy-on-write)', () => {
  const SIZE = 8 * MiB;
  let holders: Array<Holder & { ready: Record<string, unknown> }> = [];

  afterEach(async () => {
    await Promise.all(holders.map((holder) => holder.kill()));
    holders = [];
  });

  async function mergedHolders(seed: number): Promise<Array<Holder & { ready: Record<string, unknown> }>> {
    const spec = JSON.stringify({ mode: 'alloc', size: SIZE, seed });
    holders = await Promise.all([0, 1, 2].map(() => startFixture('holder.cjs', [spec])));
    const ksmBytes = (holder: Holder & { ready: Record<string, unknown> }): number =>
      rawSmapsRange(holder.pid, holder.ready.start as bigint, holder.ready.end as bigint).ksmBytes;
    await untilKsm(() => holders.every((holder) => ksmBytes(holder) === SIZE), 'every buffer page a KSM page');
    for (const holder of holders) {
      expect(rawSmapsRange(holder.pid, holder.ready.start as bigint, holder.ready.end as bigint).flags.every((f) => f.includes('mg'))).toBe(true);
    }
    return holders;
  }

  it('unmarkMergeable() ends sharing: the range leaves KSM in that process only', async (ctx) => {
    requireKsm(ctx);
    const [leaver, ...stayers] = await mergedHolders(0x41);
    const mergingBefore = Number(rawKsmStat(leaver!.pid).ksm_merging_pages);
    const { range } = await leaver!.send<{ range: MergeableRange }>({ cmd: 'unmark' });
    expect(range).toEqual({ address: leaver!.ready.start, length: SIZE });

    const after = rawSmapsRange(leaver!.pid, leaver!.ready.start as bigint, leaver!.ready.end as bigint);
    expect(after.ksmBytes).toBe(0);
    expect(after.flags.some((f) => f.includes('mg'))).toBe(false);
    for (const holder of stayers) {
      expect(rawSmapsRange(holder.pid, holder.ready.start as bigint, holder.ready.end as bigint).ksmBytes).toBe(SIZE);
    }
    // ksm_merging_pages lags: MADV_UNMERGEABLE only breaks COW, and ksmd
    // drops the stale rmap_items (and the count) when it next passes.
    await untilKsm(
      () => Number(rawKsmStat(leaver!.pid).ksm_merging_pages) <= mergingBefore - SIZE / PAGE,
      'ksm_merging_pages of the unmarked process down by the buffer',
    );
    // The data survived the unmerge.
    expect((await leaver!.send<{ ok: boolean }>({ cmd: 'verify' })).ok).toBe(true);
  });

  it('copy-on-write: each process writes its own bytes and reads back exactly those', async (ctx) => {
    requireKsm(ctx);
    const merged = await mergedHolders(0x42);
    await Promise.all(merged.map((holder, i) => holder.send({ cmd: 'write', byte: 0x10 + i })));
    for (const holder of merged) {
      expect((await holder.send<{ ok: boolean }>({ cmd: 'verify' })).ok).toBe(true);
      // Every page was written: none is still a KSM page in this process.
      expect(rawSmapsRange(holder.pid, holder.ready.start as bigint, holder.ready.end as bigint).ksmBytes).toBe(0);
    }
  });
});

describe('bad input', () => {
  const TYPE = 'ERR_INVALID_ARG_TYPE';
  const RANGE = 'ERR_OUT_OF_RANGE';

  it.each([['8'], [null], [undefined], [{}], [[]], [8n], [true]])('allocMergeable(%s): TypeError', (size) => {
    expectCode(() => allocMergeable(size as unknown as number), TypeError, TYPE);
  });

  it.each([[0], [-1], [-0], [1.5], [NaN], [Infinity], [-Infinity], [2 ** 53], [Number.MAX_VALUE]])(
    'allocMergeable(%d): RangeError',
    (size) => {
      expectCode(() => allocMergeable(size), RangeError, RANGE);
    },
  );

  it('allocMergeable(a safe size no machine can map): mmap ENOMEM, as a Node system error', (ctx) => {
    requireKsm(ctx);
    let thrown: unknown;
    try {
      allocMergeable(2 ** 52);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(Error);
    expect(thrown).toMatchObject({ code: 'ENOMEM', errno: -os.constants.errno.ENOMEM, syscall: 'mmap' });
    expect((thrown as Error).message).toMatch(/^ENOMEM: cannot allocate memory, mmap/);
    // The hint speaks of the mapping, not of madvise's unmapped ranges.
    expect((thrown as { hint?: string }).hint).toMatch(/refused the mapping/);
  });

  it.each([[null], ['label'], [[]], [5]])('allocMergeable(size, %j): TypeError', (options) => {
    expectCode(() => allocMergeable(PAGE, options as never), TypeError, TYPE);
  });

  it('allocMergeable(size, { label: 5 }): TypeError', () => {
    expectCode(() => allocMergeable(PAGE, { label: 5 as unknown as string }), TypeError, TYPE);
  });

  const notViews: Array<[string, unknown]> = [
    ['a string', 'buffer'],
    ['a number', 4096],
    ['null', null],
    ['undefined', undefined],
    ['an object', { byteLength: 4096 }],
    ['an array', [1, 2, 3]],
    ['a SharedArrayBuffer', new SharedArrayBuffer(4 * 4096)],
    ['a view of a SharedArrayBuffer', new Uint8Array(new SharedArrayBuffer(4 * 4096))],
  ];

  it.each(notViews)('markMergeable(%s) and unmarkMergeable(): TypeError', (_name, value) => {
    expectCode(() => markMergeable(value as ArrayBuffer), TypeError, TYPE);
    expectCode(() => unmarkMergeable(value as ArrayBuffer), TypeError, TYPE);
  });

  function detached(kind: 'buffer' | 'typed' | 'dataview'): ArrayBuffer | ArrayBufferView {
    const buffer = new ArrayBuffer(4 * PAGE);
    const typed = new Uint8Array(buffer);
    const view = new DataView(buffer);
    structuredClone(buffer, { transfer: [buffer] });
    return kind === 'buffer' ? buffer : kind === 'typed' ? typed : view;
  }

  it.each(['buffer', 'typed', 'dataview'] as const)('a detached %s: TypeError ERR_INVALID_STATE', (kind) => {
    const view = detached(kind);
    if (kind !== 'dataview') expect(view.byteLength).toBe(0);
    else expect(() => view.byteLength).toThrow(TypeError);
    expectCode(() => markMergeable(view), TypeError, 'ERR_INVALID_STATE');
    expectCode(() => unmarkMergeable(view), TypeError, 'ERR_INVALID_STATE');
  });

  it.each([[null], ['verify'], [[]], [1]])('markMergeable(view, %j): TypeError', (options) => {
    expectCode(() => markMergeable(Buffer.alloc(8), options as never), TypeError, TYPE);
  });

  it.each([[{ label: 1 }], [{ verify: 'yes' }], [{ verify: 1 }]])('markMergeable(view, %j): TypeError', (options) => {
    expectCode(() => markMergeable(Buffer.alloc(8), options as never), TypeError, TYPE);
  });

  it('a bad option is rejected before anything is advised', (ctx) => {
    requireKsm(ctx);
    const big = Buffer.alloc(33 * MiB);
    const view = big.subarray(MiB, 2 * MiB);
    expectCode(() => markMergeable(view, { verify: 'no' as unknown as boolean }), TypeError, TYPE);
    expectNotMergeable(addressOf(view) + P);
  });
});

describe('finalizers and churn (child processes under --expose-gc)', () => {
  it('a dropped allocMergeable Buffer is unmapped after GC, and external memory goes back down', async (ctx) => {
    requireKsm(ctx);
    const script = `
      const fs = require('node:fs');
      const ksm = require('./dist/index.js');
      const native = require('node-gyp-build')('.');
      const SIZE = 8 * 1024 * 1024;
      function vmaAt(address) {
        let found;
        for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
          const h = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
          if (h) { found = BigInt('0x' + h[1]) <= address && address < BigInt('0x' + h[2]) ? { flags: [] } : found && !found.done ? Object.assign(found, { done: true }) : found; continue; }
          if (found && !found.done && line.startsWith('VmFlags:')) found.flags = line.slice(8).trim().split(/\\s+/);
          if (found && !found.done && line.startsWith('Rss:')) found.rss = Number(/(\\d+)/.exec(line)[1]) * 1024;
        }
        return found ? { flags: found.flags, rss: found.rss } : null;
      }
      (async () => {
        gc();
        const external0 = process.memoryUsage().external;
        let buffer = ksm.allocMergeable(SIZE);
        buffer.fill(1);
        const address = native.viewRange(buffer).address;
        const external1 = process.memoryUsage().external;
        const before = vmaAt(address);
        buffer = null;
        let after = vmaAt(address);
        // V8's sweeper releases the backing store's accounting on its own schedule.
        for (let i = 0; i < 200 && ((after && after.flags.includes('mg')) || process.memoryUsage().external - external0 >= 1024 * 1024); i++) {
          gc();
          await new Promise((resolve) => setImmediate(resolve));
          after = vmaAt(address);
        }
        process.stdout.write(JSON.stringify({ SIZE, external0, external1, external2: process.memoryUsage().external, before, after }));
      })();`;
    const out = await runNode<{
      SIZE: number;
      external0: number;
      external1: number;
      external2: number;
      before: { flags: string[]; rss: number } | null;
      after: { flags: string[]; rss: number } | null;
    }>(script, ['--expose-gc']);
    expect(out.before?.flags).toContain('mg');
    expect(out.before?.rss).toBeGreaterThanOrEqual(out.SIZE);
    // Gone from smaps: nothing mapped there any more, or something else
    // (not ours: not mergeable, not holding our 8 MiB).
    if (out.after !== null) {
      expect(out.after.flags).not.toContain('mg');
      expect(out.after.rss).toBeLessThan(out.SIZE);
    }
    // Accounted while alive, released with the mapping (other external
    // memory of the process moves a little meanwhile).
    expect(out.external1 - out.external0).toBeGreaterThanOrEqual(out.SIZE);
    expect(out.external2 - out.external0).toBeLessThan(MiB);
  });

  it('10,000 alloc/free cycles do not grow RSS by more than a few MiB, nor leave mappings behind', async (ctx) => {
    requireKsm(ctx);
    // Node runs the finalizers of external Buffers from the event loop (an
    // immediate after the GC that found them), so the loop yields as a
    // service would; without yielding, dropped mappings pile up until it does.
    const script = `
      const fs = require('node:fs');
      const ksm = require('./dist/index.js');
      const SIZE = 64 * 1024;
      const turn = () => new Promise((resolve) => setImmediate(resolve));
      function mergeableBytes() {
        let total = 0, size = 0;
        for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
          const s = /^Size:\\s+(\\d+) kB/.exec(line);
          if (s) size = Number(s[1]) * 1024;
          if (line.startsWith('VmFlags:') && / mg( |$)/.test(line)) total += size;
        }
        return total;
      }
      async function cycles(n) {
        for (let i = 0; i < n; i++) {
          const buffer = ksm.allocMergeable(SIZE);
          buffer.fill(i & 0xff);
          if (i % 250 === 249) { gc(); await turn(); }
        }
        for (let i = 0; i < 3; i++) { gc(); await turn(); }
      }
      (async () => {
        await cycles(2000);
        const rss0 = process.memoryUsage().rss;
        const mg0 = mergeableBytes();
        await cycles(10000);
        process.stdout.write(JSON.stringify({ rss0, rss1: process.memoryUsage().rss, mg0, mg1: mergeableBytes() }));
      })();`;
    // Under test:asan, freed malloc memory would wait in ASan's quarantine
    // (256 MiB by default) and count as growth: no quarantine here.
    const out = await runNode<{ rss0: number; rss1: number; mg0: number; mg1: number }>(
      script,
      ['--expose-gc'],
      withAsanOptions('quarantine_size_mb=0:thread_local_quarantine_size_kb=0'),
    );
    // 10,000 x 64 KiB = 625 MiB went through (measured growth: under 1 MiB).
    expect(out.rss1 - out.rss0).toBeLessThan(4 * MiB);
    // No mapping outlived its Buffer: a leak of 16 of them shows here.
    expect(out.mg1).toBeLessThanOrEqual(out.mg0);
    expect(out.mg1).toBeLessThan(MiB);
  });
});
