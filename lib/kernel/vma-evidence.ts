/**
 * What classifyVmas() needs beyond smaps, read from the process: its
 * threads' stack pointers (/proc/PID/task/TID/syscall) and the malloc chunk
 * headers at the start of its candidate VMAs (16 bytes per chunk, never
 * printed; only from pages pagemap shows present, so the read never faults
 * a page in), all of them in one job of the addon (malloc-chunks.ts), or
 * through the libuv pool without it. Both need ptrace access to the process (root, or
 * the same uid under Yama's ptrace_scope 0); without it that kind is simply
 * not given. Memory reads wait for the process's mmap lock: they stop at the
 * deadline and what was read by then is used.
 */
import * as fs from 'node:fs';

import { listDirectory, readTextOrUndefined, type ScanReads } from './files.js';
import type { NativeSmapsScan } from '../binding.js';
import { HEADER_BYTES, readMallocChunksNative, type VmaBounds } from './malloc-chunks.js';
import { procPath } from './paths.js';
import { isStuck, withDeadline } from './proc-read.js';
import { smapsScannedNatively } from './smaps-reader.js';
import type { ProcessTarget } from './target.js';
import { mallocChunkCandidate, mmappedChunkSize, type LayoutFacts, type LayoutVma } from './vma.js';

/** At most this many VMAs are read for chunk headers, and this many chunks walked in one. */
const MAX_CHUNK_VMAS = 4096;
const MAX_CHUNKS_PER_VMA = 4096;
const DEFAULT_DEADLINE_MS = 2000;

/** `nr a1 .. a6 sp pc` (blocked in a system call) or `-1 sp pc` (blocked outside one): the stack pointer. */
export function parseSyscallStackPointer(text: string): bigint | undefined {
  const fields = text.trim().split(/\s+/);
  if (fields.length !== 9 && fields.length !== 3) return undefined;
  const sp = fields[fields.length - 2]!;
  return /^0x[0-9a-f]+$/.test(sp) ? BigInt(sp) : undefined;
}

/** The stack pointer of every thread of the process blocked in the kernel; running threads are not in it. */
export function readStackPointers(target: ProcessTarget): Map<number, bigint> {
  const out = new Map<number, bigint>();
  let tids: string[];
  try {
    tids = listDirectory(procPath(target.root, target.dir, 'task'));
  } catch {
    return out;
  }
  for (const tid of tids) {
    if (!/^\d+$/.test(tid)) continue;
    const text = readTextOrUndefined(procPath(target.root, target.dir, `task/${tid}/syscall`));
    const sp = text === undefined ? undefined : parseSyscallStackPointer(text);
    if (sp !== undefined) out.set(Number(tid), sp);
  }
  return out;
}

/** PM_PRESENT (bit 63) of a pagemap entry: the page is in RAM (not swapped, not untouched). */
const PM_PRESENT = 1n << 63n;

/** Whether the page holding `address` is present: reading an absent one would fault it in (the zero page, or a swap-in). */
async function present(pagemap: fs.promises.FileHandle, address: bigint, pageSize: number): Promise<boolean> {
  const entry = Buffer.alloc(8);
  const { bytesRead } = await pagemap.read(entry, 0, 8, Number((address / BigInt(pageSize)) * 8n));
  return bytesRead === 8 && (entry.readBigUInt64LE(0) & PM_PRESENT) !== 0n;
}

/** How many mmapped chunks tile [start, end) exactly, or 0. Only present pages are read. */
async function tiledChunks(
  handle: fs.promises.FileHandle,
  pagemap: fs.promises.FileHandle,
  start: bigint,
  end: bigint,
  pageSize: number,
): Promise<number> {
  const header = Buffer.alloc(16);
  let at = start;
  let chunks = 0;
  while (at < end && chunks < MAX_CHUNKS_PER_VMA) {
    // malloc wrote every header it made: a header page that is not present holds no header to vouch for.
    if (!(await present(pagemap, at, pageSize))) return 0;
    // User addresses stay below 2^57: exact as a double.
    const { bytesRead } = await handle.read(header, 0, 16, Number(at));
    const size = bytesRead === 16 ? mmappedChunkSize(header, end - at, pageSize) : undefined;
    if (size === undefined) return 0;
    at += size;
    chunks++;
  }
  return at === end ? chunks : 0;
}

/** The VMAs whose chunk headers are read: the first MAX_CHUNK_VMAS that can hold mmapped chunks. */
const chunkCandidates = (vmas: readonly LayoutVma[]): LayoutVma[] => vmas.filter(mallocChunkCandidate).slice(0, MAX_CHUNK_VMAS);

/** The candidates (by start) that glibc mmapped chunks tile exactly: in the addon (malloc-chunks.ts), or here a read at a time. */
async function readChunksOf(target: ProcessTarget, candidates: readonly VmaBounds[], pageSize: number, deadlineMs: number): Promise<Map<bigint, number>> {
  if (target.kernelThread === true || isStuck(target) || candidates.length === 0) return new Map();
  return (await readMallocChunksNative(target, candidates, pageSize, MAX_CHUNKS_PER_VMA, deadlineMs)) ??
    readMallocChunksByPool(target, candidates, pageSize, deadlineMs);
}

/** readChunksOf() without the addon: a pagemap and a mem read per header, through the libuv pool. */
export async function readMallocChunksByPool(
  target: ProcessTarget,
  candidates: readonly VmaBounds[],
  pageSize: number,
  deadlineMs = DEFAULT_DEADLINE_MS,
): Promise<Map<bigint, number>> {
  const out = new Map<bigint, number>();
  let handle: fs.promises.FileHandle;
  let pagemap: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(procPath(target.root, target.dir, 'mem'), 'r');
  } catch {
    return out; // no ptrace access: malloc chunks are not told
  }
  try {
    pagemap = await fs.promises.open(procPath(target.root, target.dir, 'pagemap'), 'r');
  } catch {
    await handle.close().catch(() => undefined);
    return out;
  }
  let stopped = false;
  const walk = (async () => {
    for (const vma of candidates) {
      if (stopped) return;
      try {
        const chunks = await tiledChunks(handle, pagemap, vma.start, vma.end, pageSize);
        if (chunks > 0) out.set(vma.start, chunks);
      } catch {
        // Unmapped meanwhile, or not readable: not a chunk we can vouch for.
      }
    }
  })();
  try {
    await withDeadline(walk, deadlineMs, () => new Error('deadline'));
  } catch {
    stopped = true; // the mmap lock is held: what was read stands
  }
  void walk.finally(() => Promise.all([handle.close(), pagemap.close()]).catch(() => undefined));
  return new Map(out);
}

/** Whether the layout's facts can be read of the process: a live one of this machine with user memory. */
const readable = (target: ProcessTarget): boolean => target.root === '/' && target.kernelThread !== true;

/**
 * The stack pointers readLayoutFacts() would read, read now: a caller reads
 * them while smaps is read (they need no VMA list), and passes them on;
 * undefined where the scan brings them (`reads`, layoutScanReads()).
 */
export function readStackPointersEarly(target: ProcessTarget, reads: ScanReads | undefined): Map<number, bigint> | undefined {
  return readable(target) && reads?.stackPointers !== true ? readStackPointers(target) : undefined;
}

/**
 * What a smaps read of `target` is to read beside its scan for the layout's
 * facts, on the addon's reader threads: the chunk headers of `rule`'s VMAs
 * (not of a process whose memory reads are stuck), and the threads' stack
 * pointers where the addon scans (the helper reads them before the first
 * piece is out: at 225 VMAs they cost the JavaScript thread 82 us, and the
 * helper 43). Undefined where none can be read.
 */
export function layoutScanReads(target: ProcessTarget, rule: NonNullable<ScanReads['chunks']>['rule']): ScanReads | undefined {
  if (!readable(target)) return undefined;
  const chunks = isStuck(target) ? undefined : { rule, limit: MAX_CHUNK_VMAS };
  const stackPointers = smapsScannedNatively();
  if (chunks === undefined && !stackPointers) return undefined;
  return { ...(chunks === undefined ? {} : { chunks }), ...(stackPointers ? { stackPointers } : {}) };
}

/** The stack pointers a scan brought (layoutScanReads()), by thread id. */
export function stackPointersOfScan(scan: NativeSmapsScan): Map<number, bigint> | undefined {
  const pairs = scan.threadStackPointers;
  if (pairs === undefined || pairs.length % 2 !== 0) return undefined;
  const out = new Map<number, bigint>();
  for (let i = 0; i < pairs.length; i += 2) out.set(Number(pairs[i]!), pairs[i + 1]!);
  return out;
}

/** The chunk headers read beside a smaps scan (readMallocChunksEarly()), with the VMAs they are of. */
export interface EarlyChunks {
  candidates: readonly VmaBounds[];
  chunks: Promise<Map<bigint, number>>;
}

/**
 * The malloc chunks of the candidates whose first headers the addon read
 * beside the scan (layoutScanReads()), `vmas` made of that scan (one per
 * VMA, in its order): as the addon walked them on from there (chunkTiles),
 * or, from an addon that does not walk, the VMAs that hold one walked on
 * here (readMallocChunksNative()) while the report makes its rows. The
 * first headers were read on the other core as the kernel printed the rest
 * of smaps: at 10,000 VMAs, 4,096 headers read after the scan took
 * 0.14–0.18x of its time; read beside it, regions(pid) costs 1.01x of its
 * reads made one after another (BENCHMARKS.md section 7).
 * readLayoutFacts() takes the result only where the VMAs the read settles
 * on give the same candidates, the very objects (a torn read made again, or
 * left short, does not), and reads them again otherwise. Undefined: no
 * headers came with it.
 */
export function readMallocChunksEarly(
  target: ProcessTarget,
  scan: NativeSmapsScan,
  vmas: readonly LayoutVma[],
  pageSize: number,
  deadlineMs = DEFAULT_DEADLINE_MS,
): EarlyChunks | undefined {
  const { chunkCandidates: at, chunkHeaders: headers } = scan;
  if (at === undefined || headers === undefined || headers.length !== at.length * HEADER_BYTES || !readable(target)) return undefined;
  if (at.length > 0 && at[at.length - 1]! >= vmas.length) return undefined;
  const candidates = Array.from(at, (v) => vmas[v]!);
  const tiles = scan.chunkTiles;
  if (tiles !== undefined && tiles.length === at.length) {
    const told = new Map<bigint, number>();
    for (let i = 0; i < tiles.length; i++) if (tiles[i]! > 0) told.set(candidates[i]!.start, tiles[i]!);
    return { candidates, chunks: Promise.resolve(told) };
  }
  const chunks = readMallocChunksNative(target, candidates, pageSize, MAX_CHUNKS_PER_VMA, deadlineMs, headers).then((read) => read ?? new Map<bigint, number>());
  chunks.catch(() => {}); // awaited by readLayoutFacts(), or dropped with a read made again
  return { candidates, chunks };
}

/** Whether two candidate lists are the same VMA objects, in order. */
function sameVmas(a: readonly VmaBounds[], b: readonly VmaBounds[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Both facts for a process; empty where they cannot be read. The stack
 * pointers are the ones given (readStackPointersEarly()), or read here; the
 * chunk headers those read beside the scan (readMallocChunksEarly()) where
 * they are of the same VMAs, or read here.
 */
export async function readLayoutFacts(
  target: ProcessTarget,
  vmas: readonly LayoutVma[],
  pageSize: number,
  deadlineMs?: number,
  stackPointersRead?: Map<number, bigint>,
  early?: EarlyChunks,
): Promise<LayoutFacts> {
  if (!readable(target)) return {};
  // The header read starts first (the addon's reader thread), then the stack pointers are read here beside it.
  const candidates = chunkCandidates(vmas);
  const mallocChunks = early !== undefined && sameVmas(early.candidates, candidates)
    ? early.chunks
    : readChunksOf(target, candidates, pageSize, deadlineMs ?? DEFAULT_DEADLINE_MS);
  mallocChunks.catch(() => {}); // awaited below
  const stackPointers = stackPointersRead ?? readStackPointers(target);
  return { stackPointers, mallocChunks: await mallocChunks };
}
