/**
 * What a VMA is, from its smaps header and VmFlags alone: its kind, whether
 * KSM can take it (and why not), and whether it holds only anonymous data.
 * One classification for regions(), estimate() and doctor(); pure functions,
 * so either smaps VMA type (SmapsVma, SmapsSummary) fits.
 */
import type { SmapsHeader } from './smaps.js';

/**
 * What a VMA is, as far as /proc tells:
 * - `heap`, `stack`, `vdso`, `vvar`, `vsyscall`: the kernel's named areas,
 * - `file`: a file mapping (shared libraries, mmapped files),
 * - `shared-memory`: shmem, SysV, memfd and /dev/zero shared mappings (never mergeable),
 * - `named-anonymous`: anonymous memory named with PR_SET_VMA_ANON_NAME (`[anon:name]`),
 * - `jit-code`: anonymous executable memory; in Node that is V8's code space
 *   (JIT and wasm code), since only a JIT maps anonymous memory executable,
 * - `reserved`: anonymous address space with no access (`---p`): guard pages
 *   and reservations (V8's code range, malloc arenas); never resident,
 * - `anonymous`: every other anonymous mapping. V8's heap lives here, in
 *   256 KiB chunks that nothing in /proc names: it cannot be told from other
 *   anonymous memory reliably, so it is not guessed at.
 * - `special`: other `[...]` areas (`[uprobes]`, ...).
 */
export type RegionKind =
  | 'heap'
  | 'stack'
  | 'vdso'
  | 'vvar'
  | 'vsyscall'
  | 'file'
  | 'shared-memory'
  | 'named-anonymous'
  | 'jit-code'
  | 'reserved'
  | 'anonymous'
  | 'special';

/** The header fields the kind is told from. */
export type VmaIdentity = Pick<SmapsHeader, 'pathname' | 'perms' | 'inode'>;

/** The header fields and VmFlags KSM's verdict is told from. */
export interface VmaWithFlags extends VmaIdentity {
  /** Two-letter VmFlags, e.g. `mg`, `sh`, `ht`. */
  vmFlags: readonly string[];
}

const NAMED: Record<string, RegionKind> = {
  '[heap]': 'heap',
  '[stack]': 'stack',
  '[vdso]': 'vdso',
  '[vvar]': 'vvar',
  '[vvar_vclock]': 'vvar',
  '[vsyscall]': 'vsyscall',
};

/** Shared memory objects by the path the kernel prints for them (`/dev/zero (deleted)` for MAP_SHARED|MAP_ANONYMOUS). */
function isSharedMemoryPath(path: string): boolean {
  return path.startsWith('/SYSV') || path.startsWith('/memfd:') || path.startsWith('/dev/zero') || path.startsWith('/dev/shm/');
}

/** A shared mapping of a device file: the device's memory, not a shared-memory object. */
function isDeviceMapping(vma: VmaIdentity): boolean {
  return vma.perms.endsWith('s') && vma.inode !== 0 && vma.pathname.startsWith('/dev/') && !isSharedMemoryPath(vma.pathname);
}

/** regionKind()'s answer for a kind without a name: one frozen object per kind, not one per VMA. */
const UNNAMED: Partial<Record<RegionKind, Readonly<{ kind: RegionKind; anonName: undefined }>>> = {};
const unnamed = (kind: RegionKind): Readonly<{ kind: RegionKind; anonName: undefined }> => (UNNAMED[kind] ??= Object.freeze({ kind, anonName: undefined }));

export function regionKind(vma: VmaIdentity): Readonly<{ kind: RegionKind; anonName: string | undefined }> {
  const path = vma.pathname;
  if (path === '') {
    if (vma.perms.startsWith('---')) return unnamed('reserved');
    if (vma.perms[2] === 'x') return unnamed('jit-code');
    return unnamed('anonymous');
  }
  const named = NAMED[path];
  if (named !== undefined) return unnamed(named);
  if (path.startsWith('[stack:')) return unnamed('stack');
  if (path.startsWith('[anon:') && path.endsWith(']')) return { kind: 'named-anonymous', anonName: path.slice(6, -1) };
  if (path.startsWith('[anon_shmem:') && path.endsWith(']')) return { kind: 'shared-memory', anonName: path.slice(12, -1) };
  if (path.startsWith('[')) return unnamed('special');
  // MAP_PRIVATE of /dev/zero is plain anonymous memory (the kernel makes the VMA anonymous, and it merges); smaps still names the file.
  if (path === '/dev/zero' && vma.perms.endsWith('p')) return unnamed('anonymous');
  if (isSharedMemoryPath(path) || isDeviceMapping(vma)) return unnamed('shared-memory');
  return unnamed('file');
}

/**
 * Why KSM will not take the VMA: the flags mm/ksm.c vma_ksm_compatible()
 * refuses (VM_SHARED/VM_MAYSHARE, VM_HUGETLB, VM_PFNMAP, VM_IO,
 * VM_DONTEXPAND, VM_MIXEDMAP, VM_DROPPABLE), and the vsyscall page, which
 * smaps prints but is no VMA of the process. DAX has no VmFlags letter.
 */
export function ksmRefusals(vma: VmaWithFlags): string[] {
  if (vma.pathname === '[vsyscall]') return ['the vsyscall page is not a real mapping'];
  const flags = new Set(vma.vmFlags);
  const reasons: string[] = [];
  if (flags.has('sh') || flags.has('ms') || vma.perms.endsWith('s')) {
    reasons.push('shared mapping (only private anonymous memory merges)');
  }
  if (flags.has('ht')) reasons.push('hugetlb mapping');
  if (flags.has('pf')) reasons.push('PFN map');
  if (flags.has('io')) reasons.push('I/O mapping');
  if (flags.has('de')) reasons.push('VM_DONTEXPAND mapping');
  if (flags.has('mm')) reasons.push('mixed map');
  if (flags.has('dp')) reasons.push('droppable mapping');
  return reasons;
}

export function ksmCompatible(vma: VmaWithFlags): boolean {
  return ksmRefusals(vma).length === 0;
}

/** ksmRefusals() in one line, or what is left to say when the flags refuse nothing. */
export function whyNotMergeable(vma: VmaWithFlags): string {
  const reasons = ksmRefusals(vma);
  return reasons.length > 0 ? reasons.join(', ') : 'the kernel left VM_MERGEABLE unset for this mapping';
}

/**
 * Memory that can only hold anonymous data: anonymous mappings and the heap,
 * shared-memory objects (shmem, SysV, memfd, /dev/zero), hugetlb files; not
 * files, devices or the kernel's named areas.
 */
export function anonymousLike(vma: VmaWithFlags): boolean {
  switch (regionKind(vma).kind) {
    case 'anonymous':
    case 'reserved':
    case 'jit-code':
    case 'named-anonymous':
    case 'heap':
      return true;
    case 'shared-memory':
      return !isDeviceMapping(vma);
    case 'file':
      return vma.inode === 0 || vma.vmFlags.includes('ht');
    default:
      return false;
  }
}


// ---------------------------------------------------------------------------
// What a Node process's anonymous memory is, from the layout of its VMAs and
// a few facts read beside smaps. Each kind is given only where its evidence
// holds exactly; everything else stays what regionKind() said.

/**
 * The kinds told from the layout of a Node process's memory, on top of
 * regionKind()'s (which only ever says `anonymous` for them):
 * - `wasm-memory`: a WebAssembly memory's accessible pages, followed by the
 *   PROT_NONE guard region V8 reserves behind each one, up to 8 GiB past its
 *   start (kFullGuardSize32 of V8's backing-store.cc for a 32-bit memory);
 * - `v8-code-range`: the accessible pages inside one contiguous reservation
 *   of exactly V8's code range size (kMaximalCodeRangeSize: 512 MiB on x64
 *   Node, 128 MiB with pointer compression) that holds executable pages;
 * - `thread-stack`: the mapping a thread's stack pointer points into, as
 *   /proc/PID/task/TID/syscall shows it for a thread blocked in the kernel;
 * - `malloc-arena`: a heap of one of glibc malloc's thread arenas:
 *   64 MiB-aligned, MAP_NORESERVE (`nr`), its PROT_NONE rest reaching
 *   exactly 64 MiB (HEAP_MAX_SIZE on 64-bit);
 * - `malloc-chunk`: chunks glibc malloc mapped on their own (large
 *   allocations, Node's big Buffers among them): the VMA is tiled exactly by
 *   chunk headers marked IS_MMAPPED, read from the process's memory.
 */
export type LayoutKind = 'wasm-memory' | 'v8-code-range' | 'thread-stack' | 'malloc-arena' | 'malloc-chunk';

/** A VMA as the layout rules see it. */
export interface LayoutVma extends VmaWithFlags {
  start: bigint;
  end: bigint;
}

/** Facts read beside smaps (lib/kernel/vma-evidence.ts); each optional: without it, its kind is not given. */
export interface LayoutFacts {
  /** The stack pointer of each thread blocked in a system call, by thread id. */
  stackPointers?: ReadonlyMap<number, bigint>;
  /** VMAs (by start) tiled exactly by glibc mmapped chunks: how many chunks. */
  mallocChunks?: ReadonlyMap<bigint, number>;
}

export interface Classified {
  kind: RegionKind | LayoutKind;
  anonName: string | undefined;
  /** For a layout kind and the heap: what it was told from, in words with the figures. */
  evidence: string | undefined;
}

const MiB = 1024n * 1024n;
const GiB = 1024n * MiB;
/** V8's guard region behind a 32-bit WebAssembly memory reaches this far past its start. */
export const WASM_GUARD_REACH = 8n * GiB;
/** V8's code range sizes (kMaximalCodeRangeSize): x64 without and with pointer compression. */
export const V8_CODE_RANGE_SIZES: readonly bigint[] = [512n * MiB, 128n * MiB];
/** glibc malloc's HEAP_MAX_SIZE on 64-bit: every thread-arena heap is this large and this aligned. */
export const MALLOC_HEAP_MAX = 64n * MiB;
/** A WebAssembly page. */
const WASM_PAGE = 64n * 1024n;

const hex = (value: bigint): string => `0x${value.toString(16)}`;
const sizeText = (bytes: bigint): string => (bytes % GiB === 0n ? `${bytes / GiB} GiB` : bytes % MiB === 0n ? `${bytes / MiB} MiB` : `${bytes} bytes`);

const isAnonymous = (vma: VmaIdentity): boolean => vma.pathname === '';
const isGuard = (vma: LayoutVma | undefined): vma is LayoutVma => vma !== undefined && isAnonymous(vma) && vma.perms.startsWith('---');

function wasmEvidence(vmas: readonly LayoutVma[], i: number): string | undefined {
  const vma = vmas[i]!;
  const next = vmas[i + 1];
  if (!vma.perms.startsWith('rw') || !isGuard(next) || next.start !== vma.end) return undefined;
  const size = vma.end - vma.start;
  if (size % WASM_PAGE !== 0n || size > WASM_GUARD_REACH || next.end < vma.start + WASM_GUARD_REACH) return undefined;
  return `${sizeText(size)} accessible, then a PROT_NONE reservation ${hex(next.start)}-${hex(next.end)} reaching ` +
    `${sizeText(next.end - vma.start)} past its start: V8's guard region behind a WebAssembly memory (8 GiB)`;
}

function arenaEvidence(vmas: readonly LayoutVma[], i: number): string | undefined {
  const vma = vmas[i]!;
  if (!vma.perms.startsWith('rw') || !vma.vmFlags.includes('nr') || vma.start % MALLOC_HEAP_MAX !== 0n) return undefined;
  const end = vma.start + MALLOC_HEAP_MAX;
  if (vma.end === end) return `64 MiB-aligned, MAP_NORESERVE (nr), exactly 64 MiB: a full heap of a glibc malloc thread arena (HEAP_MAX_SIZE)`;
  const next = vmas[i + 1];
  if (!isGuard(next) || next.start !== vma.end || next.end !== end || !next.vmFlags.includes('nr')) return undefined;
  return `64 MiB-aligned, MAP_NORESERVE (nr), its PROT_NONE rest ${hex(next.start)}-${hex(next.end)} ending exactly 64 MiB on: ` +
    'a heap of a glibc malloc thread arena (HEAP_MAX_SIZE)';
}

/**
 * The spans [first, last] of address-contiguous VMAs that are one V8 code
 * range. Linear in the VMA count: within each run of contiguous parts, one
 * pointer per start finds the VMA whose end is a code range size away (ends
 * only grow along a run), and running counts say whether executable
 * anonymous pages lie between, and how many of V8's own pieces.
 *
 * A run longer than a code range can hold several such windows that
 * overlap: mmap places later mappings against the reservation (a run of
 * small VMAs below it, one of them starting exactly a code range size below
 * a boundary inside it), or two isolates' reservations lie back to back.
 * One reservation at most is among overlapping windows: going up the run,
 * a window that overlaps the one kept replaces it only where it holds more
 * of V8's pieces (executable anonymous VMAs, and the embedded builtins V8
 * remapped into its code range, a file's r-xp mapping inside the run),
 * else the first found stands.
 */
function codeRanges(vmas: readonly LayoutVma[]): Array<{ first: number; last: number; size: bigint }> {
  const ranges: Array<{ first: number; last: number; size: bigint }> = [];
  // A code range holds anonymous memory, and the embedded builtins V8 may remap into it (a file mapping).
  const part = (vma: LayoutVma): boolean => isAnonymous(vma) || vma.perms === 'r-xp';
  const executable = (vma: LayoutVma): number => (isAnonymous(vma) && vma.perms[2] === 'x' ? 1 : 0);
  // V8's own pieces: its executable pages, and the builtins it remaps into the code range (the run's file mappings).
  const piece = (vma: LayoutVma): number => (isAnonymous(vma) ? executable(vma) : 1);
  let runStart = 0;
  while (runStart < vmas.length) {
    if (!part(vmas[runStart]!)) {
      runStart++;
      continue;
    }
    let runEnd = runStart; // inclusive
    let executables = executable(vmas[runStart]!);
    while (runEnd + 1 < vmas.length && part(vmas[runEnd + 1]!) && vmas[runEnd + 1]!.start === vmas[runEnd]!.end) executables += executable(vmas[++runEnd]!);
    if (executables === 0) { // no code range in a run without executable pages (most runs)
      runStart = runEnd + 1;
      continue;
    }
    // execBefore[k], piecesBefore[k]: executable VMAs, V8's pieces among runStart .. runStart + k - 1.
    const execBefore = new Array<number>(runEnd - runStart + 2);
    const piecesBefore = new Array<number>(runEnd - runStart + 2);
    execBefore[0] = 0;
    piecesBefore[0] = 0;
    for (let k = runStart; k <= runEnd; k++) {
      execBefore[k - runStart + 1] = execBefore[k - runStart]! + executable(vmas[k]!);
      piecesBefore[k - runStart + 1] = piecesBefore[k - runStart]! + piece(vmas[k]!);
    }
    const ends = V8_CODE_RANGE_SIZES.map(() => runStart);
    let kept: { first: number; last: number; size: bigint; pieces: number } | undefined;
    // No executable part from i on: no code range starts there (most runs hold none at all).
    for (let i = runStart; i <= runEnd && execBefore[runEnd + 1 - runStart]! > execBefore[i - runStart]!; i++) {
      let found: { last: number; size: bigint } | undefined;
      for (let s = 0; s < V8_CODE_RANGE_SIZES.length; s++) {
        const size = V8_CODE_RANGE_SIZES[s]!;
        const target = vmas[i]!.start + size;
        let j = Math.max(ends[s]!, i);
        while (j < runEnd && vmas[j]!.end < target) j++;
        ends[s] = j;
        // The nearest end wins, as a walk from the start would meet it first.
        if (vmas[j]!.end === target && execBefore[j + 1 - runStart]! - execBefore[i - runStart]! > 0 && (found === undefined || j < found.last)) found = { last: j, size };
      }
      if (found === undefined) continue;
      const pieces = piecesBefore[found.last + 1 - runStart]! - piecesBefore[i - runStart]!;
      if (kept !== undefined && i <= kept.last) {
        if (pieces > kept.pieces) kept = { first: i, ...found, pieces };
        continue;
      }
      if (kept !== undefined) ranges.push({ first: kept.first, last: kept.last, size: kept.size });
      kept = { first: i, ...found, pieces };
    }
    if (kept !== undefined) ranges.push({ first: kept.first, last: kept.last, size: kept.size });
    runStart = runEnd + 1;
  }
  return ranges;
}

/** The first index in [0, count) where `holds` becomes true (it stays true after), count where it never does. */
function firstIndex(count: number, holds: (i: number) => boolean): number {
  let low = 0;
  let high = count;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (holds(mid)) high = mid;
    else low = mid + 1;
  }
  return low;
}

/**
 * The threads whose stack pointer lies in each VMA, by VMA index, in the
 * order the pointers were read: one binary search per thread rather than a
 * look at every thread per VMA.
 */
function threadsByVma(vmas: readonly LayoutVma[], stackPointers: ReadonlyMap<number, bigint> | undefined): Map<number, number[]> {
  const out = new Map<number, number[]>();
  if (stackPointers === undefined) return out;
  for (const [tid, sp] of stackPointers) {
    const low = firstIndex(vmas.length, (i) => vmas[i]!.end > sp);
    if (low < vmas.length && vmas[low]!.start <= sp) {
      const list = out.get(low);
      if (list === undefined) out.set(low, [tid]);
      else list.push(tid);
    }
  }
  return out;
}

/**
 * The chunk counts by VMA index, for VMAs in address order: one binary
 * search per VMA told (a few, mostly) rather than a BigInt-keyed lookup
 * per VMA (at 10,000 VMAs most of factKinds()' time). Undefined where the
 * lookups are fewer.
 */
function chunksByVma(vmas: readonly LayoutVma[], chunks: ReadonlyMap<bigint, number> | undefined): Map<number, number> | undefined {
  if (chunks === undefined || chunks.size * Math.log2(vmas.length + 1) > vmas.length) return undefined;
  const out = new Map<number, number>();
  for (const [start, count] of chunks) {
    for (let k = firstIndex(vmas.length, (i) => vmas[i]!.start >= start); k < vmas.length && vmas[k]!.start === start; k++) out.set(k, count); // empty VMAs may share a start
  }
  return out;
}

function inAddressOrder(vmas: readonly LayoutVma[]): boolean {
  for (let i = 1; i < vmas.length; i++) if (vmas[i]!.start < vmas[i - 1]!.end) return false;
  return true;
}

/** The threads whose stack pointer lies in `vma`: made-up lists out of address order. */
function threadsAt(vma: LayoutVma, stackPointers: ReadonlyMap<number, bigint> | undefined): number[] | undefined {
  if (stackPointers === undefined) return undefined;
  const threads = [...stackPointers].filter(([, sp]) => sp >= vma.start && sp < vma.end).map(([tid]) => tid);
  return threads.length === 0 ? undefined : threads;
}

function stackEvidence(vma: LayoutVma, threads: readonly number[] | undefined): string | undefined {
  if (threads === undefined || !vma.perms.startsWith('rw')) return undefined;
  return `holds the stack pointer of thread ${threads.join(', ')} (task/${threads[0]}/syscall)`;
}

const HEAP_EVIDENCE = 'the brk heap: the main arena of glibc malloc';
/** One frozen classification per kind that carries no name of its own: 10,000 VMAs need no 10,000 objects. */
const PLAIN: Partial<Record<RegionKind, Classified>> = {};

/**
 * Every VMA's kind, in the order given (smaps order: by address), with the
 * Node-specific kinds where their evidence holds. Pure: `facts` carries what
 * was read beside smaps.
 */
export function classifyVmas(vmas: readonly LayoutVma[], facts: LayoutFacts = {}): Classified[] {
  const out = layoutKinds(vmas);
  for (const [i, classified] of factKinds(vmas, out, facts)) out[i] = classified;
  return out;
}

/** What the layout alone tells: classifyVmas() without facts. */
function layoutKinds(vmas: readonly LayoutVma[]): Classified[] {
  const out: Classified[] = vmas.map((vma) => {
    const { kind, anonName } = regionKind(vma);
    if (anonName !== undefined) return { kind, anonName, evidence: undefined };
    return (PLAIN[kind] ??= Object.freeze({ kind, anonName: undefined, evidence: kind === 'heap' ? HEAP_EVIDENCE : undefined }));
  });
  for (const range of codeRanges(vmas)) {
    const first = vmas[range.first]!;
    const evidence = `inside ${hex(first.start)}-${hex(vmas[range.last]!.end)}, one reservation of exactly ${sizeText(range.size)} ` +
      "holding executable pages: V8's code range (kMaximalCodeRangeSize)";
    for (let i = range.first; i <= range.last; i++) {
      const kind = out[i]!.kind;
      if (kind === 'anonymous' || kind === 'jit-code') out[i] = { kind: 'v8-code-range', anonName: undefined, evidence };
    }
  }
  for (let i = 0; i < vmas.length; i++) {
    if (out[i]!.kind !== 'anonymous') continue;
    const arena = arenaEvidence(vmas, i);
    if (arena !== undefined) {
      out[i] = { kind: 'malloc-arena', anonName: undefined, evidence: arena };
      continue;
    }
    const wasm = wasmEvidence(vmas, i);
    if (wasm !== undefined) out[i] = { kind: 'wasm-memory', anonName: undefined, evidence: wasm };
  }
  return out;
}

/**
 * The kinds `facts` tell on top of what the layout told (`layout`, from
 * classifyVmas(vmas) without facts): [index, classification] for each VMA
 * they change, the others left as they are. A report that built its rows
 * from the layout's kinds while the facts were read applies just these.
 */
export function factKinds(vmas: readonly LayoutVma[], layout: readonly Classified[], facts: LayoutFacts): Array<[number, Classified]> {
  const changed: Array<[number, Classified]> = [];
  if (facts.stackPointers === undefined && facts.mallocChunks === undefined) return changed;
  // smaps lists VMAs by address, none overlapping: the searches need that order.
  const ordered = inAddressOrder(vmas);
  const threads = ordered ? threadsByVma(vmas, facts.stackPointers) : undefined;
  const chunksAt = ordered ? chunksByVma(vmas, facts.mallocChunks) : undefined;
  for (let i = 0; i < vmas.length; i++) {
    if (layout[i]!.kind !== 'anonymous') continue;
    const vma = vmas[i]!;
    const stack = stackEvidence(vma, threads !== undefined ? threads.get(i) : threadsAt(vma, facts.stackPointers));
    if (stack !== undefined) {
      changed.push([i, { kind: 'thread-stack', anonName: undefined, evidence: stack }]);
      continue;
    }
    const chunks = chunksAt !== undefined ? chunksAt.get(i) : facts.mallocChunks?.get(vma.start);
    if (chunks !== undefined && chunks > 0) {
      changed.push([i, {
        kind: 'malloc-chunk',
        anonName: undefined,
        evidence: `tiled exactly by ${chunks} chunk header(s) marked IS_MMAPPED: memory glibc malloc mapped for one allocation each`,
      }]);
    }
  }
  return changed;
}

/**
 * Where the malloc chunk check reads: anonymous read-write VMAs that no
 * other rule names (V8's own pages, marked MADV_DONTFORK `dc` by Node's
 * V8, are never malloc's).
 */
export function mallocChunkCandidate(vma: VmaWithFlags): boolean {
  return isAnonymous(vma) && vma.perms === 'rw-p' && !vma.vmFlags.includes('dc');
}

/**
 * One glibc malloc chunk header (prev_size, size; 16 bytes little-endian on
 * 64-bit): the chunk's size when it is a chunk mapped on its own (IS_MMAPPED
 * 0x2, neither PREV_INUSE 0x1 nor NON_MAIN_ARENA 0x4, prev_size 0, a whole
 * number of pages that fits what is left), undefined otherwise.
 */
export function mmappedChunkSize(header: Uint8Array, remaining: bigint, pageSize: number): bigint | undefined {
  if (header.length < 16) return undefined;
  const view = new DataView(header.buffer, header.byteOffset, 16);
  const prevSize = view.getBigUint64(0, true);
  const size = view.getBigUint64(8, true);
  if (prevSize !== 0n || (size & 7n) !== 2n) return undefined;
  const bytes = size & ~7n;
  if (bytes === 0n || bytes % BigInt(pageSize) !== 0n || bytes > remaining) return undefined;
  return bytes;
}
