/**
 * The addon's batch read of chunk headers (native/header-read.cc) and the
 * walk built on it (lib/kernel/malloc-chunks.ts): the bytes are mem's own
 * where pagemap shows the page present, read raw here; an absent page stays
 * absent; the walk tells the same chunks as the read-at-a-time walk
 * through the libuv pool on a real Node process; and the first headers a
 * smaps read reads beside its scan are of the VMAs mallocChunkCandidate()
 * takes of that scan, with the bytes a header read of them gives.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { bindingState, type NativeBinding } from '../lib/binding.js';
import { startHeaderRead, startSmapsRead } from '../lib/kernel/files.js';
import { readMallocChunksNative } from '../lib/kernel/malloc-chunks.js';
import { NATIVE_SMAPS_FIELDS, fromNativeScan } from '../lib/kernel/smaps-native.js';
import { readSmaps } from '../lib/kernel/smaps-reader.js';
import { resolveTarget } from '../lib/kernel/target.js';
import { readLayoutFacts, readMallocChunksByPool, readMallocChunksEarly } from '../lib/kernel/vma-evidence.js';
import { mallocChunkCandidate } from '../lib/kernel/vma.js';
import { addressOf, startFixture, unusedPid, type Holder } from './helpers/ksm.js';

const state = bindingState();
const native = state.loaded ? state.binding : (undefined as unknown as NativeBinding);
const PAGE = state.loaded ? native.pageSize() : 4096;

/** PM_PRESENT of the page at `address` in this process, read raw. */
function presentRaw(address: bigint): boolean {
  const entry = Buffer.alloc(8);
  const fd = fs.openSync('/proc/self/pagemap', 'r');
  try {
    fs.readSync(fd, entry, 0, 8, Number((address / BigInt(PAGE)) * 8n));
  } finally {
    fs.closeSync(fd);
  }
  return (entry.readBigUInt64LE(0) >> 63n) === 1n;
}

function memRaw(pid: number, address: bigint): Buffer {
  const out = Buffer.alloc(16);
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try {
    expect(fs.readSync(fd, out, 0, 16, Number(address))).toBe(16);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

describe.runIf(state.loaded)("the addon's header read", () => {
  it("gives mem's 16 bytes where the page is present, zeros where it is absent, unmapped or split by a page end", async () => {
    const buffer = native.alloc(3 * PAGE, []);
    const base = addressOf(buffer);
    for (let i = 0; i < 16; i++) buffer[i] = i + 1;
    buffer.fill(0xab, 2 * PAGE, 2 * PAGE + 64);
    expect(presentRaw(base + BigInt(PAGE))).toBe(false);
    const addresses = [base, base + BigInt(PAGE), base + 2n * BigInt(PAGE) + 8n, BigInt(PAGE), base + 2n * BigInt(PAGE) + BigInt(PAGE - 8)];
    const headers = await startHeaderRead(`/proc/${process.pid}`, BigUint64Array.from(addresses))!.promise;
    expect(headers.length).toBe(16 * addresses.length);
    expect(headers.subarray(0, 16)).toEqual(memRaw(process.pid, base));
    expect([...headers.subarray(0, 16)]).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect([...headers.subarray(16, 32)]).toEqual(new Array(16).fill(0));
    // Still absent: the read faulted nothing in.
    expect(presentRaw(base + BigInt(PAGE))).toBe(false);
    expect(headers.subarray(32, 48)).toEqual(memRaw(process.pid, base + 2n * BigInt(PAGE) + 8n));
    expect([...headers.subarray(32, 48)]).toEqual(new Array(16).fill(0xab));
    // Page 1 of the address space is never mapped; a header across a page end is no header.
    expect([...headers.subarray(48, 80)]).toEqual(new Array(32).fill(0));
  });

  it('fails as open(2) does for a process that is gone, and refuses bad arguments', async () => {
    const pid = unusedPid();
    await expect(startHeaderRead(`/proc/${pid}`, new BigUint64Array([4096n]))!.promise).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open' });
    const deliver = (): void => {};
    expect(() => native.readPresentHeaders!('/proc/self', new Uint32Array(2) as unknown as BigUint64Array, deliver)).toThrow(TypeError);
    expect(() => native.readPresentHeaders!('', new BigUint64Array(1), deliver)).toThrow(TypeError);
    expect(() => native.readPresentHeaders!('/proc/self', new BigUint64Array((1 << 20) + 1), deliver)).toThrow(RangeError);
  });
});

describe.runIf(state.loaded)('a real Node process', () => {
  let child: Holder & { ready: Record<string, unknown> };
  beforeAll(async () => {
    // Unsanitized in the sanitized run too: ASan's allocator maps no glibc chunks.
    child = await startFixture('node-memory.cjs', [], {}, { sanitized: false });
  });
  afterAll(async () => {
    await child?.kill();
  });

  describe('malloc chunks told in the addon', () => {
    it('are the chunks the read-at-a-time walk tells, the big Buffer among them', async () => {
      const target = resolveTarget(child.pid, undefined);
      const candidates = (await readSmaps(target)).vmas.filter(mallocChunkCandidate);
      expect(candidates.length).toBeGreaterThan(0);
      const byAddon = await readMallocChunksNative(target, candidates, PAGE, 4096, 10_000);
      const byPool = await readMallocChunksByPool(target, candidates, PAGE, 10_000);
      expect(byAddon).toEqual(byPool);
      // The Buffer's chunk header is a page below its labelled bytes (node-kinds.test.ts reads it raw).
      const header = BigInt((child.ready.big as { labelled: string }).labelled) - BigInt(PAGE);
      expect([...byAddon!.keys()].some((start) => candidates.some((v) => v.start === start && start <= header && header < v.end))).toBe(true);
      // Batched (process_vm_readv, where the directory names a pid) and through mem a read each: the same bytes.
      const starts = BigUint64Array.from(candidates, (v) => v.start);
      const batched = await startHeaderRead(`/proc/${child.pid}`, starts)!.promise;
      const oneByOne = await startHeaderRead(`/proc/${child.pid}/.`, starts)!.promise;
      expect(batched.equals(oneByOne)).toBe(true);
      expect(batched.some((byte) => byte !== 0)).toBe(true);
      // A walk that may take one chunk per VMA tells only the VMAs holding exactly one.
      const one = await readMallocChunksNative(target, candidates, PAGE, 1, 10_000);
      expect(one).toEqual(new Map([...byPool].filter(([, chunks]) => chunks === 1)));
    });
  });

  describe('first chunk headers read beside the smaps scan', () => {
    /** The child's smaps scanned by the addon with `rule`'s headers read beside it, and the VMAs made of that scan. */
    async function scanWith(rule: 'candidates' | 'reported', limit: number) {
      const scan = await startSmapsRead(`/proc/${child.pid}/smaps`, NATIVE_SMAPS_FIELDS, { chunks: { rule, limit } }).promise;
      if (Buffer.isBuffer(scan)) throw new Error('smaps was not scanned by the addon');
      return { scan, vmas: fromNativeScan(scan).vmas };
    }

    it("are of mallocChunkCandidate()'s VMAs of the same scan, in order, with a header read's bytes", async () => {
      const { scan, vmas } = await scanWith('candidates', 4096);
      // Node's V8 pages are anonymous rw-p but MADV_DONTFORK (dc): the rule leaves them out.
      expect(vmas.some((v) => v.pathname === '' && v.perms === 'rw-p' && v.vmFlags.includes('dc'))).toBe(true);
      const expected = vmas.filter(mallocChunkCandidate);
      expect(expected.length).toBeGreaterThan(1);
      const got = [...scan.chunkCandidates!].map((v) => vmas[v]!);
      expect(got.map((v) => [v.start, v.end])).toEqual(expected.map((v) => [v.start, v.end]));
      const again = await startHeaderRead(`/proc/${child.pid}`, BigUint64Array.from(expected, (v) => v.start))!.promise;
      expect(scan.chunkHeaders!.equals(again)).toBe(true);
      // Each header read (its page present) as mem has it.
      const read = expected.filter((_, i) => scan.chunkHeaders!.subarray(16 * i, 16 * i + 16).some((byte) => byte !== 0));
      expect(read.length).toBeGreaterThan(0);
      for (const v of read) {
        const i = expected.indexOf(v);
        expect(scan.chunkHeaders!.subarray(16 * i, 16 * i + 16)).toEqual(memRaw(child.pid, v.start));
      }
      // Walked on from there: the chunks a walk of its own reads tell, the big Buffer's (its header a page below its labelled bytes) among them.
      const target = resolveTarget(child.pid, undefined);
      const early = readMallocChunksEarly(target, scan, vmas, PAGE)!;
      const chunks = await early.chunks;
      expect(chunks).toEqual(await readMallocChunksNative(target, expected, PAGE, 4096, 10_000));
      // The addon walked them (a count per candidate), as the walk from the first headers in JavaScript does.
      expect(scan.chunkTiles!.length).toBe(expected.length);
      expect([...scan.chunkTiles!].filter((n) => n > 0).length).toBe(chunks.size);
      const { chunkTiles: _walked, ...unwalked } = scan;
      expect(await readMallocChunksEarly(target, unwalked, vmas, PAGE)!.chunks).toEqual(chunks);
      expect(await readMallocChunksByPool(target, expected, PAGE, 10_000)).toEqual(chunks);
      const header = BigInt((child.ready.big as { labelled: string }).labelled) - BigInt(PAGE);
      expect([...chunks.keys()].some((start) => expected.some((v) => v.start === start && start <= header && header < v.end))).toBe(true);
    });

    it("'reported' takes only the candidates profit() reports (KSM pages, or mg), and the limit cuts the list", async () => {
      const { scan, vmas } = await scanWith('reported', 4096);
      const expected = vmas.filter((v) => mallocChunkCandidate(v) && ((v.ksm ?? 0) > 0 || v.vmFlags.includes('mg')));
      // allocMergeable()'s buffer is one; the big Buffer (not mergeable) is not.
      expect(expected.some((v) => v.start === BigInt(child.ready.ours as string))).toBe(true);
      expect([...scan.chunkCandidates!].map((v) => vmas[v]!.start)).toEqual(expected.map((v) => v.start));
      const cut = await scanWith('candidates', 1);
      expect([...cut.scan.chunkCandidates!].map((v) => cut.vmas[v]!.start)).toEqual([cut.vmas.filter(mallocChunkCandidate)[0]!.start]);
      expect(cut.scan.chunkHeaders!.length).toBe(16);
    });

    it('are taken by readLayoutFacts() only for the very VMAs the read settled on', async () => {
      const target = resolveTarget(child.pid, undefined);
      const { vmas } = await scanWith('candidates', 4096);
      const candidates = vmas.filter(mallocChunkCandidate);
      // A result no read gives: which of the two calls below took it shows.
      const planted = new Map([[1n, 7]]);
      const taken = await readLayoutFacts(target, vmas, PAGE, undefined, new Map(), { candidates, chunks: Promise.resolve(planted) });
      expect(taken.mallocChunks).toBe(planted);
      // The same bounds in other objects (another read of smaps): read again.
      const copies = candidates.map((v) => ({ ...v }));
      const readAgain = await readLayoutFacts(target, vmas, PAGE, undefined, new Map(), { candidates: copies, chunks: Promise.resolve(planted) });
      expect(readAgain.mallocChunks).not.toBe(planted);
      expect(readAgain.mallocChunks).toEqual(await readMallocChunksNative(target, candidates, PAGE, 4096, 10_000));
    });

    it('are refused with a bad rule, a bad limit, or a file that is not smaps', () => {
      const deliver = (): void => {};
      const smaps = `/proc/${child.pid}/smaps`;
      expect(() => native.readProcFile(smaps, 'smaps', deliver, 'all' as 'candidates', 10)).toThrow(TypeError);
      expect(() => native.readProcFile(`/proc/${child.pid}/maps`, 'smaps', deliver, 'candidates', 10)).toThrow(TypeError);
      expect(() => native.readProcFile(smaps, undefined, deliver, 'candidates', 10)).toThrow(TypeError);
      for (const limit of [-1, 1.5, (1 << 20) + 1, Number.NaN, undefined]) {
        expect(() => native.readProcFile(smaps, 'smaps', deliver, 'candidates', limit)).toThrow(RangeError);
      }
    });
  });
});

describe.runIf(state.loaded)('a VMA that several mapped chunks tile', () => {
  let child: Holder & { ready: Record<string, unknown> };
  beforeAll(async () => {
    child = await startFixture('malloc-tiles.cjs', [], {}, { sanitized: false });
  });
  afterAll(async () => {
    await child?.kill();
  });

  it('is walked to its end beside the scan, round after round, as the walks in JavaScript tell it', async () => {
    expect(child.ready.error).toBeUndefined();
    const starts = (child.ready.chunks as string[]).map((hex) => BigInt(hex));
    // Each chunk's header, raw: IS_MMAPPED and a size of whole pages.
    for (const start of starts) expect(memRaw(child.pid, start).readBigUInt64LE(8) & 7n).toBe(2n);
    const scan = await startSmapsRead(`/proc/${child.pid}/smaps`, NATIVE_SMAPS_FIELDS, { chunks: { rule: 'candidates', limit: 4096 } }).promise;
    if (Buffer.isBuffer(scan)) throw new Error('smaps was not scanned by the addon');
    const { vmas } = fromNativeScan(scan);
    const holding = vmas.find((v) => starts.every((s) => v.start <= s && s < v.end))!;
    expect(holding).toBeDefined();
    const lowest = starts.reduce((a, b) => (a < b ? a : b));
    expect(holding.start).toBe(lowest);
    const at = [...scan.chunkCandidates!].findIndex((v) => vmas[v] === holding);
    expect(at).toBeGreaterThanOrEqual(0);
    expect(scan.chunkTiles![at]).toBe(3);
    const target = resolveTarget(child.pid, undefined);
    const candidates = vmas.filter(mallocChunkCandidate);
    const byPool = await readMallocChunksByPool(target, candidates, PAGE, 10_000);
    expect(byPool.get(holding.start)).toBe(3);
    expect(await readMallocChunksEarly(target, scan, vmas, PAGE)!.chunks).toEqual(byPool);
  });
});

