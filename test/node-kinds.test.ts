/**
 * Node's kinds of anonymous memory on a real Node process (a child with a
 * WebAssembly memory, a worker thread, a big Buffer, a table loaded under
 * labelAllocations and a buffer of ours), checked against what the test reads
 * raw: smaps, the threads' stack pointers, the Buffer's place in its mapping.
 * Then the rules on made-up layouts: near misses stay what smaps says.
 */
import * as fs from 'node:fs';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { estimate, labelMemory, profit, regions, type Region } from '../lib/index.js';
import { V8_CODE_RANGE_SIZES, classifyVmas, type LayoutVma } from '../lib/kernel/vma.js';
import { parseSyscallStackPointer } from '../lib/kernel/vma-evidence.js';
import { rawVmas, requireKsm, startFixture, type Holder } from './helpers/ksm.js';

const MiB = 1024n * 1024n;
const GiB = 1024n * MiB;

interface Ready {
  file: string | undefined;
  wasm: { address: string; length: number };
  moduleMemory: number;
  big: { labelled: string; length: number };
  table: number;
  ours: string;
}

/** Every thread's stack pointer, read raw (`... sp pc` of task/TID/syscall). */
function rawStackPointers(pid: number): bigint[] {
  const out: bigint[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    const fields = fs.readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').trim().split(/\s+/);
    if (fields.length >= 3 && fields[0] !== 'running') out.push(BigInt(fields[fields.length - 2]!));
  }
  return out;
}

describe('the kinds of a real Node process', () => {
  let child: Holder & { ready: Record<string, unknown> };
  let ready: Ready;
  let list: Region[];
  const at = (address: bigint): Region => {
    const region = list.find((r) => r.start <= address && address < r.end);
    if (region === undefined) throw new Error(`nothing mapped at 0x${address.toString(16)}`);
    return region;
  };

  beforeAll(async () => {
    // Unsanitized in the sanitized run too: ASan's allocator has no glibc arenas or chunks to find.
    child = await startFixture('node-memory.cjs', [], {}, { sanitized: false });
    ready = child.ready as unknown as Ready;
    list = (await regions(child.pid)).regions;
  });
  afterAll(async () => {
    await child?.kill();
  });

  it('WebAssembly memories: exactly their pages, with the guard region V8 reserved behind', (ctx) => {
    requireKsm(ctx);
    const wasm = at(BigInt(ready.wasm.address));
    expect(wasm.kind).toBe('wasm-memory');
    expect(wasm.start).toBe(BigInt(ready.wasm.address));
    expect(wasm.size).toBe(ready.wasm.length);
    const raw = rawVmas(child.pid);
    const guard = raw.find((vma) => vma.start === wasm.end)!;
    expect(guard.perms).toBe('---p');
    expect(guard.end - wasm.start >= 8n * GiB).toBe(true);
    expect(wasm.kindEvidence).toContain('guard region');
    // The module's own memory (17 pages) is found too, unlabelled.
    expect(list.filter((r) => r.kind === 'wasm-memory').map((r) => r.size).sort()).toEqual([ready.moduleMemory, ready.wasm.length].sort());
  });

  it('a WebAssembly memory that grows keeps its kind and its label over every page', async (ctx) => {
    requireKsm(ctx);
    const { length } = await child.send<{ length: number }>({ cmd: 'grow', pages: 4 });
    expect(length).toBe(ready.wasm.length + 4 * 65536);
    const grown = (await regions(child.pid)).regions.find((r) => r.start === BigInt(ready.wasm.address))!;
    expect(grown.kind).toBe('wasm-memory');
    expect(grown.size).toBe(length);
    expect(grown.label).toBe('wasm memory');
    expect(grown.labels[0]!.end - grown.labels[0]!.start).toBe(BigInt(length));
  });

  it('a big Buffer is a chunk malloc mapped on its own, named by the label published from the other process', (ctx) => {
    requireKsm(ctx);
    const chunk = at(BigInt(ready.big.labelled));
    expect(chunk.kind).toBe('malloc-chunk');
    // malloc's header, read raw: the Buffer's bytes start 16 bytes into their chunk (labelled from the next page on),
    // whose size field is the mapping's size with IS_MMAPPED (2) set.
    const header = Buffer.alloc(16);
    const fd = fs.openSync(`/proc/${child.pid}/mem`, 'r');
    try {
      fs.readSync(fd, header, 0, 16, Number(BigInt(ready.big.labelled) - 4096n));
    } finally {
      fs.closeSync(fd);
    }
    const size = header.readBigUInt64LE(8);
    expect(size & 7n).toBe(2n);
    expect(size & ~7n).toBeGreaterThanOrEqual(BigInt(ready.big.length + 16));
    expect(chunk.start <= BigInt(ready.big.labelled) - 4096n && BigInt(ready.big.labelled) - 4096n + (size & ~7n) <= chunk.end).toBe(true);
    // The label covers the Buffer. Another chunk mapped right next to it (same
    // flags, one VMA) adds its own label to the region's list, never replaces it.
    expect(chunk.label?.split(', ')).toContain('big buffer');
    const big = BigInt(ready.big.labelled);
    expect(chunk.labels.some((l) => l.label === 'big buffer' && l.start <= big && big < l.end)).toBe(true);
    expect(ready.file).toMatch(/node-ksm.*labels/);
  });

  it('labelAllocations() named the table a library call mapped', (ctx) => {
    requireKsm(ctx);
    const mine = (r: Region): Region['labels'] => r.labels.filter((l) => l.label === 'table loader');
    const named = list.filter((r) => mine(r).length > 0);
    expect(named.length).toBeGreaterThan(0);
    expect(named.reduce((sum, r) => sum + mine(r).reduce((s, l) => s + Number(l.end - l.start), 0), 0)).toBeGreaterThanOrEqual(ready.table);
    // malloc's memory: a chunk of its own, or grown into an arena's heap (where the mmap threshold has risen).
    for (const region of named) expect(['malloc-chunk', 'malloc-arena', 'heap']).toContain(region.kind);
  });

  it('thread stacks hold a stack pointer the test reads raw; the worker has its own', (ctx) => {
    requireKsm(ctx);
    const stacks = list.filter((r) => r.kind === 'thread-stack');
    const pointers = rawStackPointers(child.pid);
    expect(stacks.length).toBeGreaterThanOrEqual(2);
    for (const stack of stacks) expect(pointers.some((sp) => sp >= stack.start && sp < stack.end), stack.kindEvidence).toBe(true);
    // Node's Worker runs on a 4 MiB stack (its default stackSizeMb).
    expect(stacks.some((s) => s.size === 4 * 1024 * 1024)).toBe(true);
  });

  it("V8's code range: one 512 MiB reservation per isolate (main thread and worker), executable pages inside", (ctx) => {
    requireKsm(ctx);
    const inside = list.filter((r) => r.kind === 'v8-code-range');
    expect(inside.some((r) => r.perms.includes('x'))).toBe(true);
    const spans = new Set(inside.map((r) => /inside (0x[0-9a-f]+)-(0x[0-9a-f]+)/.exec(r.kindEvidence!)!.slice(1).join('-')));
    // One per isolate, where its bounds show: a reservation whose first or
    // last VMA mmap placed against a neighbour with the same flags has no
    // visible bound there, and stays anonymous (never guessed).
    expect(spans.size).toBeGreaterThanOrEqual(1);
    expect(spans.size).toBeLessThanOrEqual(2);
    for (const span of spans) {
      const [start, end] = span.split('-').map((x) => BigInt(x));
      expect(end! - start!).toBe(512n * MiB);
      // Raw: the reservation is contiguous, nothing else in it but the remapped builtins.
      const raw = rawVmas(child.pid).filter((vma) => vma.start >= start! && vma.end <= end!);
      expect(raw.reduce((sum, vma) => sum + (vma.end - vma.start), 0n)).toBe(512n * MiB);
    }
  });

  it('glibc arenas are 64 MiB-aligned heaps; the brk heap is the main arena', (ctx) => {
    requireKsm(ctx);
    const arenas = list.filter((r) => r.kind === 'malloc-arena');
    expect(arenas.length).toBeGreaterThan(0);
    for (const arena of arenas) expect(arena.start % (64n * MiB)).toBe(0n);
    expect(list.find((r) => r.pathname === '[heap]')?.kindEvidence).toContain('main arena');
  });

  it('what cannot be told stays anonymous: our own mmap, and V8 heap pages', (ctx) => {
    requireKsm(ctx);
    expect(at(BigInt(ready.ours)).kind).toBe('anonymous');
    const v8Pages = list.filter((r) => r.pathname === '' && r.vmFlags.includes('dc') && r.perms === 'rw-p' && r.kind !== 'v8-code-range' && r.kind !== 'wasm-memory');
    expect(v8Pages.length).toBeGreaterThan(5);
    for (const page of v8Pages) expect(page.kind).toBe('anonymous');
  });

  it('layoutReads: false: the kinds the layout tells alone, the read-told ones anonymous, every figure the same', async (ctx) => {
    requireKsm(ctx);
    const READ_KINDS = ['thread-stack', 'malloc-chunk'];
    const [full, bare] = [(await regions(child.pid)).regions, (await regions(child.pid, { layoutReads: false })).regions];
    // The layout the test set up holds every kind that needs reads.
    for (const kind of ['thread-stack', 'malloc-chunk']) expect(full.some((r) => r.kind === kind)).toBe(true);
    const byStart = new Map(bare.map((r) => [r.start, r]));
    let compared = 0;
    for (const region of full) {
      const other = byStart.get(region.start);
      if (other === undefined || other.end !== region.end || other.rss !== region.rss) continue; // changed between the reads
      compared++;
      if (READ_KINDS.includes(region.kind)) expect([region.start, other.kind]).toEqual([region.start, 'anonymous']);
      else expect([region.start, other.kind, other.kindEvidence]).toEqual([region.start, region.kind, region.kindEvidence]);
      expect(other.label).toBe(region.label);
    }
    expect(compared).toBeGreaterThan(full.length / 2);
    expect(bare.find((r) => r.start === BigInt(ready.wasm.address))?.kind).toBe('wasm-memory');
    const report = await profit(child.pid, { layoutReads: false, exact: false });
    expect(report.regions.every((r) => !READ_KINDS.includes(r.kind))).toBe(true);
    await expect(regions(child.pid, { layoutReads: 'no' as unknown as boolean })).rejects.toThrow(TypeError);
    await expect(profit(child.pid, { layoutReads: 1 as unknown as boolean })).rejects.toThrow(TypeError);
  });

  it('estimate() names the same kinds and labels', async (ctx) => {
    requireKsm(ctx);
    const result = await estimate(child.pid);
    const vmas = result.processes[0]!.vmas;
    const byStart = new Map(vmas.map((vma) => [vma.start, vma]));
    const wasm = byStart.get(BigInt(ready.wasm.address))!;
    expect(wasm.kind).toBe('wasm-memory');
    expect(wasm.label).toBe('wasm memory');
    const chunk = vmas.find((vma) => vma.start <= BigInt(ready.big.labelled) && BigInt(ready.big.labelled) < vma.end)!;
    expect(chunk.kind).toBe('malloc-chunk');
    expect(chunk.label?.split(', ')).toContain('big buffer');
  });

  // Last: the child then merges, which the tests above do not expect.
  it('profit() gives the reported rows the kinds regions() gives, the read-told ones among them', async (ctx) => {
    requireKsm(ctx);
    const { mergeAny } = await child.send<{ mergeAny: boolean }>({ cmd: 'enableMerge' });
    expect(mergeAny).toBe(true);
    const [report, kinds] = [await profit(child.pid, { exact: false }), (await regions(child.pid)).regions];
    const byStart = new Map(kinds.map((r) => [r.start, r]));
    // The big Buffer (a malloc chunk) and the worker's stack are mergeable now: profit() reports them.
    for (const kind of ['thread-stack', 'malloc-chunk']) expect(report.regions.some((r) => r.kind === kind)).toBe(true);
    let compared = 0;
    for (const row of report.regions) {
      const region = byStart.get(row.start);
      if (region === undefined || region.end !== row.end) continue; // changed between the reads
      compared++;
      expect([row.start, row.kind, row.kindEvidence]).toEqual([row.start, region.kind, region.kindEvidence]);
    }
    expect(compared).toBeGreaterThan(report.regions.length / 2);
  });
});

describe('labelMemory()', () => {
  it('names whole pages only and advises nothing', (ctx) => {
    requireKsm(ctx);
    const buffer = Buffer.alloc(3 * 4096 + 100);
    const range = labelMemory(buffer, 'x');
    expect(range.length % 4096).toBe(0);
    expect(range.length).toBeLessThanOrEqual(buffer.length);
    const vma = rawVmas('self').find((v) => v.start <= range.address && range.address < v.end)!;
    expect(vma.flags).not.toContain('mg');
    expect(() => labelMemory(buffer, '')).toThrow(RangeError);
    expect(() => labelMemory(buffer, 5 as never)).toThrow(TypeError);
    expect(() => labelMemory({} as never, 'x')).toThrow(TypeError);
  });
});

describe('the layout rules on made-up maps', () => {
  const vma = (start: bigint, end: bigint, perms: string, flags: string[] = []): LayoutVma => ({ start, end, perms, pathname: '', inode: 0, vmFlags: flags });
  const base = 0x7f0000000000n;

  it('a WebAssembly memory needs its guard to reach 8 GiB past its start', () => {
    const memory = vma(base, base + 64n * 1024n, 'rw-p');
    expect(classifyVmas([memory, vma(memory.end, base + 8n * GiB, '---p')])[0]!.kind).toBe('wasm-memory');
    expect(classifyVmas([memory, vma(memory.end, base + 4n * GiB, '---p')])[0]!.kind).toBe('anonymous');
    // Not a whole number of 64 KiB pages: not a WebAssembly memory.
    const odd = vma(base, base + 4096n, 'rw-p');
    expect(classifyVmas([odd, vma(odd.end, base + 8n * GiB, '---p')])[0]!.kind).toBe('anonymous');
  });

  it('an arena needs 64 MiB alignment, MAP_NORESERVE and a rest ending at 64 MiB', () => {
    const heap = vma(base, base + MiB, 'rw-p', ['nr']);
    expect(classifyVmas([heap, vma(heap.end, base + 64n * MiB, '---p', ['nr'])])[0]!.kind).toBe('malloc-arena');
    expect(classifyVmas([heap, vma(heap.end, base + 63n * MiB, '---p', ['nr'])])[0]!.kind).toBe('anonymous');
    const shifted = vma(base + MiB, base + 2n * MiB, 'rw-p', ['nr']);
    expect(classifyVmas([shifted, vma(shifted.end, base + 65n * MiB, '---p', ['nr'])])[0]!.kind).toBe('anonymous');
    const reserved = vma(base, base + MiB, 'rw-p');
    expect(classifyVmas([reserved, vma(reserved.end, base + 64n * MiB, '---p')])[0]!.kind).toBe('anonymous');
  });

  it('a code range is exactly 512 or 128 MiB with executable pages inside', () => {
    const layout = (size: bigint): LayoutVma[] => [vma(base, base + 8192n, 'rw-p'), vma(base + 8192n, base + 12288n, 'rwxp'), vma(base + 12288n, base + size, '---p')];
    expect(classifyVmas(layout(512n * MiB)).map((c) => c.kind)).toEqual(['v8-code-range', 'v8-code-range', 'reserved']);
    expect(classifyVmas(layout(128n * MiB))[1]!.kind).toBe('v8-code-range');
    expect(classifyVmas(layout(511n * MiB)).map((c) => c.kind)).toEqual(['anonymous', 'jit-code', 'reserved']);
  });

  // V8's code range as Node 20 lays it out (seen in smaps): 8 KiB read-write, a guard page, the executable
  // pages, the uncommitted rest, the embedded builtins remapped (node's r-xp text), and the rest after them.
  const KiB = 1024n;
  const reservation = (start: bigint): LayoutVma[] => {
    const blob = start + 512n * MiB - 1792n * KiB;
    return [
      vma(start, start + 8n * KiB, 'rw-p'),
      vma(start + 8n * KiB, start + 12n * KiB, '---p'),
      vma(start + 12n * KiB, start + 252n * KiB, 'rwxp'),
      vma(start + 252n * KiB, blob, '---p'),
      { ...vma(blob, blob + 1608n * KiB, 'r-xp'), pathname: '/usr/bin/node', inode: 1 },
      vma(blob + 1608n * KiB, start + 512n * MiB, '---p'),
    ];
  };
  const kinds = (vmas: LayoutVma[]): string[] => classifyVmas(vmas).map((c) => c.kind);

  it('small mappings placed against a code range are not taken into it, one of them starting exactly 512 MiB below a boundary inside', () => {
    const start = base + 4n * MiB;
    const range = reservation(start);
    // 16 KiB mappings with alternating flags (they do not merge), from 2 MiB below the reservation up to it:
    // the one at start - 1792 KiB is exactly 512 MiB below the builtins' start.
    const below = Array.from({ length: 128 }, (_, k) => vma(start - 2n * MiB + BigInt(k) * 16n * KiB, start - 2n * MiB + BigInt(k + 1) * 16n * KiB, 'rw-p', k % 2 === 0 ? ['mg'] : []));
    expect(below.some((v) => v.start + 512n * MiB === range[4]!.start)).toBe(true);
    const found = kinds([...below, ...range]);
    expect(found.slice(0, below.length).every((k) => k === 'anonymous')).toBe(true);
    expect(found.slice(below.length)).toEqual(['v8-code-range', 'reserved', 'v8-code-range', 'reserved', 'file', 'reserved']);
    expect(classifyVmas([...below, ...range])[below.length]!.evidence).toContain(`inside 0x${start.toString(16)}-0x${(start + 512n * MiB).toString(16)}`);
  });

  it('two code ranges back to back are both told, though windows of 512 MiB straddle them', () => {
    const first = reservation(base);
    const second = reservation(base + 512n * MiB);
    // A window from inside the first to the same place in the second: as long, with executable pages in it.
    expect(second[0]!.end).toBe(first[1]!.start + 512n * MiB);
    const found = kinds([...first, ...second]);
    const told = ['v8-code-range', 'reserved', 'v8-code-range', 'reserved', 'file', 'reserved'];
    expect(found).toEqual([...told, ...told]);
  });

  it('finds every code range a walk from each start finds, on random layouts', () => {
    // The rule written plainly (quadratic): from each part of a contiguous
    // run, the nearest end exactly a code range size away with an executable
    // anonymous VMA between is a window; going up, a window overlapping the
    // one kept replaces it only holding more of V8's pieces (executable
    // anonymous VMAs and file r-xp mappings).
    const part = (v: LayoutVma): boolean => v.pathname === '' || v.perms === 'r-xp';
    const pieceOfV8 = (v: LayoutVma): boolean => (v.pathname === '' ? v.perms[2] === 'x' : v.perms === 'r-xp');
    const plainly = (vmas: LayoutVma[]): number[] => {
      const windows: Array<{ first: number; last: number; pieces: number }> = [];
      for (let i = 0; i < vmas.length; i++) {
        if (!part(vmas[i]!)) continue;
        let last: number | undefined;
        for (const size of V8_CODE_RANGE_SIZES) {
          let executable = false;
          for (let j = i; j < vmas.length; j++) {
            if (j > i && (!part(vmas[j]!) || vmas[j]!.start !== vmas[j - 1]!.end)) break;
            if (vmas[j]!.pathname === '' && vmas[j]!.perms[2] === 'x') executable = true;
            if (vmas[j]!.end === vmas[i]!.start + size) {
              if (executable && (last === undefined || j < last)) last = j;
              break;
            }
          }
        }
        if (last !== undefined) windows.push({ first: i, last, pieces: vmas.slice(i, last + 1).filter(pieceOfV8).length });
      }
      const kept: typeof windows = [];
      for (const w of windows) {
        const k = kept[kept.length - 1];
        if (k !== undefined && w.first <= k.last) {
          if (w.pieces > k.pieces) kept[kept.length - 1] = w;
          continue;
        }
        kept.push(w);
      }
      const inside: number[] = [];
      for (const w of kept) for (let k = w.first; k <= w.last; k++) if (['anonymous', 'jit-code'].includes(classifyVmas([vmas[k]!])[0]!.kind)) inside.push(k);
      return inside;
    };
    const piece = fc.record({
      mib: fc.constantFrom(4n, 8n, 16n, 32n, 64n, 96n, 120n, 124n),
      perms: fc.constantFrom('rw-p', 'rw-p', '---p', '---p', 'rwxp', 'r-xp'),
      file: fc.boolean(),
      gap: fc.nat(9),
    });
    fc.assert(fc.property(fc.array(piece, { maxLength: 40 }), (pieces) => {
      let at = base;
      const vmas = pieces.map((p) => {
        if (p.gap === 0) at += MiB; // a hole: the run ends
        const v: LayoutVma = { start: at, end: at + p.mib * MiB, perms: p.perms, pathname: p.file ? '/usr/bin/node' : '', inode: p.file ? 1 : 0, vmFlags: [] };
        at = v.end;
        return v;
      });
      const found = classifyVmas(vmas).flatMap((c, i) => (c.kind === 'v8-code-range' ? [i] : []));
      expect(found).toEqual(plainly(vmas));
    }), { numRuns: 2000 });
  });

  it('a chunk count is taken for exactly the VMAs starting where it was told, in address order or not, few counts or many', () => {
    const piece = fc.record({ pages: fc.nat(3), gap: fc.nat(2), perms: fc.constantFrom('rw-p', 'rw-p', 'r--p', '---p') });
    // An empty VMA shares its start with the one after it: both are told (by index, one count among 32 VMAs).
    const page = 4096n;
    const shared = [{ start: base, end: base }, { start: base, end: base + page }, ...Array.from({ length: 30 }, (_, i) => ({ start: base + BigInt(2 + i) * page, end: base + BigInt(3 + i) * page }))]
      .map((b): LayoutVma => ({ ...b, perms: 'rw-p', pathname: '', inode: 0, vmFlags: [] }));
    expect(classifyVmas(shared, { mallocChunks: new Map([[base, 2]]) }).slice(0, 3).map((c) => c.kind)).toEqual(['malloc-chunk', 'malloc-chunk', 'anonymous']);
    // A few counts against many VMAs are looked up by VMA index (a search per count), many by start.
    const counts = (most: number) => fc.array(fc.tuple(fc.nat(120), fc.nat(3)), { maxLength: most });
    fc.assert(fc.property(fc.array(piece, { maxLength: 60 }), fc.oneof(counts(3), counts(90)), fc.boolean(), (pieces, told, shuffle) => {
      let at = base;
      const vmas = pieces.map((p) => {
        at += BigInt(p.gap) * 4096n; // 0: right after the one before (an empty VMA shares its start with the next)
        const v: LayoutVma = { start: at, end: at + BigInt(p.pages) * 4096n, perms: p.perms, pathname: '', inode: 0, vmFlags: [] };
        at = v.end;
        return v;
      });
      if (shuffle) vmas.reverse();
      // Counts at starts of VMAs and between them.
      const mallocChunks = new Map(told.map(([page, count]) => [base + BigInt(page) * 4096n, count]));
      const layout = classifyVmas(vmas);
      const expected = layout.map((c, i) => (c.kind === 'anonymous' && (mallocChunks.get(vmas[i]!.start) ?? 0) > 0 ? 'malloc-chunk' : c.kind));
      expect(classifyVmas(vmas, { mallocChunks }).map((c) => c.kind)).toEqual(expected);
    }), { numRuns: 1000 });
  });

  it('a stack needs a stack pointer inside; a chunk needs its headers', () => {
    const stack = vma(base, base + 8n * MiB, 'rw-p');
    expect(classifyVmas([stack], { stackPointers: new Map([[42, base + 100n]]) })[0]!.kind).toBe('thread-stack');
    expect(classifyVmas([stack], { stackPointers: new Map([[42, base + 8n * MiB]]) })[0]!.kind).toBe('anonymous');
    expect(classifyVmas([stack], { mallocChunks: new Map([[base, 1]]) })[0]!.kind).toBe('malloc-chunk');
    expect(classifyVmas([stack])[0]!.kind).toBe('anonymous');
  });

  it('each stack names its threads in the order read, at every edge of every VMA; a list out of address order too', () => {
    const page = 4096n;
    const list = Array.from({ length: 9 }, (_, i) => vma(base + BigInt(i) * 4n * page, base + BigInt(i) * 4n * page + 3n * page, i === 4 ? 'r--p' : 'rw-p'));
    // Threads at a start, in a gap between VMAs, at an end (outside), two in one VMA (9 read before 3), one in a read-only VMA.
    const sp = new Map<number, bigint>([[7, list[2]!.start], [8, list[2]!.end], [9, list[6]!.end - 8n], [3, list[6]!.start + 8n], [5, list[4]!.start], [1, list[8]!.end - 1n]]);
    const evidence = (vmas: LayoutVma[]): Array<string | undefined> => classifyVmas(vmas, { stackPointers: sp }).map((c) => (c.kind === 'thread-stack' ? c.evidence : c.kind));
    const sorted = evidence(list);
    expect(sorted).toEqual(list.map((_, i) =>
      i === 2 ? 'holds the stack pointer of thread 7 (task/7/syscall)'
        : i === 6 ? 'holds the stack pointer of thread 9, 3 (task/9/syscall)'
          : i === 8 ? 'holds the stack pointer of thread 1 (task/1/syscall)'
            : 'anonymous'));
    const reversed = [...list].reverse();
    expect(evidence(reversed)).toEqual([...sorted].reverse());
  });

  it('reads the stack pointer of task/TID/syscall', () => {
    expect(parseSyscallStackPointer('202 0x1 0x189 0x0 0x0 0x0 0xffffffff 0x7f890d93bc70 0x7f890e1c3f16\n')).toBe(0x7f890d93bc70n);
    expect(parseSyscallStackPointer('-1 0x7ffc0000 0x400000\n')).toBe(0x7ffc0000n);
    expect(parseSyscallStackPointer('running\n')).toBeUndefined();
  });
});
