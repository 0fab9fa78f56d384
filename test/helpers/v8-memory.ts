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

export interface V8Hashes {
  /** Computed raw_hash_field values of the strings holding exactly `text`. */
  strings: Set<number>;
  /** raw_hash_field values of the Symbols described by one of those strings. */
  symbols: Set<number>;
}

/** The hash fields of every V8 string equal to `text` (one-byte) and of the Symbols it describes. */
export function v8Hashes(pid: number, text: string): V8Hashes {
  const body = Buffer.from(text, 'latin1');
  const pattern = Buffer.alloc(4 + body.length);
  pattern.writeUInt32LE(body.length, 0);
  body.copy(pattern, 4);
  const fd = fs.openSync(`/proc/${pid}/mem`, 'r');
  const strings = new Set<number>();
  const symbols = new Set<number>();
  try {
    const regions = heapRegions(pid).map((region) => ({ region, data: read(fd, region) }));
    const addresses: number[] = [];
    for (const { region, data } of regions) {
      if (!data) continue;
      for (let at = data.indexOf(pattern, 4); at >= 0; at = data.indexOf(pattern, at + 1)) {
        const field = data.readUInt32LE(at - 4);
        if ((field & 1) === 0 && field !== 0) strings.add(field);
        addresses.push(region.start + at - 4 - MAP);
      }
    }
    for (const address of addresses) {
      const tagged = Buffer.alloc(MAP);
      if (compressed) tagged.writeUInt32LE(((address + 1) >>> 0) & 0xffffffff, 0);
      else tagged.writeBigUInt64LE(BigInt(address + 1), 0);
      for (const { data } of regions) {
        if (!data) continue;
        // description sits after map, raw_hash_field and flags.
        for (let at = data.indexOf(tagged); at >= 0; at = data.indexOf(tagged, at + 1)) {
          if (at % MAP !== 0 || at < MAP + 8) continue;
          const field = data.readUInt32LE(at - 8);
          if (field !== 0 && (field & 1) === 0) symbols.add(field);
        }
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return { strings, symbols };
}

/** Start addresses of the V8 heap chunks (256 KiB-aligned private anonymous mappings) of a process. */
export function v8ChunkStarts(pid: number): Set<number> {
  return new Set(heapRegions(pid).filter((r) => r.start % 0x40000 === 0 && (r.end - r.start) % 0x40000 === 0).map((r) => r.start));
}
