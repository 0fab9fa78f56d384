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
