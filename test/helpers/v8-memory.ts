/**
 * Reads V8's hash fields out of another process's memory (as root, from
 * /proc/PID/mem), independently of the code under test: the seeds V8 derives
 * them from are not visible from JavaScript.
 *
 * A sequential one-byte string is [map][raw_hash_field u32][length u32][chars]
 * (map is 8 bytes, or 4 with pointer compression); a Symbol is [map]
 * [raw_hash_field u32][flags u32][description], the description a tagged
 * pointer (address + 1) to its string. raw_hash_field bit 0 set means "not
 * computed yet".
 */
import * as fs from 'node:fs';

interface Region {
  start: number;
  end: number;
}

/** Private anonymous writable mappings of a few MiB at most: where V8's pages are. */
function heapRegions(pid: number): Region[] {
  const out: Region[] = [];
  for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
    const match = /^([0-9a-f]+)-([0-9a-f]+) rw-p 00000000 00:00 0\s*$/.exec(line);
    if (!match) continue;
    const start = Number.parseInt(match[1]!, 16);
    const end = Number.parseInt(match[2]!, 16);
    if (end - start <= 64 * 1024 * 1024) out.push({ start, end });
  }
  return out;
}

function read(fd: number, region: Region): Buffer | undefined {
  const buffer = Buffer.alloc(region.end - region.start);
  try {
    fs.readSync(fd, buffer, 0, buffer.length, region.start);
    return buffer;
  } catch {
    return undefined; // a guard page, or gone
  }
}

const compressed = (process.config.variables as Record<string, unknown>).v8_enable_pointer_compression === 1;
const MAP = compressed ? 4 : 8;

interface Found {
  regions: Array<{ region: Region; data: Buffer | undefined }>;
  /** raw_hash_field of each string equal to the text, and the string's address. */
  strings: Array<{ field: number; address: number }>;
}

function findStrings(fd: number, pid: number, text: string): Found {
  const body = Buffer.from(text, 'latin1');
  const pattern = Buffer.alloc(4 + body.length);
  pattern.writeUInt32LE(body.length, 0);
  body.copy(pattern, 4);
  const regions = heapRegions(pid).map((region) => ({ region, data: read(fd, region) }));
  const strings: Found['strings'] = [];
  for (const { region, data } of regions) {
    if (!data) continue;
    for (let at = data.indexOf(pattern, 4); at >= 0; at = data.indexOf(pattern, at + 1)) {
      strings.push({ field: data.readUInt32LE(at - 4), address: region.start + at - 4 - MAP });
    }
  }
  return { regions, strings };
}

const computed = (field: number): boolean => field !== 0 && (field & 1) === 0;

/** The computed raw_hash_field values of the V8 strings equal to `text` (one-byte): the string hash seed at work. */
export function v8StringHashes(pid: number, text: string): Set<number> {
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  try {
    return new Set(findStrings(fd, pid, text).strings.map((s) => s.field).filter(computed));
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The raw_hash_field values of the Symbols whose description is a string
 * equal to `description`: a word pointing at that string, preceded by flags 0
 * (a plain Symbol()) and a computed hash. Symbol hashes come from the
 * isolate's random generator.
 */
export function v8SymbolHashes(pid: number, description: string): Set<number> {
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  const out = new Set<number>();
  try {
    const { regions, strings } = findStrings(fd, pid, description);
    for (const { address } of strings) {
      const tagged = Buffer.alloc(MAP);
      if (compressed) tagged.writeUInt32LE((address + 1) % 2 ** 32, 0);
      else tagged.writeBigUInt64LE(BigInt(address + 1), 0);
      for (const { data } of regions) {
        if (!data) continue;
        for (let at = data.indexOf(tagged); at >= 0; at = data.indexOf(tagged, at + 1)) {
          if (at % MAP !== 0 || at < MAP + 8) continue;
          const field = data.readUInt32LE(at - 8);
          const flags = data.readUInt32LE(at - 4);
          const map = compressed ? data.readUInt32LE(at - 8 - MAP) : Number(data.readBigUInt64LE(at - 8 - MAP) & 0xffn);
          if (flags === 0 && computed(field) && (map & 1) === 1) out.add(field);
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Start addresses of the V8 heap chunks (256 KiB-aligned private anonymous mappings) of a process. */
export function v8ChunkStarts(pid: number): Set<number> {
  return new Set(heapRegions(pid).filter((r) => r.start % 0x40000 === 0 && (r.end - r.start) % 0x40000 === 0).map((r) => r.start));
}

/** Bytes of a process's V8 heap, and of it what maps a KSM page, from smaps (`Anonymous:`, `KSM:`). */
export interface V8HeapKsm {
  /**
   * Chunks whose first words are a V8 chunk header (old, young, large object
   * and read-only pages). `ksmDataBytes`: of `ksmBytes`, the pages that are
   * not all zeros (read through pagemap and kpageflags): merged objects,
   * not merged untouched-after-zeroing space.
   */
  heap: { anonymousBytes: number; ksmBytes: number; ksmDataBytes: number };
  /** The one anonymous executable mapping: V8's code range. */
  code: { anonymousBytes: number; ksmBytes: number };
  /** Every other anonymous mapping (malloc, stacks, buffers). */
  other: { anonymousBytes: number; ksmBytes: number };
}

/**
 * The kernel's own count, per VMA, of a process's pages that map KSM pages,
 * summed over the V8 heap's chunks. A chunk is a 256 KiB-aligned private
 * anonymous writable VMA whose first word (BasicMemoryChunk::size_) is a
 * page-multiple between 256 KiB and the VMA's size: malloc's arenas and
 * mmap chunks start with other values.
 */
export function v8HeapKsm(pid: number): V8HeapKsm {
  const out: V8HeapKsm = {
    heap: { anonymousBytes: 0, ksmBytes: 0, ksmDataBytes: 0 },
    code: { anonymousBytes: 0, ksmBytes: 0 },
    other: { anonymousBytes: 0, ksmBytes: 0 },
  };
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  const pagemap = fs.openSync(`/proc/${pid}/pagemap`, 'r');
  const kpageflags = fs.openSync('/proc/kpageflags', 'r');
  try {
    let current: V8HeapKsm['other'] | undefined;
    for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
      const header = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(.*)$/.exec(line);
      if (header) {
        const start = Number.parseInt(header[1]!, 16);
        const size = Number.parseInt(header[2]!, 16) - start;
        const [perms, inode, name] = [header[3]!, header[4]!, header[5]!.trim()];
        if (inode !== '0' || name !== '') current = name === '' || name.startsWith('[anon') ? out.other : undefined;
        else if (perms.includes('x')) current = out.code;
        else if (perms.startsWith('rw') && start % 0x40000 === 0 && isChunk(fd, start, size)) {
          current = out.heap;
          out.heap.ksmDataBytes += ksmDataBytes({ mem: fd, pagemap, kpageflags }, start, size);
        } else current = out.other;
        continue;
      }
      if (!current) continue;
      const field = /^(Anonymous|KSM):\s+(\d+) kB/.exec(line);
      if (field) current[field[1] === 'KSM' ? 'ksmBytes' : 'anonymousBytes'] += Number(field[2]) * 1024;
    }
  } finally {
    for (const f of [fd, pagemap, kpageflags]) fs.closeSync(f);
  }
  return out;
}

const PAGE = 4096;
const KPF_KSM = 1n << 21n;
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/** Bytes of [start, start + size) that map a KSM page holding anything but zeros. */
function ksmDataBytes(fds: { mem: number; pagemap: number; kpageflags: number }, start: number, size: number): number {
  const entries = Buffer.alloc((size / PAGE) * 8);
  fs.readSync(fds.pagemap, entries, 0, entries.length, (start / PAGE) * 8);
  const flags = Buffer.alloc(8);
  const page = Buffer.alloc(PAGE);
  let bytes = 0;
  for (let i = 0; i < size / PAGE; i++) {
    const entry = entries.readBigUInt64LE(i * 8);
    if ((entry & PRESENT) === 0n) continue;
    if (fs.readSync(fds.kpageflags, flags, 0, 8, Number((entry & PFN_MASK) * 8n)) !== 8) continue;
    if ((flags.readBigUInt64LE(0) & KPF_KSM) === 0n) continue;
    if (fs.readSync(fds.mem, page, 0, PAGE, start + i * PAGE) === PAGE && page.some((b) => b !== 0)) bytes += PAGE;
  }
  return bytes;
}

function isChunk(fd: number, start: number, size: number): boolean {
  const word = Buffer.alloc(8);
  try {
    if (fs.readSync(fd, word, 0, 8, start) !== 8) return false;
  } catch {
    return false; // not populated yet, or a guard
  }
  const chunkSize = Number(word.readBigUInt64LE(0));
  return chunkSize >= 0x40000 && chunkSize <= size && chunkSize % 4096 === 0;
}
